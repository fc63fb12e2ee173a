//! Nothing lost, proven by injecting the faults: on each persistent bus (JetStream, AMQP,
//! SNS+SQS), a consumer running in a process of its own handles a stream of messages — about one
//! in ten fails its first attempt, one in 97 is poison (rejected, so dead-lettered) — while the
//! test
//!
//! - kills it with SIGKILL and starts it again (`kill`);
//! - stops it with SIGTERM mid-flight and starts it again (`term`);
//! - cuts its broker connections through a TCP proxy the test owns (`cut`);
//! - takes the broker away and brings it back (`restart`): a `nats-server` of the test's own is
//!   restarted; RabbitMQ and the SNS+SQS emulator are shared, so the proxy refuses every
//!   connection for three seconds instead;
//! - on a three-node NATS cluster (a stream of three replicas), kills the server leading the
//!   stream, and starts it again three seconds later (`leader`): the consumer goes on through the
//!   other servers of its multi-host URL.
//!
//! Then every message must have been handled (the handler appends its id to a log file before it
//! returns, so before it is acknowledged) or be in the bus's durable dead-letter store with its
//! reason; duplicates are counted, not failures. Each run appends a line (bus, fault, messages,
//! handled, dead-lettered, duplicates, lost) to `chaos-report.txt` in the target's temporary
//! directory, which `scripts/test` prints after the run. The consumer process is this test
//! binary, started with `--ignored --exact chaos_consumer_process` (see that function).

#![cfg(all(feature = "nats", feature = "amqp", feature = "sns-sqs"))]

#[path = "support/amqp.rs"]
mod amqp_broker;
#[path = "support/nats_server.rs"]
mod nats_server;
#[path = "support/proxy.rs"]
mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kumi::prelude::*;
use kumi::settlement::DEAD_LETTER_REASON;
use kumi::App;
use serde_json::{json, Value};

/// Where the runs report, for `scripts/test` to print: `KUMI_CHAOS_REPORT` (set by
/// `scripts/test`), else `chaos-report.txt` in the target's temporary directory.
fn report_path() -> String {
    std::env::var("KUMI_CHAOS_REPORT")
        .unwrap_or_else(|_| concat!(env!("CARGO_TARGET_TMPDIR"), "/chaos-report.txt").to_owned())
}
/// How long a run may take to account for every message once the fault is over.
const SETTLE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The consumer process

/// What the consumer process is told through its environment.
const ENV_URL: &str = "KUMI_CHAOS_URL";
const ENV_TOPIC: &str = "KUMI_CHAOS_TOPIC";
const ENV_LOG: &str = "KUMI_CHAOS_LOG";
const ENV_KIND: &str = "KUMI_CHAOS_KIND";

/// Handles the chaos messages and logs each id once handled.
struct Worker {
    topic: String,
    jetstream: bool,
    log: Mutex<std::fs::File>,
}

impl Worker {
    async fn on(
        self: Arc<Self>,
        Data(v): Data<Value>,
        Attempt(attempt): Attempt,
    ) -> Result<(), HandlerError> {
        let id = v["id"].as_u64().unwrap_or(u64::MAX);
        if v["poison"] == json!(true) {
            return Err(HandlerError::reject(format!("poison message {id}")));
        }
        if v["fail_first"] == json!(true) && attempt == 1 {
            return Err(format!("message {id} fails its first attempt").into());
        }
        // A little work, so that messages are in flight when the fault hits.
        tokio::time::sleep(Duration::from_micros(id % 3 * 500)).await;
        let line = format!("{id}\n");
        self.log
            .lock()
            .unwrap()
            .write_all(line.as_bytes())
            .map_err(|e| HandlerError::from(format!("cannot log {id}: {e}")))?;
        Ok(())
    }
}

impl Service for Worker {
    fn name(&self) -> &str {
        "chaos"
    }

    fn routes(&self, router: &mut Router<Self>) {
        let route = router
            .subscribe(&self.topic, Self::on)
            .concurrency(8)
            .retries(4)
            .backoff("50ms", "200ms");
        if self.jetstream {
            route.option(kumi::nats::JetStream::durable().ack_wait(Duration::from_secs(3)));
        }
    }
}

/// Not a test on its own: the consumer process the chaos cases start, kill and restart (they run
/// this binary with `--ignored --exact chaos_consumer_process` and its settings in the
/// environment). Runs until SIGTERM, then drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the chaos cases' consumer process: run by them, with its settings in the environment"]
async fn chaos_consumer_process() {
    let (Ok(url), Ok(topic), Ok(log), Ok(kind)) = (
        std::env::var(ENV_URL),
        std::env::var(ENV_TOPIC),
        std::env::var(ENV_LOG),
        std::env::var(ENV_KIND),
    ) else {
        panic!("chaos_consumer_process runs only as the chaos cases' child process");
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("the handled log");
    let bus = kumi::connect(&url).await.expect("connect");
    let app = App::new()
        .bus(bus)
        .service(Worker {
            topic,
            jetstream: kind == "jetstream" || kind == "nats-3",
            log: Mutex::new(file),
        })
        .start()
        .await
        .expect("start");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    std::fs::write(format!("{log}.ready"), b"ready").expect("ready marker");
    term.recv().await;
    let report = app
        .shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
    eprintln!("chaos consumer drained: {report:?}");
}

/// A running consumer process.
struct Consumer {
    child: Child,
}

impl Consumer {
    fn start(kind: &str, url: &str, topic: &str, log: &Path) -> Self {
        let ready = PathBuf::from(format!("{}.ready", log.display()));
        let _ = std::fs::remove_file(&ready);
        let child = Command::new(std::env::current_exe().expect("this test binary"))
            .args([
                "chaos_consumer_process",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(ENV_URL, url)
            .env(ENV_TOPIC, topic)
            .env(ENV_LOG, log)
            .env(ENV_KIND, kind)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the consumer process");
        let mut consumer = Self { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            if let Ok(Some(status)) = consumer.child.try_wait() {
                panic!("the consumer process exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the consumer process did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        consumer
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot send {signal} to the consumer process");
    }

    /// SIGKILL: no drain, no goodbye.
    fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits for the drain to end.
    fn term(mut self) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            assert!(Instant::now() < deadline, "the consumer did not drain");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The runs

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill,
    Term,
    Cut,
    Restart,
    Leader,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Term => "term",
            Fault::Cut => "cut",
            Fault::Restart => "restart",
            Fault::Leader => "leader",
        }
    }
}

/// The payload of message `id`.
fn payload(id: u64) -> Value {
    json!({"id": id, "fail_first": id % 10 == 3, "poison": id % 97 == 5})
}

fn poison(n: u64) -> BTreeSet<u64> {
    (0..n).filter(|id| id % 97 == 5).collect()
}

/// Ids in the handled log, with how many times each was handled.
fn handled(log: &Path) -> BTreeMap<u64, usize> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        if let Ok(id) = line.parse::<u64>() {
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    counts
}

/// The id inside a JsonBase body.
fn id_of_body(body: &[u8]) -> Option<u64> {
    let envelope: Value = serde_json::from_slice(body).ok()?;
    envelope["data"]["id"].as_u64()
}

/// A bus under test: how to reach it through the proxy and directly, its fault of "restart",
/// and where its dead letters are kept.
trait Target {
    fn kind(&self) -> &'static str;
    /// Cuts the consumer's broker connections (through the proxy between them).
    fn cut(&self);
    /// The URL the consumer uses (through the proxy).
    fn consumer_url(&self) -> String;
    /// Publishes the messages (directly, not through the proxy).
    async fn publish(&self, topic: &str, n: u64);
    /// The broker goes away and comes back.
    async fn restart(&mut self);
    /// The ids dead-lettered for `topic` with a reason.
    async fn dead_letters(&self, topic: &str, expected: usize) -> BTreeSet<u64>;
}

async fn publish_all(client: &kumi::Client, topic: &str, n: u64) {
    let ids: Vec<u64> = (0..n).collect();
    for chunk in ids.chunks(100) {
        let payloads: Vec<Value> = chunk.iter().map(|id| payload(*id)).collect();
        let sends = payloads.iter().map(|p| client.publish(topic, p));
        for r in futures_util::future::join_all(sends).await {
            r.expect("publish");
        }
    }
}

async fn run(mut target: impl Target, fault: Fault, n: u64, topic: &str) {
    let dir = std::env::temp_dir().join(format!(
        "kumi-chaos-{}-{}-{}",
        target.kind(),
        fault.name(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("a directory for the log");
    let log = dir.join("handled.log");
    let _ = std::fs::remove_file(&log);
    let url = target.consumer_url();
    let kind = target.kind();
    let mut consumer = Some(Consumer::start(kind, &url, topic, &log));
    target.publish(topic, n).await;
    // The fault once about a third of the messages were handled.
    let deadline = Instant::now() + SETTLE;
    while (handled(&log).len() as u64) < n / 3 {
        assert!(Instant::now() < deadline, "the consumer made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match fault {
        Fault::Kill => {
            consumer.take().expect("running").kill();
            consumer = Some(Consumer::start(kind, &url, topic, &log));
        }
        Fault::Term => {
            consumer.take().expect("running").term();
            consumer = Some(Consumer::start(kind, &url, topic, &log));
        }
        Fault::Cut => {
            // Twice, a moment apart: also while the consumer is resuming.
            target.cut();
            tokio::time::sleep(Duration::from_millis(300)).await;
            target.cut();
        }
        Fault::Restart | Fault::Leader => target.restart().await,
    }
    let poison = poison(n);
    let healthy: BTreeSet<u64> = (0..n).filter(|id| !poison.contains(id)).collect();
    let deadline = Instant::now() + SETTLE;
    loop {
        let got: BTreeSet<u64> = handled(&log).keys().copied().collect();
        if healthy.is_subset(&got) {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = target.dead_letters(topic, poison.len()).await;
    consumer.take().expect("running").term();
    let counts = handled(&log);
    let handled_ids: BTreeSet<u64> = counts.keys().copied().collect();
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    let lost: Vec<u64> = (0..n)
        .filter(|id| !handled_ids.contains(id) && !dead.contains(id))
        .collect();
    let line = format!(
        "{:<10} {:<8} messages {:>6}  handled {:>6}  dead-lettered {:>4}  duplicates {:>4}  lost {:>3}",
        kind,
        fault.name(),
        n,
        handled_ids.len(),
        dead.len(),
        duplicates,
        lost.len()
    );
    eprintln!("{line}");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(report_path())
    {
        let _ = writeln!(f, "{line}");
    }
    assert!(lost.is_empty(), "lost {} messages: {lost:?}", lost.len());
    assert_eq!(
        dead, poison,
        "exactly the poison messages are dead-lettered"
    );
    assert!(
        handled_ids.is_disjoint(&poison),
        "a poison message was acknowledged as handled"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn unique(kind: &str) -> String {
    let r = uuid::Uuid::new_v4().simple().to_string();
    format!("chaos-{kind}-{}", &r[..12])
}

// ---------------------------------------------------------------------------------------------
// JetStream: a nats-server of the test's own, a stream on the topic, a durable consumer

struct JetStreamTarget {
    server: nats_server::NatsServer,
    proxy: proxy::Proxy,
    publisher: kumi::Client,
}

/// Creates the stream `CHAOS` on `topic` with `replicas`, waiting for a cluster to be ready.
async fn chaos_stream(url: &str, topic: &str, replicas: usize) {
    let client = async_nats::connect(url).await.expect("raw client");
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let created = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: "CHAOS".to_owned(),
                subjects: vec![topic.to_owned()],
                num_replicas: replicas,
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot create the stream: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

impl JetStreamTarget {
    async fn new(topic: &str) -> Self {
        let server = nats_server::NatsServer::start();
        let direct = server.url();
        let proxy = proxy::Proxy::start(direct.trim_start_matches("nats://").to_owned()).await;
        chaos_stream(&direct, topic, 1).await;
        let publisher = kumi::Client::new(
            kumi::nats::connect(&format!("{direct}?jetstream=true"))
                .await
                .expect("publisher"),
        );
        Self {
            server,
            proxy,
            publisher,
        }
    }
}

impl Target for JetStreamTarget {
    fn kind(&self) -> &'static str {
        "jetstream"
    }

    fn cut(&self) {
        self.proxy.cut_all();
    }

    fn consumer_url(&self) -> String {
        format!("nats://{}", self.proxy.addr)
    }

    async fn publish(&self, topic: &str, n: u64) {
        publish_all(&self.publisher, topic, n).await;
    }

    async fn restart(&mut self) {
        self.server.restart();
    }

    async fn dead_letters(&self, topic: &str, expected: usize) -> BTreeSet<u64> {
        nats_dead_letters(&self.server.url(), topic, expected).await
    }
}

/// The ids in the `KUMI_DEAD_LETTERS` stream for `topic`, with a reason.
async fn nats_dead_letters(url: &str, topic: &str, expected: usize) -> BTreeSet<u64> {
    {
        use async_nats::jetstream::consumer::pull;
        use futures_util::StreamExt;
        let client = async_nats::connect(url).await.expect("raw client");
        let consumer = async_nats::jetstream::new(client)
            .get_stream(kumi::nats::topology::DEAD_LETTER_STREAM)
            .await
            .expect("the dead-letter stream")
            .create_consumer(pull::Config {
                filter_subject: format!("dlq.{topic}"),
                ..Default::default()
            })
            .await
            .expect("a reader of dead letters");
        let mut messages = consumer.messages().await.expect("messages");
        let mut ids = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while ids.len() < expected && Instant::now() < deadline {
            let Ok(Some(Ok(msg))) =
                tokio::time::timeout(Duration::from_secs(2), messages.next()).await
            else {
                continue;
            };
            let has_reason = msg
                .headers
                .as_ref()
                .is_some_and(|h| h.get(DEAD_LETTER_REASON).is_some());
            if let (true, Some(id)) = (has_reason, id_of_body(&msg.payload)) {
                ids.insert(id);
            }
            let _ = msg.ack().await;
        }
        ids
    }
}

// ---------------------------------------------------------------------------------------------
// A three-node NATS cluster: a stream of three replicas, its leader killed

struct ClusterTarget {
    cluster: nats_server::NatsCluster,
    publisher: kumi::Client,
}

impl ClusterTarget {
    async fn new(topic: &str) -> Self {
        let cluster = nats_server::NatsCluster::start(3);
        chaos_stream(&cluster.servers[0].url(), topic, 3).await;
        let publisher = kumi::Client::new(
            kumi::nats::connect(&format!("{}?jetstream=true", cluster.url()))
                .await
                .expect("publisher"),
        );
        Self { cluster, publisher }
    }
}

impl Target for ClusterTarget {
    fn kind(&self) -> &'static str {
        "nats-3"
    }

    fn cut(&self) {}

    fn consumer_url(&self) -> String {
        self.cluster.url()
    }

    async fn publish(&self, topic: &str, n: u64) {
        publish_all(&self.publisher, topic, n).await;
    }

    /// Kills the server leading the stream; starts it again three seconds later.
    async fn restart(&mut self) {
        let client = async_nats::connect(self.cluster.servers[0].url())
            .await
            .expect("raw client");
        let info = async_nats::jetstream::new(client)
            .get_stream("CHAOS")
            .await
            .expect("the stream")
            .info()
            .await
            .expect("stream info")
            .clone();
        let leader = info
            .cluster
            .and_then(|c| c.leader)
            .expect("the stream has a leader");
        let server = self.cluster.by_name(&leader);
        server.stop();
        tokio::time::sleep(Duration::from_secs(3)).await;
        self.cluster.by_name(&leader).restart();
    }

    async fn dead_letters(&self, topic: &str, expected: usize) -> BTreeSet<u64> {
        nats_dead_letters(&self.cluster.servers[0].url(), topic, expected).await
    }
}

// ---------------------------------------------------------------------------------------------
// AMQP: the shared RabbitMQ behind the test's proxy

struct AmqpTarget {
    proxy: proxy::Proxy,
    publisher: kumi::Client,
    queue: String,
}

fn with_option(url: &str, option: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{option}")
}

impl AmqpTarget {
    async fn new(topic: &str) -> Self {
        let base = amqp_broker::base_url();
        let proxy = proxy::Proxy::start(amqp_broker::broker_addr(&base)).await;
        let publisher = kumi::Client::new(
            kumi::amqp::connect(&with_option(&base, "queue_expires=5m"))
                .await
                .expect("publisher"),
        );
        let queue = format!("chaos.{}", kumi::amqp::topology::sha256_hex(topic));
        Self {
            proxy,
            publisher,
            queue,
        }
    }
}

impl Target for AmqpTarget {
    fn kind(&self) -> &'static str {
        "amqp"
    }

    fn cut(&self) {
        self.proxy.cut_all();
    }

    fn consumer_url(&self) -> String {
        let base = amqp_broker::base_url();
        let via = base.replacen(&amqp_broker::broker_addr(&base), &self.proxy.addr, 1);
        with_option(&via, "queue_expires=5m")
    }

    async fn publish(&self, topic: &str, n: u64) {
        publish_all(&self.publisher, topic, n).await;
    }

    async fn restart(&mut self) {
        self.proxy.set_down(true);
        tokio::time::sleep(Duration::from_secs(3)).await;
        self.proxy.set_down(false);
    }

    async fn dead_letters(&self, _topic: &str, expected: usize) -> BTreeSet<u64> {
        use kumi::amqp::lapin::options::{BasicGetOptions, QueueDeleteOptions};
        use kumi::amqp::lapin::{Connection, ConnectionProperties};
        let conn = Connection::connect(&amqp_broker::base_url(), ConnectionProperties::default())
            .await
            .expect("raw connection");
        let channel = conn.create_channel().await.expect("channel");
        let dlq = format!("{}.dlq", self.queue);
        let mut ids = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while ids.len() < expected && Instant::now() < deadline {
            match channel
                .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get")
            {
                Some(m) => {
                    let has_reason = m
                        .properties
                        .headers()
                        .as_ref()
                        .is_some_and(|h| h.inner().contains_key(DEAD_LETTER_REASON));
                    if let (true, Some(id)) = (has_reason, id_of_body(&m.data)) {
                        ids.insert(id);
                    }
                }
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        for q in [self.queue.clone(), format!("{}.retry", self.queue), dlq] {
            let _ = channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        ids
    }
}

// ---------------------------------------------------------------------------------------------
// SNS+SQS: the shared emulator behind the test's proxy

struct SqsTarget {
    proxy: proxy::Proxy,
    direct: kumi::sns_sqs::SnsSqsBus,
    publisher: kumi::Client,
}

fn sqs_endpoint() -> String {
    std::env::var("KUMI_TEST_SNS_SQS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned())
}

fn sqs_url(endpoint: &str) -> String {
    format!(
        "sns+sqs://?region=us-east-1&endpoint={endpoint}&access_key_id=testing&secret_access_key=testing&wait_time=1&visibility_timeout=5"
    )
}

impl SqsTarget {
    async fn new() -> Self {
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        let endpoint = sqs_endpoint();
        let proxy = proxy::Proxy::start(
            endpoint
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
        )
        .await;
        let direct = kumi::sns_sqs::SnsSqsBus::connect(&sqs_url(&endpoint))
            .await
            .expect("the emulator (scripts/brokers starts it)");
        let publisher = kumi::Client::new(Arc::new(direct.clone()));
        Self {
            proxy,
            direct,
            publisher,
        }
    }
}

impl Target for SqsTarget {
    fn kind(&self) -> &'static str {
        "sns-sqs"
    }

    fn cut(&self) {
        self.proxy.cut_all();
    }

    fn consumer_url(&self) -> String {
        sqs_url(&format!("http://{}", self.proxy.addr))
    }

    async fn publish(&self, topic: &str, n: u64) {
        publish_all(&self.publisher, topic, n).await;
    }

    async fn restart(&mut self) {
        self.proxy.set_down(true);
        tokio::time::sleep(Duration::from_secs(3)).await;
        self.proxy.set_down(false);
    }

    async fn dead_letters(&self, topic: &str, expected: usize) -> BTreeSet<u64> {
        let sqs = self.direct.sqs_client();
        let name =
            kumi::sns_sqs::naming::group_queue_name("", "chaos", &format!("dlq.{topic}"), false);
        let url = sqs
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .expect("the dead-letter queue")
            .queue_url()
            .unwrap_or_default()
            .to_owned();
        let mut ids = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while ids.len() < expected && Instant::now() < deadline {
            let out = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive dead letters");
            for m in out.messages() {
                let note: Value =
                    serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null);
                let has_reason = note["MessageAttributes"][DEAD_LETTER_REASON]["Value"].is_string();
                let body = note["Message"].as_str().unwrap_or_default();
                if let (true, Some(id)) = (has_reason, id_of_body(body.as_bytes())) {
                    ids.insert(id);
                }
                if let Some(receipt) = m.receipt_handle() {
                    let _ = sqs
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(receipt)
                        .send()
                        .await;
                }
            }
        }
        ids
    }
}

// ---------------------------------------------------------------------------------------------
// The cases: every persistent bus through every fault

const JETSTREAM_MESSAGES: u64 = 10_000;
const AMQP_MESSAGES: u64 = 10_000;
/// The emulator handles a few hundred messages a second.
const SQS_MESSAGES: u64 = 1_000;

async fn jetstream(fault: Fault) {
    let topic = unique("js").replace('-', ".");
    run(
        JetStreamTarget::new(&topic).await,
        fault,
        JETSTREAM_MESSAGES,
        &topic,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cluster_stream_leader_killed() {
    let topic = unique("cluster").replace('-', ".");
    run(
        ClusterTarget::new(&topic).await,
        Fault::Leader,
        JETSTREAM_MESSAGES,
        &topic,
    )
    .await;
}

async fn amqp(fault: Fault) {
    let topic = unique("amqp").replace('-', ".");
    run(AmqpTarget::new(&topic).await, fault, AMQP_MESSAGES, &topic).await;
}

async fn sqs(fault: Fault) {
    let topic = unique("sqs");
    run(SqsTarget::new().await, fault, SQS_MESSAGES, &topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_consumer_killed() {
    jetstream(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_consumer_terminated() {
    jetstream(Fault::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_connection_cut() {
    jetstream(Fault::Cut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_broker_restarted() {
    jetstream(Fault::Restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_consumer_killed() {
    amqp(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_consumer_terminated() {
    amqp(Fault::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_connection_cut() {
    amqp(Fault::Cut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_broker_away() {
    amqp(Fault::Restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_sqs_consumer_killed() {
    sqs(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_sqs_consumer_terminated() {
    sqs(Fault::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_sqs_connection_cut() {
    sqs(Fault::Cut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_sqs_broker_away() {
    sqs(Fault::Restart).await;
}
