//! Per-route counters kept by the consume runtime ([`crate::consume`]): what was received and how
//! each message was settled, and for request routes the figures the NATS service API (ADR-32)
//! reports. Lock-free except for the text of the last error, written only when a request fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The counters of one route. Shared (`Arc<RouteStats>`) by the runtime, which writes them, and
/// by whoever reports them (a bus's service discovery, a metrics exporter).
#[derive(Debug, Default)]
pub struct RouteStats {
    received: AtomicU64,
    acked: AtomicU64,
    replied: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    requeued: AtomicU64,
    abandoned: AtomicU64,
    request_window: RequestWindow,
}

/// The resettable request figures (ADR-32 `STATS`).
#[derive(Debug, Default)]
struct RequestWindow {
    requests: AtomicU64,
    errors: AtomicU64,
    processing_ns: AtomicU64,
    last_error: Mutex<String>,
}

/// A copy of a route's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Deliveries taken from the bus (retries in process not counted again).
    pub received: u64,
    /// Messages acknowledged after success.
    pub acked: u64,
    /// Requests answered (with a value or an error).
    pub replied: u64,
    /// Failed attempts given a retry (in process or by the broker).
    pub retried: u64,
    /// Retries handed to the broker, which redelivers them after the backoff (each comes back
    /// as a new delivery).
    pub requeued: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Messages given back unsettled at a drain deadline.
    pub abandoned: u64,
    /// Received and not settled yet (running, queued for a handler or waiting out a retry).
    pub in_flight: u64,
    /// Requests answered since the last reset.
    pub requests: u64,
    /// Error replies since the last reset.
    pub errors: u64,
    /// Time spent answering requests since the last reset.
    pub processing: Duration,
    /// `"<code>:<text>"` of the last error reply since the last reset, or `""`.
    pub last_error: String,
}

impl RouteStats {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn acked(&self) {
        self.acked.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn requeued(&self) {
        self.requeued.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn abandoned(&self) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request answered after `elapsed`, failed with `error` if it did.
    pub(crate) fn replied(&self, elapsed: Duration, error: Option<&(u16, String)>) {
        self.replied.fetch_add(1, Ordering::Relaxed);
        let w = &self.request_window;
        w.requests.fetch_add(1, Ordering::Relaxed);
        w.processing_ns.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if let Some((code, text)) = error {
            w.errors.fetch_add(1, Ordering::Relaxed);
            *w.last_error.lock().unwrap_or_else(|e| e.into_inner()) = format!("{code}:{text}");
        }
    }

    /// Messages received and not settled yet.
    pub fn in_flight(&self) -> u64 {
        let settled = self.acked.load(Ordering::Relaxed)
            + self.replied.load(Ordering::Relaxed)
            + self.dead_lettered.load(Ordering::Relaxed)
            + self.requeued.load(Ordering::Relaxed)
            + self.abandoned.load(Ordering::Relaxed);
        self.received
            .load(Ordering::Relaxed)
            .saturating_sub(settled)
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let w = &self.request_window;
        StatsSnapshot {
            received: self.received.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            replied: self.replied.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            requeued: self.requeued.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            in_flight: self.in_flight(),
            requests: w.requests.load(Ordering::Relaxed),
            errors: w.errors.load(Ordering::Relaxed),
            processing: Duration::from_nanos(w.processing_ns.load(Ordering::Relaxed)),
            last_error: w
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Resets the request figures (requests, errors, processing time, last error), as the NATS
    /// service API's reset does; the settlement counters keep counting.
    pub fn reset_requests(&self) {
        let w = &self.request_window;
        w.requests.store(0, Ordering::Relaxed);
        w.errors.store(0, Ordering::Relaxed);
        w.processing_ns.store(0, Ordering::Relaxed);
        w.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets_requests_only() {
        let s = RouteStats::new();
        s.received();
        s.received();
        s.received();
        s.acked();
        s.replied(Duration::from_millis(2), None);
        s.replied(Duration::from_millis(1), Some(&(500, "boom".into())));
        let snap = s.snapshot();
        assert_eq!((snap.received, snap.acked, snap.replied), (3, 1, 2));
        assert_eq!(snap.in_flight, 0);
        assert_eq!((snap.requests, snap.errors), (2, 1));
        assert_eq!(snap.processing, Duration::from_millis(3));
        assert_eq!(snap.last_error, "500:boom");
        s.reset_requests();
        let snap = s.snapshot();
        assert_eq!(
            (snap.requests, snap.errors, snap.last_error.as_str()),
            (0, 0, "")
        );
        assert_eq!(snap.replied, 2);
    }
}
