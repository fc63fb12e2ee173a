//! RabbitMQ topology: broadcast routes get a per-instance exclusive queue that goes away with the
//! instance; explicit groups share a stable `group.sha256(routing key)` queue; request queues go
//! with their last server (then requests fail fast with "no responders"); a custom exchange and a
//! routing key prefix are used on the wire. Test queues are deleted or expire (`queue_expires=2m`).

#![cfg(feature = "amqp")]

#[path = "support/amqp.rs"]
mod amqp_broker;

use amqp_broker::base_url;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kumi::amqp::lapin::options::{
    BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use kumi::amqp::lapin::types::FieldTable;
use kumi::amqp::lapin::{Connection, ConnectionProperties};
use kumi::amqp::topology::sha256_hex;
use kumi::prelude::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;

fn url_with(opts: &str) -> String {
    let base = base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}queue_expires=2m&{opts}")
}

fn unique(case: &str) -> String {
    format!("amqptest.{case}.{}", uuid::Uuid::new_v4().simple())
}

struct Topo {
    topic: String,
    instance: u32,
    tx: mpsc::UnboundedSender<(&'static str, u32, u64)>,
}

impl Topo {
    async fn everyone(self: Arc<Self>, Data(v): Data<Value>) {
        let _ = self
            .tx
            .send(("broadcast", self.instance, v["n"].as_u64().unwrap_or(0)));
    }

    async fn billing(self: Arc<Self>, Data(v): Data<Value>) {
        let _ = self
            .tx
            .send(("billing", self.instance, v["n"].as_u64().unwrap_or(0)));
    }

    async fn answer(self: Arc<Self>, Data(v): Data<Value>) -> Result<Value, HandlerError> {
        Ok(json!({"echo": v}))
    }
}

impl Service for Topo {
    fn name(&self) -> &str {
        "topo"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe(&self.topic, Self::everyone).broadcast();
        router
            .subscribe(&self.topic, Self::billing)
            .group("billing");
        router.request(&format!("{}.ask", self.topic), Self::answer);
    }
}

fn queue_of(app: &kumi::RunningApp, handler: &str) -> String {
    let route = app
        .routes()
        .find(|r| r.name.ends_with(handler))
        .unwrap_or_else(|| panic!("route {handler}"));
    route
        .listens
        .strip_prefix("queue ")
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("listens: {}", route.listens))
        .to_owned()
}

async fn queue_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel");
    let r = ch
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    r.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_groups_and_request_queues() {
    let url = url_with("");
    let topic = unique("topo");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut apps = Vec::new();
    for instance in 1..=2 {
        let bus = kumi::amqp::connect(&url)
            .await
            .expect("RabbitMQ must be running");
        let svc = Arc::new(Topo {
            topic: topic.clone(),
            instance,
            tx: tx.clone(),
        });
        apps.push(
            kumi::App::new()
                .bus(bus)
                .shared_service(svc)
                .start()
                .await
                .expect("start"),
        );
    }
    let billing_queue = queue_of(&apps[0], "billing");
    assert_eq!(billing_queue, format!("billing.{}", sha256_hex(&topic)));
    assert_eq!(
        queue_of(&apps[1], "billing"),
        billing_queue,
        "one shared queue"
    );
    let broadcast_queues = [
        queue_of(&apps[0], "everyone"),
        queue_of(&apps[1], "everyone"),
    ];
    assert_ne!(broadcast_queues[0], broadcast_queues[1]);
    assert!(broadcast_queues[0].starts_with("broadcast.topo."));

    let client = apps[0].client();
    for n in 0..5u64 {
        client
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish");
    }
    let mut broadcast = [0u32; 3];
    let mut billing = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while broadcast[1] < 5 || broadcast[2] < 5 || billing < 5 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(("broadcast", i, _))) => broadcast[i as usize] += 1,
            Ok(Some(_)) => billing += 1,
            _ => panic!("broadcast {broadcast:?}, billing {billing}"),
        }
    }
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("extra message {extra:?}");
    }

    let ask = format!("{topic}.ask");
    let reply: Value = client
        .request(&ask, &json!({"q": 1}))
        .await
        .expect("request");
    assert_eq!(reply["echo"]["q"], 1);

    for app in apps {
        app.shutdown(Duration::from_secs(10))
            .await
            .expect("shutdown");
    }
    let raw = Connection::connect(&base_url(), ConnectionProperties::default())
        .await
        .expect("raw connection");
    for q in &broadcast_queues {
        assert!(!queue_exists(&raw, q).await, "broadcast queue {q} is gone");
    }
    assert!(
        !queue_exists(&raw, &format!("rpc.{ask}")).await,
        "request queue is gone"
    );
    assert!(
        queue_exists(&raw, &billing_queue).await,
        "the group queue is durable"
    );

    // Nobody serves the request topic any more: fail fast.
    let other = kumi::Client::new(kumi::amqp::connect(&url).await.expect("connect"))
        .with_request_timeout(Duration::from_secs(5));
    let t0 = std::time::Instant::now();
    let err = other
        .request::<_, Value>(&ask, &json!({}))
        .await
        .expect_err("no server");
    assert!(err.is_no_responders(), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(1));

    let ch = raw.create_channel().await.expect("channel");
    for q in [
        billing_queue.clone(),
        format!("{billing_queue}.retry"),
        format!("{billing_queue}.dlq"),
    ] {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete");
    }
    let _ = raw.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_exchange_and_routing_key_prefix() {
    let exchange = unique("exchange");
    let url = url_with(&format!("exchange={exchange}&routing_key_prefix=pfx."));
    let bus = kumi::amqp::connect(&url).await.expect("connect");
    let topic = unique("prefixed");
    let raw = Connection::connect(&base_url(), ConnectionProperties::default())
        .await
        .expect("raw connection");
    let ch = raw.create_channel().await.expect("channel");
    let q = ch
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
        .expect("queue");
    ch.queue_bind(
        q.name().clone(),
        exchange.as_str().into(),
        format!("pfx.{topic}").as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind to the exchange kumi declared");
    let mut consumer = ch
        .basic_consume(
            q.name().clone(),
            "raw".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    kumi::Client::new(Arc::clone(&bus))
        .publish(&topic, &json!({"n": 1}))
        .await
        .expect("publish");
    let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("arrived")
        .expect("open")
        .expect("delivery");
    assert_eq!(d.exchange.as_str(), exchange);
    assert_eq!(d.routing_key.as_str(), format!("pfx.{topic}"));
    let env: Value = serde_json::from_slice(&d.data).expect("json");
    assert_eq!(
        env["metadata"]["topic"],
        topic.as_str(),
        "envelope topic has no prefix"
    );
    bus.shutdown(std::time::Instant::now() + Duration::from_secs(5))
        .await
        .expect("stop");
    ch.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete exchange");
    let _ = raw.close(200, "done".into()).await;
}
