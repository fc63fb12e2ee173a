//! Message middleware: tower layers per route and per service, and the route timeout.

use std::sync::Arc;
use std::time::Duration;

use kumi::prelude::*;
use kumi::{App, Message};
use serde_json::json;
use tokio::sync::mpsc;

struct Layered {
    tx: mpsc::UnboundedSender<(String, u32, Option<String>, Option<String>)>,
}

impl Layered {
    async fn slow_first(self: Arc<Self>, Attempt(attempt): Attempt, Topic(t): Topic) {
        if attempt == 1 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let _ = self.tx.send((t, attempt, None, None));
    }

    async fn tagged(self: Arc<Self>, headers: Headers, Topic(t): Topic, Attempt(a): Attempt) {
        let _ = self.tx.send((
            t,
            a,
            headers.get("x-route").map(str::to_owned),
            headers.get("x-service").map(str::to_owned),
        ));
    }
}

fn tag(
    key: &'static str,
    value: &'static str,
) -> tower::util::MapRequestLayer<impl Fn(Message) -> Message + Clone> {
    tower::util::MapRequestLayer::new(move |mut m: Message| {
        m.headers.insert(key, value);
        m
    })
}

impl Service for Layered {
    fn name(&self) -> &str {
        "layered"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.layer(tag("x-service", "yes"));
        router
            .subscribe("mw.timeout", Self::slow_first)
            .timeout(Duration::from_millis(100))
            .backoff(Duration::from_millis(10), Duration::from_millis(20));
        router
            .subscribe("mw.tagged", Self::tagged)
            .layer(tag("x-route", "tagged"));
    }
}

#[tokio::test]
async fn timeout_fails_the_attempt_and_layers_wrap_handlers() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = App::new()
        .service(Layered { tx })
        .start()
        .await
        .expect("start");
    let client = app.client();

    client.publish("mw.timeout", &json!({})).await.unwrap();
    let (topic, attempt, _, _) = tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .expect("the timed-out attempt was retried quickly")
        .unwrap();
    assert_eq!((topic.as_str(), attempt), ("mw.timeout", 2));

    client.publish("mw.tagged", &json!({})).await.unwrap();
    let (topic, attempt, route_tag, service_tag) =
        tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .expect("tagged message handled")
            .unwrap();
    assert_eq!((topic.as_str(), attempt), ("mw.tagged", 1));
    assert_eq!(route_tag.as_deref(), Some("tagged"), "route layer ran");
    assert_eq!(service_tag.as_deref(), Some("yes"), "service layer ran");
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn routes_added_after_start_consume_inside_the_service_layers() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut app = App::new()
        .service(Layered { tx })
        .start()
        .await
        .expect("start");
    let added = app
        .add_routes("layered", |r: &mut Router<Layered>| {
            r.subscribe("mw.late", Layered::tagged)
                .name("late")
                .layer(tag("x-route", "late"));
        })
        .await
        .expect("added");
    assert_eq!(added.len(), 1);
    assert_eq!(
        (added[0].name.as_str(), added[0].topic.as_str()),
        ("layered.late", "mw.late")
    );
    assert!(app.routes().any(|r| r.name == "layered.late"));

    app.client().publish("mw.late", &json!({})).await.unwrap();
    let (topic, attempt, route_tag, service_tag) =
        tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .expect("the added route consumed the event")
            .unwrap();
    assert_eq!((topic.as_str(), attempt), ("mw.late", 1));
    assert_eq!(route_tag.as_deref(), Some("late"), "route layer ran");
    assert_eq!(service_tag.as_deref(), Some("yes"), "service layer ran");

    // Transport routes are bound at start; adding one later is refused by name.
    let e = app
        .add_routes("layered", |r: &mut Router<Layered>| {
            r.extensions_mut().insert(vec!["GET /late"]);
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("only bus routes"), "{e}");
    // A bad pattern names the route.
    let e = app
        .add_routes("layered", |r: &mut Router<Layered>| {
            r.subscribe("mw..bad", Layered::tagged).name("bad");
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("layered.bad"), "{e}");
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// The same layers through `#[kumi::service]`: `layer = ..` on a route, and a `#[routes]` method
/// that adds a service-wide layer (and a route of its own).
struct MacroLayered {
    tx: mpsc::UnboundedSender<(String, Option<String>, Option<String>)>,
}

#[kumi::service(name = "macro-layered")]
impl MacroLayered {
    #[subscribe("mwm.tagged", layer = tag("x-route", "attr"))]
    async fn tagged(&self, headers: Headers, Topic(t): Topic) {
        let _ = self.tx.send((
            t,
            headers.get("x-route").map(str::to_owned),
            headers.get("x-service").map(str::to_owned),
        ));
    }

    #[routes]
    fn more_routes(&self, router: &mut Router<Self>) {
        router.layer(tag("x-service", "from-routes"));
        router
            .subscribe("mwm.plain", |this: Arc<Self>, Topic(t): Topic| async move {
                let _ = this.tx.send((t, None, None));
            })
            .name("plain");
    }
}

#[tokio::test]
async fn macro_route_layers_and_a_routes_method() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = App::new()
        .service(MacroLayered { tx })
        .start()
        .await
        .unwrap();
    let names: Vec<&str> = app.routes().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["macro-layered.tagged", "macro-layered.plain"]);
    for topic in ["mwm.tagged", "mwm.plain"] {
        app.client().publish(topic, &json!({})).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(
            tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("handled in time")
                .unwrap(),
        );
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("mwm.plain".to_owned(), None, None),
            (
                "mwm.tagged".to_owned(),
                Some("attr".to_owned()),
                Some("from-routes".to_owned())
            ),
        ]
    );
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}
