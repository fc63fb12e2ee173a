//! A storm of failing messages is held back. On the buses where waiting retries are kumi's to
//! bound (the in-memory bus and core NATS keep them in process; JetStream keeps them pending at the
//! server, within `max_ack_pending`), at most one message per unit of a route's concurrency waits
//! out a backoff at a time; beyond that the route pauses until a backoff has passed, then carries
//! on. (AMQP and SNS+SQS park retries at the broker, which needs no such bound.)

mod conformance;
#[cfg(feature = "nats")]
#[path = "support/nats_server.rs"]
mod nats_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use conformance::probe::{Probe, ProbeRoute};
use kumi::bus::memory::MemoryBus;
use kumi::bus::SharedBus;
use kumi::App;
use serde_json::json;

async fn storm(bus: SharedBus) {
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
        4,
        "two failed messages wait out their backoff, two more wait for a retry slot, the rest wait"
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
    storm(Arc::new(MemoryBus::new())).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_nats() {
    let server = nats_server::NatsServer::start();
    storm(kumi::nats::connect(&server.url()).await.expect("connect")).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream() {
    let server = nats_server::NatsServer::start();
    let url = format!("{}?jetstream=true", server.url());
    storm(kumi::nats::connect(&url).await.expect("connect")).await;
}
