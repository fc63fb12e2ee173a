//! Tower layers per route, per service and per server; the access log; axum state extractors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::Response;
use hyper::StatusCode;
use kumi_core::{App, Client, Router, Service};
use kumi_http::{HttpRouterExt, HttpTransport};
use tower::util::MapResponseLayer;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::support::get;

fn tag(name: &'static str) -> MapResponseLayer<impl Fn(Response) -> Response + Clone> {
    MapResponseLayer::new(move |mut response: Response| {
        response
            .headers_mut()
            .append("x-layers", HeaderValue::from_static(name));
        response
    })
}

struct Layered {
    greeting: String,
}

impl Layered {
    async fn a(self: Arc<Self>) -> &'static str {
        "a"
    }

    async fn b(State(me): State<Arc<Layered>>, State(client): State<Client>) -> String {
        format!("{} from {}", me.greeting, client.identity().name)
    }
}

impl Service for Layered {
    fn name(&self) -> &str {
        "layered"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.get("/a", Self::a).layer(tag("route"));
        router.get("/b", Self::b);
        router.http_layer(tag("service"));
    }
}

#[tokio::test]
async fn layers_wrap_their_route_their_service_and_the_server() {
    let http = HttpTransport::builder()
        .addr("127.0.0.1:0")
        .layer(tag("server"))
        .build();
    let app = App::new()
        .transport(http.shared())
        .service(Layered {
            greeting: "hi".into(),
        })
        .start()
        .await
        .unwrap();
    let addr = http.local_addr().unwrap();
    let layers = |r: &crate::support::Reply| -> Vec<String> {
        r.headers
            .get_all("x-layers")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let a = get(addr, "/a").await;
    assert_eq!(a.text(), "a");
    assert_eq!(layers(&a), ["route", "service", "server"]);
    let b = get(addr, "/b").await;
    assert_eq!(b.text(), "hi from layered");
    assert_eq!(layers(&b), ["service", "server"]);
    let missing = get(addr, "/c").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(layers(&missing), ["server"]);
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Records the fields of `kumi_http::access` events.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<HashMap<String, String>>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == "kumi_http::access" {
            let mut fields = HashMap::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }
}

// A current-thread runtime, so the server's tasks log to this thread's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn every_request_gets_an_access_log_event() {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let http = HttpTransport::bind("127.0.0.1:0");
    let app = App::new()
        .transport(http.shared())
        .service(Layered {
            greeting: "hi".into(),
        })
        .start()
        .await
        .unwrap();
    let addr = http.local_addr().unwrap();
    get(addr, "/a").await;
    get(addr, "/nowhere").await;
    app.shutdown(Duration::from_secs(5)).await.unwrap();
    let events = capture.0.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    let first = &events[0];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/a");
    assert_eq!(first["status"], "200");
    assert_eq!(first["bytes"], "1");
    assert!(first["latency_ms"].parse::<f64>().is_ok());
    assert!(first.contains_key("peer"));
    assert_eq!(events[1]["status"], "404");
}
