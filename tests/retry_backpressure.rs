//! A storm of failing messages is held back. The in-memory bus and core NATS keep waiting retries in
//! process: at most one message per unit of a route's concurrency waits out a backoff at a time,
//! and beyond that the route pauses. JetStream keeps them pending at the server within
//! `max_ack_pending` (the route's concurrency): each waiting retry holds a handler's slot. Either
//! way the route carries on once backoffs pass. (AMQP and SNS+SQS park retries at the broker,
//! which needs no such bound.)

mod conformance;
#[cfg(feature = "nats")]
#[path = "support/nats_server.rs"]
mod nats_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use conformance::probe::{Probe, ProbeRoute};
use kumi::bus::SharedBus;
use kumi::memory::MemoryBus;
use kumi::App;
use serde_json::json;

/// Publishes ten always-failing messages to a route of concurrency 2 (one retry, 1 s backoff) and
/// checks that only `held` of them were attempted before any backoff passed.
async fn storm(bus: SharedBus, held: usize) {
    let topic = conformance::unique("storm");
    let (probe, _rx) = Probe::new(
        "storm",
        vec![ProbeRoute::events(&topic)
            .concurrency(2)
            .retries(1)
            .backoff(Duration::from_secs(1))],
    );
    let app = App::new()
        .bus(bus)
        .shared_service(Arc::clone(&probe))
        .start()
        .await
        .expect("start");
    let client = app.client();
    for n in 0..10u64 {
        client
            .publish(&topic, &json!({"n": n, "fail": true}))
            .await
            .expect("publish");
    }
    // Backoffs are at least half of 1 s: none has passed yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        probe.attempts(),
        held,
        "only so many failed messages are in hand while backoffs run; the rest wait"
    );
    // The route carries on as backoffs pass: every message gets its two attempts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while probe.attempts() < 20 {
        assert!(
            Instant::now() < deadline,
            "the route stalled after {} attempts",
            probe.attempts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
    assert_eq!(probe.attempts(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bus() {
    // Two wait out their backoff, two more hold the workers waiting for a retry slot.
    storm(Arc::new(MemoryBus::new()), 4).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_nats() {
    let server = nats_server::NatsServer::start();
    storm(
        kumi::nats::connect(&server.url()).await.expect("connect"),
        4,
    )
    .await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream() {
    let server = nats_server::NatsServer::start();
    let url = format!("{}?jetstream=true", server.url());
    // The two NAKed messages hold both slots of max_ack_pending.
    storm(kumi::nats::connect(&url).await.expect("connect"), 2).await;
}
