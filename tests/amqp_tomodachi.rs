//! RabbitMQ interoperability with tomodachi (`docs/wire.md`, "JsonBase envelope" and "AMQP"), checked with raw lapin clients:
//! the queue of a default-group route is named `sha256_hex(routing key)` (with
//! `queue_names=tomodachi`), a tomodachi JsonBase body published by hand is handled, and a
//! kumi-published body is a JsonBase envelope, persistent, with a message id.

#![cfg(feature = "amqp")]

#[path = "support/amqp.rs"]
mod amqp_broker;

use amqp_broker::base_url;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kumi::amqp::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use kumi::amqp::lapin::types::FieldTable;
use kumi::amqp::lapin::{BasicProperties, Connection, ConnectionProperties};
use kumi::amqp::topology::sha256_hex;
use kumi::prelude::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;

fn with(url: &str, opts: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{opts}")
}

fn unique(case: &str) -> String {
    format!("amqptest.{case}.{}", uuid::Uuid::new_v4().simple())
}

struct Legacy {
    topic: String,
    tx: mpsc::UnboundedSender<(Value, String)>,
}

impl Legacy {
    async fn on(self: Arc<Self>, Data(v): Data<Value>, MessageId(id): MessageId) {
        let _ = self.tx.send((v, id));
    }
}

impl Service for Legacy {
    fn name(&self) -> &str {
        "legacy-consumer"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe(&self.topic, Self::on);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tomodachi_queue_names_and_bodies() {
    let url = with(&base_url(), "queue_names=tomodachi&queue_expires=2m");
    let bus = kumi::amqp::connect(&url)
        .await
        .expect("RabbitMQ must be running");
    let raw = Connection::connect(&base_url(), ConnectionProperties::default())
        .await
        .expect("raw lapin connection");
    let ch = raw.create_channel().await.expect("channel");

    // 1. The queue of the default-group route is sha256_hex(routing key), durable, bound.
    let topic = unique("tomo");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let svc = Arc::new(Legacy {
        topic: topic.clone(),
        tx,
    });
    let app = kumi::App::new()
        .bus(Arc::clone(&bus))
        .shared_service(svc)
        .start()
        .await
        .expect("start");
    let queue = sha256_hex(&topic);
    let declared = ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the tomodachi-named queue exists");
    assert_eq!(declared.consumer_count(), 1, "kumi consumes it");

    // 2. A JsonBase body exactly as tomodachi writes it (transient, no properties), published raw.
    let body = format!(
        r#"{{"service": {{"name": "tomodachi-svc", "uuid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}}, "metadata": {{"message_uuid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.6c8b9a1e-2f3d-4c5b-9a8e-7d6c5b4a3f21", "protocol_version": "tomodachi-json-base--1.0.0", "compatible_protocol_versions": ["json_base-wip"], "timestamp": 1732700000.5, "topic": "{topic}", "data_encoding": "raw"}}, "data": {{"order": 42, "note": "caf\u00e9"}}}}"#
    );
    ch.basic_publish(
        "amq.topic".into(),
        topic.as_str().into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    )
    .await
    .expect("raw publish");
    let (data, id) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the tomodachi message was handled")
        .expect("channel open");
    assert_eq!(data, json!({"order": 42, "note": "café"}));
    assert!(id.starts_with("0f1e2d3c"), "{id}");

    // 3. A kumi-published message as a raw consumer sees it.
    let out_topic = unique("tomo-out");
    let raw_queue = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("raw queue");
    ch.queue_bind(
        raw_queue.name().clone(),
        "amq.topic".into(),
        out_topic.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    let mut consumer = ch
        .basic_consume(
            raw_queue.name().clone(),
            "raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let sent_id = app
        .client()
        .publish(&out_topic, &json!({"order": 7}))
        .await
        .expect("kumi publish");
    let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("raw consumer got it")
        .expect("stream open")
        .expect("delivery");
    d.acker.ack(BasicAckOptions::default()).await.expect("ack");
    assert_eq!(d.routing_key.as_str(), out_topic);
    assert_eq!(*d.properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        d.properties.message_id().as_ref().map(|s| s.to_string()),
        Some(sent_id)
    );
    let env: Value = serde_json::from_slice(&d.data).expect("JSON body");
    assert_eq!(
        env["metadata"]["protocol_version"],
        "tomodachi-json-base--1.0.0"
    );
    assert_eq!(env["metadata"]["topic"], out_topic.as_str());
    assert_eq!(env["metadata"]["data_encoding"], "raw");
    assert_eq!(env["data"], json!({"order": 7}));
    assert!(env["service"]["name"].is_string());
    assert!(env["metadata"]["timestamp"].is_f64());

    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
    for q in [
        queue.clone(),
        format!("{queue}.retry"),
        format!("{queue}.dlq"),
    ] {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete test queue");
    }
    let _ = raw.close(200, "done".into()).await;
}
