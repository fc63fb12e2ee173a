//! Extractor rejections carry their outcome; `Option<T>` means absent; a request route's reply is
//! encoded by the route's envelope. On the in-memory bus, through the whole runtime.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kumi::envelope::{EncodeContext, Envelope, JsonBase, Raw};
use kumi::memory::MemoryBus;
use kumi::prelude::*;
use kumi::settlement::{DEAD_LETTER_KIND, DEAD_LETTER_REASON};
use kumi::{App, FromMessage, MessageParts, Rejection};
use tokio::sync::mpsc;

/// A tenant named by the `tenant` header: unknown tenants are rejected, a tenant "maintenance"
/// asks for a retry, no header at all is absent.
struct Tenant(String);

impl<S> FromMessage<S> for Tenant {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        match parts.message.headers.get("tenant") {
            None => Err(Rejection::absent("no tenant header")),
            Some("maintenance") => Err(Rejection::retry("tenant store under maintenance")),
            Some(t) if t.starts_with("acme") => Ok(Tenant(t.to_owned())),
            Some(t) => Err(Rejection::reject(format!("unknown tenant '{t}'"))),
        }
    }
}

struct Svc {
    seen: mpsc::UnboundedSender<String>,
    attempts: Mutex<Vec<u32>>,
}

impl Svc {
    async fn on_event(
        self: Arc<Self>,
        tenant: Option<Tenant>,
        Attempt(attempt): Attempt,
        Data(n): Data<u32>,
    ) {
        self.attempts.lock().unwrap().push(attempt);
        let who = tenant.map_or_else(|| "nobody".to_owned(), |t| t.0);
        let _ = self.seen.send(format!("{who}:{n}"));
    }

    async fn on_dead(self: Arc<Self>, headers: Headers) {
        let _ = self.seen.send(format!(
            "dead:{}:{}",
            headers.get(DEAD_LETTER_KIND).unwrap_or(""),
            headers.get(DEAD_LETTER_REASON).unwrap_or("")
        ));
    }

    async fn double(self: Arc<Self>, Data(n): Data<u32>) -> Result<u32, HandlerError> {
        Ok(n * 2)
    }
}

impl Service for Svc {
    fn name(&self) -> &str {
        "svc"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router
            .subscribe("ex.events", Self::on_event)
            .envelope(Raw)
            .retries(2)
            .backoff(Duration::from_millis(5), Duration::from_millis(10));
        router
            .subscribe("dlq.ex.events", Self::on_dead)
            .envelope(Raw);
        router.request("ex.double", Self::double).envelope(JsonBase);
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

#[tokio::test]
async fn rejections_say_what_becomes_of_the_message() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let svc = Arc::new(Svc {
        seen: tx,
        attempts: Mutex::new(Vec::new()),
    });
    let app = App::new()
        .bus(Arc::new(MemoryBus::new()))
        .shared_service(Arc::clone(&svc))
        .start()
        .await
        .expect("start");
    let client = app.client().with_envelope(Arc::new(Raw));
    let send = |tenant: Option<&'static str>, n: u32| {
        let client = client.clone();
        async move {
            let mut options = PublishOptions::new();
            if let Some(t) = tenant {
                options = options.header("tenant", t);
            }
            client.publish_with("ex.events", &n, options).await.unwrap();
        }
    };

    // Present and fine.
    send(Some("acme-1"), 1).await;
    assert_eq!(next(&mut rx).await, "acme-1:1");
    // Absent: `Option<Tenant>` is `None`.
    send(None, 2).await;
    assert_eq!(next(&mut rx).await, "nobody:2");
    // Present but wrong: the rejection stands and says "rejected", not "undecodable".
    send(Some("globex"), 3).await;
    assert_eq!(next(&mut rx).await, "dead:rejected:unknown tenant 'globex'");
    // A rejection asking for a retry is retried like a failing handler, then exhausted.
    send(Some("maintenance"), 4).await;
    assert_eq!(
        next(&mut rx).await,
        "dead:exhausted:tenant store under maintenance"
    );
    // The handler never ran for 3 and 4.
    assert_eq!(*svc.attempts.lock().unwrap(), vec![1, 1]);

    // The reply of a route with the JsonBase envelope is a JsonBase message: it decodes only
    // through that envelope.
    let doubled: u32 = app
        .client()
        .request_with(
            "ex.double",
            &21,
            PublishOptions::new().envelope(Arc::new(JsonBase)),
        )
        .await
        .expect("reply");
    assert_eq!(doubled, 42);
    let body = JsonBase
        .encode(
            &EncodeContext {
                topic: "ex.double",
                service_name: "test",
                instance_id: "i-1",
            },
            b"21",
        )
        .expect("encode")
        .body;
    let reply = app
        .client()
        .request_bytes("ex.double", body, PublishOptions::new())
        .await
        .expect("reply");
    let reply: serde_json::Value = serde_json::from_slice(&reply).expect("JSON");
    assert_eq!(reply["data"], 42);
    assert_eq!(
        reply["metadata"]["protocol_version"],
        "tomodachi-json-base--1.0.0"
    );
    assert_eq!(reply["service"]["name"], "svc");
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}
