//! A clean shutdown of a RabbitMQ service logs nothing at WARN or ERROR: an operator must be able
//! to tell it from a real fault. The test installs its own log subscriber (this file is a test
//! binary of its own) and runs a service with an event route, a request route and traffic on
//! both, then shuts it down.

#![cfg(feature = "amqp")]

#[path = "support/amqp.rs"]
mod amqp_broker;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amqp_broker::base_url;
use kumi::prelude::*;
use kumi::App;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Every log line, as written.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Quiet {
    topic: String,
    tx: mpsc::UnboundedSender<u64>,
}

impl Quiet {
    async fn on(self: Arc<Self>, Data(v): Data<Value>) {
        let _ = self.tx.send(v["n"].as_u64().unwrap_or(0));
    }

    async fn ask(self: Arc<Self>, Data(v): Data<Value>) -> Result<Value, HandlerError> {
        Ok(json!({"echo": v}))
    }
}

impl Service for Quiet {
    fn name(&self) -> &str {
        "quiet"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe(&self.topic, Self::on).concurrency(4);
        router.subscribe(&self.topic, Self::on).broadcast();
        router.request(&format!("{}.ask", self.topic), Self::ask);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_logs_no_warning_or_error() {
    let lines = Lines::default();
    let writer = lines.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let base = base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}queue_expires=2m");
    let topic = format!("amqptest.quiet.{}", uuid::Uuid::new_v4().simple());
    for round in 0..3 {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let app = App::new()
            .bus(kumi::amqp::connect(&url).await.expect("connect"))
            .service(Quiet {
                topic: topic.clone(),
                tx,
            })
            .start()
            .await
            .expect("start");
        let client = app.client();
        for n in 0..20u64 {
            client
                .publish(&topic, &json!({"n": n}))
                .await
                .expect("publish");
        }
        let reply: Value = client
            .request(&format!("{topic}.ask"), &json!({"round": round}))
            .await
            .expect("request");
        assert_eq!(reply["echo"]["round"], json!(round));
        for _ in 0..40 {
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("handled in time")
                .expect("running");
        }
        app.shutdown(Duration::from_secs(5))
            .await
            .expect("shutdown");
    }
    // Whatever the client library still does after the connection closed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = String::from_utf8_lossy(&lines.0.lock().unwrap()).into_owned();
    assert!(text.trim().is_empty(), "a clean shutdown logged:\n{text}");
}
