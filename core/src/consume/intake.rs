//! How a route takes deliveries from its bus: inline for a route of concurrency 1, handed to idle
//! workers otherwise. Either way no more deliveries are in hand than the route has handlers
//! (retries waiting in process aside, which the retry slots bound), and on drain the intake
//! stops the bus's stream and handles what it had already received.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::sync::{mpsc, Notify};

use super::settle::{handle, Job};
use super::Route;
use crate::delivery::{Deliveries, Delivery};

/// Concurrency 1: the reading task is the handler. A retry waits in a task of its own and comes
/// back through a channel, ahead of new deliveries; while none waits, the task reads the bus
/// alone.
pub(super) async fn inline<S: Deliveries>(mut deliveries: S, route: Arc<Route>) {
    let mut slot = route.service.slot();
    let (retry_tx, mut retries) = mpsc::unbounded_channel::<Job<S::Delivery>>();
    let mut waiting = 0usize;
    let mut open = true;
    let mut stopped = false;
    let mut stop = pin!(route.shared.stop.clone().cancelled_owned());
    let mut abandon = pin!(route.shared.abandon.clone().cancelled_owned());
    loop {
        if route.abandoning() {
            break;
        }
        // The flag first: a busy stream (always ready) notices the drain without the stop
        // future being polled for every message.
        if open && !stopped && route.stopping() {
            deliveries.stop().await;
            stopped = true;
        }
        let job = if open {
            tokio::select! {
                biased;
                Some(job) = retries.recv(), if waiting > 0 => {
                    waiting -= 1;
                    job
                }
                next = deliveries.next(1) => match next {
                    Some(delivery) => {
                        route.stats.received();
                        Job::first(delivery)
                    }
                    None => {
                        open = false;
                        continue;
                    }
                },
                () = &mut stop, if !stopped => continue,
                () = &mut abandon => break,
            }
        } else if waiting > 0 {
            tokio::select! {
                Some(job) = retries.recv() => {
                    waiting -= 1;
                    job
                }
                () = &mut abandon => break,
            }
        } else {
            break;
        };
        if let Some(backoff) = handle(&route, &mut slot, job.delivery, job.retries).await {
            // With every slot taken this waits for an earlier backoff to end.
            let retry_slot = route.retry_slots.acquire().await;
            waiting += 1;
            let tx = retry_tx.clone();
            let route2 = Arc::clone(&route);
            route.shared.tracker.spawn(async move {
                if let Some(job) = backoff.wait(retry_slot, &route2).await {
                    let _ = tx.send(job);
                }
            });
        }
    }
}

/// Concurrency above 1: as many workers as the route's concurrency, each a task of its own with a
/// mailbox of one (so handlers of one route run on every worker thread, a handler busy computing
/// included, and a message costs no task of its own). The reader takes a delivery from the bus
/// only when a worker is idle, then hands it straight to an idle worker's mailbox. It waits for
/// an idle worker without taking it: a retry whose backoff has passed meanwhile takes it first.
/// A worker whose handler asks for a retry holds on to itself until a retry slot is free, so a
/// storm of failures holds the route back instead of reading the bus unbounded.
pub(super) async fn pool<S: Deliveries>(mut deliveries: S, route: Arc<Route>) {
    let pool = Arc::new(Pool::new(route.concurrency));
    for _ in 0..route.concurrency {
        let mailbox = Arc::new(Mailbox::default());
        pool.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&mailbox));
        pool.idle(Arc::clone(&mailbox));
        let worker = worker(Arc::clone(&pool), mailbox, Arc::clone(&route));
        route.shared.tracker.spawn(worker);
    }
    let mut stopped = false;
    let mut stop = pin!(route.shared.stop.clone().cancelled_owned());
    let mut abandon = pin!(route.shared.abandon.clone().cancelled_owned());
    loop {
        if route.abandoning() {
            break;
        }
        if !stopped && route.stopping() {
            deliveries.stop().await;
            stopped = true;
        }
        // A worker is idle (not taken yet: a retry due meanwhile gets it first).
        tokio::select! {
            biased;
            () = pool.any_idle() => {}
            () = &mut stop, if !stopped => continue,
            () = &mut abandon => break,
        }
        let room = pool.idle_count().max(1);
        let next = tokio::select! {
            biased;
            next = deliveries.next(room) => next,
            () = &mut stop, if !stopped => continue,
            () = &mut abandon => break,
        };
        let Some(delivery) = next else { break };
        route.stats.received();
        let mailbox = tokio::select! {
            biased;
            mailbox = pool.idle_worker() => mailbox,
            () = &mut abandon => {
                super::settle::give_back(&route, delivery).await;
                break;
            }
        };
        mailbox.put(Job::first(delivery));
    }
    // The workers finish what they hold and the retries still waiting, then stop.
    pool.release();
}

/// What the reader, the workers and the waiting retries of a pooled route share.
struct Pool<D> {
    /// The workers with nothing to do.
    idle: Mutex<Vec<Arc<Mailbox<D>>>>,
    /// Notified when a worker becomes idle, for a reader or retry waiting for one.
    became_idle: Notify,
    /// Who may still hand out work: the reader and each retry waiting for its turn. The last to
    /// go closes the mailboxes.
    handing_out: AtomicUsize,
    all: Mutex<Vec<Arc<Mailbox<D>>>>,
}

impl<D> Pool<D> {
    fn new(concurrency: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::with_capacity(concurrency)),
            became_idle: Notify::new(),
            handing_out: AtomicUsize::new(1),
            all: Mutex::new(Vec::with_capacity(concurrency)),
        }
    }

    /// `mailbox`'s worker has nothing to do.
    fn idle(&self, mailbox: Arc<Mailbox<D>>) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(mailbox);
        // Every waiter: the reader only looks, a retry takes.
        self.became_idle.notify_waiters();
    }

    fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits until a worker is idle, without taking it.
    async fn any_idle(&self) {
        loop {
            let note = self.became_idle.notified();
            let mut note = pin!(note);
            note.as_mut().enable();
            if self.idle_count() > 0 {
                return;
            }
            note.await;
        }
    }

    /// An idle worker's mailbox, waiting for one if all are busy.
    async fn idle_worker(&self) -> Arc<Mailbox<D>> {
        loop {
            let note = self.became_idle.notified();
            let mut note = pin!(note);
            note.as_mut().enable();
            if let Some(mailbox) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
                return mailbox;
            }
            note.await;
        }
    }

    /// One who could hand out work is done; the last one closes the mailboxes.
    fn release(&self) {
        if self.handing_out.fetch_sub(1, Ordering::AcqRel) == 1 {
            for mailbox in self.all.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                mailbox.close();
            }
        }
    }
}

/// A worker's mailbox: at most one job, and a waker.
struct Mailbox<D> {
    job: Mutex<Option<Job<D>>>,
    closed: AtomicBool,
    waker: AtomicWaker,
}

impl<D> Default for Mailbox<D> {
    fn default() -> Self {
        Self {
            job: Mutex::new(None),
            closed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }
}

impl<D> Mailbox<D> {
    fn put(&self, job: Job<D>) {
        *self.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
        self.waker.wake();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// The next job; `None` once closed and empty.
    fn take(&self) -> impl std::future::Future<Output = Option<Job<D>>> + '_ {
        std::future::poll_fn(move |cx| {
            let take = || self.job.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(job) = take() {
                return Poll::Ready(Some(job));
            }
            self.waker.register(cx.waker());
            // Checked again once registered: a job put in between is not missed.
            if let Some(job) = take() {
                return Poll::Ready(Some(job));
            }
            if self.closed.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
    }
}

/// One handler of a pooled route.
async fn worker<D: Delivery>(pool: Arc<Pool<D>>, mailbox: Arc<Mailbox<D>>, route: Arc<Route>) {
    let mut slot = route.service.slot();
    while let Some(job) = mailbox.take().await {
        let next = handle(&route, &mut slot, job.delivery, job.retries).await;
        let Some(backoff) = next else {
            pool.idle(Arc::clone(&mailbox));
            continue;
        };
        // The retry may still hand out work: counted before anything can close the mailboxes.
        pool.handing_out.fetch_add(1, Ordering::AcqRel);
        // With every retry slot taken this waits for an earlier backoff to end, the worker still
        // busy: the route takes no more from the bus while its retries are full.
        let retry_slot = route.retry_slots.acquire().await;
        pool.idle(Arc::clone(&mailbox));
        {
            let (pool, route2) = (Arc::clone(&pool), Arc::clone(&route));
            route.shared.tracker.spawn(async move {
                if let Some(job) = backoff.wait(retry_slot, &route2).await {
                    tokio::select! {
                        mailbox = pool.idle_worker() => mailbox.put(job),
                        () = route2.shared.abandon.cancelled() => {
                            super::settle::give_back(&route2, job.delivery).await;
                        }
                    }
                }
                pool.release();
            });
        }
    }
}
