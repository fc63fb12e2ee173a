//! Process health: live while running, ready once every service and transport started and not
//! while draining; components (a broker connection, say) can report themselves not ready, and
//! a transport can ask the process to stop gracefully.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

struct HealthState {
    started: tokio::sync::watch::Sender<bool>,
    draining: AtomicBool,
    not_ready: Mutex<BTreeMap<String, String>>,
    stop_requested: tokio::sync::watch::Sender<Option<String>>,
}

impl Default for HealthState {
    fn default() -> Self {
        Self {
            started: tokio::sync::watch::channel(false).0,
            draining: AtomicBool::new(false),
            not_ready: Mutex::new(BTreeMap::new()),
            stop_requested: tokio::sync::watch::channel(None).0,
        }
    }
}

/// Process health: live while running; ready once every service and transport started, and not
/// while draining. Transports can report themselves not ready (e.g. a lost broker connection).
#[derive(Clone, Default)]
pub struct Health(Arc<HealthState>);

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("ready", &self.readiness().is_ok())
            .finish()
    }
}

impl Health {
    /// A new state: not started, not draining.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks startup complete.
    pub fn set_started(&self) {
        self.0.started.send_replace(true);
    }

    /// Completes once startup is complete: every route listens, every transport started, the
    /// banner is out and the services' `started` hooks ran. A transport that starts work of its
    /// own at startup (a schedule's run at start) waits for this first.
    pub async fn started(&self) {
        let mut rx = self.0.started.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = rx.wait_for(|started| *started).await;
    }

    /// Marks the process draining (no longer ready).
    pub fn set_draining(&self) {
        self.0.draining.store(true, Ordering::Release);
    }

    /// True once shutdown began.
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire)
    }

    /// Reports `component` not ready, with why; `None` clears it.
    pub fn set_not_ready(&self, component: &str, reason: Option<String>) {
        let mut map = self.0.not_ready.lock().unwrap_or_else(|e| e.into_inner());
        match reason {
            Some(r) => {
                map.insert(component.to_owned(), r);
            }
            None => {
                map.remove(component);
            }
        }
    }

    /// Asks the process to stop gracefully (e.g. the broker announced it is going away); the
    /// runner drains as it does on SIGTERM. The first reason wins.
    pub fn request_stop(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.0.stop_requested.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Completes with the reason once a stop was requested.
    pub async fn stop_requested(&self) -> String {
        let mut rx = self.0.stop_requested.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// `Ok` when ready; otherwise what is not ready, one entry per component.
    pub fn readiness(&self) -> std::result::Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        if !*self.0.started.borrow() {
            reasons.push("starting: not every service and transport has started".to_owned());
        }
        if self.is_draining() {
            reasons.push("draining: shutting down".to_owned());
        }
        let map = self.0.not_ready.lock().unwrap_or_else(|e| e.into_inner());
        reasons.extend(map.iter().map(|(c, r)| format!("{c}: {r}")));
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_start_components_and_drain() {
        let h = Health::new();
        assert!(h.readiness().is_err());
        h.set_started();
        assert!(h.readiness().is_ok());
        h.set_not_ready("nats", Some("connection lost".into()));
        assert_eq!(
            h.readiness().unwrap_err(),
            vec!["nats: connection lost".to_owned()]
        );
        h.set_not_ready("nats", None);
        assert!(h.readiness().is_ok());
        h.set_draining();
        assert!(h.readiness().unwrap_err()[0].starts_with("draining"));
    }

    #[tokio::test]
    async fn stop_requests_keep_the_first_reason() {
        let h = Health::new();
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { h.stop_requested().await }
        });
        h.request_stop("broker going away");
        h.request_stop("second");
        assert_eq!(waiter.await.unwrap(), "broker going away");
        assert_eq!(h.stop_requested().await, "broker going away");
    }
}
