//! RabbitMQ retries live in the broker (the route's retry queue), not in the process: a message
//! waiting for its retry survives a restart of its consumer and comes back with the next attempt
//! number. Dead letters are kept in the route's `<queue>.dlq` even when nothing else subscribes
//! to the dead-letter topic. Queues expire (`queue_expires=2m`) and are deleted at the end.

#![cfg(feature = "amqp")]

#[path = "support/amqp.rs"]
mod amqp_broker;

use amqp_broker::base_url;
use std::sync::Arc;
use std::time::Duration;

use kumi::amqp::lapin::options::{BasicGetOptions, QueueDeleteOptions};
use kumi::amqp::lapin::types::AMQPValue;
use kumi::amqp::lapin::{Connection, ConnectionProperties};
use kumi::prelude::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;

struct Flaky {
    topic: String,
    tx: mpsc::UnboundedSender<(u32, String)>,
}

impl Flaky {
    async fn on(
        self: Arc<Self>,
        Data(_v): Data<Value>,
        Attempt(attempt): Attempt,
        MessageId(id): MessageId,
    ) -> Result<(), HandlerError> {
        let _ = self.tx.send((attempt, id));
        if attempt == 1 {
            return Err("first attempt fails".into());
        }
        Ok(())
    }
}

impl Service for Flaky {
    fn name(&self) -> &str {
        "retry-restart"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router
            .subscribe(&self.topic, Self::on)
            .retries(2)
            .backoff(Duration::from_secs(2), Duration::from_secs(2));
    }
}

async fn start(
    url: &str,
    topic: &str,
) -> (kumi::RunningApp, mpsc::UnboundedReceiver<(u32, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let bus = kumi::amqp::connect(url)
        .await
        .expect("RabbitMQ must be running");
    let app = kumi::App::new()
        .bus(bus)
        .shared_service(Arc::new(Flaky {
            topic: topic.to_owned(),
            tx,
        }))
        .start()
        .await
        .expect("start");
    (app, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_retry_survives_consumer_restart() {
    let base = base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}queue_expires=2m");
    let topic = format!("amqptest.retry.{}", uuid::Uuid::new_v4().simple());

    let (app, mut rx) = start(&url, &topic).await;
    let queue = app
        .routes()
        .next()
        .and_then(|r| r.listens.strip_prefix("queue ").map(str::to_owned))
        .and_then(|s| s.split(' ').next().map(str::to_owned))
        .expect("queue name in the banner");
    let sent = app
        .client()
        .publish(&topic, &json!({"n": 1}))
        .await
        .expect("publish");
    let (attempt, id) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("first attempt")
        .expect("open");
    assert_eq!((attempt, id.as_str()), (1, sent.as_str()));
    // Stop while the retry waits (1-2 s) in the retry queue.
    app.shutdown(Duration::from_secs(10)).await.expect("stop");

    let (app, mut rx) = start(&url, &topic).await;
    let (attempt, id) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the retry arrived at the new instance")
        .expect("open");
    assert_eq!((attempt, id.as_str()), (2, sent.as_str()));
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        panic!("unexpected redelivery {extra:?}");
    }
    app.shutdown(Duration::from_secs(10)).await.expect("stop");

    let raw = Connection::connect(&base, ConnectionProperties::default())
        .await
        .expect("raw connection");
    let ch = raw.create_channel().await.expect("channel");
    for q in [
        queue.clone(),
        format!("{queue}.retry"),
        format!("{queue}.dlq"),
    ] {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete");
    }
    let _ = raw.close(200, "done".into()).await;
}

struct Rejecter {
    topic: String,
}

impl Rejecter {
    async fn on(self: Arc<Self>, Data(_v): Data<Value>) -> Result<(), HandlerError> {
        Err(HandlerError::reject("not for us"))
    }
}

impl Service for Rejecter {
    fn name(&self) -> &str {
        "dlq-keeper"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe(&self.topic, Self::on);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_kept_in_the_route_dlq() {
    let base = base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}queue_expires=2m");
    let topic = format!("amqptest.dlq.{}", uuid::Uuid::new_v4().simple());
    let bus = kumi::amqp::connect(&url)
        .await
        .expect("RabbitMQ must be running");
    let app = kumi::App::new()
        .bus(bus)
        .shared_service(Arc::new(Rejecter {
            topic: topic.clone(),
        }))
        .start()
        .await
        .expect("start");
    let queue = app
        .routes()
        .next()
        .and_then(|r| r.listens.strip_prefix("queue ").map(str::to_owned))
        .and_then(|s| s.split(' ').next().map(str::to_owned))
        .expect("queue name in the banner");
    app.client()
        .publish(&topic, &json!({"n": 1}))
        .await
        .expect("publish");

    let raw = Connection::connect(&base, ConnectionProperties::default())
        .await
        .expect("raw connection");
    let ch = raw.create_channel().await.expect("channel");
    let dlq = format!("{queue}.dlq");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        if let Some(m) = ch
            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            break m.delivery;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing in {dlq}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(got.routing_key.as_str(), format!("dlq.{topic}"));
    let headers = got.properties.headers().clone().unwrap_or_default();
    let text = |k: &str| match headers.inner().get(k) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("header {k}: {other:?}"),
    };
    assert_eq!(text(kumi::settlement::DEAD_LETTER_KIND), "rejected");
    assert_eq!(text(kumi::settlement::ORIGINAL_TOPIC), topic);
    assert_eq!(text(kumi::settlement::ATTEMPTS), "1");
    let env: Value = serde_json::from_slice(&got.data).expect("original body");
    assert_eq!(env["data"], json!({"n": 1}));

    app.shutdown(Duration::from_secs(10)).await.expect("stop");
    for q in [queue.clone(), format!("{queue}.retry"), dlq] {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete");
    }
    let _ = raw.close(200, "done".into()).await;
}
