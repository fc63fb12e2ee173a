//! SNS+SQS topology and delivery details against the moto emulator (`KUMI_TEST_SNS_SQS_ENDPOINT`,
//! default `http://127.0.0.1:5000`): tomodachi compatibility, filter policies, the SQS redrive
//! safety net, visibility extension, FIFO ordering per group, broadcast queues, least-privilege
//! binding, and the startup errors for what SNS+SQS does not offer.
//!
//! Each test uses its own topics and queues; nothing global is reset. moto is not AWS: these tests
//! prove kumi's behaviour against moto's model (it enforces no IAM or queue policies, for one).

#![cfg(feature = "sns-sqs")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kumi::bus::SharedBus;
use kumi::prelude::*;
use kumi::sns_sqs::aws_sdk_sqs::types::MessageAttributeValue;
use kumi::sns_sqs::{SnsSqsBus, SqsRoute};
use kumi::{App, ErrorKind, PublishOptions, RunningApp};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

fn endpoint() -> String {
    std::env::var("KUMI_TEST_SNS_SQS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned())
}

fn url(extra: &str) -> String {
    format!(
        "sns+sqs://?region=us-east-1&endpoint={}&access_key_id=testing&secret_access_key=testing&wait_time=1{extra}",
        endpoint()
    )
}

fn unique(case: &str) -> String {
    let r = uuid::Uuid::new_v4().simple().to_string();
    format!("t-{case}-{}", &r[..12])
}

async fn bus(extra: &str) -> (SnsSqsBus, SharedBus) {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let b = SnsSqsBus::connect(&url(extra))
        .await
        .unwrap_or_else(|e| panic!("moto must be running (scripts/brokers): {e}"));
    let shared: SharedBus = Arc::new(b.clone());
    (b, shared)
}

#[derive(Debug, Clone)]
struct Got {
    topic: String,
    data: Value,
    headers: Headers,
    attempt: u32,
}

#[derive(Clone)]
struct Spec {
    topic: String,
    option: Option<SqsRoute>,
    concurrency: usize,
    retries: u32,
    broadcast: bool,
    request: bool,
}

impl Spec {
    fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            option: None,
            concurrency: 8,
            retries: 3,
            broadcast: false,
            request: false,
        }
    }
    fn option(mut self, o: SqsRoute) -> Self {
        self.option = Some(o);
        self
    }
}

struct Rec {
    name: String,
    specs: Vec<Spec>,
    tx: mpsc::UnboundedSender<Got>,
    calls: AtomicUsize,
}

impl Rec {
    fn new(name: &str, specs: Vec<Spec>) -> (Arc<Self>, mpsc::UnboundedReceiver<Got>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Self {
                name: name.to_owned(),
                specs,
                tx,
                calls: AtomicUsize::new(0),
            }),
            rx,
        )
    }

    async fn on(
        self: Arc<Self>,
        Data(data): Data<Value>,
        Topic(topic): Topic,
        Attempt(attempt): Attempt,
        headers: Headers,
    ) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(ms) = data["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if data["fail"].as_bool() == Some(true) {
            return Err("always fails".into());
        }
        let _ = self.tx.send(Got {
            topic,
            data,
            headers,
            attempt,
        });
        Ok(())
    }

    async fn answer(self: Arc<Self>, Data(v): Data<Value>) -> Result<Value, HandlerError> {
        Ok(v)
    }
}

impl Service for Rec {
    fn name(&self) -> &str {
        &self.name
    }

    fn routes(&self, router: &mut Router<Self>) {
        for s in &self.specs {
            if s.request {
                router.request(&s.topic, Self::answer);
                continue;
            }
            let mut b = router
                .subscribe(&s.topic, Self::on)
                .concurrency(s.concurrency)
                .retries(s.retries)
                .backoff(Duration::from_millis(20), Duration::from_millis(100));
            if s.broadcast {
                b = b.broadcast();
            }
            if let Some(o) = &s.option {
                let _ = b.option(o.clone());
            }
        }
    }
}

async fn start(bus: &SharedBus, svc: &Arc<Rec>) -> RunningApp {
    App::new()
        .bus(Arc::clone(bus))
        .shared_service(Arc::clone(svc))
        .start()
        .await
        .expect("services start")
}

async fn start_err(bus: &SharedBus, svc: Arc<Rec>, why: &str) -> kumi::Error {
    match App::new()
        .bus(Arc::clone(bus))
        .shared_service(svc)
        .start()
        .await
    {
        Ok(_) => panic!("the app started, but should not have: {why}"),
        Err(e) => e,
    }
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Got>, n: usize) -> Vec<Got> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(g)) => got.push(g),
            _ => panic!("received {} of {n}: {got:?}", got.len()),
        }
    }
    got
}

async fn quiet(rx: &mut mpsc::UnboundedReceiver<Got>, d: Duration) {
    if let Ok(Some(extra)) = tokio::time::timeout(d, rx.recv()).await {
        panic!("unexpected message: {extra:?}");
    }
}

async fn queue_url(b: &SnsSqsBus, name: &str) -> String {
    b.sqs_client()
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .expect("queue exists")
        .queue_url()
        .unwrap_or_default()
        .to_owned()
}

fn json_base(topic: &str, data: &Value) -> String {
    json!({
        "service": {"name": "legacy-service", "uuid": "7bd5fd9b-77a8-4d8f-9b39-3e4e1a3a8d11"},
        "metadata": {
            "message_uuid": "7bd5fd9b-77a8-4d8f-9b39-3e4e1a3a8d11.1f0b3ba5",
            "protocol_version": "tomodachi-json-base--1.0.0",
            "compatible_protocol_versions": ["json_base-wip"],
            "timestamp": 1_732_700_000.5,
            "topic": topic,
            "data_encoding": "raw"
        },
        "data": data
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tomodachi_bodies_sent_directly_to_sqs_decode_and_topic_names_are_encoded() {
    let (b, shared) = bus("").await;
    let topic = format!("{}.a.b", unique("tomo"));
    let queue = unique("tomo-q");
    let (svc, mut rx) = Rec::new(
        "tomo",
        vec![Spec::new(&topic).option(SqsRoute::new().queue_name(&queue))],
    );
    let app = start(&shared, &svc).await;

    // The SNS topic name is tomodachi's encoding: `.` → `___2e_`.
    let encoded = b.topic_name(&topic, false);
    assert!(encoded.ends_with("___2e_a___2e_b"), "{encoded}");
    assert_eq!(kumi::sns_sqs::naming::encode_topic("a.b"), "a___2e_b");
    b.sns_client()
        .get_topic_attributes()
        .topic_arn(format!("arn:aws:sns:us-east-1:123456789012:{encoded}"))
        .send()
        .await
        .expect("the encoded topic exists");

    let q = queue_url(&b, &queue).await;
    // An SNS notification (as SNS delivers without raw delivery), sent straight to SQS.
    let notification = json!({
        "Type": "Notification",
        "MessageId": "2d4c3e2c-0000-4000-8000-000000000001",
        "TopicArn": format!("arn:aws:sns:us-east-1:123456789012:{encoded}"),
        "Message": json_base(&topic, &json!({"n": 1})),
        "Timestamp": "2026-11-27T10:00:00.000Z",
        "MessageAttributes": {
            "x-origin": {"Type": "String", "Value": "sns"},
            "x-both": {"Type": "String", "Value": "sns"},
            "x-count": {"Type": "Number", "Value": "3"}
        }
    });
    b.sqs_client()
        .send_message()
        .queue_url(&q)
        .message_body(notification.to_string())
        .message_attributes(
            "x-both",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("sqs")
                .build()
                .expect("attribute"),
        )
        .send()
        .await
        .expect("send notification");
    let got = recv(&mut rx, 1).await.remove(0);
    assert_eq!(got.data, json!({"n": 1}));
    assert_eq!(got.topic, topic);
    assert_eq!(got.headers.get("x-origin"), Some("sns"));
    assert_eq!(got.headers.get("x-count"), Some("3"));
    assert_eq!(
        got.headers.get("x-both"),
        Some("sqs"),
        "SQS-level attributes win"
    );

    // tomodachi's direct-send wrapper (`Type: Message`).
    let direct = json!({
        "Type": "Message",
        "Message": json_base(&topic, &json!({"n": 2})),
        "Timestamp": 1_732_700_000.5,
        "MessageAttributes": {"x-origin": {"Type": "String", "Value": "direct"}}
    });
    b.sqs_client()
        .send_message()
        .queue_url(&q)
        .message_body(direct.to_string())
        .send()
        .await
        .expect("send direct");
    let got = recv(&mut rx, 1).await.remove(0);
    assert_eq!(got.data, json!({"n": 2}));
    assert_eq!(got.headers.get("x-origin"), Some("direct"));

    // A bare envelope (no wrapper) too.
    b.sqs_client()
        .send_message()
        .queue_url(&q)
        .message_body(json_base(&topic, &json!({"n": 3})))
        .send()
        .await
        .expect("send bare");
    assert_eq!(recv(&mut rx, 1).await[0].data, json!({"n": 3}));
    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_policy_selects_by_attribute() {
    let (_b, shared) = bus("").await;
    let topic = unique("filter");
    let (svc, mut rx) = Rec::new(
        "filter",
        vec![Spec::new(&topic).option(SqsRoute::new().filter_policy(r#"{"color": ["red"]}"#))],
    );
    let app = start(&shared, &svc).await;
    for (n, color) in [(1, "red"), (2, "blue"), (3, "red")] {
        app.client()
            .publish_with(
                &topic,
                &json!({"n": n}),
                PublishOptions::new().header("color", color),
            )
            .await
            .expect("publish");
    }
    let mut ns: Vec<u64> = recv(&mut rx, 2)
        .await
        .iter()
        .filter_map(|g| g.data["n"].as_u64())
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, vec![1, 3]);
    quiet(&mut rx, Duration::from_millis(1500)).await;
    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_policy_moves_to_the_sqs_dlq_after_max_receives() {
    let (b, shared) = bus("").await;
    let topic = unique("redrive");
    let queue = unique("redrive-q");
    let mut spec =
        Spec::new(&topic).option(SqsRoute::new().queue_name(&queue).max_receive_count(2));
    spec.retries = 20; // kumi would retry far longer: the SQS safety net acts first.
    let (svc, _rx) = Rec::new("redrive", vec![spec]);
    let app = start(&shared, &svc).await;
    app.client()
        .publish(&topic, &json!({"n": 1, "fail": true}))
        .await
        .expect("publish");
    let dlq = queue_url(&b, &format!("{queue}-dlq")).await;
    let deadline = Instant::now() + WAIT;
    let body = loop {
        assert!(Instant::now() < deadline, "nothing reached the SQS DLQ");
        let out = b
            .sqs_client()
            .receive_message()
            .queue_url(&dlq)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from DLQ");
        if let Some(m) = out.messages().first() {
            break m.body().unwrap_or_default().to_owned();
        }
    };
    assert!(
        body.contains(r#"\"fail\": true"#) || body.contains(r#"\"fail\":true"#),
        "{body}"
    );
    assert_eq!(
        svc.calls.load(Ordering::SeqCst),
        2,
        "two receives, then redriven"
    );
    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_is_extended_while_a_slow_handler_runs() {
    let (_b, shared) = bus("").await;
    let topic = unique("slow");
    let (svc, mut rx) = Rec::new(
        "slow",
        vec![Spec::new(&topic).option(SqsRoute::new().visibility_timeout(Duration::from_secs(2)))],
    );
    let app = start(&shared, &svc).await;
    app.client()
        .publish(&topic, &json!({"n": 1, "sleep_ms": 5000}))
        .await
        .expect("publish");
    let got = recv(&mut rx, 1).await;
    assert_eq!(got[0].attempt, 1);
    quiet(&mut rx, Duration::from_secs(3)).await;
    assert_eq!(
        svc.calls.load(Ordering::SeqCst),
        1,
        "processed once, never redelivered"
    );
    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_keeps_order_per_message_group() {
    let (_b, shared) = bus("&fifo=true").await;
    assert!(shared.capabilities().ordered);
    let topic = unique("fifo");
    let mut spec = Spec::new(&topic);
    spec.concurrency = 4;
    let (svc, mut rx) = Rec::new("fifo", vec![spec]);
    let app = start(&shared, &svc).await;
    for i in 0..20u64 {
        let group = if i % 2 == 0 { "g0" } else { "g1" };
        app.client()
            .publish_with(
                &topic,
                &json!({"n": i, "group": group, "sleep_ms": (i * 7) % 30}),
                PublishOptions::new().header(kumi::sns_sqs::GROUP_ID, group),
            )
            .await
            .expect("publish");
    }
    let got = recv(&mut rx, 20).await;
    for group in ["g0", "g1"] {
        let order: Vec<u64> = got
            .iter()
            .filter(|g| g.data["group"] == group)
            .filter_map(|g| g.data["n"].as_u64())
            .collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "group {group} in publish order");
        assert_eq!(order.len(), 10);
    }
    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_routes_each_get_every_message_and_clean_up() {
    let (b, shared) = bus("").await;
    let (_b2, peer) = bus("").await;
    let topic = unique("bcast");
    let mut spec = Spec::new(&topic);
    spec.broadcast = true;
    let (one, mut rx1) = Rec::new("bcast", vec![spec.clone()]);
    let (two, mut rx2) = Rec::new("bcast", vec![spec]);
    let app1 = start(&shared, &one).await;
    let app2 = start(&peer, &two).await;
    for n in 0..3u64 {
        app1.client()
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish");
    }
    assert_eq!(recv(&mut rx1, 3).await.len(), 3);
    assert_eq!(recv(&mut rx2, 3).await.len(), 3);
    let before = b
        .sqs_client()
        .list_queues()
        .queue_name_prefix("bc-")
        .send()
        .await
        .expect("list")
        .queue_urls()
        .len();
    app1.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
    app2.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
    let after = b
        .sqs_client()
        .list_queues()
        .queue_name_prefix("bc-")
        .send()
        .await
        .expect("list")
        .queue_urls()
        .len();
    assert!(
        after + 2 <= before,
        "the per-instance queues were removed ({before} → {after})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_privilege_binds_to_existing_resources_and_creates_nothing() {
    let (admin, _) = bus("").await;
    let topic = unique("lp");
    let queue = unique("lp-q");
    // Provisioned by someone else (infrastructure as code).
    let topic_arn = admin
        .sns_client()
        .create_topic()
        .name(&topic)
        .send()
        .await
        .expect("create topic")
        .topic_arn()
        .unwrap_or_default()
        .to_owned();
    let q = admin
        .sqs_client()
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{queue}");
    admin
        .sns_client()
        .subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .expect("subscribe");

    let (_lp, shared) = bus("&least_privilege=true&account_id=123456789012").await;
    let (svc, mut rx) = Rec::new(
        "lp",
        vec![Spec::new(&topic).option(SqsRoute::new().queue_url(&q))],
    );
    let app = start(&shared, &svc).await;
    app.client()
        .publish(&topic, &json!({"n": 1}))
        .await
        .expect("publish to the existing topic");
    assert_eq!(recv(&mut rx, 1).await[0].data, json!({"n": 1}));

    // Nothing is created: a topic that does not exist is an error, not a new topic.
    let missing = unique("lp-missing");
    let err = app
        .client()
        .publish(&missing, &json!({"n": 2}))
        .await
        .expect_err("no such topic");
    assert!(err.to_string().contains(&missing), "{err}");
    let topics = admin
        .sns_client()
        .list_topics()
        .send()
        .await
        .expect("list topics");
    assert!(!topics
        .topics()
        .iter()
        .any(|t| t.topic_arn().unwrap_or_default().ends_with(&missing)));
    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");

    // A route whose queue does not exist fails at startup, naming it.
    let (_lp, shared) = bus("&least_privilege=true&account_id=123456789012").await;
    let (svc, _rx) = Rec::new("lp2", vec![Spec::new(&missing)]);
    let err = start_err(&shared, svc, "no queue to bind to").await;
    assert!(err.to_string().contains("least-privilege"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_wildcards_are_startup_errors_naming_the_route() {
    let (_b, shared) = bus("").await;
    let mut spec = Spec::new(&unique("rr"));
    spec.request = true;
    let (svc, _rx) = Rec::new("rr", vec![spec]);
    let err = start_err(&shared, svc, "request routes are refused").await;
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("rr.answer"), "{err}");
    assert!(err.to_string().contains("NATS"), "{err}");

    let (_b, shared) = bus("").await;
    let pattern = format!("{}.*", unique("wild"));
    let (svc, _rx) = Rec::new("wild", vec![Spec::new(&pattern)]);
    let err = start_err(&shared, svc, "wildcards are refused").await;
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("wild.on"), "{err}");

    let (_b, shared) = bus("").await;
    let err = kumi::Client::new(Arc::clone(&shared))
        .request::<_, Value>("x", &json!({}))
        .await
        .expect_err("no request/reply");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_a_connect_error_naming_it_without_secrets() {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let url = "sns+sqs://?region=us-east-1&endpoint=http://127.0.0.1:1&access_key_id=AKIDSECRETID&secret_access_key=hunter2";
    let started = Instant::now();
    let Err(err) = kumi::connect(url).await else {
        panic!("connecting to port 1 succeeded");
    };
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("http://127.0.0.1:1"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("AKIDSECRETID"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failed in time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_messages_are_not_deleted_at_the_drain_deadline() {
    let (_b, shared) = bus("").await;
    let topic = unique("drain");
    let spec = Spec::new(&topic).option(SqsRoute::new().visibility_timeout(Duration::from_secs(2)));
    let (first, _rx1) = Rec::new("drain", vec![spec.clone()]);
    let app = start(&shared, &first).await;
    app.client()
        .publish(&topic, &json!({"n": 1, "sleep_ms": 4000}))
        .await
        .expect("publish");
    let deadline = Instant::now() + WAIT;
    while first.calls.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "handler never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = app
        .shutdown(Duration::from_millis(300))
        .await
        .expect("shutdown");
    assert_eq!(report.abandoned, 1, "{report:?}");

    // Not deleted: once its visibility runs out another instance gets it.
    let (_b2, shared2) = bus("").await;
    let (second, mut rx2) = Rec::new("drain", vec![spec]);
    let app2 = start(&shared2, &second).await;
    let got = recv(&mut rx2, 1).await.remove(0);
    assert_eq!(got.data["n"], 1);
    assert!(got.attempt >= 2, "a redelivery: {got:?}");
    app2.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_message_delivery_carries_body_and_attributes() {
    let (_b, shared) = bus("").await;
    let topic = unique("rawdel");
    let (svc, mut rx) = Rec::new(
        "rawdel",
        vec![Spec::new(&topic).option(SqsRoute::new().raw_message_delivery())],
    );
    let app = start(&shared, &svc).await;
    let id = app
        .client()
        .publish_with(
            &topic,
            &json!({"n": 1}),
            PublishOptions::new()
                .header("x-k", "v")
                .correlation_id("corr-raw"),
        )
        .await
        .expect("publish");
    let got = recv(&mut rx, 1).await.remove(0);
    assert_eq!(got.data, json!({"n": 1}));
    assert_eq!(got.headers.get("x-k"), Some("v"));
    assert!(!id.is_empty());
    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_nobody_subscribes_to_are_kept_in_an_sqs_queue() {
    let (b, shared) = bus("").await;
    let topic = unique("dead");
    let mut spec = Spec::new(&topic);
    spec.retries = 0;
    let (svc, _rx) = Rec::new("keeper", vec![spec]);
    let app = start(&shared, &svc).await;
    let listens = app.routes().next().expect("a route").listens.clone();
    let dlq = listens
        .split("dead letters kept in SQS queue ")
        .nth(1)
        .unwrap_or_else(|| panic!("the banner names the dead-letter queue: {listens}"))
        .to_owned();
    for n in 0..2u64 {
        app.client()
            .publish(&topic, &json!({"n": n, "fail": true}))
            .await
            .expect("publish");
    }
    let dlq_url = queue_url(&b, &dlq).await;
    let deadline = Instant::now() + WAIT;
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "{} of 2 dead letters reached {dlq}",
            bodies.len()
        );
        let out = b
            .sqs_client()
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from the dead-letter queue");
        bodies.extend(
            out.messages()
                .iter()
                .map(|m| m.body().unwrap_or_default().to_owned()),
        );
    }
    for body in &bodies {
        // The SNS notification around the dead letter: its attributes carry why.
        let note: Value = serde_json::from_str(body).expect("an SNS notification");
        assert_eq!(
            note["MessageAttributes"]["kumi-dead-letter-reason"]["Value"],
            json!("always fails"),
            "{body}"
        );
        assert_eq!(
            note["MessageAttributes"]["kumi-original-topic"]["Value"],
            json!(topic),
            "{body}"
        );
    }
    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}
