//! Graceful shutdown of the HTTP server: the [`Drain`] signal and [`InFlight`] work tracking.
//!
//! Shutdown goes like this (see [`HttpTransport`](crate::HttpTransport)):
//!
//! 1. once the process starts draining ([`Health::is_draining`](kumi_core::Health::is_draining)),
//!    new requests are answered `503` with `Connection: close` (the health endpoints keep
//!    answering, `/health/ready` with `503`);
//! 2. when the transport is shut down, the [`Drain`] signal fires: the server stops accepting
//!    connections, closes idle keep-alive connections, and lets requests in flight finish;
//!    long-lived work such as websocket sessions watches [`Drain::draining`] and winds down;
//! 3. the transport waits until every request and every [`InFlight`] guard is gone, or the
//!    drain deadline passes; what is still running then is aborted and reported as abandoned.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{watch, Notify};

#[derive(Debug)]
struct Inner {
    draining: AtomicBool,
    signal: watch::Sender<bool>,
    deadline: Mutex<Option<Instant>>,
    in_flight: AtomicUsize,
    settled: AtomicUsize,
    abandoned: AtomicUsize,
    idle: Notify,
}

/// The HTTP server's drain signal, and a count of the work it waits for on shutdown.
///
/// Handlers get it as an extractor (`drain: Drain`) or from
/// [`ServiceState::drain`](crate::state::ServiceState::drain). Long-lived work started by a request (a websocket session, a
/// streaming response) holds an [`InFlight`] guard from [`Drain::track`] so that shutdown waits
/// for it, and stops when [`Drain::draining`] completes. Cheap to clone.
#[derive(Clone)]
pub struct Drain(Arc<Inner>);

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("draining", &self.is_draining())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    /// A signal that has not fired, with nothing in flight.
    pub fn new() -> Self {
        Self(Arc::new(Inner {
            draining: AtomicBool::new(false),
            signal: watch::Sender::new(false),
            deadline: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            settled: AtomicUsize::new(0),
            abandoned: AtomicUsize::new(0),
            idle: Notify::new(),
        }))
    }

    /// True once the server began shutting down.
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire)
    }

    /// Completes once the server begins shutting down (at once if it already did).
    pub async fn draining(&self) {
        let mut rx = self.0.signal.subscribe();
        // The sender lives as long as `self`, so this only ends when the flag is set.
        let _ = rx.wait_for(|draining| *draining).await;
    }

    /// When in-flight work is abandoned, once draining began.
    pub fn deadline(&self) -> Option<Instant> {
        *self.0.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one piece of work as in flight until the guard is dropped; shutdown waits for it
    /// (up to the drain deadline).
    pub fn track(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            drain: self.clone(),
            abandoned: false,
        }
    }

    /// How many requests and [`InFlight`] guards are alive.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::Acquire)
    }

    /// Fires the signal; in-flight work has until `deadline`.
    pub(crate) fn begin(&self, deadline: Instant) {
        *self.0.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        self.0.draining.store(true, Ordering::Release);
        self.0.signal.send_replace(true);
        self.0.idle.notify_waiters();
    }

    /// How many pieces of work finished after draining began.
    pub(crate) fn settled(&self) -> usize {
        self.0.settled.load(Ordering::Acquire)
    }

    /// How many pieces of work were given up with [`InFlight::abandon`].
    pub(crate) fn abandoned(&self) -> usize {
        self.0.abandoned.load(Ordering::Acquire)
    }

    /// Waits until nothing is in flight (`true`) or `deadline` passes (`false`).
    pub(crate) async fn wait_idle(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.0.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return true;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(deadline.into()) => return self.in_flight() == 0,
            }
        }
    }
}

/// One piece of work the server waits for on shutdown; see [`Drain::track`].
#[must_use = "the work counts as in flight only while the guard is alive"]
pub struct InFlight {
    drain: Drain,
    abandoned: bool,
}

impl InFlight {
    /// Ends the work as given up (aborted at the drain deadline): the drain report counts it
    /// as abandoned rather than settled.
    pub fn abandon(mut self) {
        self.abandoned = true;
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InFlight")
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let inner = &self.drain.0;
        let draining = inner.draining.load(Ordering::Acquire);
        if self.abandoned {
            inner.abandoned.fetch_add(1, Ordering::AcqRel);
        } else if draining {
            inner.settled.fetch_add(1, Ordering::AcqRel);
        }
        if inner.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 && draining {
            inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waits_for_guards_and_counts_them() {
        let drain = Drain::new();
        let a = drain.track();
        let b = drain.track();
        drop(a);
        assert_eq!(drain.in_flight(), 1);
        drain.begin(Instant::now() + Duration::from_secs(5));
        assert!(drain.is_draining());
        drain.draining().await;
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move {
                drain
                    .wait_idle(Instant::now() + Duration::from_secs(5))
                    .await
            }
        });
        let c = drain.track();
        drop(b);
        c.abandon();
        assert!(waiter.await.unwrap());
        assert_eq!(drain.settled(), 1);
        assert_eq!(drain.abandoned(), 1);
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline() {
        let drain = Drain::new();
        let _stuck = drain.track();
        drain.begin(Instant::now());
        assert!(!drain.wait_idle(Instant::now()).await);
    }
}
