//! Throughput of the full in-memory pipeline against a bare tokio channel loop doing the same serde
//! work. Not a test: it prints a table.
//!
//! ```text
//! cargo bench --bench memory_pipeline            # default 200000 messages per run
//! KUMI_BENCH_MESSAGES=50000 cargo bench --bench memory_pipeline
//! ```
//!
//! - **kumi**: `Client::publish` (serialize + JsonBase envelope) → `memory://` bus → dispatcher
//!   (envelope decode, trace span, extractors, `Data<Order>` deserialize) → handler → ack.
//! - **raw**: serialize the same JsonBase-shaped envelope with serde_json → `tokio::sync::mpsc`
//!   (bounded, same capacity) → consumer deserializes envelope and data → counts.
//!
//! Both run on the same runtime in the same process; each round is timed from the first publish
//! to the last message handled. The best of several rounds is reported, with the ratio kumi/raw.
//! The rows are then run again with the runner's logging installed (`KUMI_LOG`, default `info`),
//! which records kumi's per-message spans; `KUMI_LOG=info,kumi::message=off` shows the cost
//! without them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kumi::memory::MemoryBus;
use kumi::prelude::*;
use kumi::App;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, Notify};

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

struct Sink {
    seen: AtomicU64,
    target: u64,
    done: Notify,
}

impl Sink {
    fn hit(&self, o: &Order) {
        std::hint::black_box(o);
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.done.notify_one();
        }
    }
}

struct Bench {
    sink: Arc<Sink>,
    concurrency: usize,
}

impl Bench {
    async fn on_order(self: Arc<Self>, Data(o): Data<Order>) -> Result<(), HandlerError> {
        self.sink.hit(&o);
        Ok(())
    }
}

impl Service for Bench {
    fn name(&self) -> &str {
        "bench"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router
            .subscribe("bench.orders", Self::on_order)
            .concurrency(self.concurrency);
    }
}

async fn kumi_round(n: u64, concurrency: usize) -> Duration {
    let sink = Arc::new(Sink {
        seen: AtomicU64::new(0),
        target: n,
        done: Notify::new(),
    });
    let bus = Arc::new(MemoryBus::new());
    let app = App::new()
        .bus(bus)
        .service(Bench {
            sink: Arc::clone(&sink),
            concurrency,
        })
        .start()
        .await
        .expect("start");
    let client = app.client();
    let start = Instant::now();
    let done = sink.done.notified();
    tokio::pin!(done);
    done.as_mut().enable();
    for id in 0..n {
        client
            .publish("bench.orders", &order(id))
            .await
            .expect("publish");
    }
    done.await;
    let elapsed = start.elapsed();
    app.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
    elapsed
}

#[derive(Serialize)]
struct OutEnvelope<'a> {
    service: (&'a str, &'a str),
    metadata: OutMeta<'a>,
    data: &'a Order,
}

#[derive(Serialize)]
struct OutMeta<'a> {
    message_uuid: String,
    protocol_version: &'a str,
    timestamp: f64,
    topic: &'a str,
    data_encoding: &'a str,
}

#[derive(Deserialize)]
struct InEnvelope<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
}

async fn raw_round(n: u64, consumers: usize) -> Duration {
    let sink = Arc::new(Sink {
        seen: AtomicU64::new(0),
        target: n,
        done: Notify::new(),
    });
    let (tx, rx) = async_channel_like(1024);
    let mut workers = Vec::new();
    for _ in 0..consumers {
        let rx = Arc::clone(&rx);
        let sink = Arc::clone(&sink);
        workers.push(tokio::spawn(async move {
            loop {
                let msg: Option<bytes::Bytes> = rx.lock().await.recv().await;
                let Some(body) = msg else { break };
                let env: InEnvelope<'_> = serde_json::from_slice(&body).expect("envelope");
                let o: Order = serde_json::from_str(env.data.get()).expect("order");
                sink.hit(&o);
            }
        }));
    }
    let start = Instant::now();
    let done = sink.done.notified();
    tokio::pin!(done);
    done.as_mut().enable();
    for id in 0..n {
        let o = order(id);
        let env = OutEnvelope {
            service: ("bench", "instance"),
            metadata: OutMeta {
                message_uuid: format!("instance.{}", uuid::Uuid::new_v4()),
                protocol_version: "tomodachi-json-base--1.0.0",
                timestamp: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64(),
                topic: "bench.orders",
                data_encoding: "raw",
            },
            data: &o,
        };
        let body = bytes::Bytes::from(serde_json::to_vec(&env).expect("serialize"));
        tx.send(body).await.expect("send");
    }
    done.await;
    let elapsed = start.elapsed();
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    elapsed
}

type SharedRx = Arc<tokio::sync::Mutex<mpsc::Receiver<bytes::Bytes>>>;

/// A bounded tokio mpsc whose receiver several consumers share (the simplest hand-written
/// competing-consumer loop).
fn async_channel_like(cap: usize) -> (mpsc::Sender<bytes::Bytes>, SharedRx) {
    let (tx, rx) = mpsc::channel(cap);
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[path = "support/idle_rss.rs"]
mod idle_rss;

fn main() {
    idle_rss::child(|url| async move { kumi::connect(&url).await });
    let n: u64 = std::env::var("KUMI_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rounds = 5;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("in-memory pipeline vs bare tokio channel, {n} messages per round, best of {rounds}");
    println!(
        "{:<44} {:>14} {:>14} {:>8}",
        "scenario", "kumi msg/s", "raw msg/s", "ratio"
    );
    let rows = |suffix: &str| {
        for (label, concurrency) in [("1 consumer", 1usize), ("16 concurrent handlers", 16)] {
            let mut best_kumi = Duration::MAX;
            let mut best_raw = Duration::MAX;
            for _ in 0..rounds {
                best_raw = best_raw.min(rt.block_on(raw_round(n, concurrency)));
                best_kumi = best_kumi.min(rt.block_on(kumi_round(n, concurrency)));
            }
            let (k, r) = (rate(n, best_kumi), rate(n, best_raw));
            let label = format!("{label}{suffix}");
            println!("{label:<44} {k:>14.0} {r:>14.0} {:>8.2}", k / r);
        }
    };
    rows("");
    // The same with the logging a service started by the runner has (KUMI_LOG, default `info`):
    // the per-message spans are then recorded. `KUMI_LOG=info,kumi::message=off` drops them.
    let mut config = kumi::runner::Config::default();
    if let Ok(filter) = std::env::var("KUMI_LOG") {
        config.log_level = filter;
    }
    kumi::runner::init_logging(&config);
    rows(&format!(", KUMI_LOG={}", config.log_level));
    idle_rss::line("memory://", "memory://");
}
