//! kumi on RabbitMQ against bare lapin doing the same work, on the same broker in the same run.
//! Not a test: it prints both figures and the ratio kumi/raw.
//!
//! ```text
//! cargo bench -p kumi-amqp --bench amqp_vs_raw
//! KUMI_BENCH_MESSAGES=50000 KUMI_BENCH_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f cargo bench -p kumi-amqp --bench amqp_vs_raw
//! ```
//!
//! 1. **Consume with ack**: `KUMI_BENCH_MESSAGES` (default 20000) JsonBase orders are put in a
//!    queue first, then consumed and acked with prefetch 64: by a kumi event route
//!    (`Data<Order>`, concurrency 64), or by a bare lapin consumer (`basic_qos` 64) that spawns a
//!    task per delivery under a 64-permit semaphore, decodes the same envelope and data, and acks.
//!    Timed from starting the consumer to the last message handled.
//! 2. **Publish with confirms** (best of 4 rounds, alternating which side goes first): 16
//!    publishers each publish their share of the messages, awaiting each broker confirm: kumi's `Client::publish` (JsonBase encoding, persistent) against bare
//!    lapin on a confirm channel publishing the same JsonBase body, persistent.
//!
//! Each publish side has its own fresh durable queue bound to its topic. Queues carry a per-run
//! suffix and are deleted at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kumi_amqp::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use kumi_amqp::lapin::types::FieldTable;
use kumi_amqp::lapin::{BasicProperties, Connection, ConnectionProperties};
use kumi_amqp::topology::sha256_hex;
use kumi_core::extract::Data;
use kumi_core::{App, Client, Router, Service};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

const PREFETCH: usize = 64;
const PUBLISHERS: u64 = 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    items: Vec<String>,
    cents: u64,
}

fn order(id: u64) -> Order {
    Order {
        id,
        customer: "customer-42".into(),
        items: vec!["green tea".into(), "mochi".into(), "sencha".into()],
        cents: 1250,
    }
}

fn envelope(topic: &str, o: &Order) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "service": {"name": "bench", "uuid": "bench-uuid"},
        "metadata": {
            "message_uuid": format!("bench-uuid.{}", o.id),
            "protocol_version": "tomodachi-json-base--1.0.0",
            "compatible_protocol_versions": ["json_base-wip"],
            "timestamp": 1_732_700_000.0,
            "topic": topic,
            "data_encoding": "raw",
        },
        "data": o,
    }))
    .expect("encode")
}

fn decode(body: &[u8]) -> Order {
    let mut env: Value = serde_json::from_slice(body).expect("raw: not JSON");
    assert_eq!(
        env["metadata"]["protocol_version"],
        "tomodachi-json-base--1.0.0"
    );
    serde_json::from_value(env["data"].take()).expect("raw: not an order")
}

struct Sink {
    topic: String,
    seen: AtomicU64,
    want: u64,
    done: Notify,
}

impl Sink {
    async fn on(self: Arc<Self>, Data(o): Data<Order>) {
        std::hint::black_box(o);
        if self.seen.fetch_add(1, Ordering::AcqRel) + 1 == self.want {
            self.done.notify_one();
        }
    }
}

impl Service for Sink {
    fn name(&self) -> &str {
        "bench-sink"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router
            .subscribe(&self.topic, Self::on)
            .concurrency(PREFETCH);
    }
}

async fn prepublish(client: &Client, topic: &str, n: u64) {
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let client = client.clone();
        let topic = topic.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut i = p;
            while i < n {
                client.publish(&topic, &order(i)).await.expect("prepublish");
                i += PUBLISHERS;
            }
        }));
    }
    for t in tasks {
        t.await.expect("prepublish task");
    }
}

const ROUNDS: usize = 4;

async fn kumi_publish_round(producer: &Client, topic: &str, n: u64) -> Duration {
    let t0 = Instant::now();
    prepublish(producer, topic, n).await;
    t0.elapsed()
}

async fn raw_publish_round(pch: &Arc<kumi_amqp::lapin::Channel>, topic: &str, n: u64) -> Duration {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let pch = Arc::clone(pch);
        let topic = topic.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut i = p;
            while i < n {
                let body = envelope(&topic, &order(i));
                let props = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(format!("bench-uuid.{i}").into());
                pch.basic_publish(
                    "amq.topic".into(),
                    topic.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
                i += PUBLISHERS;
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    t0.elapsed()
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[path = "../../../benches/support/idle_rss.rs"]
mod idle_rss;

fn main() {
    idle_rss::child(|url| async move { kumi_amqp::connect(&url).await });
    let base = std::env::var("KUMI_BENCH_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench(&base));
    idle_rss::line(&base, &kumi_core::bus::redact(&base));
}

async fn bench(base: &str) {
    let base = base.to_owned();
    let n: u64 = std::env::var("KUMI_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let kumi_url = format!("{base}?queue_expires=10m");
    let raw = Connection::connect(&base, ConnectionProperties::default())
        .await
        .expect("RabbitMQ must be running (KUMI_BENCH_AMQP_URL)");
    let admin = raw.create_channel().await.expect("channel");

    // 1. Consume with ack. kumi: declare the route's queue, stop, fill it, consume.
    let topic = format!("bench.{run}.kumi");
    let sink = Arc::new(Sink {
        topic: topic.clone(),
        seen: AtomicU64::new(0),
        want: n,
        done: Notify::new(),
    });
    let bus = kumi_amqp::connect(&kumi_url).await.expect("connect");
    let app = App::new()
        .bus(bus)
        .shared_service(Arc::clone(&sink))
        .start()
        .await
        .expect("start");
    app.shutdown(Duration::from_secs(5)).await.expect("stop");
    let producer = Client::new(kumi_amqp::connect(&kumi_url).await.expect("connect"));
    prepublish(&producer, &topic, n).await;
    let t0 = Instant::now();
    let bus = kumi_amqp::connect(&kumi_url).await.expect("connect");
    let app = App::new()
        .bus(bus)
        .shared_service(Arc::clone(&sink))
        .start()
        .await
        .expect("start");
    sink.done.notified().await;
    let kumi_consume = t0.elapsed();
    app.shutdown(Duration::from_secs(5)).await.expect("stop");
    let kumi_queue = format!("bench-sink.{}", sha256_hex(&topic));

    // raw: own queue, same messages.
    let raw_topic = format!("bench.{run}.raw");
    let raw_queue = format!("bench-raw.{run}");
    admin
        .queue_declare(
            raw_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare");
    admin
        .queue_bind(
            raw_queue.as_str().into(),
            "amq.topic".into(),
            raw_topic.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    prepublish(&producer, &raw_topic, n).await;
    let t0 = Instant::now();
    let ch = raw.create_channel().await.expect("channel");
    ch.basic_qos(PREFETCH as u16, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = ch
        .basic_consume(
            raw_queue.as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let permits = Arc::new(Semaphore::new(PREFETCH));
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let mut taken = 0;
    while taken < n {
        let Some(Ok(d)) = consumer.next().await else {
            panic!("raw consumer ended");
        };
        taken += 1;
        let permit = Arc::clone(&permits).acquire_owned().await.expect("permit");
        let seen = Arc::clone(&seen);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            std::hint::black_box(decode(&d.data));
            d.acker.ack(BasicAckOptions::default()).await.expect("ack");
            drop(permit);
            if seen.fetch_add(1, Ordering::AcqRel) + 1 == n {
                done.notify_one();
            }
        });
    }
    done.notified().await;
    let raw_consume = t0.elapsed();

    // 2. Publish with confirms, each side into its own fresh durable queue.
    drop(consumer);
    let _ = ch.close(200, "consume phase done".into()).await;
    let mut publish_queues = Vec::new();
    for side in ["kumi", "raw"] {
        let q = format!("bench-pub-{side}.{run}");
        admin
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare");
        admin
            .queue_bind(
                q.as_str().into(),
                "amq.topic".into(),
                format!("bench.{run}.pub.{side}").as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        publish_queues.push(q);
    }
    let pch = Arc::new(raw.create_channel().await.expect("channel"));
    pch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    // Broker-bound and order-sensitive: alternate which side goes first, keep the best round.
    let (mut kumi_publish, mut raw_publish) = (Duration::MAX, Duration::MAX);
    for round in 0..ROUNDS {
        let kumi_topic = format!("bench.{run}.pub.kumi");
        let raw_topic = format!("bench.{run}.pub.raw");
        if round % 2 == 0 {
            kumi_publish = kumi_publish.min(kumi_publish_round(&producer, &kumi_topic, n).await);
            raw_publish = raw_publish.min(raw_publish_round(&pch, &raw_topic, n).await);
        } else {
            raw_publish = raw_publish.min(raw_publish_round(&pch, &raw_topic, n).await);
            kumi_publish = kumi_publish.min(kumi_publish_round(&producer, &kumi_topic, n).await);
        }
    }

    for q in [
        kumi_queue.clone(),
        format!("{kumi_queue}.retry"),
        format!("{kumi_queue}.dlq"),
        raw_queue.clone(),
        publish_queues[0].clone(),
        publish_queues[1].clone(),
    ] {
        let _ = admin
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = raw.close(200, "bench done".into()).await;

    println!("amqp_vs_raw: {n} messages, prefetch/concurrency {PREFETCH}, {PUBLISHERS} publishers");
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "", "kumi msg/s", "raw msg/s", "kumi/raw"
    );
    for (name, k, r) in [
        ("consume + ack (JsonBase decode)", kumi_consume, raw_consume),
        ("publish + confirm (persistent)", kumi_publish, raw_publish),
    ] {
        println!(
            "{name:<34} {:>12.0} {:>12.0} {:>8.2}",
            rate(n, k),
            rate(n, r),
            rate(n, k) / rate(n, r)
        );
    }
}
