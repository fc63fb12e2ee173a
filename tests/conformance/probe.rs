//! `Probe`: a configurable service the conformance cases run on every bus. Its behaviour per
//! message is driven by the payload, so one handler covers every case:
//!
//! - `"sleep_ms": n` — work for n ms (counted in the in-flight gauge);
//! - `"fail_times": n` — fail the first n attempts;
//! - `"fail": true` — always fail; `"reject": true` — reject (dead-letter now);
//! - `"panic_times": n` — panic on the first n attempts;
//! - `"hang": true` — never finish (until the route's timeout drops the handler);
//! - `"forward": "topic"` — publish `{"n": ..}` to that topic through the handler `Context`.
//!
//! Successes (and, for raw watchers, every message) are sent to the test over a channel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kumi::envelope::Raw;
use kumi::prelude::*;
use kumi::settlement::RouteKind;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// One handled message, as the probe saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub route: String,
    pub topic: String,
    pub payload: Value,
    pub raw_payload: Bytes,
    pub body: Bytes,
    pub headers: Headers,
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub attempt: u32,
}

/// A route of the probe.
#[derive(Debug, Clone)]
pub struct ProbeRoute {
    pub topic: String,
    pub kind: RouteKind,
    pub group: Option<String>,
    pub broadcast: bool,
    pub concurrency: usize,
    pub retries: u32,
    /// First retry delay (doubling up to ten times that); 20 ms unless set.
    pub backoff: Duration,
    pub raw: bool,
    pub dead_letter_topic: Option<String>,
    /// The route's handler timeout; the service's (kumi's default) unless set.
    pub timeout: Option<Duration>,
}

impl ProbeRoute {
    /// An event route with a fast backoff, 3 retries, concurrency 8, JsonBase.
    pub fn events(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            kind: RouteKind::Event,
            group: None,
            broadcast: false,
            concurrency: 8,
            retries: 3,
            backoff: Duration::from_millis(20),
            raw: false,
            dead_letter_topic: None,
            timeout: None,
        }
    }

    /// A request route (raw JSON in and out).
    pub fn requests(topic: &str) -> Self {
        Self {
            kind: RouteKind::Request,
            ..Self::events(topic)
        }
    }

    pub fn group(mut self, g: &str) -> Self {
        self.group = Some(g.to_owned());
        self
    }
    pub fn broadcast(mut self) -> Self {
        self.broadcast = true;
        self
    }
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }
    pub fn backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }
    /// A handler timeout for the route.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Raw envelope: records every message as is, never fails on content.
    pub fn raw(mut self) -> Self {
        self.raw = true;
        self
    }
}

/// The probe service.
pub struct Probe {
    name: String,
    routes: Vec<ProbeRoute>,
    tx: mpsc::UnboundedSender<Received>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    attempts: AtomicUsize,
}

impl Probe {
    /// A probe named `name` (its default consumer group) with `routes`, and the receiving end.
    pub fn new(
        name: &str,
        routes: Vec<ProbeRoute>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Received>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let p = Arc::new(Self {
            name: name.to_owned(),
            routes,
            tx,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            attempts: AtomicUsize::new(0),
        });
        (p, rx)
    }

    /// Most handlers seen running at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Handlers running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Handler calls so far (all attempts).
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    fn record(&self, route: &str, m: &Meta, payload: Value) {
        let _ = self.tx.send(Received {
            route: route.to_owned(),
            topic: m.topic.clone(),
            payload,
            raw_payload: m.payload.clone(),
            body: m.body.clone(),
            headers: m.headers.clone(),
            message_id: m.message_id.clone(),
            correlation_id: m.correlation_id.clone(),
            attempt: m.attempt,
        });
    }

    async fn work(&self, m: Meta, ctx: Context) -> Result<Value, HandlerError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let payload: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let _guard = Gauge(&self.in_flight);
        if let Some(ms) = payload["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if payload["hang"].as_bool() == Some(true) {
            std::future::pending::<()>().await;
        }
        let attempt = u64::from(m.attempt);
        if payload["panic_times"]
            .as_u64()
            .is_some_and(|n| attempt <= n)
        {
            // Two lines, as assertion failures are: error texts travel in headers.
            panic!("probe panics on attempt {attempt} as asked\n  (second line)");
        }
        if payload["fail_times"].as_u64().is_some_and(|n| attempt <= n) {
            return Err(format!("probe fails attempt {attempt} as asked").into());
        }
        if payload["fail"].as_bool() == Some(true) {
            return Err("probe always fails this message".into());
        }
        if payload["reject"].as_bool() == Some(true) {
            return Err(HandlerError::reject("probe rejects this message"));
        }
        if let Some(topic) = payload["forward"].as_str() {
            ctx.publish(topic, &json!({"n": payload["n"]})).await?;
        }
        self.record(&self.name, &m, payload.clone());
        Ok(json!({"echo": payload, "by": self.name}))
    }

    async fn on_event(self: Arc<Self>, m: Meta, ctx: Context) -> Result<(), HandlerError> {
        self.work(m, ctx).await.map(drop)
    }

    async fn on_request(self: Arc<Self>, m: Meta, ctx: Context) -> Result<Value, HandlerError> {
        self.work(m, ctx).await
    }

    /// Raw watcher routes (dead-letter topics...): record everything as is.
    async fn on_raw(self: Arc<Self>, m: Meta) {
        let payload: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
        self.record("raw", &m, payload);
    }
}

struct Gauge<'a>(&'a AtomicUsize);

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Everything the probe records, taken with one custom extractor (an example of writing one).
pub struct Meta {
    topic: String,
    payload: Bytes,
    body: Bytes,
    headers: Headers,
    message_id: Option<String>,
    correlation_id: Option<String>,
    attempt: u32,
}

impl kumi::FromMessage<Probe> for Meta {
    fn from_message(parts: &kumi::MessageParts<'_, Probe>) -> Result<Self, kumi::Rejection> {
        let m = parts.message;
        Ok(Meta {
            topic: m.topic.to_string(),
            payload: m.payload.clone(),
            body: m.body.clone(),
            headers: m.headers.clone(),
            message_id: m.message_id.clone(),
            correlation_id: m.correlation_id.clone(),
            attempt: m.attempt,
        })
    }
}

impl Service for Probe {
    fn name(&self) -> &str {
        &self.name
    }

    fn routes(&self, router: &mut Router<Self>) {
        for r in &self.routes {
            let mut b = match (r.kind, r.raw) {
                (RouteKind::Event, true) => router.subscribe(&r.topic, Self::on_raw),
                (RouteKind::Event, false) => router.subscribe(&r.topic, Self::on_event),
                _ => router.request(&r.topic, Self::on_request),
            };
            b = b
                .concurrency(r.concurrency)
                .retries(r.retries)
                .backoff(r.backoff, r.backoff * 10);
            if let Some(g) = &r.group {
                b = b.group(g.clone());
            }
            if r.broadcast {
                b = b.broadcast();
            }
            if r.raw {
                b = b.envelope(Raw);
            }
            if let Some(t) = r.timeout {
                b = b.timeout(t);
            }
            if let Some(t) = &r.dead_letter_topic {
                let _ = b.dead_letter_topic(t.clone());
            }
        }
    }
}

/// Receives exactly `n` messages within the wait bound, or panics naming what arrived.
pub async fn recv_n(rx: &mut mpsc::UnboundedReceiver<Received>, n: usize) -> Vec<Received> {
    let mut got = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + super::WAIT;
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => got.push(r),
            Ok(None) => panic!("probe channel closed after {} of {n} messages", got.len()),
            Err(_) => panic!(
                "timed out: received {} of {n} messages; n values: {:?}",
                got.len(),
                super::ids(&got)
            ),
        }
    }
    got
}

/// Asserts nothing more arrives within `quiet`.
pub async fn assert_quiet(rx: &mut mpsc::UnboundedReceiver<Received>, quiet: Duration) {
    if let Ok(Some(extra)) = tokio::time::timeout(quiet, rx.recv()).await {
        panic!("unexpected extra message (duplicate?): {extra:?}");
    }
}
