//! How one delivery is handled: dispatched (with its lease extended while a slow handler runs)
//! and settled through the bus as its [`Settlement`] says; retries and dead letters that must
//! wait in process wait here, each holding one of the route's retry slots.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::slot::Slot;
use super::Route;
use crate::delivery::{Delivery, Refused, Retry};
use crate::log_context::MessageContext;
use crate::message::{Message, Outgoing};
use crate::retry::RetrySlot;
use crate::settlement::{RouteKind, Settlement};

/// First pause before publishing a refused dead letter again; it doubles up to
/// [`DEAD_LETTER_RETRY_MAX`].
const DEAD_LETTER_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest pause between tries at publishing a dead letter.
const DEAD_LETTER_RETRY_MAX: Duration = Duration::from_secs(30);

/// A delivery on its way to a handler, with how many in-process retries it had.
pub(super) struct Job<D> {
    pub(super) delivery: D,
    pub(super) retries: u32,
}

impl<D> Job<D> {
    pub(super) fn first(delivery: D) -> Self {
        Self {
            delivery,
            retries: 0,
        }
    }
}

/// A delivery to run again in process once its backoff has passed.
pub(super) struct Backoff<D> {
    delivery: D,
    delay: Duration,
    retries: u32,
}

impl<D: Delivery> Backoff<D> {
    /// Waits out the delay holding `slot` (extending the delivery's lease meanwhile), frees the
    /// slot, and hands the delivery back for its next attempt; `None` when the drain deadline
    /// passed first (the delivery is then given back to the bus).
    pub(super) async fn wait(self, slot: RetrySlot, route: &Route) -> Option<Job<D>> {
        let waited = {
            let sleep = pin!(tokio::time::sleep(self.delay));
            with_lease(route, &self.delivery, sleep).await
        };
        // Freed before the message is put back: a full queue may wait for workers that wait
        // for a slot.
        drop(slot);
        if waited.is_none() {
            give_back(route, self.delivery).await;
            return None;
        }
        Some(Job {
            delivery: self.delivery,
            retries: self.retries,
        })
    }
}

/// Runs the route's message path for `message` in the worker's slot.
fn dispatch<'a>(
    slot: &'a mut Pin<Box<dyn Slot>>,
    message: Message,
) -> impl Future<Output = Settlement> + 'a {
    slot.as_mut().start(message);
    std::future::poll_fn(move |cx| slot.as_mut().poll_settlement(cx))
}

/// Polls `work` to the end, extending `delivery`'s lease on time while it runs; `None` if the
/// drain deadline passes first.
async fn with_lease<D: Delivery, F: Future>(
    route: &Route,
    delivery: &D,
    mut work: Pin<&mut F>,
) -> Option<F::Output> {
    let mut ticks = delivery.lease().map(|every| {
        let every = every.max(Duration::from_millis(10));
        tokio::time::interval_at(tokio::time::Instant::now() + every, every)
    });
    let abandon = route.shared.abandon.cancelled();
    let mut abandon = pin!(abandon);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return Some(out),
            () = &mut abandon => return None,
            () = async {
                match ticks.as_mut() {
                    Some(ticks) => drop(ticks.tick().await),
                    None => std::future::pending().await,
                }
            } => {
                if let Err(e) = delivery.extend().await {
                    tracing::warn!(route = %route.name, "cannot extend a message's lease (it may be redelivered while its handler runs): {e}");
                }
            }
        }
    }
}

/// Handles one delivery: dispatches it and settles it. Returns the delivery when it is to be
/// retried in process.
pub(super) async fn handle<D: Delivery>(
    route: &Arc<Route>,
    slot: &mut Pin<Box<dyn Slot>>,
    delivery: D,
    retries: u32,
) -> Option<Backoff<D>> {
    if route.abandoning() {
        give_back(route, delivery).await;
        return None;
    }
    let mut message = delivery.message();
    message.attempt = message.attempt.saturating_add(retries);
    let started = (route.kind == RouteKind::Request).then(Instant::now);
    let context = MessageContext::of(&route.name, &message);
    let settlement = {
        let mut call = pin!(MessageContext::scope(context, dispatch(slot, message)));
        // Most handlers finish on their first poll: only one that has to wait gets the lease
        // timer and the watch for the drain deadline (boxed: the usual path stays small).
        match futures_util::poll!(call.as_mut()) {
            Poll::Ready(settlement) => settlement,
            Poll::Pending => match Box::pin(with_lease(route, &delivery, call)).await {
                Some(settlement) => settlement,
                None => {
                    give_back(route, delivery).await;
                    return None;
                }
            },
        }
    };
    match settlement {
        Settlement::Ack => {
            ack(route, delivery).await;
            None
        }
        // Boxed, like everything off the usual path, to keep the per-message future small.
        other => Box::pin(settle_other(route, delivery, other, started, retries)).await,
    }
}

async fn ack<D: Delivery>(route: &Route, delivery: D) {
    route.stats.acked();
    if let Err(e) = delivery.ack().await {
        tracing::warn!(route = %route.name, "cannot acknowledge a handled message (the broker may deliver it again): {e}");
    }
}

async fn settle_other<D: Delivery>(
    route: &Arc<Route>,
    delivery: D,
    settlement: Settlement,
    started: Option<Instant>,
    retries: u32,
) -> Option<Backoff<D>> {
    match settlement {
        Settlement::Ack => {
            ack(route, delivery).await;
            None
        }
        Settlement::Reply(reply) => {
            let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
            route.stats.replied(elapsed, reply.error.as_ref());
            if let Err(e) = delivery.reply(reply).await {
                tracing::warn!(route = %route.name, "cannot send a reply: {e}");
            }
            None
        }
        Settlement::Retry { delay, .. } => {
            route.stats.retried();
            match delivery.retry(delay).await {
                Retry::Scheduled => {
                    route.stats.requeued();
                    None
                }
                Retry::InProcess(delivery) => Some(Backoff {
                    delivery,
                    delay,
                    retries: retries.saturating_add(1),
                }),
                Retry::Failed(delivery, e) => {
                    tracing::warn!(route = %route.name, "the bus could not schedule a retry; retrying in process: {e}");
                    Some(Backoff {
                        delivery,
                        delay,
                        retries: retries.saturating_add(1),
                    })
                }
            }
        }
        Settlement::DeadLetter(dead) => {
            let letter = dead.to_outgoing(&delivery.message());
            match delivery.dead_letter(letter).await {
                Ok(()) => route.stats.dead_lettered(),
                Err(Refused { delivery, error }) => {
                    tracing::error!(
                        route = %route.name, dead_letter_topic = %dead.topic,
                        "cannot publish a dead letter; keeping the message and trying again: {error}"
                    );
                    let slot = route.retry_slots.acquire().await;
                    let letter = dead.to_outgoing(&delivery.message());
                    let task = dead_letter_again(Arc::clone(route), delivery, letter, slot);
                    route.shared.tracker.spawn(task);
                }
            }
            None
        }
    }
}

/// Publishes a refused dead letter again after a pause, doubling the pause each time, until the
/// bus takes it or the drain deadline passes (the message is then given back to the bus).
async fn dead_letter_again<D: Delivery>(
    route: Arc<Route>,
    mut delivery: D,
    letter: Outgoing,
    slot: RetrySlot,
) {
    let _slot = slot;
    let mut pause = DEAD_LETTER_RETRY_FIRST;
    loop {
        let sleep = pin!(tokio::time::sleep(pause));
        if with_lease(&route, &delivery, sleep).await.is_none() {
            give_back(&route, delivery).await;
            return;
        }
        match delivery.dead_letter(letter.clone()).await {
            Ok(()) => {
                route.stats.dead_lettered();
                tracing::info!(route = %route.name, dead_letter_topic = %letter.topic, "dead letter published");
                return;
            }
            Err(Refused {
                delivery: back,
                error,
            }) => {
                tracing::warn!(route = %route.name, dead_letter_topic = %letter.topic, "cannot publish a dead letter yet: {error}");
                delivery = back;
                pause = (pause * 2).min(DEAD_LETTER_RETRY_MAX);
            }
        }
    }
}

/// Gives a delivery back to the bus unsettled (the drain deadline passed).
pub(super) async fn give_back<D: Delivery>(route: &Route, delivery: D) {
    route.stats.abandoned();
    delivery.release().await;
}
