//! The consume runtime: the one place that runs a bus route, the same on every bus.
//!
//! A bus subscribes a route and hands back a [`Consumer`] wrapping its
//! [`Deliveries`](crate::delivery::Deliveries). The [`Runtime`] runs it:
//!
//! - **intake** ([`intake`]): reads the deliveries within the route's concurrency bound: in the
//!   reading task itself for a route of concurrency 1 (no hand-over per message), else through a
//!   bounded queue to as many workers as the route's concurrency, a delivery taken from the bus
//!   only when a handler is free for it;
//! - **settle** ([`settle`]): dispatches each delivery (envelope, middleware, extractors,
//!   handler: [`crate::dispatch`]), extends its lease while a slow handler runs, and carries out
//!   the [`Settlement`](crate::settlement::Settlement) through the delivery: ack, reply, retry
//!   (by the broker, or in process where the bus cannot delay: [`RetrySlots`](crate::retry::RetrySlots)
//!   bound how many wait), dead letter (tried again later when the broker refuses it);
//! - **counters** ([`RouteStats`]) per route, and the **drain**: [`Runtime::drain`] stops every
//!   route's intake, lets what was received finish and settle until the deadline, then gives
//!   what is left back to the broker and reports it ([`DrainReport`]).
//!
//! `docs/architecture.md` walks one message through these steps on every bus.

mod intake;
mod settle;
mod slot;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use slot::DispatchService;

use crate::delivery::Deliveries;
use crate::error::{Error, ErrorKind, Result};
use crate::retry::RetrySlots;
use crate::settlement::{DrainReport, RouteKind};
use crate::stats::RouteStats;

/// How long the runtime waits, after a drain deadline, for what it gives back to reach the
/// broker.
const GIVE_BACK_GRACE: Duration = Duration::from_secs(5);

/// A route's deliveries, ready for the [`Runtime`]: what [`Bus::subscribe`](crate::bus::Bus::subscribe)
/// returns. Built by a bus from its [`Deliveries`] with [`Consumer::new`].
pub struct Consumer {
    start: Box<dyn Start>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

impl Consumer {
    /// Wraps a bus's deliveries. The runtime's loops are generic over the bus's types, so a
    /// message costs no boxing or dynamic call on its way through them.
    pub fn new<D: Deliveries>(deliveries: D) -> Self {
        Self {
            start: Box::new(Typed(deliveries)),
        }
    }
}

trait Start: Send {
    fn start(self: Box<Self>, route: Arc<Route>);
}

struct Typed<D>(D);

impl<D: Deliveries> Start for Typed<D> {
    fn start(self: Box<Self>, route: Arc<Route>) {
        let tracker = route.shared.tracker.clone();
        if route.concurrency <= 1 {
            tracker.spawn(intake::inline(self.0, route));
        } else {
            tracker.spawn(intake::pool(self.0, route));
        }
    }
}

/// What the runtime needs of a route.
pub struct RouteSpec {
    /// `service.handler`, for logs.
    pub name: Arc<str>,
    /// Event or request.
    pub kind: RouteKind,
    /// At most this many handlers run at once, and no more deliveries are taken from the bus.
    pub concurrency: usize,
    /// The route's message path.
    pub service: DispatchService,
    /// Its counters.
    pub stats: Arc<RouteStats>,
}

impl fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// A running route.
pub(crate) struct Route {
    pub(crate) name: Arc<str>,
    pub(crate) kind: RouteKind,
    pub(crate) concurrency: usize,
    pub(crate) service: DispatchService,
    pub(crate) stats: Arc<RouteStats>,
    /// One per unit of concurrency.
    pub(crate) retry_slots: RetrySlots,
    pub(crate) shared: Arc<Shared>,
}

impl Route {
    /// True once the drain began: the route takes nothing new from the bus.
    pub(crate) fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// True once the drain deadline passed: what is left is given back, not handled.
    pub(crate) fn abandoning(&self) -> bool {
        self.shared.abandoning.load(Ordering::Acquire)
    }
}

/// State shared by the routes of one runtime.
pub(crate) struct Shared {
    pub(crate) tracker: TaskTracker,
    /// Cancelled when the drain begins.
    pub(crate) stop: CancellationToken,
    stopping: AtomicBool,
    /// Cancelled when the drain deadline passes.
    pub(crate) abandon: CancellationToken,
    abandoning: AtomicBool,
    routes: Mutex<Vec<Arc<RouteStats>>>,
}

/// Runs the bus routes of an app: their intake, dispatch, settlement, counters and drain. Cheap
/// to clone.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("routes", &self.routes().len())
            .field("draining", &self.shared.stopping.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A runtime with no routes.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                tracker: TaskTracker::new(),
                stop: CancellationToken::new(),
                stopping: AtomicBool::new(false),
                abandon: CancellationToken::new(),
                abandoning: AtomicBool::new(false),
                routes: Mutex::new(Vec::new()),
            }),
        }
    }

    fn routes(&self) -> Vec<Arc<RouteStats>> {
        self.shared
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts consuming `consumer` for the route `spec` describes. Fails once the drain began.
    pub fn start(&self, consumer: Consumer, spec: RouteSpec) -> Result<()> {
        if self.shared.stopping.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!("route {}: the app is stopping", spec.name),
            ));
        }
        self.shared
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&spec.stats));
        let concurrency = spec.concurrency.max(1);
        let route = Arc::new(Route {
            name: spec.name,
            kind: spec.kind,
            concurrency,
            service: spec.service,
            stats: spec.stats,
            retry_slots: RetrySlots::new(concurrency),
            shared: Arc::clone(&self.shared),
        });
        consumer.start.start(route);
        Ok(())
    }

    /// Whether any route runs (an app with no bus routes gives its transports the whole drain).
    pub fn has_routes(&self) -> bool {
        !self
            .shared
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Messages received by every route and not settled yet.
    pub fn in_flight(&self) -> u64 {
        self.routes().iter().map(|s| s.in_flight()).sum()
    }

    /// Drains every route: stops taking messages from the bus (what the bus already received is
    /// still handled), lets handlers finish and settle until `deadline`, then gives back to the
    /// bus what is still waiting or running (redelivered where the broker keeps messages) and
    /// reports it as abandoned. Calling it again reports nothing.
    pub async fn drain(&self, deadline: Instant) -> DrainReport {
        let shared = &self.shared;
        if shared.stopping.swap(true, Ordering::AcqRel) {
            return DrainReport::default();
        }
        let settled = |routes: &[Arc<RouteStats>]| -> u64 {
            routes
                .iter()
                .map(|s| {
                    let s = s.snapshot();
                    s.acked + s.replied + s.dead_lettered + s.requeued
                })
                .sum()
        };
        let before = settled(&self.routes());
        shared.stop.cancel();
        shared.tracker.close();
        let deadline = tokio::time::Instant::from_std(deadline);
        let mut abandoned = 0;
        if tokio::time::timeout_at(deadline, shared.tracker.wait())
            .await
            .is_err()
        {
            abandoned = self.in_flight();
            shared.abandoning.store(true, Ordering::Release);
            shared.abandon.cancel();
            let _ = tokio::time::timeout(GIVE_BACK_GRACE, shared.tracker.wait()).await;
        }
        let after = settled(&self.routes());
        DrainReport {
            settled: usize::try_from(after.saturating_sub(before)).unwrap_or(usize::MAX),
            abandoned: usize::try_from(abandoned).unwrap_or(usize::MAX),
        }
    }
}
