//! Dead letters on NATS are stored, not only published: kumi provisions the `KUMI_DEAD_LETTERS`
//! stream (capturing `dlq.>`) at connect, so a dead letter nobody subscribes to is kept with its
//! reason, and carries a message id of its own, so a stream that also holds the original never
//! drops it as a duplicate. Without JetStream, `dead_letters=required` refuses to start. Each
//! test runs its own `nats-server`.

#![cfg(feature = "nats")]

#[path = "support/nats_server.rs"]
mod nats_server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use futures_util::StreamExt;
use kumi::nats::topology::DEAD_LETTER_STREAM;
use kumi::nats::JetStream;
use kumi::prelude::*;
use kumi::settlement::{DEAD_LETTER_REASON, ORIGINAL_MESSAGE_ID, ORIGINAL_TOPIC};
use kumi::{App, ErrorKind, PublishOptions};
use nats_server::NatsServer;
use serde_json::{json, Value};

/// Rejects every message.
struct Refuser {
    topic: String,
    jetstream: bool,
}

impl Refuser {
    async fn on(self: Arc<Self>, Data(_v): Data<Value>) -> Result<(), HandlerError> {
        Err(HandlerError::reject("refused as asked"))
    }
}

impl Service for Refuser {
    fn name(&self) -> &str {
        "refuser"
    }

    fn routes(&self, router: &mut Router<Self>) {
        let route = router.subscribe(&self.topic, Self::on);
        if self.jetstream {
            route.option(JetStream::durable());
        }
    }
}

/// Every message now in `stream` under `subject`, as (Nats-Msg-Id, headers by name).
async fn stored(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    n: usize,
) -> Vec<(String, BTreeMap<String, String>)> {
    let js = jetstream::new(client.clone());
    let consumer = js
        .get_stream(stream)
        .await
        .unwrap_or_else(|e| panic!("stream {stream}: {e}"))
        .create_consumer(pull::Config {
            filter_subject: subject.to_owned(),
            ..Default::default()
        })
        .await
        .expect("a consumer to read the stream");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    while out.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} dead letters in {stream}", out.len()))
            .expect("stream open")
            .expect("message");
        let headers: BTreeMap<String, String> = msg
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .map(|(k, v)| (k.to_string(), v[0].to_string()))
            .collect();
        let id = headers.get("Nats-Msg-Id").cloned().unwrap_or_default();
        out.push((id, headers));
    }
    out
}

async fn run_and_dead_letter(url: &str, topic: &str, jetstream: bool, ids: &[&str]) {
    let app = App::new()
        .bus(kumi::nats::connect(url).await.expect("connect"))
        .service(Refuser {
            topic: topic.to_owned(),
            jetstream,
        });
    let running = app.start().await.expect("start");
    let client = running.client();
    for id in ids {
        client
            .publish_with(
                topic,
                &json!({"id": id}),
                PublishOptions::new().header("kumi-test", *id),
            )
            .await
            .expect("publish");
    }
    // Given time to dead-letter everything, then shut down: the dead letters are in the stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    running
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_nobody_subscribes_to_are_kept_in_the_dead_letter_stream() {
    let server = NatsServer::start();
    let topic = "orders.created";
    run_and_dead_letter(&server.url(), topic, false, &["a", "b", "c"]).await;
    let client = async_nats::connect(server.url()).await.expect("raw client");
    let kept = stored(&client, DEAD_LETTER_STREAM, "dlq.orders.created", 3).await;
    for (id, headers) in &kept {
        assert_eq!(
            headers.get(DEAD_LETTER_REASON).map(String::as_str),
            Some("refused as asked")
        );
        assert_eq!(headers.get(ORIGINAL_TOPIC).map(String::as_str), Some(topic));
        let original = headers
            .get(ORIGINAL_MESSAGE_ID)
            .expect("the original's id is kept");
        assert_eq!(id, &format!("{original}.dlq1"), "an id of its own");
    }
    let mut tags: Vec<&str> = kept
        .iter()
        .filter_map(|(_, h)| h.get("kumi-test").map(String::as_str))
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, vec!["a", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_in_the_stream_of_its_original_is_not_taken_for_a_duplicate() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("raw client");
    let js = jetstream::new(client.clone());
    // One stream holds the events and their dead letters (so kumi provisions no stream of its
    // own: the subjects overlap).
    js.create_stream(stream::Config {
        name: "APP".to_owned(),
        subjects: vec!["app.>".to_owned(), "dlq.app.>".to_owned()],
        ..Default::default()
    })
    .await
    .expect("stream APP");
    run_and_dead_letter(&server.url(), "app.orders", true, &["x", "y"]).await;
    let kept = stored(&client, "APP", "dlq.app.orders", 2).await;
    assert_eq!(kept.len(), 2);
    let info = js
        .get_stream("APP")
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .state
        .messages;
    assert_eq!(info, 4, "two events and their two dead letters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_jetstream_dead_letters_required_refuses_to_start() {
    let server = NatsServer::start_without_jetstream();
    let url = format!("{}?dead_letters=required", server.url());
    let err = kumi::nats::connect(&url)
        .await
        .err()
        .expect("no JetStream: connecting fails");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("dead_letters=required") && text.contains(DEAD_LETTER_STREAM),
        "{text}"
    );
    // The default only warns.
    kumi::nats::connect(&server.url())
        .await
        .expect("the default starts without JetStream");
}
