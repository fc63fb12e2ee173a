//! `#[kumi::service]`: the generated `Service` impl registers the routes, options and hooks the
//! attributes describe, and the service runs on the in-memory bus.

use std::sync::Arc;
use std::time::Duration;

use kumi::bus::Sharing;
use kumi::envelope::Raw;
use kumi::prelude::*;
use kumi::settlement::RouteKind;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
const AUDIT: &str = "audit.>";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    amount: u64,
}

/// What the handlers and hooks saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Hook(&'static str),
    Created(Order, bool),
    RawCreated(Order),
    Audit(String),
    Counted(u64),
    Flaky(u32),
    DeadLetter(u64),
}

struct OrderService {
    seen: mpsc::UnboundedSender<Seen>,
}

impl OrderService {
    fn record(&self, seen: Seen) {
        // The receiver outlives every test; a closed channel would only drop the record.
        let _ = self.seen.send(seen);
    }
}

#[kumi::service(name = "orders", version = "1.2.0")]
impl OrderService {
    /// Every option at once; `ctx` proves a second extractor is passed through.
    #[subscribe(
        "orders.created",
        retries = 3,
        concurrency = 8,
        group = "billing",
        dead_letter = "orders.failed",
        timeout = "5s"
    )]
    async fn on_created(&self, Data(order): Data<Order>, ctx: Context) -> Result<(), HandlerError> {
        self.record(Seen::Created(order, ctx.correlation_id().is_some()));
        Ok(())
    }

    /// Only decodes if the route really uses the raw envelope.
    #[subscribe("orders.raw", envelope = kumi::envelope::Raw, name = "raw_created")]
    async fn on_raw(self: Arc<Self>, Data(order): Data<Order>) {
        self.record(Seen::RawCreated(order));
    }

    /// `self: Arc<Self>`, a wildcard topic given as a constant, broadcast delivery.
    #[subscribe(AUDIT, broadcast)]
    async fn audit(self: Arc<Self>, Topic(topic): Topic) {
        self.record(Seen::Audit(topic));
    }

    #[request("orders.get")]
    async fn get(&self, Data(id): Data<u64>) -> Result<Order, HandlerError> {
        if id == 0 {
            return Err(HandlerError::reject("no order 0"));
        }
        Ok(Order {
            id,
            amount: id * 100,
        })
    }

    /// No receiver: a plain associated function.
    #[request("math.double", name = "double")]
    async fn double(Data(n): Data<u64>) -> Result<u64, HandlerError> {
        Ok(n * 2)
    }

    /// No receiver, with the service taken as an explicit extractor; two topics.
    #[subscribe("counter.a")]
    #[subscribe("counter.b", name = "count_b")]
    async fn count(this: Arc<Self>, Data(n): Data<u64>) {
        this.record(Seen::Counted(n));
    }

    /// Times out on the first attempt, fails on the others, then dead-letters.
    #[subscribe(
        "jobs.flaky",
        retries = 2,
        timeout = "200ms",
        dead_letter = "jobs.failed"
    )]
    async fn flaky(
        &self,
        Attempt(attempt): Attempt,
        Data(_job): Data<u64>,
    ) -> Result<(), HandlerError> {
        self.record(Seen::Flaky(attempt));
        if attempt == 1 {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Err(HandlerError::retry(format!("attempt {attempt} failed")))
    }

    #[subscribe("jobs.failed")]
    async fn on_dead_letter(&self, Data(job): Data<u64>) {
        self.record(Seen::DeadLetter(job));
    }

    #[starting]
    async fn warm_up(&self, client: &kumi::Client) -> Result<(), kumi::BoxError> {
        if client.identity().name != "orders" {
            return Err(format!("unexpected client identity {}", client.identity().name).into());
        }
        self.record(Seen::Hook("starting"));
        Ok(())
    }

    #[started]
    async fn ready(&self, _client: &kumi::Client) -> Result<(), std::io::Error> {
        self.record(Seen::Hook("started"));
        Ok(())
    }

    /// A hook may leave out the client and the result.
    #[stopping]
    async fn draining(&self) {
        self.record(Seen::Hook("stopping"));
    }

    #[stopped]
    async fn gone(&self) -> Result<(), kumi::BoxError> {
        self.record(Seen::Hook("stopped"));
        Ok(())
    }

    /// Methods without kumi attributes stay ordinary methods.
    fn helper(&self) -> &'static str {
        "helper"
    }
}

/// No options: the name comes from the type, the version from the trait default; no hooks.
struct AuditTrail;

#[kumi::service]
impl AuditTrail {
    #[subscribe("audit.>")]
    async fn on_audit(&self) {}
}

/// A generic service: the impl's generics and where clause carry over.
struct Echo<T> {
    prefix: T,
}

#[kumi::service(name = "echo")]
impl<T> Echo<T>
where
    T: std::fmt::Display + Send + Sync + 'static,
{
    #[request("echo")]
    async fn echo(&self, Data(text): Data<String>) -> Result<String, HandlerError> {
        Ok(format!("{}{text}", self.prefix))
    }
}

fn service() -> (OrderService, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (OrderService { seen: tx }, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for a handler or hook")
        .expect("the service dropped its sender")
}

#[test]
fn names_and_routes() {
    let (svc, _rx) = service();
    assert_eq!(svc.name(), "orders");
    assert_eq!(svc.version(), "1.2.0");
    assert_eq!(svc.helper(), "helper");
    assert_eq!(AuditTrail.name(), "audit-trail");
    assert_eq!(AuditTrail.version(), "0.0.0");

    let mut router = kumi::Router::new();
    Service::routes(&svc, &mut router);
    let routes: Vec<(RouteKind, String, String)> = router
        .routes()
        .map(|r| (r.kind, r.name.to_owned(), r.topic.to_owned()))
        .collect();
    let expected = [
        (RouteKind::Event, "on_created", "orders.created"),
        (RouteKind::Event, "raw_created", "orders.raw"),
        (RouteKind::Event, "audit", "audit.>"),
        (RouteKind::Request, "get", "orders.get"),
        (RouteKind::Request, "double", "math.double"),
        (RouteKind::Event, "count", "counter.a"),
        (RouteKind::Event, "count_b", "counter.b"),
        (RouteKind::Event, "flaky", "jobs.flaky"),
        (RouteKind::Event, "on_dead_letter", "jobs.failed"),
    ]
    .map(|(kind, name, topic)| (kind, name.to_owned(), topic.to_owned()));
    assert_eq!(routes, expected);

    let mut router = kumi::Router::new();
    AuditTrail.routes(&mut router);
    let names: Vec<&str> = router.routes().map(|r| r.name).collect();
    assert_eq!(names, ["on_audit"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_handlers_and_hooks() {
    let (svc, mut rx) = service();
    let app = kumi::App::new()
        .service(svc)
        .service(AuditTrail)
        .service(Echo { prefix: "> " })
        .start()
        .await
        .expect("the app starts");
    assert_eq!(next(&mut rx).await, Seen::Hook("starting"));
    assert_eq!(next(&mut rx).await, Seen::Hook("started"));

    // The options reached the running routes.
    let summary = |name: &str| {
        app.routes()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no running route {name}"))
            .clone()
    };
    let created = summary("orders.on_created");
    assert_eq!(created.sharing, Sharing::Group("billing".to_owned()));
    assert_eq!(created.concurrency, 8);
    assert_eq!(created.max_attempts, 4);
    assert_eq!(created.envelope, "json-base");
    assert_eq!(summary("orders.audit").sharing, Sharing::Broadcast);
    assert_eq!(summary("orders.raw_created").envelope, "raw");
    assert_eq!(
        summary("orders.count").sharing,
        Sharing::Group("orders".to_owned())
    );
    assert_eq!(summary("orders.get").kind, RouteKind::Request);
    assert!(app.routes().any(|r| r.name == "audit-trail.on_audit"));

    let client = app.client();
    let order = Order { id: 7, amount: 700 };

    client.publish("orders.created", &order).await.unwrap();
    assert_eq!(next(&mut rx).await, Seen::Created(order.clone(), true));

    let raw = kumi::PublishOptions::new().envelope(Arc::new(Raw));
    client
        .publish_with("orders.raw", &order, raw)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, Seen::RawCreated(order.clone()));

    client.publish("audit.orders.7", &order).await.unwrap();
    assert_eq!(
        next(&mut rx).await,
        Seen::Audit("audit.orders.7".to_owned())
    );

    client.publish("counter.a", &1u64).await.unwrap();
    assert_eq!(next(&mut rx).await, Seen::Counted(1));
    client.publish("counter.b", &2u64).await.unwrap();
    assert_eq!(next(&mut rx).await, Seen::Counted(2));

    let got: Order = client.request("orders.get", &7).await.unwrap();
    assert_eq!(got, order);
    let err = client
        .request::<_, Order>("orders.get", &0)
        .await
        .expect_err("order 0 is rejected");
    assert!(err.to_string().contains("no order 0"), "{err}");
    let doubled: u64 = client.request("math.double", &21).await.unwrap();
    assert_eq!(doubled, 42);
    let echoed: String = client.request("echo", &"hi").await.unwrap();
    assert_eq!(echoed, "> hi");

    // retries = 2 -> three attempts; the first one only ends through the 200 ms timeout; then
    // the message goes to the configured dead-letter topic.
    client.publish("jobs.flaky", &99u64).await.unwrap();
    for attempt in 1..=3 {
        assert_eq!(next(&mut rx).await, Seen::Flaky(attempt));
    }
    assert_eq!(next(&mut rx).await, Seen::DeadLetter(99));

    let report = tokio::time::timeout(WAIT, app.shutdown(Duration::from_secs(5)))
        .await
        .expect("shutdown in time");
    report.expect("clean shutdown");
    assert_eq!(next(&mut rx).await, Seen::Hook("stopping"));
    assert_eq!(next(&mut rx).await, Seen::Hook("stopped"));
    // No fourth attempt, no stray deliveries.
    assert!(rx.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_instance() {
    let bus = kumi::connect("memory://").await.unwrap();
    let (first, mut first_rx) = service();
    let (second, mut second_rx) = service();
    let a = kumi::App::new()
        .bus(bus.clone())
        .service(first)
        .start()
        .await
        .unwrap();
    let b = kumi::App::new()
        .bus(bus.clone())
        .service(second)
        .start()
        .await
        .unwrap();
    for rx in [&mut first_rx, &mut second_rx] {
        assert_eq!(next(rx).await, Seen::Hook("starting"));
        assert_eq!(next(rx).await, Seen::Hook("started"));
    }

    a.client().publish("audit.x", &1).await.unwrap();
    for rx in [&mut first_rx, &mut second_rx] {
        assert_eq!(next(rx).await, Seen::Audit("audit.x".to_owned()));
    }

    b.shutdown(Duration::from_secs(5)).await.unwrap();
    a.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Options that only the builder can check, one service each: each fails the start, naming the
/// route.
struct SlowTimeout;

#[kumi::service(name = "misconfigured")]
impl SlowTimeout {
    #[subscribe("a", timeout = "5 parsecs")]
    async fn slow(&self) {}
}

struct GroupAndBroadcast;

#[kumi::service(name = "misconfigured")]
impl GroupAndBroadcast {
    #[subscribe("b", group = "billing", broadcast)]
    async fn both(&self) {}
}

struct BadBackoff;

#[kumi::service(name = "misconfigured")]
impl BadBackoff {
    #[subscribe("c", backoff = ("1s", "soon"))]
    async fn backing_off(&self) {}
}

struct ZeroTimeout;

#[kumi::service(name = "misconfigured")]
impl ZeroTimeout {
    #[request("d", timeout = "0s")]
    async fn instant(&self) {}
}

async fn start_error(app: kumi::App) -> String {
    let error = tokio::time::timeout(WAIT, app.start())
        .await
        .expect("start ends in time")
        .expect_err("the service does not start");
    assert_eq!(error.kind(), kumi::ErrorKind::Config, "{error}");
    error.to_string()
}

#[tokio::test]
async fn invalid_options_are_startup_errors_naming_the_route() {
    for (app, expected) in [
        (
            kumi::App::new().service(SlowTimeout),
            "route misconfigured.slow: timeout '5 parsecs' is not a duration: unknown time unit",
        ),
        (
            kumi::App::new().service(GroupAndBroadcast),
            "route misconfigured.both: `group` and `broadcast` cannot be combined",
        ),
        (
            kumi::App::new().service(BadBackoff),
            "route misconfigured.backing_off: backoff 'soon' is not a duration",
        ),
        (
            kumi::App::new().service(ZeroTimeout),
            "route misconfigured.instant: the timeout must be longer than zero",
        ),
    ] {
        let error = start_error(app).await;
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
    }
}
