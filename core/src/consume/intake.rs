//! How a route takes deliveries from its bus: inline for a route of concurrency 1, through a
//! worker pool otherwise. Either way no more deliveries are in hand than the route has handlers
//! (retries waiting in process aside, which the retry slots bound), and on drain the intake
//! stops the bus's stream and handles what it had already received.

use std::pin::pin;
use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::settle::{handle, Job};
use super::Route;
use crate::delivery::Deliveries;
use crate::queue::Queue;

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

/// Concurrency above 1: a reader takes a delivery only when one of the route's handler slots is
/// free and queues it (with the slot) for as many workers as the route's concurrency.
pub(super) async fn pool<S: Deliveries>(mut deliveries: S, route: Arc<Route>) {
    let concurrency = route.concurrency;
    let permits = Arc::new(Semaphore::new(concurrency));
    let jobs = Arc::new(Queue::new(concurrency));
    // The queue stays open while the reader or a retry may still add to it.
    let open = Arc::new(Open(Arc::clone(&jobs)));
    for _ in 0..concurrency {
        let worker = worker(
            Arc::clone(&jobs),
            Arc::downgrade(&open),
            Arc::clone(&route),
            Arc::clone(&permits),
        );
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
        let permit = tokio::select! {
            biased;
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop, if !stopped => continue,
            () = &mut abandon => break,
        };
        let room = permits.available_permits() + 1;
        let next = tokio::select! {
            biased;
            next = deliveries.next(room) => next,
            () = &mut stop, if !stopped => continue,
            () = &mut abandon => break,
        };
        let Some(delivery) = next else { break };
        route.stats.received();
        let job = (Job::first(delivery), permit);
        if let Err(back) = jobs.push(job).await {
            super::settle::give_back(&route, back.0.delivery).await;
            break;
        }
    }
    drop(open);
    // The workers finish what is queued and the retries still waiting, then stop.
}

/// Closes a pool's queue once the last holder (the reader, a waiting retry) is gone.
struct Open<D>(Arc<Queue<PoolJob<D>>>);

impl<D> Drop for Open<D> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A job with the handler slot it holds.
type PoolJob<D> = (Job<D>, OwnedSemaphorePermit);

/// One handler of a pooled route.
async fn worker<D: crate::delivery::Delivery>(
    jobs: Arc<Queue<PoolJob<D>>>,
    requeue: Weak<Open<D>>,
    route: Arc<Route>,
    permits: Arc<Semaphore>,
) {
    let mut slot = route.service.slot();
    while let Some((job, permit)) = jobs.pop().await {
        let mut next = handle(&route, &mut slot, job.delivery, job.retries).await;
        drop(permit);
        while let Some(backoff) = next.take() {
            let retry_slot = route.retry_slots.acquire().await;
            let Some(open) = requeue.upgrade() else {
                // The intake has ended (draining): retry here.
                if let Some(job) = backoff.wait(retry_slot, &route).await {
                    next = handle(&route, &mut slot, job.delivery, job.retries).await;
                }
                continue;
            };
            let route2 = Arc::clone(&route);
            let permits = Arc::clone(&permits);
            route.shared.tracker.spawn(async move {
                let Some(job) = backoff.wait(retry_slot, &route2).await else {
                    return;
                };
                let permit = tokio::select! {
                    permit = permits.acquire_owned() => permit,
                    () = route2.shared.abandon.cancelled() => {
                        super::settle::give_back(&route2, job.delivery).await;
                        return;
                    }
                };
                let Ok(permit) = permit else { return };
                if let Err(back) = open.0.push((job, permit)).await {
                    super::settle::give_back(&route2, back.0.delivery).await;
                }
            });
        }
    }
}
