//! A route's retry and dead-letter queues (`<queue>.retry`, `<queue>.dlq`) never have a consumer,
//! so RabbitMQ would delete them once `queue_expires` passed: a running route declares them again
//! well within it. And a retry or dead letter the broker cannot route (its queue deleted) is
//! never confirmed-then-acked away: it waits in process and is tried again.

#![cfg(feature = "amqp")]

#[path = "support/amqp.rs"]
mod amqp_broker;

use std::sync::Arc;
use std::time::Duration;

use amqp_broker::base_url;
use kumi::amqp::lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use kumi::amqp::lapin::types::FieldTable;
use kumi::amqp::lapin::{Connection, ConnectionProperties};
use kumi::prelude::*;
use kumi::App;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

fn url_with(expires: &str) -> String {
    let base = base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}queue_expires={expires}")
}

fn unique(case: &str) -> String {
    format!("amqptest.{case}.{}", uuid::Uuid::new_v4().simple())
}

/// Fails the first attempt of `{"fail_once": true}`, rejects `{"reject": true}`, and reports every
/// success as (n, attempt).
struct Flaky {
    topic: String,
    tx: mpsc::UnboundedSender<(u64, u32)>,
}

impl Flaky {
    async fn on(
        self: Arc<Self>,
        Data(v): Data<Value>,
        Attempt(attempt): Attempt,
    ) -> Result<(), HandlerError> {
        if v["reject"] == json!(true) {
            return Err(HandlerError::reject("rejected as asked"));
        }
        if v["fail_once"] == json!(true) && attempt == 1 {
            return Err("fails its first attempt as asked".into());
        }
        let _ = self.tx.send((v["n"].as_u64().unwrap_or(0), attempt));
        Ok(())
    }
}

impl Service for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router
            .subscribe(&self.topic, Self::on)
            .retries(3)
            .backoff("50ms", "50ms");
    }
}

async fn start(
    url: &str,
    topic: &str,
) -> (
    kumi::RunningApp,
    String,
    mpsc::UnboundedReceiver<(u64, u32)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = App::new()
        .bus(kumi::amqp::connect(url).await.expect("connect"))
        .service(Flaky {
            topic: topic.to_owned(),
            tx,
        })
        .start()
        .await
        .expect("start");
    let route = app.routes().next().expect("one route");
    let queue = route
        .listens
        .strip_prefix("queue ")
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("listens: {}", route.listens))
        .to_owned();
    (app, queue, rx)
}

async fn broker() -> Connection {
    Connection::connect(&base_url(), ConnectionProperties::default())
        .await
        .expect("raw connection")
}

async fn queue_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .is_ok()
}

async fn delete_queues(conn: &Connection, queue: &str) {
    let ch = conn.create_channel().await.expect("channel");
    for q in [
        queue.to_owned(),
        format!("{queue}.retry"),
        format!("{queue}.dlq"),
    ] {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(u64, u32)>) -> (u64, u32) {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a message was handled in time")
        .expect("the service runs")
}

/// Messages in `queue`, read (and acked) with `basic.get`.
async fn drain_count(conn: &Connection, queue: &str) -> usize {
    let ch = conn.create_channel().await.expect("channel");
    let mut n = 0;
    while let Some(_m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_and_dead_letter_queues_outlive_a_short_queue_expires() {
    let topic = unique("expiry");
    let (app, queue, mut rx) = start(&url_with("1s"), &topic).await;
    let raw = broker().await;
    // Three times the expiry with no consumer on either queue.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (retry, dlq) = (format!("{queue}.retry"), format!("{queue}.dlq"));
    assert!(queue_exists(&raw, &retry).await, "{retry} expired");
    assert!(queue_exists(&raw, &dlq).await, "{dlq} expired");
    // And they work: a retry comes back, a dead letter is kept.
    let client = app.client();
    client
        .publish(&topic, &json!({"n": 1, "fail_once": true}))
        .await
        .expect("publish");
    client
        .publish(&topic, &json!({"n": 2, "reject": true}))
        .await
        .expect("publish");
    assert_eq!(next(&mut rx).await, (1, 2), "retried through {retry}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut kept = 0;
    while kept == 0 && tokio::time::Instant::now() < deadline {
        kept = drain_count(&raw, &dlq).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kept, 1, "the dead letter is in {dlq}");
    app.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
    delete_queues(&raw, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_to_a_deleted_retry_queue_is_not_lost() {
    let topic = unique("unroutable");
    // A long expiry: the retry queue is not declared again during the test.
    let (app, queue, mut rx) = start(&url_with("1h"), &topic).await;
    let raw = broker().await;
    let retry = format!("{queue}.retry");
    let ch = raw.create_channel().await.expect("channel");
    ch.queue_delete(retry.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete the retry queue");
    app.client()
        .publish(&topic, &json!({"n": 7, "fail_once": true}))
        .await
        .expect("publish");
    // The retry publish is returned (no queue): the message is retried in process instead of
    // being acked with its retry dropped.
    assert_eq!(next(&mut rx).await, (7, 2));
    app.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
    delete_queues(&raw, &queue).await;
}
