//! The per-message span as logs show it: the handler's log lines carry the route, topic, attempt
//! and message id, and the `kumi::message` target filters the spans out while keeping the logs.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kumi::prelude::*;
use kumi::App;
use serde_json::json;
use tokio::sync::mpsc;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

struct Logged {
    done: mpsc::UnboundedSender<()>,
}

impl Logged {
    async fn on_event(self: Arc<Self>) {
        tracing::info!("handled the event");
        let _ = self.done.send(());
    }
}

impl Service for Logged {
    fn name(&self) -> &str {
        "logged"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router
            .subscribe("spans.event", Self::on_event)
            .name("on_event");
    }
}

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Handles one event under a subscriber with `filter` (on this thread: the test runtime has one)
/// and returns the handler's log line.
async fn handler_line(filter: &str) -> String {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (done, mut handled) = mpsc::unbounded_channel();
    let app = App::new()
        .service(Logged { done })
        .start()
        .await
        .expect("start");
    app.client()
        .publish("spans.event", &json!({}))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), handled.recv())
        .await
        .expect("handled")
        .unwrap();
    app.shutdown(Duration::from_secs(5)).await.unwrap();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .find(|l| l.contains("handled the event"))
        .unwrap_or_else(|| panic!("no handler line in:\n{text}"))
        .to_owned()
}

#[tokio::test]
async fn handler_logs_carry_the_message_span_unless_filtered_out() {
    let line = handler_line("info").await;
    assert!(
        line.contains("message{route=logged.on_event topic=spans.event attempt=1 message_id=\""),
        "{line}"
    );
    let line = handler_line("info,kumi::message=off").await;
    assert!(!line.contains("message{"), "{line}");
    assert!(line.contains("handled the event"), "{line}");
}
