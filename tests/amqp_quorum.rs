//! RabbitMQ quorum queues (`queue_type=quorum`, or the `QueueType` option on a route): the route's
//! queue, its retry queue and its dead-letter queue are all quorum queues, and retries and dead
//! letters go through them. Tested on the local node (a quorum queue of one member).

#![cfg(feature = "amqp")]

#[path = "support/amqp.rs"]
mod amqp_broker;

use std::sync::Arc;
use std::time::Duration;

use amqp_broker::base_url;
use kumi::amqp::lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use kumi::amqp::lapin::types::{AMQPValue, FieldTable};
use kumi::amqp::lapin::{Connection, ConnectionProperties};
use kumi::amqp::QueueType;
use kumi::prelude::*;
use kumi::App;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

struct Flaky {
    topic: String,
    per_route: bool,
    tx: mpsc::UnboundedSender<(u64, u32)>,
}

impl Flaky {
    async fn on(
        self: Arc<Self>,
        Data(v): Data<Value>,
        Attempt(attempt): Attempt,
    ) -> Result<(), HandlerError> {
        if v["reject"] == json!(true) {
            return Err(HandlerError::reject("rejected as asked"));
        }
        if v["fail_once"] == json!(true) && attempt == 1 {
            return Err("fails its first attempt as asked".into());
        }
        let _ = self.tx.send((v["n"].as_u64().unwrap_or(0), attempt));
        Ok(())
    }
}

impl Service for Flaky {
    fn name(&self) -> &str {
        "quorum"
    }

    fn routes(&self, router: &mut Router<Self>) {
        let route = router
            .subscribe(&self.topic, Self::on)
            .retries(3)
            .backoff("50ms", "50ms");
        if self.per_route {
            route.option(QueueType::Quorum);
        }
    }
}

/// Whether `name` is a quorum queue: declaring it as one (with kumi's other arguments) succeeds,
/// and declaring it as a classic queue is refused as inequivalent.
async fn is_quorum(conn: &Connection, name: &str, extra: &[(&str, AMQPValue)]) -> bool {
    let declare = |kind: &'static str| {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString(kind.into()));
        args.insert("x-expires".into(), AMQPValue::LongUInt(120_000));
        for (k, v) in extra {
            args.insert((*k).into(), v.clone());
        }
        async move {
            let ch = conn.create_channel().await.expect("channel");
            ch.queue_declare(
                name.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await
            .is_ok()
        }
    };
    declare("quorum").await && !declare("classic").await
}

async fn run(url: &str, per_route: bool) {
    let topic = format!("amqptest.quorum.{}", uuid::Uuid::new_v4().simple());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = App::new()
        .bus(kumi::amqp::connect(url).await.expect("connect"))
        .service(Flaky {
            topic: topic.clone(),
            per_route,
            tx,
        })
        .start()
        .await
        .expect("start");
    let route = app.routes().next().expect("one route");
    let queue = route
        .listens
        .strip_prefix("queue ")
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("listens: {}", route.listens))
        .to_owned();
    let raw = Connection::connect(&base_url(), ConnectionProperties::default())
        .await
        .expect("raw connection");
    let (retry, dlq) = (format!("{queue}.retry"), format!("{queue}.dlq"));
    assert!(
        is_quorum(&raw, &queue, &[]).await,
        "{queue} is a quorum queue"
    );
    let back = [
        ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString(queue.as_str().into()),
        ),
    ];
    assert!(
        is_quorum(&raw, &retry, &back).await,
        "{retry} is a quorum queue"
    );
    assert!(is_quorum(&raw, &dlq, &[]).await, "{dlq} is a quorum queue");
    let client = app.client();
    client
        .publish(&topic, &json!({"n": 1, "fail_once": true}))
        .await
        .expect("publish");
    client
        .publish(&topic, &json!({"n": 2, "reject": true}))
        .await
        .expect("publish");
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("handled in time")
        .expect("running");
    assert_eq!(got, (1, 2), "retried through the quorum retry queue");
    let ch = raw.create_channel().await.expect("channel");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = ch
            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get");
        if got.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead letter is in {dlq}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
    for q in [&queue, &retry, &dlq] {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
}

fn url_with(opts: &str) -> String {
    let base = base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}queue_expires=2m{opts}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_from_the_url() {
    run(&url_with("&queue_type=quorum"), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_as_a_route_option() {
    run(&url_with(""), true).await;
}

#[tokio::test]
async fn an_unknown_queue_type_is_refused_naming_it() {
    let err = kumi::amqp::connect(&url_with("&queue_type=stream"))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("queue_type"), "{err}");
}
