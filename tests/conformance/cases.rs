//! The conformance cases. Numbering follows `docs/conformance.md`; c21 (wildcards) and c22 (a retry
//! waiting out its backoff at concurrency 1) are kumi's own.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use kumi::bus::{Capabilities, SharedBus};
use kumi::envelope::Raw;
use kumi::settlement::{ATTEMPTS, DEAD_LETTER_KIND, DEAD_LETTER_REASON, ORIGINAL_TOPIC};
use kumi::{App, ErrorKind, PublishOptions, RunningApp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::probe::{assert_quiet, recv_n, Probe, ProbeRoute};
use super::{ids, skip_unless, unique, Harness};

const QUIET: Duration = Duration::from_millis(300);
const DRAIN: Duration = Duration::from_secs(10);

async fn start(bus: &SharedBus, probes: &[&Arc<Probe>]) -> RunningApp {
    let mut app = App::new().bus(Arc::clone(bus));
    for p in probes {
        app = app.shared_service(Arc::clone(p));
    }
    app.start().await.expect("services start")
}

fn range(n: u64) -> BTreeSet<u64> {
    (0..n).collect()
}

fn caps(bus: &SharedBus) -> Capabilities {
    bus.capabilities()
}

/// Case 1: Subscribe then publish N (and, on persistent buses, publish then subscribe): all arrive with
/// exact payload, headers and ids.
pub async fn c01_publish_then_receive_exact(h: Harness) {
    let bus = h.connect().await;
    let topic = unique("c01");
    let (probe, mut rx) = Probe::new("c01", vec![ProbeRoute::events(&topic)]);
    let app = start(&bus, &[&probe]).await;
    let client = app.client();
    let mut sent_ids = BTreeSet::new();
    for n in 0..20u64 {
        let id = client
            .publish_with(
                &topic,
                &json!({"n": n, "text": "héllo ☃", "list": [1, 2.5, null]}),
                PublishOptions::new()
                    .header("x-case", "c01")
                    .header("x-n", n.to_string()),
            )
            .await
            .expect("publish");
        sent_ids.insert(id);
    }
    let got = recv_n(&mut rx, 20).await;
    assert_eq!(ids(&got), range(20));
    let got_ids: BTreeSet<String> = got.iter().filter_map(|r| r.message_id.clone()).collect();
    assert_eq!(got_ids, sent_ids, "message ids survive the trip");
    for r in &got {
        let n = r.payload["n"].as_u64().unwrap();
        assert_eq!(
            r.payload,
            json!({"n": n, "text": "héllo ☃", "list": [1, 2.5, null]})
        );
        assert_eq!(r.headers.get("x-case"), Some("c01"));
        assert_eq!(r.headers.get("x-n"), Some(n.to_string().as_str()));
        assert_eq!(r.topic, topic);
        assert_eq!(r.attempt, 1);
    }
    if !caps(&bus).duplicates_possible {
        assert_quiet(&mut rx, QUIET).await;
    }
    app.shutdown(DRAIN).await.expect("shutdown");

    if skip_unless(
        h.name(),
        "c01 publish-before-subscribe",
        caps(&bus),
        &[("persistent", |c| c.persistent)],
    ) {
        return;
    }
    let bus = h.connect().await;
    let topic = unique("c01p");
    let (probe, mut rx) = Probe::new("c01p", vec![ProbeRoute::events(&topic)]);
    // Declare the subscription once so the broker keeps messages for it, then stop it.
    let app = start(&bus, &[&probe]).await;
    app.shutdown(DRAIN).await.expect("shutdown");
    let bus = h.connect().await;
    let producer = kumi::Client::new(Arc::clone(&bus));
    for n in 0..10u64 {
        producer
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish");
    }
    let app = start(&bus, &[&probe]).await;
    assert_eq!(ids(&recv_n(&mut rx, 10).await), range(10));
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 2: Many concurrent publishers and competing consumers: nothing lost, each once per group.
pub async fn c02_concurrent_publishers_competing_consumers(h: Harness) {
    let bus = h.connect().await;
    let peer = h.peer(&bus).await;
    let topic = unique("c02");
    let (a, mut rx_a) = Probe::new("c02", vec![ProbeRoute::events(&topic)]);
    let (b, mut rx_b) = Probe::new("c02", vec![ProbeRoute::events(&topic)]);
    let app_a = start(&bus, &[&a]).await;
    let app_b = start(&peer, &[&b]).await;
    let mut tasks = Vec::new();
    for p in 0..4u64 {
        let client = app_a.client();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50u64 {
                client
                    .publish(&topic, &json!({"n": p * 50 + i}))
                    .await
                    .expect("publish");
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher task");
    }
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + super::WAIT;
    while all.len() < 200 {
        tokio::select! {
            Some(r) = rx_a.recv() => all.push(r),
            Some(r) = rx_b.recv() => all.push(r),
            () = tokio::time::sleep_until(deadline) => panic!("received {} of 200", all.len()),
        }
    }
    assert_eq!(ids(&all), range(200), "every message arrived");
    if !caps(&bus).duplicates_possible {
        assert_eq!(all.len(), 200);
        assert_quiet(&mut rx_a, QUIET).await;
        assert_quiet(&mut rx_b, QUIET).await;
    }
    app_a.shutdown(DRAIN).await.expect("shutdown");
    app_b.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 3: Many topics from one connection: each topic gets exactly its own messages.
pub async fn c03_many_topics_one_connection(h: Harness) {
    let bus = h.connect().await;
    let topics: Vec<String> = (0..10).map(|_| unique("c03")).collect();
    let routes = topics.iter().map(|t| ProbeRoute::events(t)).collect();
    let (probe, mut rx) = Probe::new("c03", routes);
    let app = start(&bus, &[&probe]).await;
    let client = app.client();
    for (ti, t) in topics.iter().enumerate() {
        for i in 0..10u64 {
            client
                .publish(t, &json!({"n": ti as u64 * 100 + i, "topic": t}))
                .await
                .expect("publish");
        }
    }
    let got = recv_n(&mut rx, 100).await;
    let mut per_topic: HashMap<String, BTreeSet<u64>> = HashMap::new();
    for r in &got {
        assert_eq!(
            r.payload["topic"].as_str(),
            Some(r.topic.as_str()),
            "message arrived on its own topic"
        );
        per_topic
            .entry(r.topic.clone())
            .or_default()
            .insert(r.payload["n"].as_u64().unwrap());
    }
    for (ti, t) in topics.iter().enumerate() {
        let want: BTreeSet<u64> = (0..10).map(|i| ti as u64 * 100 + i).collect();
        assert_eq!(per_topic.get(t), Some(&want), "topic {t}");
    }
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 4: Handler error → redelivered with backoff, eventually succeeds.
pub async fn c04_retry_then_succeed(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(
        h.name(),
        "c04",
        caps(&bus),
        &[("redelivery", |c| c.redelivery)],
    ) {
        return;
    }
    let topic = unique("c04");
    let (probe, mut rx) = Probe::new("c04", vec![ProbeRoute::events(&topic).retries(4)]);
    let app = start(&bus, &[&probe]).await;
    let started = Instant::now();
    app.client()
        .publish(&topic, &json!({"n": 1, "fail_times": 2}))
        .await
        .expect("publish");
    let got = recv_n(&mut rx, 1).await;
    assert_eq!(got[0].attempt, 3, "succeeded on the third attempt");
    assert_eq!(probe.attempts(), 3);
    // Two backoffs of at least 10 ms and 20 ms (20 ms and 40 ms halved by jitter).
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "retries were delayed"
    );
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 5: Keeps failing → dead-lettered after the attempts, with error, topic and attempt count;
/// other messages flow meanwhile.
pub async fn c05_dead_letter_after_attempts_others_flow(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(
        h.name(),
        "c05",
        caps(&bus),
        &[
            ("dead_letter", |c| c.dead_letter),
            ("redelivery", |c| c.redelivery),
        ],
    ) {
        return;
    }
    let topic = unique("c05");
    let dlq = format!("dlq.{topic}");
    let (probe, mut rx) = Probe::new("c05", vec![ProbeRoute::events(&topic).retries(2)]);
    let (watch, mut dead) = Probe::new("c05-dlq", vec![ProbeRoute::events(&dlq).raw()]);
    let app = start(&bus, &[&watch, &probe]).await;
    let client = app.client();
    client
        .publish_with(
            &topic,
            &json!({"n": 0, "fail": true}),
            PublishOptions::new().correlation_id("corr-c05"),
        )
        .await
        .expect("publish");
    for n in 1..=5u64 {
        client
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish");
    }
    assert_eq!(ids(&recv_n(&mut rx, 5).await), (1..=5).collect());
    let d = recv_n(&mut dead, 1).await.remove(0);
    assert_eq!(d.topic, dlq);
    assert_eq!(d.headers.get(ORIGINAL_TOPIC), Some(topic.as_str()));
    assert_eq!(d.headers.get(ATTEMPTS), Some("3"));
    assert_eq!(d.headers.get(DEAD_LETTER_KIND), Some("exhausted"));
    assert_eq!(
        d.correlation_id.as_deref(),
        Some("corr-c05"),
        "the dead letter keeps the correlation id"
    );
    assert!(
        d.headers
            .get(DEAD_LETTER_REASON)
            .unwrap_or("")
            .contains("always fails"),
        "reason carries the handler error: {:?}",
        d.headers
    );
    let original: Value =
        serde_json::from_slice(&d.body).expect("dead letter keeps the original JSON body");
    assert_eq!(original["data"], json!({"n": 0, "fail": true}));
    assert_eq!(probe.attempts(), 5 + 3);
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 6: Undecodable payload → dead-lettered at once; the consumer keeps going.
pub async fn c06_undecodable_dead_lettered_at_once(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(
        h.name(),
        "c06",
        caps(&bus),
        &[("dead_letter", |c| c.dead_letter)],
    ) {
        return;
    }
    let topic = unique("c06");
    let dlq = format!("dlq.{topic}");
    let (probe, mut rx) = Probe::new("c06", vec![ProbeRoute::events(&topic)]);
    let (watch, mut dead) = Probe::new("c06-dlq", vec![ProbeRoute::events(&dlq).raw()]);
    let app = start(&bus, &[&watch, &probe]).await;
    let client = app.client();
    client
        .publish_bytes(
            &topic,
            b"\x00 this is not an envelope",
            PublishOptions::new().envelope(Arc::new(Raw)),
        )
        .await
        .expect("publish garbage");
    client
        .publish(&topic, &json!({"n": 7}))
        .await
        .expect("publish");
    assert_eq!(ids(&recv_n(&mut rx, 1).await), BTreeSet::from([7]));
    let d = recv_n(&mut dead, 1).await.remove(0);
    assert_eq!(
        &d.body[..],
        b"\x00 this is not an envelope",
        "original bytes kept"
    );
    assert_eq!(d.headers.get(DEAD_LETTER_KIND), Some("undecodable"));
    assert_eq!(
        d.headers.get(ATTEMPTS),
        Some("1"),
        "no retry for undecodable messages"
    );
    assert!(d
        .headers
        .get(DEAD_LETTER_REASON)
        .unwrap_or("")
        .contains("not a json-base envelope"));
    assert_eq!(probe.attempts(), 1, "the handler never saw the garbage");
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 7: Handler panic → a failure (retried where the bus redelivers); the service keeps running.
pub async fn c07_panic_is_a_failure(h: Harness) {
    let bus = h.connect().await;
    let topic = unique("c07");
    let (probe, mut rx) = Probe::new("c07", vec![ProbeRoute::events(&topic).concurrency(1)]);
    let app = start(&bus, &[&probe]).await;
    let client = app.client();
    client
        .publish(&topic, &json!({"n": 1, "panic_times": 1}))
        .await
        .expect("publish");
    client
        .publish(&topic, &json!({"n": 2}))
        .await
        .expect("publish");
    if caps(&bus).redelivery {
        let got = recv_n(&mut rx, 2).await;
        assert_eq!(ids(&got), BTreeSet::from([1, 2]));
        let one = got.iter().find(|r| r.payload["n"] == 1).unwrap();
        assert_eq!(one.attempt, 2, "the panicking attempt counted as a failure");
    } else {
        assert_eq!(ids(&recv_n(&mut rx, 1).await), BTreeSet::from([2]));
    }
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 8: A single consumer sees messages in publish order.
pub async fn c08_order_preserved_single_consumer(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(h.name(), "c08", caps(&bus), &[("ordered", |c| c.ordered)]) {
        return;
    }
    let topic = unique("c08");
    let (probe, mut rx) = Probe::new("c08", vec![ProbeRoute::events(&topic).concurrency(1)]);
    let app = start(&bus, &[&probe]).await;
    for n in 0..50u64 {
        app.client()
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish");
    }
    let order: Vec<u64> = recv_n(&mut rx, 50)
        .await
        .iter()
        .map(|r| r.payload["n"].as_u64().unwrap())
        .collect();
    assert_eq!(order, (0..50).collect::<Vec<_>>());
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 9: Two groups each receive every message; within a group each message once.
pub async fn c09_consumer_groups(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(
        h.name(),
        "c09",
        caps(&bus),
        &[("consumer_groups", |c| c.consumer_groups)],
    ) {
        return;
    }
    let peer = h.peer(&bus).await;
    let topic = unique("c09");
    let (a1, mut rx_a1) = Probe::new("c09-a", vec![ProbeRoute::events(&topic)]);
    let (a2, mut rx_a2) = Probe::new("c09-a", vec![ProbeRoute::events(&topic)]);
    let (b, mut rx_b) = Probe::new("c09-b", vec![ProbeRoute::events(&topic)]);
    let app1 = start(&bus, &[&a1, &b]).await;
    let app2 = start(&peer, &[&a2]).await;
    for n in 0..30u64 {
        app1.client()
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish");
    }
    assert_eq!(
        ids(&recv_n(&mut rx_b, 30).await),
        range(30),
        "group b got everything"
    );
    let mut a = Vec::new();
    let deadline = tokio::time::Instant::now() + super::WAIT;
    while a.len() < 30 {
        tokio::select! {
            Some(r) = rx_a1.recv() => a.push(r),
            Some(r) = rx_a2.recv() => a.push(r),
            () = tokio::time::sleep_until(deadline) => panic!("group a received {} of 30", a.len()),
        }
    }
    assert_eq!(ids(&a), range(30), "group a got everything");
    if !caps(&bus).duplicates_possible {
        assert_eq!(a.len(), 30, "each message once within group a");
        assert_quiet(&mut rx_a1, QUIET).await;
        assert_quiet(&mut rx_a2, QUIET).await;
    }
    app1.shutdown(DRAIN).await.expect("shutdown");
    app2.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 10: Subscriber restart with the same durable name: nothing lost.
pub async fn c10_durable_restart(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(h.name(), "c10", caps(&bus), &[("durable", |c| c.durable)]) {
        return;
    }
    let topic = unique("c10");
    let (first, mut rx1) = Probe::new("c10", vec![ProbeRoute::events(&topic)]);
    let app = start(&bus, &[&first]).await;
    for n in 0..5u64 {
        app.client()
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish");
    }
    assert_eq!(ids(&recv_n(&mut rx1, 5).await), range(5));
    app.shutdown(DRAIN).await.expect("shutdown");
    let producer = kumi::Client::new(h.connect().await);
    for n in 5..10u64 {
        producer
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish while down");
    }
    let (second, mut rx2) = Probe::new("c10", vec![ProbeRoute::events(&topic)]);
    let bus2 = h.connect().await;
    let app = start(&bus2, &[&second]).await;
    assert_eq!(ids(&recv_n(&mut rx2, 5).await), (5..10).collect());
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 12: With a concurrency limit of K, never more than K handlers at once (and K are used).
pub async fn c12_backpressure_concurrency_limit(h: Harness) {
    let bus = h.connect().await;
    let topic = unique("c12");
    let (probe, mut rx) = Probe::new("c12", vec![ProbeRoute::events(&topic).concurrency(3)]);
    let app = start(&bus, &[&probe]).await;
    for n in 0..12u64 {
        app.client()
            .publish(&topic, &json!({"n": n, "sleep_ms": 100}))
            .await
            .expect("publish");
    }
    assert_eq!(ids(&recv_n(&mut rx, 12).await), range(12));
    assert_eq!(probe.max_in_flight(), 3, "the limit is respected and used");
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 13: Graceful shutdown with messages in flight: they finish and are settled; nothing lost.
pub async fn c13_graceful_shutdown_in_flight(h: Harness) {
    let bus = h.connect().await;
    let topic = unique("c13");
    let (probe, mut rx) = Probe::new("c13", vec![ProbeRoute::events(&topic).concurrency(5)]);
    let app = start(&bus, &[&probe]).await;
    let client = app.client();
    for n in 0..5u64 {
        client
            .publish(&topic, &json!({"n": n, "sleep_ms": 400}))
            .await
            .expect("publish");
    }
    let deadline = Instant::now() + super::WAIT;
    while probe.in_flight() < 5 {
        assert!(Instant::now() < deadline, "handlers never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = app.shutdown(DRAIN).await.expect("shutdown");
    assert_eq!(report.abandoned, 0, "nothing abandoned: {report:?}");
    assert_eq!(
        probe.in_flight(),
        0,
        "in-flight handlers finished before the bus closed"
    );
    assert_eq!(ids(&recv_n(&mut rx, 5).await), range(5));
    let err = client
        .publish(&topic, &json!({"n": 99}))
        .await
        .expect_err("publish after stop");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    items: Vec<String>,
    total: f64,
    note: Option<String>,
}

/// Case 14: Envelope round trip: the same value through JsonBase (plain and compressed) and Raw; and
/// hand-written tomodachi messages (`docs/wire.md`, "JsonBase envelope") decode.
pub async fn c14_envelope_round_trip(h: Harness) {
    let bus = h.connect().await;
    let json_topic = unique("c14j");
    let raw_topic = unique("c14r");
    let (probe, mut rx) = Probe::new(
        "c14",
        vec![
            ProbeRoute::events(&json_topic),
            ProbeRoute::events(&raw_topic).raw(),
        ],
    );
    let app = start(&bus, &[&probe]).await;
    let client = app.client();
    let small = Order {
        id: 1,
        items: vec!["tea".into(), "ほうじ茶".into()],
        total: 12.5,
        note: None,
    };
    let large = Order {
        id: 2,
        items: vec![],
        total: 0.1,
        note: Some("x".repeat(70_000)),
    };

    for order in [&small, &large] {
        client
            .publish(&json_topic, order)
            .await
            .expect("publish json-base");
        let r = recv_n(&mut rx, 1).await.remove(0);
        assert_eq!(
            serde_json::from_value::<Order>(r.payload.clone()).unwrap(),
            *order
        );
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let compressed = order.note.is_some();
        assert_eq!(
            body["metadata"]["data_encoding"],
            if compressed {
                "base64_gzip_json"
            } else {
                "raw"
            }
        );
        client
            .publish_with(
                &raw_topic,
                order,
                PublishOptions::new().envelope(Arc::new(Raw)),
            )
            .await
            .expect("publish raw");
        let r = recv_n(&mut rx, 1).await.remove(0);
        assert_eq!(
            serde_json::from_slice::<Order>(&r.body).unwrap(),
            *order,
            "raw body is the bare JSON"
        );
    }

    // A message as tomodachi writes it (Python json.dumps), sent as bytes.
    let tomodachi = format!(
        r#"{{"service": {{"name": "legacy-service", "uuid": "7bd5fd9b-77a8-4d8f-9b39-3e4e1a3a8d11"}}, "metadata": {{"message_uuid": "7bd5fd9b-77a8-4d8f-9b39-3e4e1a3a8d11.1f0b3ba5-33b2-4a5c-8f1a-b0b8b1b6e0b2", "protocol_version": "tomodachi-json-base--1.0.0", "compatible_protocol_versions": ["json_base-wip"], "timestamp": 1732700000.123456, "topic": "{json_topic}", "data_encoding": "raw"}}, "data": {{"id": 3, "items": ["caf\u00e9"], "total": 1.0, "note": null}}}}"#
    );
    // The compressed form, built independently of kumi's encoder: zlib of the JSON text, base64.
    let big_note = "y".repeat(65_000);
    let data_text = format!(r#"{{"id": 4, "items": [], "total": 2.25, "note": "{big_note}"}}"#);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut z, data_text.as_bytes()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
    assert!(b64.starts_with("eJ"), "zlib stream, as tomodachi sends");
    let tomodachi_big = format!(
        r#"{{"service": {{"name": "legacy-service", "uuid": "u1"}}, "metadata": {{"message_uuid": "u1.m2", "protocol_version": "tomodachi-json-base--1.0.0", "compatible_protocol_versions": ["json_base-wip"], "timestamp": 1732700001.5, "topic": "{json_topic}", "data_encoding": "base64_gzip_json"}}, "data": "{b64}"}}"#
    );
    for (body, want) in [
        (
            tomodachi,
            Order {
                id: 3,
                items: vec!["café".into()],
                total: 1.0,
                note: None,
            },
        ),
        (
            tomodachi_big,
            Order {
                id: 4,
                items: vec![],
                total: 2.25,
                note: Some(big_note.clone()),
            },
        ),
    ] {
        client
            .publish_bytes(
                &json_topic,
                body.as_bytes(),
                PublishOptions::new().envelope(Arc::new(Raw)),
            )
            .await
            .expect("publish tomodachi bytes");
        let r = recv_n(&mut rx, 1).await.remove(0);
        assert_eq!(serde_json::from_value::<Order>(r.payload).unwrap(), want);
        assert!(
            r.message_id
                .as_deref()
                .unwrap_or("")
                .starts_with("7bd5fd9b")
                || r.message_id.as_deref() == Some("u1.m2")
        );
    }
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 15: Correlation id and trace context propagate to the messages a handler publishes.
pub async fn c15_correlation_and_trace_propagate(h: Harness) {
    let bus = h.connect().await;
    let first = unique("c15a");
    let second = unique("c15b");
    let (a, mut rx_a) = Probe::new("c15-a", vec![ProbeRoute::events(&first)]);
    let (b, mut rx_b) = Probe::new("c15-b", vec![ProbeRoute::events(&second)]);
    let app = start(&bus, &[&a, &b]).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    app.client()
        .publish_with(
            &first,
            &json!({"n": 1, "forward": second}),
            PublishOptions::new()
                .correlation_id("corr-123")
                .header("traceparent", tp)
                .header("tracestate", "k=v"),
        )
        .await
        .expect("publish");
    recv_n(&mut rx_a, 1).await;
    let fwd = recv_n(&mut rx_b, 1).await.remove(0);
    assert_eq!(fwd.correlation_id.as_deref(), Some("corr-123"));
    assert_eq!(fwd.headers.get("traceparent"), Some(tp));
    assert_eq!(fwd.headers.get("tracestate"), Some("k=v"));

    // Without a correlation id, the handled message's id becomes the correlation id.
    let id = app
        .client()
        .publish(&first, &json!({"n": 2, "forward": second}))
        .await
        .expect("publish");
    recv_n(&mut rx_a, 1).await;
    let fwd = recv_n(&mut rx_b, 1).await.remove(0);
    assert_eq!(fwd.correlation_id.as_deref(), Some(id.as_str()));
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 16: Requests get the handler's reply; concurrent requests are correlated correctly.
pub async fn c16_request_reply_concurrent(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(
        h.name(),
        "c16",
        caps(&bus),
        &[("request_reply", |c| c.request_reply)],
    ) {
        return;
    }
    let topic = unique("c16");
    let (probe, _rx) = Probe::new("c16", vec![ProbeRoute::requests(&topic)]);
    let app = start(&bus, &[&probe]).await;
    let mut tasks = Vec::new();
    for n in 0..50u64 {
        let client = app.client();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            let reply: Value = client
                .request(&topic, &json!({"n": n, "sleep_ms": (n % 5) * 10}))
                .await
                .expect("request");
            (n, reply)
        }));
    }
    for t in tasks {
        let (n, reply) = t.await.expect("task");
        assert_eq!(reply["echo"]["n"], n, "reply belongs to its request");
        assert_eq!(reply["by"], "c16");
    }
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 17: Nobody serves the topic → "no responders" fast where the bus can tell, else a timeout; a
/// slow handler → a timeout. Distinct error kinds.
pub async fn c17_no_responders_vs_timeout(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(
        h.name(),
        "c17",
        caps(&bus),
        &[("request_reply", |c| c.request_reply)],
    ) {
        return;
    }
    let topic = unique("c17");
    let (probe, _rx) = Probe::new("c17", vec![ProbeRoute::requests(&topic)]);
    let app = start(&bus, &[&probe]).await;
    let client = app
        .client()
        .with_request_timeout(Duration::from_millis(500));
    let t0 = Instant::now();
    let err = client
        .request::<_, Value>(&unique("c17-nobody"), &json!({}))
        .await
        .expect_err("no service");
    if caps(&bus).no_responders {
        assert!(err.is_no_responders(), "{err}");
        assert!(t0.elapsed() < Duration::from_millis(400), "failed fast");
    } else {
        assert!(err.is_timeout(), "{err}");
    }
    let err = client
        .request::<_, Value>(&topic, &json!({"n": 1, "sleep_ms": 2000}))
        .await
        .expect_err("slow handler");
    assert!(err.is_timeout(), "{err}");
    assert!(!err.is_no_responders());
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 18: A failing request handler → the requester gets an error (code 500), not a hang.
pub async fn c18_request_handler_error(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(
        h.name(),
        "c18",
        caps(&bus),
        &[("request_reply", |c| c.request_reply)],
    ) {
        return;
    }
    let topic = unique("c18");
    let (probe, _rx) = Probe::new("c18", vec![ProbeRoute::requests(&topic)]);
    let app = start(&bus, &[&probe]).await;
    let client = app.client().with_request_timeout(Duration::from_secs(5));
    let err = client
        .request::<_, Value>(&topic, &json!({"fail": true}))
        .await
        .expect_err("handler fails");
    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert_eq!(err.code(), Some(500));
    assert!(err.to_string().contains("always fails"), "{err}");
    let err = client
        .request::<_, Value>(&topic, &json!({"panic_times": 1}))
        .await
        .expect_err("handler panics");
    assert_eq!(err.code(), Some(500), "{err}");
    let ok: Value = client
        .request(&topic, &json!({"n": 5}))
        .await
        .expect("still serving");
    assert_eq!(ok["echo"]["n"], 5);
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 19: An unreachable broker → a clear error naming the URL (never "Ok but dead").
pub async fn c19_unreachable_broker(h: Harness) {
    let Some(url) = h.unreachable_url() else {
        super::report_skip(&format!(
            "SKIPPED [{}] conformance case 'c19': the bus has no remote broker",
            h.name()
        ));
        return;
    };
    let result = tokio::time::timeout(Duration::from_secs(60), kumi::connect(&url)).await;
    let err = match result {
        Ok(Ok(_)) => panic!("connecting to {url} succeeded"),
        Ok(Err(e)) => e,
        Err(_) => panic!("connecting to {url} hung"),
    };
    let host_port = url
        .split("://")
        .nth(1)
        .unwrap_or(&url)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    assert!(
        err.to_string().contains(host_port),
        "error names the URL: {err}"
    );
}

/// Case 20: Stop is idempotent; publish and request after stop are errors.
pub async fn c20_stop_idempotent_publish_after_stop(h: Harness) {
    let bus = h.connect().await;
    let topic = unique("c20");
    let (probe, _rx) = Probe::new("c20", vec![ProbeRoute::events(&topic)]);
    let app = start(&bus, &[&probe]).await;
    let client = app.client();
    app.shutdown(DRAIN).await.expect("first stop");
    bus.shutdown(Instant::now() + DRAIN)
        .await
        .expect("second stop is a no-op");
    let err = client
        .publish(&topic, &json!({"n": 1}))
        .await
        .expect_err("publish after stop");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    if caps(&bus).request_reply {
        let err = client
            .request::<_, Value>(&topic, &json!({}))
            .await
            .expect_err("request after stop");
        assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    }
}

/// Case 21: Wildcards: `*` matches one token, `>` the rest.
pub async fn c21_wildcards(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(
        h.name(),
        "c21",
        caps(&bus),
        &[("wildcards", |c| c.wildcards)],
    ) {
        return;
    }
    let base = unique("c21");
    let (one, mut rx_one) = Probe::new("c21-one", vec![ProbeRoute::events(&format!("{base}.*"))]);
    let (rest, mut rx_rest) =
        Probe::new("c21-rest", vec![ProbeRoute::events(&format!("{base}.>"))]);
    let app = start(&bus, &[&one, &rest]).await;
    let client = app.client();
    client
        .publish(&format!("{base}.a"), &json!({"n": 1}))
        .await
        .expect("publish");
    client
        .publish(&format!("{base}.b.c"), &json!({"n": 2}))
        .await
        .expect("publish");
    client
        .publish(&format!("{base}x.a"), &json!({"n": 3}))
        .await
        .expect("publish");
    let got = recv_n(&mut rx_one, 1).await;
    assert_eq!(ids(&got), BTreeSet::from([1]));
    assert_eq!(
        got[0].topic,
        format!("{base}.a"),
        "the concrete topic is reported"
    );
    assert_eq!(ids(&recv_n(&mut rx_rest, 2).await), BTreeSet::from([1, 2]));
    assert_quiet(&mut rx_one, QUIET).await;
    assert_quiet(&mut rx_rest, QUIET).await;
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 22 (kumi's own): at concurrency 1, a message waiting out its retry backoff does not hold up
/// the messages published after it; it is handled again once the backoff has passed. On a bus
/// whose retries keep their slot at the broker (`retry_holds_slot`: JetStream), it holds them up
/// instead, so they are handled in order.
pub async fn c22_retry_backoff_does_not_hold_up_a_single_consumer(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(
        h.name(),
        "c22",
        caps(&bus),
        &[("redelivery", |c| c.redelivery)],
    ) {
        return;
    }
    let topic = unique("c22");
    let backoff = Duration::from_millis(1500);
    let (probe, mut rx) = Probe::new(
        "c22",
        vec![ProbeRoute::events(&topic)
            .concurrency(1)
            .retries(2)
            .backoff(backoff)],
    );
    let app = start(&bus, &[&probe]).await;
    let client = app.client();
    client
        .publish(&topic, &json!({"n": 0, "fail_times": 1}))
        .await
        .expect("publish");
    for n in 1..=3u64 {
        client
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish");
    }
    let got = recv_n(&mut rx, 4).await;
    let order: Vec<u64> = got
        .iter()
        .map(|r| r.payload["n"].as_u64().unwrap())
        .collect();
    let retried = order.iter().position(|n| *n == 0).unwrap();
    if caps(&bus).retry_holds_slot {
        // The failed message keeps the route's only slot: it succeeds before the next is taken.
        assert_eq!(
            order,
            vec![0, 1, 2, 3],
            "the retried message held back the later ones"
        );
    } else {
        assert_eq!(
            order,
            vec![1, 2, 3, 0],
            "the later messages were handled while the first waited for its retry"
        );
    }
    assert_eq!(
        got[retried].attempt, 2,
        "the retried message's second attempt"
    );
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 23: A handler that never finishes is dropped at its route's timeout, and the attempt
/// fails like any other (retried, then dead-lettered with the reason): the route goes on with
/// the next messages, and no lease is extended forever.
pub async fn c23_hung_handler_times_out(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(
        h.name(),
        "c23",
        caps(&bus),
        &[
            ("dead_letter", |c| c.dead_letter),
            ("redelivery", |c| c.redelivery),
        ],
    ) {
        return;
    }
    let topic = unique("c23");
    let dlq = format!("dlq.{topic}");
    let (probe, mut rx) = Probe::new(
        "c23",
        vec![ProbeRoute::events(&topic)
            .concurrency(1)
            .retries(1)
            .timeout(Duration::from_millis(300))],
    );
    let (watch, mut dead) = Probe::new("c23-dlq", vec![ProbeRoute::events(&dlq).raw()]);
    let app = start(&bus, &[&watch, &probe]).await;
    let client = app.client();
    client
        .publish(&topic, &json!({"n": 0, "hang": true}))
        .await
        .expect("publish");
    for n in 1..=3u64 {
        client
            .publish(&topic, &json!({"n": n}))
            .await
            .expect("publish");
    }
    assert_eq!(
        ids(&recv_n(&mut rx, 3).await),
        (1..=3).collect(),
        "the route of concurrency 1 went on past the hung handler"
    );
    let d = recv_n(&mut dead, 1).await.remove(0);
    assert_eq!(d.headers.get(ORIGINAL_TOPIC), Some(topic.as_str()));
    assert_eq!(
        d.headers.get(ATTEMPTS),
        Some("2"),
        "both attempts timed out"
    );
    assert_eq!(d.headers.get(DEAD_LETTER_KIND), Some("exhausted"));
    let reason = d.headers.get(DEAD_LETTER_REASON).unwrap_or("");
    assert!(
        reason.contains("timed out after 300ms"),
        "the reason names the timeout: {reason:?}"
    );
    // The last good message's handler may still be returning when its record arrives.
    let deadline = Instant::now() + Duration::from_secs(5);
    while probe.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(probe.in_flight(), 0, "the hung handler was dropped");
    assert_eq!(probe.attempts(), 3 + 2);
    app.shutdown(DRAIN).await.expect("shutdown");
}

/// Case 24: Dead-letter headers alone do not make a dead letter: a message carrying them on its
/// own topic (a dead letter replayed there, or a producer setting them) that fails is
/// dead-lettered like any other, never acknowledged away. Only a dead letter failing on the
/// dead-letter topic it was sent to is not dead-lettered a second time.
pub async fn c24_dead_letter_headers_do_not_hide_failures(h: Harness) {
    let bus = h.connect().await;
    if skip_unless(
        h.name(),
        "c24",
        caps(&bus),
        &[("dead_letter", |c| c.dead_letter)],
    ) {
        return;
    }
    let topic = unique("c24");
    let dlq = format!("dlq.{topic}");
    let dlq2 = format!("dlq.{dlq}");
    let (probe, _rx) = Probe::new("c24", vec![ProbeRoute::events(&topic)]);
    // A handler of the dead letters that fails on them too, and watchers of both levels.
    let (handler, _handled) = Probe::new("c24-handler", vec![ProbeRoute::events(&dlq)]);
    let (watch, mut dead) = Probe::new("c24-dlq", vec![ProbeRoute::events(&dlq).raw()]);
    let (watch2, mut dead2) = Probe::new("c24-dlq2", vec![ProbeRoute::events(&dlq2).raw()]);
    let app = start(&bus, &[&watch, &watch2, &handler, &probe]).await;
    let client = app.client();
    for (n, headers) in [
        (0u64, vec![(DEAD_LETTER_REASON, "forged")]),
        (
            1,
            vec![(DEAD_LETTER_REASON, "replayed"), (ORIGINAL_TOPIC, &*topic)],
        ),
        (
            2,
            vec![
                (DEAD_LETTER_REASON, "forged"),
                (ORIGINAL_TOPIC, "elsewhere"),
            ],
        ),
    ] {
        let mut options = PublishOptions::new();
        for (k, v) in headers {
            options = options.header(k, v);
        }
        client
            .publish_with(&topic, &json!({"n": n, "reject": true}), options)
            .await
            .expect("publish");
    }
    let got = recv_n(&mut dead, 3).await;
    let dead_ids: BTreeSet<u64> = got
        .iter()
        .filter_map(|d| {
            let original: Value = serde_json::from_slice(&d.body).ok()?;
            original["data"]["n"].as_u64()
        })
        .collect();
    assert_eq!(dead_ids, range(3), "every failure was dead-lettered");
    for d in &got {
        assert_eq!(d.headers.get(ORIGINAL_TOPIC), Some(topic.as_str()));
        assert!(
            d.headers
                .get(DEAD_LETTER_REASON)
                .unwrap_or("")
                .contains("rejects"),
            "the reason is this failure's: {:?}",
            d.headers
        );
    }
    // The dead-letter handler rejected all three: none goes to a dead-letter topic of its own.
    assert_quiet(&mut dead2, QUIET * 3).await;
    assert_eq!(handler.attempts(), 3);
    app.shutdown(DRAIN).await.expect("shutdown");
}
