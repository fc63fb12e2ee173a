//! How a route takes deliveries from its bus: inline for a route of concurrency 1, handed to idle
//! workers otherwise. Either way no more deliveries are in hand than the route has handlers
//! (retries waiting in process aside, which the retry slots bound), and on drain the intake
//! stops the bus's stream and handles what it had already received.

use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};

use super::settle::{handle, Job};
use super::slot::Slot;
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

/// Concurrency above 1: the reader takes a delivery from the bus only when one of the route's
/// `concurrency` message paths is free (a retry due meanwhile takes it first), and runs the
/// delivery on that path in a task of its own, while the reader takes the next delivery. Never
/// more than `concurrency` run at once. A retry waits in its own task and runs
/// there once its backoff has passed and a message path is free.
pub(super) async fn pool<S: Deliveries>(mut deliveries: S, route: Arc<Route>) {
    let paths = Arc::new(Paths::new(&route));
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
        // A path is free (not taken yet: a retry waiting for one gets it first).
        tokio::select! {
            biased;
            () = paths.any_free() => {}
            () = &mut stop, if !stopped => continue,
            () = &mut abandon => break,
        }
        let room = paths.free().max(1);
        let next = tokio::select! {
            biased;
            next = deliveries.next(room) => next,
            () = &mut stop, if !stopped => continue,
            () = &mut abandon => break,
        };
        let Some(delivery) = next else { break };
        route.stats.received();
        let path = tokio::select! {
            biased;
            path = paths.take() => path,
            () = &mut abandon => {
                super::settle::give_back(&route, delivery).await;
                break;
            }
        };
        // A task per delivery: handlers of one route run in parallel on every worker thread,
        // a handler busy computing included.
        route.shared.tracker.spawn(run(
            Arc::clone(&route),
            Arc::clone(&paths),
            path,
            Job::first(delivery),
        ));
    }
}

/// The message paths of a pooled route: one per unit of concurrency, each free or in use.
struct Paths {
    free: Mutex<Vec<Pin<Box<dyn Slot>>>>,
    /// Notified when a path is put back, for a reader or retry waiting for one.
    put_back: Notify,
}

impl Paths {
    fn new(route: &Route) -> Self {
        Self {
            free: Mutex::new(
                (0..route.concurrency)
                    .map(|_| route.service.slot())
                    .collect(),
            ),
            put_back: Notify::new(),
        }
    }

    fn free(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn put(&self, path: Pin<Box<dyn Slot>>) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path);
        self.put_back.notify_waiters();
    }

    /// Waits until a path is free, without taking it.
    async fn any_free(&self) {
        loop {
            let note = self.put_back.notified();
            let mut note = pin!(note);
            note.as_mut().enable();
            if self.free() > 0 {
                return;
            }
            note.await;
        }
    }

    /// A free path, waiting for one if all are in use.
    async fn take(&self) -> Pin<Box<dyn Slot>> {
        loop {
            let note = self.put_back.notified();
            let mut note = pin!(note);
            note.as_mut().enable();
            if let Some(path) = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop() {
                return path;
            }
            note.await;
        }
    }
}

/// Handles one delivery on `path` and, if it is to be retried in process, its retries, each after
/// its backoff and once a path is free again.
async fn run<D: Delivery>(
    route: Arc<Route>,
    paths: Arc<Paths>,
    mut path: Pin<Box<dyn Slot>>,
    job: Job<D>,
) {
    let mut next = handle(&route, &mut path, job.delivery, job.retries).await;
    while let Some(backoff) = next.take() {
        // With every retry slot taken this waits for an earlier backoff to end, still holding
        // its message path: the route takes no more from the bus while its retries are full.
        let retry_slot = route.retry_slots.acquire().await;
        paths.put(path);
        let Some(job) = backoff.wait(retry_slot, &route).await else {
            return;
        };
        let taken = tokio::select! {
            path = paths.take() => path,
            () = route.shared.abandon.cancelled() => {
                super::settle::give_back(&route, job.delivery).await;
                return;
            }
        };
        path = taken;
        next = handle(&route, &mut path, job.delivery, job.retries).await;
    }
    paths.put(path);
}
