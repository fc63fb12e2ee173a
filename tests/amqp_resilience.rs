//! RabbitMQ connection loss: a TCP proxy the test owns sits between kumi and the shared broker
//! and drops every connection on demand (the broker itself is never stopped). The consumer
//! reconnects, re-declares and resumes; messages published meanwhile (to its durable queue) all
//! arrive; the publisher recovers too. Queues expire (`queue_expires=2m`) once unused.

#![cfg(feature = "amqp")]

#[path = "support/amqp.rs"]
mod amqp_broker;
#[path = "support/proxy.rs"]
mod proxy;

use amqp_broker::{base_url, broker_addr};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kumi::prelude::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The URL with its host:port replaced by the proxy's.
fn via(url: &str, proxy: &str) -> String {
    url.replacen(&broker_addr(url), proxy, 1)
}

use proxy::Proxy;

struct Sink {
    topic: String,
    tx: mpsc::UnboundedSender<u64>,
}

impl Sink {
    async fn on(self: Arc<Self>, Data(v): Data<Value>) {
        if let Some(n) = v["n"].as_u64() {
            let _ = self.tx.send(n);
        }
    }
}

impl Service for Sink {
    fn name(&self) -> &str {
        "resilience-sink"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe(&self.topic, Self::on);
    }
}

async fn expect_all(rx: &mut mpsc::UnboundedReceiver<u64>, want: std::ops::Range<u64>) {
    let want: BTreeSet<u64> = want.collect();
    let mut got = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !want.is_subset(&got) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(n)) => {
                got.insert(n);
            }
            _ => panic!("missing {:?}", want.difference(&got).collect::<Vec<_>>()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_and_publisher_recover_after_connection_cut() {
    let base = base_url();
    let proxy = Proxy::start(broker_addr(&base)).await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let proxied = format!("{}{sep}queue_expires=2m", via(&base, &proxy.addr));
    let direct = format!("{base}{sep}queue_expires=2m");

    let bus = kumi::amqp::connect(&proxied)
        .await
        .expect("connect via proxy");
    assert!(bus.capabilities().reconnect);
    let topic = format!("amqptest.cut.{}", uuid::Uuid::new_v4().simple());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = kumi::App::new()
        .bus(Arc::clone(&bus))
        .shared_service(Arc::new(Sink {
            topic: topic.clone(),
            tx,
        }))
        .start()
        .await
        .expect("start");
    let producer = kumi::Client::new(kumi::amqp::connect(&direct).await.expect("direct"));

    for n in 0..10u64 {
        producer
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish");
    }
    expect_all(&mut rx, 0..10).await;

    proxy.cut_all();
    // Published while the consumer is disconnected: kept by the durable queue.
    for n in 10..20u64 {
        producer
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish");
    }
    expect_all(&mut rx, 10..20).await;
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        2,
        "the bus reconnected once"
    );

    // The proxied bus publishes again once it has reconnected.
    proxy.cut_all();
    let client = app.client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut n = 20u64;
    loop {
        match client.publish(&topic, &json!({"n": n})).await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "publisher never recovered: {e}"
                );
                assert_eq!(e.kind(), kumi::ErrorKind::Publish, "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                n += 1;
            }
        }
    }
    expect_all(&mut rx, n..n + 1).await;
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        3,
        "the bus reconnected again"
    );

    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_after_shutdown_is_closed_and_errors_hide_the_password() {
    let bus = kumi::amqp::connect(&base_url()).await.expect("connect");
    bus.shutdown(std::time::Instant::now() + Duration::from_secs(5))
        .await
        .expect("stop");
    let err = kumi::Client::new(Arc::clone(&bus))
        .publish("amqptest.closed", &json!({}))
        .await
        .expect_err("closed");
    assert_eq!(err.kind(), kumi::ErrorKind::Closed, "{err}");
    let Err(err) = kumi::amqp::connect("amqp://guest:hunter2@127.0.0.1:1/%2f").await else {
        panic!("connecting to port 1 succeeded");
    };
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

/// Waits until `ready(readiness)` holds, or panics with the last readiness seen.
async fn wait_readiness(
    app: &kumi::RunningApp,
    what: &str,
    ready: impl Fn(&Result<(), Vec<String>>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = app.health().readiness();
        if ready(&now) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: readiness is {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_connection() {
    let base = base_url();
    let proxy = Proxy::start(broker_addr(&base)).await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let proxied = format!("{}{sep}queue_expires=2m", via(&base, &proxy.addr));
    let topic = format!("amqptest.ready.{}", uuid::Uuid::new_v4().simple());
    let (tx, _rx) = mpsc::unbounded_channel();
    let app = kumi::App::new()
        .bus(kumi::amqp::connect(&proxied).await.expect("connect"))
        .shared_service(Arc::new(Sink { topic, tx }))
        .start()
        .await
        .expect("start");
    wait_readiness(&app, "after start", Result::is_ok).await;
    proxy.set_down(true);
    wait_readiness(&app, "while RabbitMQ is unreachable", |r| {
        r.as_ref().is_err_and(|why| {
            why.iter().any(|w| {
                w.starts_with("amqp: connection to RabbitMQ") && !w.contains("guest:guest")
            })
        })
    })
    .await;
    proxy.set_down(false);
    wait_readiness(&app, "once RabbitMQ is back", Result::is_ok).await;
    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}
