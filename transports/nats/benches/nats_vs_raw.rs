//! kumi on NATS against bare async-nats doing the same serde work, on the same broker in the same
//! run. Not a test: it prints a table of both figures and the ratio kumi/raw.
//!
//! ```text
//! cargo bench -p kumi-nats --bench nats_vs_raw
//! KUMI_BENCH_SECS=5 KUMI_BENCH_MESSAGES=200000 cargo bench -p kumi-nats --bench nats_vs_raw
//! KUMI_BENCH_NATS_URL=nats://127.0.0.1:4222 cargo bench -p kumi-nats --bench nats_vs_raw
//! ```
//!
//! `KUMI_BENCH_ONLY=rr,events,backlog,js,rss` (any subset) runs only those sections.
//!
//! The benchmark starts its own `nats-server -js` on a free port with a temporary store and kills
//! it at the end (`KUMI_BENCH_NATS_URL` uses an existing server instead; `KUMI_NATS_SERVER` names
//! the binary). Every subject, stream and consumer carries a per-run suffix.
//!
//! 1. **Request/reply**, closed loop: N requesters (1, 8, 64) send requests back to back for
//!    `KUMI_BENCH_SECS` seconds (default 3) per variant, in 0.5 s slices the three variants take
//!    turns at (each after a short warm-up); throughput and p50/p99 latency.
//!    - kumi route: `router.request(..).concurrency(64)` on a [`NatsBus`] (raw envelope,
//!      `Data<Quote>` in, `Priced` out), requests from a bare async-nats client;
//!    - kumi full path: the same route, requests through `kumi_core::Client::request` on a second
//!      `NatsBus`;
//!    - raw: an async-nats queue subscriber spawning a task per request under a 64-permit
//!      semaphore, deserializing `Quote` and replying with `Priced`; requests from a bare client.
//! 2. **Events**: `KUMI_BENCH_MESSAGES` (default 100000) JsonBase-encoded orders published by a bare
//!    client (paced so that no subscriber falls far enough behind to be dropped as a slow
//!    consumer), consumed by a kumi event route (`Data<Order>`) or by a bare subscriber decoding
//!    the same envelope and data; timed from the first publish to the last message handled. Best
//!    of `KUMI_BENCH_ROUNDS` (default 3).
//! 3. **Backlog**: the consumers alone. Up to 50000 of the same events are published while the
//!    consumer is held back (a gate both sides check per message), until all of them sit in its
//!    subscription buffer; then the gate opens and the consumer is timed with no publisher
//!    running. On two CPUs the events table mostly measures who gets the CPU; this one measures
//!    what each consumer costs per message. Best of `KUMI_BENCH_ROUNDS`.
//! 4. **JetStream**: the same messages pre-published into a stream once, then consumed and acked by
//!    a kumi JetStream route (bound to a durable pull consumer; concurrency 64, or 1) or by a bare
//!    `consumer.messages()` loop acking each message (spawning under a 64-permit semaphore, or
//!    inline), each from its own consumer with the same configuration (`max_ack_pending` 64, as
//!    kumi sets for concurrency 64; deliver all); timed from binding the consumer until the server
//!    reports nothing pending and nothing unacked. Best of `KUMI_BENCH_ROUNDS`.
//!
//! 5. **Idle memory**: the resident set of a service with an event route, a request route and an
//!    HTTP route, idle on the server, measured in a child process.
//!
//! Consume tables also show the CPU time of the benchmark process per message (publisher and NATS
//! client tasks included, the server excluded; Linux only): on a small machine throughput mostly
//! says who got the CPU, this says who needed it. Counts are verified: a run that does not handle
//! every message (within a generous timeout) fails with the count it reached.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, stream};
use async_nats::{ConnectOptions, HeaderMap, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use kumi_core::envelope::{EncodeContext, Envelope, JsonBase, JsonStyle};
use kumi_core::extract::Data;
use kumi_core::{App, HandlerError, Router, RunningApp, Service};
use kumi_nats::{JetStream, NatsBus};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{Notify, Semaphore};

/// Handlers a kumi route (and the raw responder or consumer) runs at once.
const CONCURRENCY: usize = 64;
/// `max_ack_pending` of the benchmark's JetStream consumers: what kumi sets for a route of
/// concurrency [`CONCURRENCY`].
const JS_MAX_ACK_PENDING: i64 = CONCURRENCY as i64;
/// Requester counts of the request/reply cells.
const REQUESTERS: [usize; 3] = [1, 8, 64];
/// Unmeasured load before the first slice of each request/reply cell.
const WARMUP: Duration = Duration::from_millis(300);
/// Unmeasured load before each further slice.
const SLICE_WARMUP: Duration = Duration::from_millis(50);
/// Request/reply cells run in slices of about this long, the variants taking turns.
const RR_SLICE: Duration = Duration::from_millis(500);
/// At most this many published events may be unhandled (the async-nats subscription buffers 65536
/// messages before it drops them as a slow consumer; kumi's `NatsBus` keeps that default).
const EVENT_WINDOW: u64 = 16_384;
/// Outstanding JetStream publish acks while pre-publishing.
const JS_PUBLISH_WINDOW: usize = 512;
/// Every request times out after this long (a timeout fails the benchmark).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Settings and the broker

struct Settings {
    secs: Duration,
    messages: u64,
    rounds: usize,
    only: Option<String>,
}

impl Settings {
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}='{v}' is not a valid number")),
                Err(_) => default,
            }
        }
        let secs: f64 = var("KUMI_BENCH_SECS", 3.0);
        assert!(
            secs.is_finite() && secs > 0.0,
            "KUMI_BENCH_SECS must be positive"
        );
        let messages: u64 = var("KUMI_BENCH_MESSAGES", 100_000);
        assert!(messages > 0, "KUMI_BENCH_MESSAGES must be at least 1");
        let rounds: usize = var("KUMI_BENCH_ROUNDS", 3);
        assert!(rounds > 0, "KUMI_BENCH_ROUNDS must be at least 1");
        Self {
            secs: Duration::from_secs_f64(secs),
            messages,
            rounds,
            only: std::env::var("KUMI_BENCH_ONLY").ok(),
        }
    }

    /// Whether a section (`rr`, `events`, `js`) runs: all of them unless `KUMI_BENCH_ONLY` lists
    /// some (comma-separated).
    fn runs(&self, section: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|s| s.trim() == section))
    }
}

/// The NATS server the benchmark runs against: its own child process (killed on drop, also when
/// the benchmark panics), or the one `KUMI_BENCH_NATS_URL` names.
struct Broker {
    child: Arc<Mutex<Option<Child>>>,
    store: Option<PathBuf>,
    url: String,
    origin: String,
}

fn server_binary() -> String {
    std::env::var("KUMI_NATS_SERVER").unwrap_or_else(|_| {
        [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server")
        .to_owned()
    })
}

impl Broker {
    fn start() -> Self {
        if let Ok(url) = std::env::var("KUMI_BENCH_NATS_URL") {
            return Self {
                child: Arc::new(Mutex::new(None)),
                store: None,
                origin: "KUMI_BENCH_NATS_URL".to_owned(),
                url,
            };
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free TCP port for nats-server");
        let store =
            std::env::temp_dir().join(format!("kumi-bench-nats-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&store)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", store.display()));
        let binary = server_binary();
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {binary}: {e}; install nats-server, set KUMI_NATS_SERVER, or \
                     point KUMI_BENCH_NATS_URL at a running server"
                )
            });
        let broker = Self {
            child: Arc::new(Mutex::new(Some(child))),
            store: Some(store),
            url: format!("nats://127.0.0.1:{port}"),
            origin: format!("{binary} -js, started by the benchmark"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(child) = broker.child.lock().expect("broker lock").as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("nats-server exited at startup ({status}) on port {port}");
                }
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not accept connections on port {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    /// Kills the server and removes its store (idempotent; also called by the watchdog).
    fn stop(child: &Mutex<Option<Child>>, store: Option<&PathBuf>) {
        let taken = match child.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(mut child) = taken {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(store) = store {
            let _ = std::fs::remove_dir_all(store);
        }
    }

    /// Aborts the process (killing the server) if the benchmark outlives `limit`.
    fn watchdog(&self, limit: Duration) -> Arc<AtomicBool> {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let child = Arc::clone(&self.child);
        let store = self.store.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if flag.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("nats_vs_raw: still running after {limit:?}; aborting (something hangs)");
            Self::stop(&child, store.as_ref());
            std::process::exit(2);
        });
        done
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        Self::stop(&self.child, self.store.as_ref());
    }
}

async fn raw_connect(url: &str) -> async_nats::Client {
    let connect = ConnectOptions::new()
        .name("kumi-bench-raw")
        .request_timeout(Some(REQUEST_TIMEOUT))
        .connect(url);
    tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .unwrap_or_else(|_| panic!("connecting to {url} timed out"))
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

async fn kumi_bus(url: &str) -> NatsBus {
    tokio::time::timeout(Duration::from_secs(10), NatsBus::connect(url))
        .await
        .unwrap_or_else(|_| panic!("NatsBus::connect({url}) timed out"))
        .unwrap_or_else(|e| panic!("NatsBus::connect({url}) failed: {e}"))
}

/// A round trip through the server on `client`'s connection. Once it returns, the server has
/// processed every subscription made on that connection before: async-nats's `flush` only writes
/// the socket, so without this a publish from another connection may race the subscription.
async fn sync_with_server(client: &async_nats::Client) {
    let inbox = client.new_inbox();
    let mut probe = client
        .subscribe(inbox.clone())
        .await
        .unwrap_or_else(|e| panic!("probe subscription failed: {e}"));
    client
        .publish(inbox, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("probe publish failed: {e}"));
    tokio::time::timeout(Duration::from_secs(10), probe.next())
        .await
        .expect("no round trip with the NATS server within 10 s")
        .expect("probe subscription closed");
}

/// Starts `service` on `bus`, then makes sure the server has registered its subscriptions
/// (`NatsBus::subscribe` only flushes the socket).
async fn start_app<S: Service>(bus: NatsBus, service: S) -> RunningApp {
    let connection = bus.client().clone();
    let app = tokio::time::timeout(
        Duration::from_secs(15),
        App::new().bus(Arc::new(bus)).service(service).start(),
    )
    .await
    .expect("kumi App::start timed out")
    .unwrap_or_else(|e| panic!("kumi App::start failed: {e}"));
    sync_with_server(&connection).await;
    app
}

async fn stop_app(app: RunningApp) {
    tokio::time::timeout(
        Duration::from_secs(15),
        app.shutdown(Duration::from_secs(5)),
    )
    .await
    .expect("kumi app shutdown timed out")
    .unwrap_or_else(|e| panic!("kumi app shutdown failed: {e}"));
}

// ---------------------------------------------------------------------------------------------
// Payloads and the serde work both sides do

#[derive(Debug, Serialize, Deserialize)]
struct Quote {
    id: u64,
    sku: String,
    quantity: u32,
    unit_cents: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Priced {
    id: u64,
    sku: String,
    total_cents: u64,
    approved: bool,
}

fn quote(worker: usize, i: u64) -> Quote {
    Quote {
        id: ((worker as u64) << 40) | i,
        sku: "sku-000042-matcha".to_owned(),
        quantity: 3,
        unit_cents: 1999,
    }
}

fn price(q: Quote) -> Priced {
    let total_cents = q.unit_cents * u64::from(q.quantity);
    Priced {
        id: q.id,
        sku: q.sku,
        total_cents,
        approved: total_cents < 1_000_000,
    }
}

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

/// The JsonBase envelope as a hand-written tomodachi-compatible consumer reads it: the same
/// fields kumi's decoder reads, borrowed where possible.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    service: RawService<'a>,
    #[serde(borrow)]
    metadata: RawMetadata<'a>,
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct RawService<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    uuid: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RawMetadata<'a> {
    #[serde(borrow)]
    message_uuid: Cow<'a, str>,
    #[serde(borrow)]
    protocol_version: Cow<'a, str>,
    timestamp: f64,
    #[serde(borrow)]
    data_encoding: Cow<'a, str>,
}

fn decode_order(body: &[u8]) -> Order {
    let env: RawEnvelope<'_> =
        serde_json::from_slice(body).expect("raw consumer: body is not a json-base envelope");
    assert_eq!(
        env.metadata.protocol_version, "tomodachi-json-base--1.0.0",
        "raw consumer: unexpected protocol"
    );
    assert_eq!(
        env.metadata.data_encoding, "raw",
        "raw consumer: unexpected data encoding"
    );
    std::hint::black_box((
        &env.service.name,
        &env.service.uuid,
        &env.metadata.message_uuid,
        env.metadata.timestamp,
    ));
    serde_json::from_str(env.data.get()).expect("raw consumer: data is not an Order")
}

/// JsonBase bodies (exactly what `kumi_core::Client::publish` writes) with their `Nats-Msg-Id`
/// header, encoded once so both sides receive the same bytes.
fn prepare_events(topic: &str, n: u64) -> Vec<(HeaderMap, Bytes)> {
    let cx = EncodeContext {
        topic,
        service_name: "bench-producer",
        instance_id: "bench-producer-0001",
    };
    (0..n)
        .map(|id| {
            let payload = JsonStyle::Python
                .to_vec(&order(id))
                .expect("serialize order");
            let encoded = JsonBase.encode(&cx, &payload).expect("json-base encode");
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", encoded.message_id.as_str());
            (headers, encoded.body)
        })
        .collect()
}

/// Counts handled messages and wakes the waiter at the target.
struct Sink {
    seen: AtomicU64,
    target: u64,
    done: Notify,
}

impl Sink {
    fn new(target: u64) -> Arc<Self> {
        Arc::new(Self {
            seen: AtomicU64::new(0),
            target,
            done: Notify::new(),
        })
    }

    fn hit(&self, o: &Order) {
        std::hint::black_box(o);
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.done.notify_one();
        }
    }

    fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    async fn wait(&self, who: &str, limit: Duration) {
        if tokio::time::timeout(limit, self.done.notified())
            .await
            .is_err()
        {
            panic!(
                "{who}: handled {} of {} messages within {limit:?} (dropped as a slow consumer, or stalled)",
                self.seen(),
                self.target
            );
        }
    }
}

/// Holds handlers back until opened, so that a backlog builds up in the subscription first.
struct Gate {
    open: AtomicBool,
    opened: Notify,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            open: AtomicBool::new(false),
            opened: Notify::new(),
        })
    }

    /// Returns at once when open (one atomic load, on both sides), else waits for it.
    async fn pass(&self) {
        while !self.open.load(Ordering::Acquire) {
            let opened = self.opened.notified();
            if self.open.load(Ordering::Acquire) {
                break;
            }
            opened.await;
        }
    }

    fn open(&self) {
        self.open.store(true, Ordering::Release);
        self.opened.notify_waiters();
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Request/reply

async fn kumi_price(Data(q): Data<Quote>) -> Result<Priced, HandlerError> {
    Ok(price(q))
}

struct RrService {
    subject: String,
}

impl Service for RrService {
    fn name(&self) -> &str {
        "bench-rr"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router
            .request(&self.subject, kumi_price)
            .concurrency(CONCURRENCY);
    }
}

/// The hand-written responder: a queue subscriber spawning one task per request, at most
/// [`CONCURRENCY`] at once.
async fn raw_responder(
    url: &str,
    subject: &str,
) -> (async_nats::Client, tokio::task::JoinHandle<()>) {
    let client = raw_connect(url).await;
    let mut sub = client
        .queue_subscribe(subject.to_owned(), "q".to_owned())
        .await
        .unwrap_or_else(|e| panic!("raw responder: cannot subscribe to {subject}: {e}"));
    sync_with_server(&client).await;
    let replier = client.clone();
    let task = tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        while let Some(msg) = sub.next().await {
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("semaphore closed");
            let client = replier.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let q: Quote = serde_json::from_slice(&msg.payload)
                    .expect("raw responder: request is not a Quote");
                let body = serde_json::to_vec(&price(q)).expect("serialize Priced");
                if let Some(reply) = msg.reply {
                    if let Err(e) = client.publish(reply, Bytes::from(body)).await {
                        eprintln!("raw responder: cannot reply: {e}");
                    }
                }
            });
        }
    });
    (client, task)
}

#[derive(Clone)]
enum Requester {
    Raw {
        client: async_nats::Client,
        subject: Subject,
    },
    Kumi {
        client: kumi_core::Client,
        subject: String,
    },
}

impl Requester {
    async fn call(&self, q: &Quote) -> Priced {
        match self {
            Requester::Raw { client, subject } => {
                let body = Bytes::from(serde_json::to_vec(q).expect("serialize Quote"));
                let reply = client
                    .request(subject.clone(), body)
                    .await
                    .unwrap_or_else(|e| panic!("raw request on '{subject}' failed: {e}"));
                if let Some(error) = reply
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Service-Error"))
                {
                    panic!("request on '{subject}' answered with an error: {error}");
                }
                serde_json::from_slice(&reply.payload)
                    .unwrap_or_else(|e| panic!("reply on '{subject}' is not a Priced: {e}"))
            }
            Requester::Kumi { client, subject } => client
                .request(subject, q)
                .await
                .unwrap_or_else(|e| panic!("kumi request on '{subject}' failed: {e}")),
        }
    }
}

/// Latencies and measured time of one request/reply variant, summed over its slices.
#[derive(Default)]
struct Cell {
    latencies: Vec<Duration>,
    measured: Duration,
}

impl Cell {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.measured.as_secs_f64()
    }

    fn percentile(&self, q: f64) -> Duration {
        let sorted = &self.latencies;
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let i = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[i.min(sorted.len() - 1)]
    }
}

/// `concurrency` requesters sending back to back for `warmup + measure`; requests started after
/// the warm-up and finished before the end are counted into `cell`.
async fn closed_loop(
    cell: &mut Cell,
    requester: &Requester,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
) {
    let record_from = Instant::now() + warmup;
    let end = record_from + measure;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let requester = requester.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(16_384);
                let mut i = 0u64;
                loop {
                    let q = quote(w, i);
                    let id = q.id;
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let p = requester.call(&q).await;
                    let t1 = Instant::now();
                    assert_eq!(p.id, id, "reply answers another request");
                    if t0 >= record_from && t1 <= end {
                        latencies.push(t1 - t0);
                    }
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let limit = warmup + measure + REQUEST_TIMEOUT + Duration::from_secs(10);
    let joined = tokio::time::timeout(limit, futures_util::future::join_all(workers))
        .await
        .unwrap_or_else(|_| {
            panic!("request/reply cell (c={concurrency}) did not finish within {limit:?}")
        });
    for r in joined {
        cell.latencies
            .extend(r.unwrap_or_else(|e| panic!("a requester failed: {e}")));
    }
    cell.measured += measure;
}

fn us(d: Duration) -> String {
    format!("{:.0}µs", d.as_secs_f64() * 1e6)
}

async fn request_reply(url: &str, suffix: &str, settings: &Settings) {
    let kumi_subject = format!("bench.rr.kumi.{suffix}");
    let raw_subject = format!("bench.rr.raw.{suffix}");
    let app = start_app(
        kumi_bus(url).await,
        RrService {
            subject: kumi_subject.clone(),
        },
    )
    .await;
    let (responder_client, responder) = raw_responder(url, &raw_subject).await;
    let requester_client = raw_connect(url).await;
    let kumi_client =
        kumi_core::Client::new(Arc::new(kumi_bus(url).await)).with_request_timeout(REQUEST_TIMEOUT);

    // raw client -> raw responder, raw client -> kumi route, kumi Client -> kumi route.
    let variants = [
        Requester::Raw {
            client: requester_client.clone(),
            subject: Subject::from(raw_subject.as_str()),
        },
        Requester::Raw {
            client: requester_client.clone(),
            subject: Subject::from(kumi_subject.as_str()),
        },
        Requester::Kumi {
            client: kumi_client.clone(),
            subject: kumi_subject.clone(),
        },
    ];
    // Each cell runs in short slices, the three variants taking turns (in rotating order), so
    // that drift and scheduling luck on a shared machine spread evenly over them.
    let slices = ((settings.secs.as_secs_f64() / RR_SLICE.as_secs_f64()).round() as u32).max(1);
    let slice = settings.secs / slices;

    println!();
    println!(
        "1) request/reply, closed loop, {:.1} s per cell ({slices} interleaved slices, +{} ms \
         warm-up each); kumi route concurrency {CONCURRENCY}, raw responder: task per request \
         under a {CONCURRENCY}-permit semaphore",
        settings.secs.as_secs_f64(),
        SLICE_WARMUP.as_millis()
    );
    println!(
        "{:<38} {:>11} {:>11} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "scenario",
        "kumi req/s",
        "raw req/s",
        "ratio",
        "kumi p50",
        "raw p50",
        "kumi p99",
        "raw p99"
    );
    for n in REQUESTERS {
        let mut cells: [Cell; 3] = Default::default();
        for k in 0..slices as usize {
            for v in 0..variants.len() {
                let v = (v + k) % variants.len();
                let warmup = if k == 0 { WARMUP } else { SLICE_WARMUP };
                closed_loop(&mut cells[v], &variants[v], n, warmup, slice).await;
            }
        }
        for cell in &mut cells {
            cell.latencies.sort_unstable();
        }
        let [r, k, f] = &cells;
        for (label, k) in [
            (format!("{n:>2} req: kumi route  <- raw client"), k),
            (format!("{n:>2} req: kumi route  <- kumi Client"), f),
        ] {
            println!(
                "{label:<38} {:>11.0} {:>11.0} {:>6.2} {:>9} {:>9} {:>9} {:>9}",
                k.rate(),
                r.rate(),
                k.rate() / r.rate(),
                us(k.percentile(0.50)),
                us(r.percentile(0.50)),
                us(k.percentile(0.99)),
                us(r.percentile(0.99))
            );
        }
    }
    responder.abort();
    let _ = responder.await;
    drop(responder_client);
    stop_app(app).await;
    // The kumi client's own bus: stop it so its connection closes.
    let _ = kumi_client
        .bus()
        .shutdown(Instant::now() + Duration::from_secs(2))
        .await;
}

// ---------------------------------------------------------------------------------------------
// 2. Events and 3. JetStream: the kumi side

struct EventService {
    subject: String,
    sink: Arc<Sink>,
    concurrency: usize,
    jetstream: Option<JetStream>,
    /// Set in the backlog runs.
    gate: Option<Arc<Gate>>,
}

impl EventService {
    async fn on_order(self: Arc<Self>, Data(o): Data<Order>) -> Result<(), HandlerError> {
        if let Some(gate) = &self.gate {
            gate.pass().await;
        }
        self.sink.hit(&o);
        Ok(())
    }
}

impl Service for EventService {
    fn name(&self) -> &str {
        "bench-events"
    }
    fn routes(&self, router: &mut Router<Self>) {
        let route = router
            .subscribe(&self.subject, Self::on_order)
            .concurrency(self.concurrency);
        if let Some(js) = &self.jetstream {
            route.option(js.clone());
        }
    }
}

/// How the hand-written consumer runs its work.
#[derive(Clone, Copy)]
enum RawMode {
    /// Decode (and ack) in the receive loop.
    Inline,
    /// A task per message under a [`CONCURRENCY`]-permit semaphore, like a kumi route.
    Spawn,
}

/// The core NATS consume rows (sections 2 and 3): label, kumi route concurrency, raw consumer.
const CORE_CASES: [(&str, usize, RawMode); 2] = [
    ("route concurrency 1  | raw inline loop", 1, RawMode::Inline),
    (
        "route concurrency 64 | raw spawn+sem 64",
        CONCURRENCY,
        RawMode::Spawn,
    ),
];

/// One timed consume run.
struct Run {
    elapsed: Duration,
    handled: u64,
    /// CPU time of the benchmark process (all its threads: publisher, consumers, NATS clients;
    /// not the server) during the run.
    cpu: Option<Duration>,
    /// Server-side redeliveries (JetStream only).
    redelivered: usize,
}

/// CPU time used so far by every thread of this process (Linux `schedstat`; `None` elsewhere).
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        // A thread may exit between the listing and the read: skip it.
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Measures CPU time from its creation.
struct CpuTimer(Option<Duration>);

impl CpuTimer {
    fn start() -> Self {
        Self(process_cpu())
    }

    fn elapsed(&self) -> Option<Duration> {
        Some(process_cpu()?.saturating_sub(self.0?))
    }
}

/// Best (shortest) of several runs, with the lowest CPU and handled counts seen.
#[derive(Clone, Copy)]
struct Best {
    elapsed: Duration,
    cpu: Option<Duration>,
    handled: u64,
    redelivered: usize,
}

impl Best {
    fn new() -> Self {
        Self {
            elapsed: Duration::MAX,
            cpu: None,
            handled: u64::MAX,
            redelivered: 0,
        }
    }

    fn add(&mut self, run: &Run) {
        self.elapsed = self.elapsed.min(run.elapsed);
        self.cpu = match (self.cpu, run.cpu) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.handled = self.handled.min(run.handled);
        self.redelivered = self.redelivered.max(run.redelivered);
    }

    fn rate(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU µs per message.
    fn cpu_per_msg(&self, n: u64) -> String {
        self.cpu.map_or_else(
            || "-".to_owned(),
            |cpu| format!("{:.2}", cpu.as_secs_f64() * 1e6 / n as f64),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Events

/// Publishes every prepared event, never letting more than [`EVENT_WINDOW`] be unhandled.
async fn publish_events(
    client: &async_nats::Client,
    subject: &Subject,
    events: &[(HeaderMap, Bytes)],
    sink: &Sink,
) {
    for (i, (headers, body)) in events.iter().enumerate() {
        client
            .publish_with_headers(subject.clone(), headers.clone(), body.clone())
            .await
            .unwrap_or_else(|e| panic!("publish on '{subject}' failed: {e}"));
        if i % 256 == 255 {
            let published = i as u64 + 1;
            let deadline = Instant::now() + Duration::from_secs(30);
            while published.saturating_sub(sink.seen()) > EVENT_WINDOW {
                assert!(
                    Instant::now() < deadline,
                    "consumer on '{subject}' made no progress for 30 s ({} of {published} handled)",
                    sink.seen()
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    client.flush().await.expect("flush publishes");
}

fn completion_limit(n: u64) -> Duration {
    Duration::from_secs(30) + Duration::from_millis(n / 2)
}

async fn kumi_events(
    url: &str,
    publisher: &async_nats::Client,
    subject: &str,
    events: &[(HeaderMap, Bytes)],
    concurrency: usize,
) -> Run {
    let sink = Sink::new(events.len() as u64);
    let app = start_app(
        kumi_bus(url).await,
        EventService {
            subject: subject.to_owned(),
            sink: Arc::clone(&sink),
            concurrency,
            jetstream: None,
            gate: None,
        },
    )
    .await;
    let subject = Subject::from(subject);
    let cpu = CpuTimer::start();
    let start = Instant::now();
    publish_events(publisher, &subject, events, &sink).await;
    sink.wait("kumi event route", completion_limit(sink.target))
        .await;
    let elapsed = start.elapsed();
    let cpu = cpu.elapsed();
    stop_app(app).await;
    Run {
        elapsed,
        handled: sink.seen(),
        cpu,
        redelivered: 0,
    }
}

async fn raw_events(
    url: &str,
    publisher: &async_nats::Client,
    subject: &str,
    events: &[(HeaderMap, Bytes)],
    mode: RawMode,
) -> Run {
    let sink = Sink::new(events.len() as u64);
    let client = raw_connect(url).await;
    let mut sub = client
        .queue_subscribe(subject.to_owned(), "bench-events".to_owned())
        .await
        .unwrap_or_else(|e| panic!("raw subscriber: cannot subscribe to {subject}: {e}"));
    sync_with_server(&client).await;
    let consumer_sink = Arc::clone(&sink);
    let consumer = tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        while let Some(msg) = sub.next().await {
            match mode {
                RawMode::Inline => consumer_sink.hit(&decode_order(&msg.payload)),
                RawMode::Spawn => {
                    let permit = Arc::clone(&permits)
                        .acquire_owned()
                        .await
                        .expect("semaphore closed");
                    let sink = Arc::clone(&consumer_sink);
                    tokio::spawn(async move {
                        let _permit = permit;
                        sink.hit(&decode_order(&msg.payload));
                    });
                }
            }
        }
    });
    let subject = Subject::from(subject);
    let cpu = CpuTimer::start();
    let start = Instant::now();
    publish_events(publisher, &subject, events, &sink).await;
    sink.wait("raw subscriber", completion_limit(sink.target))
        .await;
    let elapsed = start.elapsed();
    let cpu = cpu.elapsed();
    consumer.abort();
    let _ = consumer.await;
    drop(client);
    Run {
        elapsed,
        handled: sink.seen(),
        cpu,
        redelivered: 0,
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn events(url: &str, suffix: &str, settings: &Settings) {
    let n = settings.messages;
    let topic = format!("bench.ev.{suffix}");
    let prepared = prepare_events(&topic, n);
    let publisher = raw_connect(url).await;
    println!();
    println!(
        "2) events on core NATS (json-base), {n} messages per run, best of {} runs; \
         raw publisher paced to <= {EVENT_WINDOW} unhandled",
        settings.rounds
    );
    println!(
        "   (cpu: µs of benchmark-process CPU per message, publisher and NATS client tasks \
         included, server excluded)"
    );
    consume_header();
    for (case, &(label, concurrency, mode)) in CORE_CASES.iter().enumerate() {
        let (mut kumi, mut raw) = (Best::new(), Best::new());
        for round in 0..settings.rounds {
            let subject = format!("{topic}.{case}.{round}");
            raw.add(&raw_events(url, &publisher, &format!("{subject}.raw"), &prepared, mode).await);
            kumi.add(
                &kumi_events(
                    url,
                    &publisher,
                    &format!("{subject}.kumi"),
                    &prepared,
                    concurrency,
                )
                .await,
            );
        }
        consume_row(label, n, &kumi, &raw, false);
    }
}

/// Events in a backlog: at most this many (below the 65536 the subscription buffers).
const BACKLOG: u64 = 50_000;

/// Publishes `events` while the consumer is held at `gate`, waits until every one of them is in
/// the consumer's subscription buffer, then opens the gate and times the consumer alone.
async fn drain_backlog(
    publisher: &async_nats::Client,
    consumer_connection: &async_nats::Client,
    subject: &str,
    events: &[(HeaderMap, Bytes)],
    sink: &Sink,
    gate: &Gate,
    who: &str,
) -> Run {
    // A probe on the consumer's connection, published after the events on the same publisher
    // connection: the server keeps that order, so once it arrives every event is buffered.
    let probe_subject = format!("{subject}.probe");
    let mut probe = consumer_connection
        .subscribe(probe_subject.clone())
        .await
        .unwrap_or_else(|e| panic!("probe subscription failed: {e}"));
    sync_with_server(consumer_connection).await;
    let subject = Subject::from(subject);
    for (headers, body) in events {
        publisher
            .publish_with_headers(subject.clone(), headers.clone(), body.clone())
            .await
            .unwrap_or_else(|e| panic!("publish on '{subject}' failed: {e}"));
    }
    publisher
        .publish(probe_subject, Bytes::new())
        .await
        .expect("probe publish");
    publisher.flush().await.expect("flush publishes");
    tokio::time::timeout(Duration::from_secs(30), probe.next())
        .await
        .expect("the backlog did not arrive within 30 s")
        .expect("probe subscription closed");
    let cpu = CpuTimer::start();
    let start = Instant::now();
    gate.open();
    sink.wait(who, completion_limit(sink.target)).await;
    Run {
        elapsed: start.elapsed(),
        handled: sink.seen(),
        cpu: cpu.elapsed(),
        redelivered: 0,
    }
}

async fn kumi_backlog(
    url: &str,
    publisher: &async_nats::Client,
    subject: &str,
    events: &[(HeaderMap, Bytes)],
    concurrency: usize,
) -> Run {
    let sink = Sink::new(events.len() as u64);
    let gate = Gate::new();
    let bus = kumi_bus(url).await;
    let connection = bus.client().clone();
    let app = start_app(
        bus,
        EventService {
            subject: subject.to_owned(),
            sink: Arc::clone(&sink),
            concurrency,
            jetstream: None,
            gate: Some(Arc::clone(&gate)),
        },
    )
    .await;
    let run = drain_backlog(
        publisher,
        &connection,
        subject,
        events,
        &sink,
        &gate,
        "kumi event route (backlog)",
    )
    .await;
    stop_app(app).await;
    run
}

async fn raw_backlog(
    url: &str,
    publisher: &async_nats::Client,
    subject: &str,
    events: &[(HeaderMap, Bytes)],
    mode: RawMode,
) -> Run {
    let sink = Sink::new(events.len() as u64);
    let gate = Gate::new();
    let client = raw_connect(url).await;
    let mut sub = client
        .queue_subscribe(subject.to_owned(), "bench-events".to_owned())
        .await
        .unwrap_or_else(|e| panic!("raw subscriber: cannot subscribe to {subject}: {e}"));
    let (consumer_sink, consumer_gate) = (Arc::clone(&sink), Arc::clone(&gate));
    let consumer = tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        while let Some(msg) = sub.next().await {
            match mode {
                RawMode::Inline => {
                    consumer_gate.pass().await;
                    consumer_sink.hit(&decode_order(&msg.payload));
                }
                RawMode::Spawn => {
                    let permit = Arc::clone(&permits)
                        .acquire_owned()
                        .await
                        .expect("semaphore closed");
                    let (sink, gate) = (Arc::clone(&consumer_sink), Arc::clone(&consumer_gate));
                    tokio::spawn(async move {
                        let _permit = permit;
                        gate.pass().await;
                        sink.hit(&decode_order(&msg.payload));
                    });
                }
            }
        }
    });
    let run = drain_backlog(
        publisher,
        &client,
        subject,
        events,
        &sink,
        &gate,
        "raw subscriber (backlog)",
    )
    .await;
    consumer.abort();
    let _ = consumer.await;
    run
}

/// The consumers alone: a backlog is buffered first, then handled with no publisher running, so
/// the figures are the consumers' own cost, without competition for the two CPUs.
async fn backlog(url: &str, suffix: &str, settings: &Settings) {
    let n = settings.messages.min(BACKLOG);
    let topic = format!("bench.bl.{suffix}");
    let prepared = prepare_events(&topic, n);
    let publisher = raw_connect(url).await;
    println!();
    println!(
        "3) a backlog of {n} json-base events on core NATS, handled with no publisher running \
         (the consumer's own cost), best of {} runs",
        settings.rounds
    );
    consume_header();
    for (case, &(label, concurrency, mode)) in CORE_CASES.iter().enumerate() {
        let (mut kumi, mut raw) = (Best::new(), Best::new());
        for round in 0..settings.rounds {
            let subject = format!("{topic}.{case}.{round}");
            raw.add(
                &raw_backlog(url, &publisher, &format!("{subject}.raw"), &prepared, mode).await,
            );
            kumi.add(
                &kumi_backlog(
                    url,
                    &publisher,
                    &format!("{subject}.kumi"),
                    &prepared,
                    concurrency,
                )
                .await,
            );
        }
        consume_row(label, n, &kumi, &raw, false);
    }
}

fn consume_header() {
    println!(
        "{:<42} {:>11} {:>11} {:>6} {:>9} {:>9} {:>13} {:>13} {:>11}",
        "scenario",
        "kumi msg/s",
        "raw msg/s",
        "ratio",
        "kumi cpu",
        "raw cpu",
        "kumi handled",
        "raw handled",
        "redelivered"
    );
}

fn consume_row(label: &str, n: u64, kumi: &Best, raw: &Best, jetstream: bool) {
    let (k, r) = (kumi.rate(n), raw.rate(n));
    println!(
        "{label:<42} {k:>11.0} {r:>11.0} {:>6.2} {:>9} {:>9} {:>13} {:>13} {:>11}",
        k / r,
        kumi.cpu_per_msg(n),
        raw.cpu_per_msg(n),
        format!("{}/{n}", kumi.handled),
        format!("{}/{n}", raw.handled),
        if jetstream {
            format!("{}/{}", kumi.redelivered, raw.redelivered)
        } else {
            "-".to_owned()
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 3. JetStream

async fn js_prepublish(
    js: &jetstream::Context,
    stream_name: &str,
    subject: &str,
    events: &[(HeaderMap, Bytes)],
) -> Duration {
    tokio::time::timeout(
        Duration::from_secs(10),
        js.create_stream(stream::Config {
            name: stream_name.to_owned(),
            subjects: vec![subject.to_owned()],
            ..Default::default()
        }),
    )
    .await
    .expect("creating the stream timed out")
    .unwrap_or_else(|e| panic!("cannot create stream {stream_name}: {e}"));
    let subject = Subject::from(subject);
    let start = Instant::now();
    let mut acks = VecDeque::with_capacity(JS_PUBLISH_WINDOW);
    for (headers, body) in events {
        let ack = js
            .publish_with_headers(subject.clone(), headers.clone(), body.clone())
            .await
            .unwrap_or_else(|e| panic!("JetStream publish on '{subject}' failed: {e}"));
        acks.push_back(ack);
        if acks.len() >= JS_PUBLISH_WINDOW {
            let ack = acks.pop_front().expect("an ack is outstanding");
            ack.await
                .unwrap_or_else(|e| panic!("JetStream publish ack failed: {e}"));
        }
    }
    for ack in acks {
        ack.await
            .unwrap_or_else(|e| panic!("JetStream publish ack failed: {e}"));
    }
    let elapsed = start.elapsed();
    let mut stream = js.get_stream(stream_name).await.expect("get stream");
    let stored = stream.info().await.expect("stream info").state.messages;
    assert_eq!(
        stored,
        events.len() as u64,
        "stream {stream_name} holds {stored} messages, expected {}",
        events.len()
    );
    elapsed
}

/// A durable pull consumer configured like the ones kumi creates for a route of concurrency 64
/// (explicit acks, 30 s ack wait, `max_ack_pending` equal to the concurrency), but delivering the
/// whole stream.
async fn js_consumer(
    js: &jetstream::Context,
    stream_name: &str,
    name: &str,
    subject: &str,
) -> PullConsumer {
    let stream = js.get_stream(stream_name).await.expect("get stream");
    stream
        .create_consumer(pull::Config {
            durable_name: Some(name.to_owned()),
            filter_subject: subject.to_owned(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: JS_MAX_ACK_PENDING,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot create consumer {name}: {e}"))
}

/// Waits until the server has delivered everything and holds no unacked message; returns the
/// redelivery count.
async fn js_settled(consumer: &mut PullConsumer, n: u64, who: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = consumer
            .info()
            .await
            .unwrap_or_else(|e| panic!("{who}: consumer info failed: {e}"));
        if info.num_pending == 0 && info.num_ack_pending == 0 && info.ack_floor.stream_sequence >= n
        {
            return info.num_redelivered;
        }
        assert!(
            Instant::now() < deadline,
            "{who}: messages still unacked 30 s after all were handled (pending {}, unacked {}, ack floor {})",
            info.num_pending,
            info.num_ack_pending,
            info.ack_floor.stream_sequence
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn kumi_js(
    url: &str,
    js: &jetstream::Context,
    stream_name: &str,
    subject: &str,
    consumer_name: &str,
    n: u64,
    concurrency: usize,
) -> Run {
    let mut consumer = js_consumer(js, stream_name, consumer_name, subject).await;
    let sink = Sink::new(n);
    let bus = kumi_bus(url).await;
    let service = EventService {
        subject: subject.to_owned(),
        sink: Arc::clone(&sink),
        concurrency,
        jetstream: Some(
            JetStream::durable()
                .stream(stream_name)
                .name(consumer_name)
                .bind_only(),
        ),
        gate: None,
    };
    let cpu = CpuTimer::start();
    let start = Instant::now();
    let app = start_app(bus, service).await;
    sink.wait("kumi JetStream route", completion_limit(n)).await;
    let redelivered = js_settled(&mut consumer, n, "kumi JetStream route").await;
    let elapsed = start.elapsed();
    let cpu = cpu.elapsed();
    stop_app(app).await;
    Run {
        elapsed,
        handled: sink.seen(),
        cpu,
        redelivered,
    }
}

async fn raw_js(
    url: &str,
    js: &jetstream::Context,
    stream_name: &str,
    subject: &str,
    consumer_name: &str,
    n: u64,
    mode: RawMode,
) -> Run {
    let mut consumer = js_consumer(js, stream_name, consumer_name, subject).await;
    let sink = Sink::new(n);
    let client = raw_connect(url).await;
    let cpu = CpuTimer::start();
    let start = Instant::now();
    let raw_js = jetstream::new(client.clone());
    let bound: PullConsumer = raw_js
        .get_stream(stream_name)
        .await
        .expect("raw consumer: get stream")
        .get_consumer(consumer_name)
        .await
        .expect("raw consumer: get consumer");
    let mut messages = bound
        .messages()
        .await
        .expect("raw consumer: start consuming");
    let consumer_sink = Arc::clone(&sink);
    let task = tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        while let Some(next) = messages.next().await {
            let msg = match next {
                Ok(msg) => msg,
                Err(e) => {
                    eprintln!("raw JetStream consumer: {e}");
                    continue;
                }
            };
            match mode {
                RawMode::Inline => {
                    consumer_sink.hit(&decode_order(&msg.payload));
                    if let Err(e) = msg.ack().await {
                        eprintln!("raw JetStream consumer: cannot ack: {e}");
                    }
                }
                RawMode::Spawn => {
                    let permit = Arc::clone(&permits)
                        .acquire_owned()
                        .await
                        .expect("semaphore closed");
                    let sink = Arc::clone(&consumer_sink);
                    tokio::spawn(async move {
                        let _permit = permit;
                        sink.hit(&decode_order(&msg.payload));
                        if let Err(e) = msg.ack().await {
                            eprintln!("raw JetStream consumer: cannot ack: {e}");
                        }
                    });
                }
            }
        }
    });
    sink.wait("raw JetStream consumer", completion_limit(n))
        .await;
    let redelivered = js_settled(&mut consumer, n, "raw JetStream consumer").await;
    let elapsed = start.elapsed();
    let cpu = cpu.elapsed();
    task.abort();
    let _ = task.await;
    drop(client);
    Run {
        elapsed,
        handled: sink.seen(),
        cpu,
        redelivered,
    }
}

async fn jetstream_consume(url: &str, suffix: &str, settings: &Settings) {
    let n = settings.messages;
    let subject = format!("bench.js.{suffix}");
    let stream_name = format!("KUMI_BENCH_{suffix}");
    let admin = raw_connect(url).await;
    let js = jetstream::new(admin.clone());
    let prepared = prepare_events(&subject, n);
    let publish = js_prepublish(&js, &stream_name, &subject, &prepared).await;
    drop(prepared);
    println!();
    println!(
        "4) JetStream consume + ack, {n} messages pre-published into file stream {stream_name} \
         ({:.0} msg/s); one durable pull consumer per run, max_ack_pending {JS_MAX_ACK_PENDING}; \
         best of {} runs",
        rate(n, publish),
        settings.rounds
    );
    consume_header();
    // Every run binds its own consumer (delivering the whole stream); kumi and raw alternate.
    let cases = [
        (
            "route concurrency 64 | raw spawn+sem 64",
            CONCURRENCY,
            RawMode::Spawn,
        ),
        ("route concurrency 1  | raw inline loop", 1, RawMode::Inline),
    ];
    for (case, (label, concurrency, mode)) in cases.into_iter().enumerate() {
        let (mut kumi, mut raw) = (Best::new(), Best::new());
        for round in 0..settings.rounds {
            let name = |who: &str| format!("{who}-{case}-{round}");
            let (stream_name, subject) = (stream_name.as_str(), subject.as_str());
            raw.add(&raw_js(url, &js, stream_name, subject, &name("raw"), n, mode).await);
            kumi.add(
                &kumi_js(
                    url,
                    &js,
                    stream_name,
                    subject,
                    &name("kumi"),
                    n,
                    concurrency,
                )
                .await,
            );
        }
        consume_row(label, n, &kumi, &raw, true);
    }
    let _ = js.delete_stream(&stream_name).await;
}

// ---------------------------------------------------------------------------------------------

async fn run(url: &str, origin: &str, settings: &Settings) {
    let probe = raw_connect(url).await;
    let info = probe.server_info();
    println!(
        "kumi-nats vs bare async-nats on {url} (nats-server {}, {origin}); {} CPUs",
        info.version,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    drop(probe);
    let suffix = format!(
        "{}_{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    if settings.runs("rr") {
        request_reply(url, &suffix, settings).await;
    }
    if settings.runs("events") {
        events(url, &suffix, settings).await;
    }
    if settings.runs("backlog") {
        backlog(url, &suffix, settings).await;
    }
    if settings.runs("js") {
        jetstream_consume(url, &suffix, settings).await;
    }
}

#[path = "../../../benches/support/idle_rss.rs"]
mod idle_rss;

fn main() {
    idle_rss::child(|url| async move { kumi_nats::connect(&url).await });
    let settings = Settings::from_env();
    let broker = Broker::start();
    let limit =
        Duration::from_secs(240) + settings.secs * 12 + completion_limit(settings.messages) * 4;
    let done = broker.watchdog(limit);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(&broker.url, &broker.origin, &settings));
    drop(rt);
    if settings.runs("rss") {
        idle_rss::line(&broker.url, &broker.url);
    }
    done.store(true, Ordering::Release);
    drop(broker);
}
