//! Consume throughput of a kumi SNS+SQS route against a bare aws-sdk-sqs receive/handle/delete
//! loop, on the same emulator in the same run. Not a test: it prints both figures and the ratio
//! kumi/raw.
//!
//! ```text
//! cargo bench -p kumi-sns-sqs --bench sqs_vs_raw
//! KUMI_BENCH_MESSAGES=2000 KUMI_BENCH_ROUNDS=4 KUMI_BENCH_SNS_SQS_ENDPOINT=http://127.0.0.1:5000 cargo bench -p kumi-sns-sqs --bench sqs_vs_raw
//! ```
//!
//! Both consumers read the same number of identical JsonBase messages (tomodachi's direct-send
//! wrapper, pre-filled with `SendMessageBatch` into a queue of their own), decode the envelope and
//! the `Order` inside, and delete each message after handling it; both poll for up to 10 messages
//! at a time with at most `CONCURRENCY` handlers running. Timed from the start of consuming until
//! the last message is handled. moto is an emulator: the figures compare the two consumers on it,
//! they say nothing about AWS throughput.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use kumi_core::extract::Data;
use kumi_core::{App, HandlerError, Router, Service};
use kumi_sns_sqs::{SnsSqsBus, SqsRoute};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

/// Handlers running at once, in both consumers.
const CONCURRENCY: usize = 10;

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
    items: Vec<String>,
    total: f64,
}

#[derive(Deserialize)]
struct Wrapper {
    #[serde(rename = "Message")]
    message: String,
}

#[derive(Deserialize)]
struct Envelope {
    data: Order,
}

fn body(i: u64) -> String {
    let envelope = serde_json::json!({
        "service": {"name": "bench", "uuid": "u"},
        "metadata": {
            "message_uuid": format!("u.{i}"),
            "protocol_version": "tomodachi-json-base--1.0.0",
            "compatible_protocol_versions": ["json_base-wip"],
            "timestamp": 1_732_700_000.0,
            "topic": "bench",
            "data_encoding": "raw"
        },
        "data": {"id": i, "items": ["tea", "cake"], "total": 12.5}
    });
    kumi_sns_sqs::envelope_sns::wrap_direct(&envelope.to_string(), &[])
}

async fn fill(sqs: &aws_sdk_sqs::Client, queue_url: &str, n: u64) {
    let mut i = 0;
    while i < n {
        let mut req = sqs.send_message_batch().queue_url(queue_url);
        for j in i..(i + 10).min(n) {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(format!("m{j}"))
                .message_body(body(j))
                .build();
            match entry {
                Ok(e) => req = req.entries(e),
                Err(e) => panic!("batch entry: {e}"),
            }
        }
        if let Err(e) = req.send().await {
            panic!("SendMessageBatch: {e}");
        }
        i += 10;
    }
}

struct Counter {
    handled: AtomicU64,
    target: u64,
    done: Notify,
}

impl Counter {
    fn hit(&self) {
        if self.handled.fetch_add(1, Ordering::AcqRel) + 1 == self.target {
            self.done.notify_one();
        }
    }
}

struct Bench {
    topic: String,
    queue: String,
    counter: Arc<Counter>,
}

impl Bench {
    async fn on(self: Arc<Self>, Data(order): Data<Order>) -> Result<(), HandlerError> {
        std::hint::black_box(order.total * order.id as f64);
        self.counter.hit();
        Ok(())
    }
}

impl Service for Bench {
    fn name(&self) -> &str {
        "bench"
    }

    fn routes(&self, router: &mut Router<Self>) {
        let _ = router
            .subscribe(&self.topic, Self::on)
            .concurrency(CONCURRENCY)
            .option(SqsRoute::new().queue_name(self.queue.clone()));
    }
}

async fn raw(sqs: aws_sdk_sqs::Client, queue_url: String, counter: Arc<Counter>) {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    while counter.handled.load(Ordering::Acquire) < counter.target {
        let Ok(first) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let mut held = vec![first];
        while held.len() < 10 {
            match Arc::clone(&permits).try_acquire_owned() {
                Ok(p) => held.push(p),
                Err(_) => break,
            }
        }
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(held.len() as i32)
            .wait_time_seconds(1)
            .send()
            .await;
        let Ok(out) = out else { continue };
        for m in out.messages() {
            let Some(permit) = held.pop() else { break };
            let sqs = sqs.clone();
            let queue_url = queue_url.clone();
            let counter = Arc::clone(&counter);
            let m = m.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let w: Wrapper = match serde_json::from_str(m.body().unwrap_or_default()) {
                    Ok(w) => w,
                    Err(_) => return,
                };
                if let Ok(e) = serde_json::from_str::<Envelope>(&w.message) {
                    std::hint::black_box(e.data.total * e.data.id as f64);
                }
                let _ = sqs
                    .delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await;
                counter.hit();
            });
        }
    }
}

async fn run_kumi(url: &str, sqs: &aws_sdk_sqs::Client, n: u64, run: &str) -> f64 {
    // Create the route's queue, stop, fill it, then consume.
    let topic = format!("bench.{run}");
    let queue = format!("bench-kumi-{run}");
    let make = |counter: Arc<Counter>| {
        Arc::new(Bench {
            topic: topic.clone(),
            queue: queue.clone(),
            counter,
        })
    };
    let setup = Arc::new(Counter {
        handled: AtomicU64::new(0),
        target: u64::MAX,
        done: Notify::new(),
    });
    let bus = kumi_sns_sqs::connect(url).await.expect("connect");
    let app = App::new()
        .bus(bus)
        .shared_service(make(Arc::clone(&setup)))
        .start()
        .await
        .expect("start");
    app.shutdown(Duration::from_secs(5)).await.expect("stop");
    let kumi_queue = sqs
        .get_queue_url()
        .queue_name(&queue)
        .send()
        .await
        .expect("queue")
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    fill(sqs, &kumi_queue, n).await;
    let counter = Arc::new(Counter {
        handled: AtomicU64::new(0),
        target: n,
        done: Notify::new(),
    });
    let bus = kumi_sns_sqs::connect(url).await.expect("connect");
    let started = Instant::now();
    let app = App::new()
        .bus(bus)
        .shared_service(make(Arc::clone(&counter)))
        .start()
        .await
        .expect("start");
    counter.done.notified().await;
    let secs = started.elapsed().as_secs_f64();
    app.shutdown(Duration::from_secs(5)).await.expect("stop");
    let _ = sqs.delete_queue().queue_url(kumi_queue).send().await;
    secs
}

async fn run_raw(sqs: &aws_sdk_sqs::Client, n: u64, run: &str) -> f64 {
    let raw_queue = sqs
        .create_queue()
        .queue_name(format!("bench-raw-{run}"))
        .send()
        .await
        .expect("create raw queue")
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    fill(sqs, &raw_queue, n).await;
    let counter = Arc::new(Counter {
        handled: AtomicU64::new(0),
        target: n,
        done: Notify::new(),
    });
    let started = Instant::now();
    let task = tokio::spawn(raw(sqs.clone(), raw_queue.clone(), Arc::clone(&counter)));
    counter.done.notified().await;
    let secs = started.elapsed().as_secs_f64();
    task.abort();
    let _ = sqs.delete_queue().queue_url(raw_queue).send().await;
    secs
}

#[path = "../../../benches/support/idle_rss.rs"]
mod idle_rss;

fn main() {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    idle_rss::child(|url| async move { kumi_sns_sqs::connect(&url).await });
    let endpoint = std::env::var("KUMI_BENCH_SNS_SQS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench(&endpoint));
    let url = format!(
        "sns+sqs://?region=us-east-1&endpoint={endpoint}&access_key_id=bench&secret_access_key=bench"
    );
    idle_rss::line(&url, &kumi_core::bus::redact(&url));
}

async fn bench(endpoint: &str) {
    let endpoint = endpoint.to_owned();
    let env_u64 = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env_u64("KUMI_BENCH_MESSAGES", 500);
    let rounds = env_u64("KUMI_BENCH_ROUNDS", 2).max(1);
    let url = format!(
        "sns+sqs://?region=us-east-1&endpoint={endpoint}&access_key_id=bench&secret_access_key=bench&wait_time=1"
    );
    let admin = match SnsSqsBus::connect(&url).await {
        Ok(b) => b,
        Err(e) => panic!("the emulator must be running: {e}"),
    };
    let sqs = admin.sqs_client().clone();
    // Rounds alternate which consumer goes first (the emulator slows as its state grows).
    let (mut kumi_best, mut raw_best) = (f64::MAX, f64::MAX);
    for round in 0..rounds {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let id = &id[..10];
        let (k, r) = if round % 2 == 0 {
            let k = run_kumi(&url, &sqs, n, id).await;
            (k, run_raw(&sqs, n, id).await)
        } else {
            let r = run_raw(&sqs, n, id).await;
            (run_kumi(&url, &sqs, n, id).await, r)
        };
        println!(
            "round {round}: kumi {:.1} msg/s, raw {:.1} msg/s",
            n as f64 / k,
            n as f64 / r
        );
        kumi_best = kumi_best.min(k);
        raw_best = raw_best.min(r);
    }
    let kumi_rate = n as f64 / kumi_best;
    let raw_rate = n as f64 / raw_best;
    println!(
        "SQS consume, {n} messages, batch <=10, concurrency {CONCURRENCY}, best of {rounds} rounds, against {endpoint}"
    );
    println!("  kumi route : {kumi_rate:>8.1} msg/s");
    println!("  raw loop   : {raw_rate:>8.1} msg/s");
    println!("  kumi / raw : {:.2}", kumi_rate / raw_rate);
}
