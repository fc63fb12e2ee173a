//! A bus route's handler timeout: on by default ([`DEFAULT_HANDLER_TIMEOUT`]), set per service
//! (`Router::timeout`, `Router::no_timeout`) and per route (`RouteBuilder::timeout`,
//! `RouteBuilder::no_timeout`), the route's setting winning. An attempt that runs out of time fails
//! like any other: here it is dead-lettered at once (no retries), with a reason naming the limit.
//! (The conformance case c23 checks the same on every bus.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kumi::memory::MemoryBus;
use kumi::prelude::*;
use kumi::router::DEFAULT_HANDLER_TIMEOUT;
use kumi::settlement::DEAD_LETTER_REASON;
use kumi::{App, ErrorKind};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// How a test service sets its timeouts.
#[derive(Clone, Copy)]
enum Setting {
    /// Nothing: kumi's default.
    Default,
    /// `router.timeout("200ms")`, with one route saying `.no_timeout()`.
    Service,
    /// `router.no_timeout()`, with one route saying `.timeout("200ms")`.
    RouteOnly,
    /// `router.timeout(0s)`: invalid.
    Invalid,
}

/// Two routes whose handlers never finish (`hang.a`, `hang.b`), and one that records dead letters.
struct Hangs {
    setting: Setting,
    running: AtomicUsize,
    dead: mpsc::UnboundedSender<(String, String)>,
}

impl Hangs {
    async fn hang(self: Arc<Self>, _m: Data<Value>) {
        self.running.fetch_add(1, Ordering::SeqCst);
        struct Done<'a>(&'a AtomicUsize);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _done = Done(&self.running);
        std::future::pending::<()>().await;
    }

    async fn dead_letter(self: Arc<Self>, m: Meta) {
        let _ = self.dead.send(m.0);
    }
}

/// The topic and dead-letter reason of a message.
struct Meta((String, String));

impl kumi::FromMessage<Hangs> for Meta {
    fn from_message(parts: &kumi::MessageParts<'_, Hangs>) -> Result<Self, kumi::Rejection> {
        let m = parts.message;
        let reason = m.headers.get(DEAD_LETTER_REASON).unwrap_or("").to_owned();
        Ok(Meta((m.topic.to_string(), reason)))
    }
}

impl Service for Hangs {
    fn name(&self) -> &str {
        "hangs"
    }

    fn routes(&self, router: &mut Router<Self>) {
        match self.setting {
            Setting::Default => {}
            Setting::Service => drop(router.timeout("200ms")),
            Setting::RouteOnly => drop(router.no_timeout()),
            Setting::Invalid => drop(router.timeout(Duration::ZERO)),
        }
        let a = router.subscribe("hang.a", Self::hang).retries(0);
        match self.setting {
            Setting::Service => drop(a.no_timeout()),
            Setting::RouteOnly => drop(a.timeout("200ms")),
            _ => {}
        }
        router.subscribe("hang.b", Self::hang).retries(0);
        router
            .subscribe("dlq.>", Self::dead_letter)
            .envelope(kumi::envelope::Raw);
    }
}

async fn run(setting: Setting) -> (Arc<Hangs>, mpsc::UnboundedReceiver<(String, String)>, App) {
    let (tx, rx) = mpsc::unbounded_channel();
    let hangs = Arc::new(Hangs {
        setting,
        running: AtomicUsize::new(0),
        dead: tx,
    });
    let app = App::new()
        .bus(Arc::new(MemoryBus::new()))
        .shared_service(Arc::clone(&hangs));
    (hangs, rx, app)
}

async fn publish_both(app: &kumi::RunningApp) {
    for topic in ["hang.a", "hang.b"] {
        app.client()
            .publish(topic, &json!({"n": 1}))
            .await
            .expect("publish");
    }
}

/// Waits (in the test's time) for the next dead letter.
async fn next_dead(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(3600), rx.recv())
        .await
        .expect("a dead letter within the hour")
        .expect("the service is running")
}

#[tokio::test(start_paused = true)]
async fn the_default_timeout_bounds_every_route() {
    let (hangs, mut rx, app) = run(Setting::Default).await;
    let app = app.start().await.expect("start");
    publish_both(&app).await;
    let started = tokio::time::Instant::now();
    let mut dead = vec![next_dead(&mut rx).await, next_dead(&mut rx).await];
    dead.sort();
    // The clock is paused and jumps ahead whenever everything waits: exactly the default.
    assert_eq!(started.elapsed(), DEFAULT_HANDLER_TIMEOUT);
    let reason = format!("handler timed out after {DEFAULT_HANDLER_TIMEOUT:?}");
    assert_eq!(
        dead,
        vec![
            ("dlq.hang.a".to_owned(), reason.clone()),
            ("dlq.hang.b".to_owned(), reason)
        ]
    );
    assert_eq!(hangs.running.load(Ordering::SeqCst), 0);
    app.shutdown(Duration::from_secs(1))
        .await
        .expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_service_timeout_applies_unless_the_route_sets_none() {
    let (hangs, mut rx, app) = run(Setting::Service).await;
    let app = app.start().await.expect("start");
    publish_both(&app).await;
    let dead = next_dead(&mut rx).await;
    assert_eq!(
        dead,
        (
            "dlq.hang.b".to_owned(),
            "handler timed out after 200ms".to_owned()
        )
    );
    // Hours later the route without a timeout is still running its handler.
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    assert!(rx.try_recv().is_err(), "nothing else was dead-lettered");
    assert_eq!(hangs.running.load(Ordering::SeqCst), 1);
    app.shutdown(Duration::from_millis(10))
        .await
        .expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_route_timeout_applies_when_the_service_sets_none() {
    let (hangs, mut rx, app) = run(Setting::RouteOnly).await;
    let app = app.start().await.expect("start");
    publish_both(&app).await;
    let dead = next_dead(&mut rx).await;
    assert_eq!(
        dead,
        (
            "dlq.hang.a".to_owned(),
            "handler timed out after 200ms".to_owned()
        )
    );
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    assert!(rx.try_recv().is_err(), "nothing else was dead-lettered");
    assert_eq!(hangs.running.load(Ordering::SeqCst), 1);
    app.shutdown(Duration::from_millis(10))
        .await
        .expect("shutdown");
}

#[tokio::test]
async fn an_invalid_service_timeout_fails_the_start_naming_the_service() {
    let (_hangs, _rx, app) = run(Setting::Invalid).await;
    let err = app.start().await.expect_err("a zero timeout is refused");
    assert_eq!(err.kind(), ErrorKind::Config);
    let text = err.to_string();
    assert!(
        text.contains("service hangs") && text.contains("timeout must be longer than zero"),
        "{text}"
    );
}
