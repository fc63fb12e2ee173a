//! The NATS service API (ADR-32) as other NATS clients see it: discovery on the `$SRV` subjects,
//! exact response shapes, queue groups, error headers, stats, validation and drain. Each test runs
//! its own `nats-server`, so discovery sees only the test's services.

#![cfg(feature = "nats")]

#[path = "support/nats_server.rs"]
mod nats_server;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kumi::bus::SharedBus;
use kumi::nats::{Endpoint, NatsBus};
use kumi::prelude::*;
use kumi::{App, RunningApp};
use serde_json::{json, Value};

struct Api {
    name: &'static str,
    version: &'static str,
}

impl Api {
    async fn get(self: Arc<Self>, Data(v): Data<Value>) -> Result<Value, HandlerError> {
        if let Some(ms) = v["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if v["fail"] == true {
            return Err("lookup failed".into());
        }
        Ok(json!({"got": v}))
    }

    async fn event(self: Arc<Self>) {}
}

impl Service for Api {
    fn name(&self) -> &str {
        self.name
    }
    fn version(&self) -> &str {
        self.version
    }
    fn description(&self) -> &str {
        "orders lookup"
    }
    fn metadata(&self) -> std::collections::BTreeMap<String, String> {
        [("team".to_owned(), "core".to_owned())].into()
    }
    fn routes(&self, router: &mut Router<Self>) {
        router.request("api.orders.get", Self::get).name("get");
        router.request("count", Self::get).name("count").option(
            Endpoint::new()
                .group("api.stats")
                .metadata("unit", "orders")
                .stats(|| json!({"cache": "warm"})),
        );
        router
            .request("api.custom", Self::get)
            .name("custom")
            .group("custom-q");
        router.request("api.all", Self::get).name("all").broadcast();
        router.subscribe("api.events", Self::event);
        router
            .request("api.endpoint-q", Self::get)
            .name("endpoint-q")
            .option(Endpoint::new().queue_group("ep-q"));
        router
            .request("api.endpoint-none", Self::get)
            .name("endpoint-none")
            .option(Endpoint::new().no_queue_group());
    }
}

async fn nats_bus(server: &nats_server::NatsServer) -> (NatsBus, SharedBus) {
    let bus = NatsBus::connect(&server.url()).await.expect("connect");
    let shared: SharedBus = Arc::new(bus.clone());
    (bus, shared)
}

async fn start(
    bus: &SharedBus,
    name: &'static str,
    version: &'static str,
) -> kumi::Result<RunningApp> {
    App::new()
        .bus(Arc::clone(bus))
        .service(Api { name, version })
        .start()
        .await
}

/// Sends a request (`{}`) on `subject` and collects every reply for a short while.
async fn collect(client: &async_nats::Client, subject: &str) -> Vec<Value> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply(subject.to_owned(), inbox, "{}".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut out = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(400), sub.next()).await {
        if m.status.is_some() {
            continue; // the server's "no responders" notice
        }
        out.push(serde_json::from_slice(&m.payload).expect("JSON response"));
    }
    out
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn discovery_answers_on_all_subject_forms_with_exact_shapes() {
    let server = nats_server::NatsServer::start();
    let (_b1, bus1) = nats_bus(&server).await;
    let (_b2, bus2) = nats_bus(&server).await;
    let app1 = start(&bus1, "orders-api", "1.2.3").await.unwrap();
    let app2 = start(&bus2, "orders-api", "1.2.3").await.unwrap();
    let (probe, _) = nats_bus(&server).await;
    let client = probe.client();

    let pings = collect(client, "$SRV.PING").await;
    assert_eq!(pings.len(), 2, "both instances answer: {pings:?}");
    let ids: BTreeSet<String> = pings
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "distinct instance ids");
    for p in &pings {
        assert_eq!(
            keys(p),
            BTreeSet::from(["type", "name", "id", "version", "metadata"])
        );
        assert_eq!(p["type"], "io.nats.micro.v1.ping_response");
        assert_eq!(p["name"], "orders-api");
        assert_eq!(p["version"], "1.2.3");
        assert_eq!(p["metadata"], json!({"team": "core"}));
        let id = p["id"].as_str().unwrap();
        assert_eq!(id.len(), 22);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    }
    assert_eq!(collect(client, "$SRV.PING.orders-api").await.len(), 2);
    let one = ids.iter().next().unwrap();
    let by_id = collect(client, &format!("$SRV.PING.orders-api.{one}")).await;
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0]["id"], one.as_str());
    assert!(collect(client, "$SRV.PING.other-service").await.is_empty());

    let infos = collect(client, "$SRV.INFO.orders-api").await;
    assert_eq!(infos.len(), 2);
    assert_eq!(collect(client, "$SRV.INFO").await.len(), 2);
    let info_by_id = collect(client, &format!("$SRV.INFO.orders-api.{one}")).await;
    assert_eq!(info_by_id.len(), 1);
    assert_eq!(info_by_id[0]["id"], one.as_str());
    assert_eq!(collect(client, "$SRV.STATS").await.len(), 2);
    assert_eq!(collect(client, "$SRV.STATS.orders-api").await.len(), 2);
    for i in &infos {
        assert_eq!(
            keys(i),
            BTreeSet::from([
                "type",
                "name",
                "id",
                "version",
                "metadata",
                "description",
                "endpoints"
            ])
        );
        assert_eq!(i["type"], "io.nats.micro.v1.info_response");
        assert_eq!(i["description"], "orders lookup");
        assert_eq!(
            i["endpoints"],
            json!([
                {"name": "get", "subject": "api.orders.get", "queue_group": "q", "metadata": {}},
                {"name": "count", "subject": "api.stats.count", "queue_group": "q", "metadata": {"unit": "orders"}},
                {"name": "custom", "subject": "api.custom", "queue_group": "custom-q", "metadata": {}},
                {"name": "all", "subject": "api.all", "metadata": {}},
                {"name": "endpoint-q", "subject": "api.endpoint-q", "queue_group": "ep-q", "metadata": {}},
                {"name": "endpoint-none", "subject": "api.endpoint-none", "metadata": {}},
            ]),
            "endpoints in registration order; event routes are not endpoints"
        );
    }

    let stats = collect(client, &format!("$SRV.STATS.orders-api.{one}")).await;
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(
        keys(s),
        BTreeSet::from([
            "type",
            "name",
            "id",
            "version",
            "metadata",
            "started",
            "endpoints"
        ])
    );
    assert_eq!(s["type"], "io.nats.micro.v1.stats_response");
    let started = s["started"].as_str().unwrap();
    assert_eq!(
        started.len(),
        "2026-11-27T09:55:12.123456Z".len(),
        "{started}"
    );
    assert!(
        started.ends_with('Z') && started.as_bytes()[19] == b'.',
        "{started}"
    );
    let ep = &s["endpoints"][0];
    assert_eq!(
        keys(ep),
        BTreeSet::from([
            "name",
            "subject",
            "queue_group",
            "num_requests",
            "num_errors",
            "last_error",
            "processing_time",
            "average_processing_time",
            "data"
        ])
    );
    assert_eq!(ep["last_error"], "");
    assert_eq!(ep["data"], Value::Null);
    assert_eq!(s["endpoints"][1]["data"], json!({"cache": "warm"}));
    assert!(
        !keys(&s["endpoints"][3]).contains("queue_group"),
        "disabled queue group is omitted"
    );

    // Requests spread over the queue group; STATS sums match.
    let requester = app1.client();
    for n in 0..40 {
        let _: Value = requester
            .request("api.orders.get", &json!({"n": n}))
            .await
            .unwrap();
    }
    let stats = collect(client, "$SRV.STATS.orders-api").await;
    let per: Vec<u64> = stats
        .iter()
        .map(|s| s["endpoints"][0]["num_requests"].as_u64().unwrap())
        .collect();
    assert_eq!(per.iter().sum::<u64>(), 40, "{per:?}");
    assert!(
        per.iter().all(|n| *n > 0),
        "both instances served requests: {per:?}"
    );
    for s in &stats {
        let ep = &s["endpoints"][0];
        let (n, total, avg) = (
            ep["num_requests"].as_u64().unwrap(),
            ep["processing_time"].as_u64().unwrap(),
            ep["average_processing_time"].as_u64().unwrap(),
        );
        assert!(total > 0);
        assert_eq!(avg, total / n);
    }

    // A queue group (the default or a named one) answers once; without one, every instance does.
    for (subject, answers) in [
        ("api.orders.get", 1),
        ("api.custom", 1),
        ("api.endpoint-q", 1),
        ("api.all", 2),
        ("api.endpoint-none", 2),
    ] {
        let replies = collect(client, subject).await;
        assert_eq!(replies.len(), answers, "{subject}: {replies:?}");
        assert!(replies.iter().all(|r| r["got"] == json!({})), "{replies:?}");
    }
    app1.shutdown(Duration::from_secs(5)).await.unwrap();
    app2.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn errors_carry_adr32_headers_and_count_in_stats_until_reset() {
    let server = nats_server::NatsServer::start();
    let (nats, bus) = nats_bus(&server).await;
    let app = start(&bus, "errs", "0.1.0").await.unwrap();
    let client = nats.client();
    let reply = client
        .request(
            "api.orders.get",
            serde_json::to_vec(&json!({"fail": true})).unwrap().into(),
        )
        .await
        .unwrap();
    let headers = reply.headers.expect("error headers");
    assert_eq!(
        headers.get("Nats-Service-Error-Code").unwrap().as_str(),
        "500"
    );
    assert_eq!(
        headers.get("Nats-Service-Error").unwrap().as_str(),
        "lookup failed"
    );
    let reply = client
        .request("api.orders.get", "not json".into())
        .await
        .unwrap();
    assert_eq!(
        reply
            .headers
            .unwrap()
            .get("Nats-Service-Error-Code")
            .unwrap()
            .as_str(),
        "400"
    );
    // Bare-JSON clients get bare JSON back.
    let ok = client
        .request("api.orders.get", r#"{"n":1}"#.into())
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&ok.payload).unwrap(),
        json!({"got": {"n": 1}})
    );

    let s = &collect(client, "$SRV.STATS.errs").await[0]["endpoints"][0];
    assert_eq!(s["num_requests"], 3);
    assert_eq!(s["num_errors"], 2);
    assert!(s["last_error"].as_str().unwrap().starts_with("400:"), "{s}");
    assert_eq!(nats.reset_stats("errs"), 6);
    let s = &collect(client, "$SRV.STATS.errs").await[0]["endpoints"][0];
    assert_eq!(
        (
            s["num_requests"].clone(),
            s["num_errors"].clone(),
            s["last_error"].clone()
        ),
        (json!(0), json!(0), json!(""))
    );
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn invalid_names_and_versions_are_startup_errors() {
    let server = nats_server::NatsServer::start();
    let (_n, bus) = nats_bus(&server).await;
    let e = start(&bus, "bad.name", "1.0.0")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'bad.name'") && e.contains("not a valid NATS service name"),
        "{e}"
    );
    let (_n, bus) = nats_bus(&server).await;
    let e = start(&bus, "good", "1.0").await.unwrap_err().to_string();
    assert!(
        e.contains("'1.0'") && e.contains("semantic versioning"),
        "{e}"
    );
}

/// One endpoint that handles a request at a time.
struct OneAtATime;

impl OneAtATime {
    async fn work(self: Arc<Self>, Data(v): Data<Value>) -> Result<Value, HandlerError> {
        let ms = v["sleep_ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(json!({"done": v["n"]}))
    }
}

impl Service for OneAtATime {
    fn name(&self) -> &str {
        "drainer"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router.request("slow.work", Self::work).concurrency(1);
    }
}

#[tokio::test]
async fn stop_answers_requests_sent_just_before() {
    let server = nats_server::NatsServer::start();
    let (nats, bus) = nats_bus(&server).await;
    let app = App::new()
        .bus(bus)
        .service(OneAtATime)
        .start()
        .await
        .unwrap();
    let (requester, _) = nats_bus(&server).await;
    // One request in the handler, four queued behind it (the endpoint runs one at a time): stop
    // must finish reading the subscription, not only wait for the handler that is running.
    let mut pending = Vec::new();
    for n in 0..5u64 {
        let client = requester.client().clone();
        let body = json!({"n": n, "sleep_ms": if n == 0 { 300 } else { 20 }});
        pending.push(tokio::spawn(async move {
            client
                .request("slow.work", serde_json::to_vec(&body).unwrap().into())
                .await
        }));
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    requester.client().flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = app.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.abandoned, 0);
    for (n, reply) in pending.into_iter().enumerate() {
        let reply = reply
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("request {n} not answered during drain: {e}"));
        assert_eq!(
            serde_json::from_slice::<Value>(&reply.payload).unwrap()["done"],
            n
        );
    }
    drop(nats);
}

/// A service whose endpoint's stats handler panics.
struct Flaky;

impl Flaky {
    async fn get(self: Arc<Self>, Data(v): Data<Value>) -> Result<Value, HandlerError> {
        Ok(v)
    }
}

impl Service for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router
            .request("flaky.get", Self::get)
            .name("get")
            .option(Endpoint::new().stats(|| -> Value { panic!("stats backend unavailable") }));
    }
}

#[tokio::test]
async fn a_panicking_stats_handler_leaves_discovery_answering() {
    let server = nats_server::NatsServer::start();
    let (nats, bus) = nats_bus(&server).await;
    let app = App::new()
        .bus(Arc::clone(&bus))
        .service(Flaky)
        .start()
        .await
        .unwrap();
    let client = nats.client();
    for _ in 0..2 {
        let stats = collect(client, "$SRV.STATS.flaky").await;
        assert_eq!(stats.len(), 1, "{stats:?}");
        assert_eq!(stats[0]["endpoints"][0]["name"], "get");
        assert_eq!(stats[0]["endpoints"][0]["data"], Value::Null);
    }
    let ping = collect(client, "$SRV.PING.flaky").await;
    assert_eq!(ping.len(), 1, "discovery still answers after the panics");
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn an_endpoint_added_after_start_joins_info_stats_and_answers() {
    let server = nats_server::NatsServer::start();
    let (nats, bus) = nats_bus(&server).await;
    let mut app = start(&bus, "late-api", "1.0.0").await.unwrap();
    let client = nats.client();
    let names = |info: &Value| -> Vec<String> {
        info["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = collect(client, "$SRV.INFO.late-api").await;
    assert_eq!(
        names(&before[0]),
        [
            "get",
            "count",
            "custom",
            "all",
            "endpoint-q",
            "endpoint-none"
        ]
    );
    // Not served yet: the server says so.
    let refused = client
        .request("tenants.acme.lookup", "{}".into())
        .await
        .unwrap_err();
    assert_eq!(
        refused.kind(),
        async_nats::RequestErrorKind::NoResponders,
        "{refused}"
    );

    let added = app
        .add_routes("late-api", |r: &mut Router<Api>| {
            r.request("acme.lookup", Api::get)
                .name("acme")
                .option(Endpoint::new().group("tenants").metadata("tenant", "acme"));
        })
        .await
        .unwrap();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].name, "late-api.acme");
    assert_eq!(app.routes().count(), 8);

    let after = collect(client, "$SRV.INFO.late-api").await;
    assert_eq!(after.len(), 1);
    assert_eq!(
        names(&after[0]),
        [
            "get",
            "count",
            "custom",
            "all",
            "endpoint-q",
            "endpoint-none",
            "acme"
        ]
    );
    assert_eq!(
        after[0]["endpoints"][6],
        json!({"name": "acme", "subject": "tenants.acme.lookup", "queue_group": "q",
               "metadata": {"tenant": "acme"}})
    );
    for n in 0..3 {
        let reply = client
            .request(
                "tenants.acme.lookup",
                serde_json::to_vec(&json!({"n": n})).unwrap().into(),
            )
            .await
            .expect("the added endpoint answers");
        assert_eq!(
            serde_json::from_slice::<Value>(&reply.payload).unwrap(),
            json!({"got": {"n": n}})
        );
    }
    let stats = collect(client, "$SRV.STATS.late-api").await;
    assert_eq!(stats[0]["endpoints"][6]["name"], "acme");
    assert_eq!(stats[0]["endpoints"][6]["num_requests"], 3);
    assert_eq!(stats[0]["endpoints"][0]["num_requests"], 0);

    let wrong_type = app
        .add_routes("late-api", |r: &mut Router<Flaky>| {
            r.request("flaky.other", Flaky::get);
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        wrong_type.contains("'late-api'") && wrong_type.contains("Flaky"),
        "{wrong_type}"
    );
    let unknown = app
        .add_routes("nobody", |r: &mut Router<Api>| {
            r.request("x", Api::get);
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("'nobody'") && unknown.contains("no running service"),
        "{unknown}"
    );
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// One request route, as given: for the validation cases.
struct OneRoute {
    topic: &'static str,
    name: Option<&'static str>,
    group: Option<&'static str>,
}

impl OneRoute {
    async fn get(self: Arc<Self>) -> Result<Value, HandlerError> {
        Ok(json!({}))
    }
}

impl Service for OneRoute {
    fn name(&self) -> &str {
        "one-route"
    }
    fn routes(&self, router: &mut Router<Self>) {
        let mut route = router.request(self.topic, Self::get);
        if let Some(name) = self.name {
            route = route.name(name);
        }
        if let Some(group) = self.group {
            route.option(Endpoint::new().group(group));
        }
    }
}

#[tokio::test]
async fn invalid_subjects_groups_and_endpoint_names_are_startup_errors() {
    let server = nats_server::NatsServer::start();
    let cases = [
        (("orders.#", None, None), ["'orders.#'", "no '#' wildcard"]),
        (("orders..get", None, None), ["'orders..get'", "empty"]),
        (
            ("orders.get", Some("get order"), None),
            ["'get order'", "not valid for NATS"],
        ),
        (
            ("orders.get", None, Some("api..v1")),
            ["'api..v1.orders.get'", "empty"],
        ),
    ];
    for ((topic, name, group), needles) in cases {
        let (_n, bus) = nats_bus(&server).await;
        let e = App::new()
            .bus(bus)
            .service(OneRoute { topic, name, group })
            .start()
            .await
            .expect_err("an invalid route does not start");
        assert_eq!(e.kind(), kumi::ErrorKind::Config, "{e}");
        let text = e.to_string();
        assert!(
            needles.iter().all(|n| text.contains(n)),
            "{topic} {name:?} {group:?}: {text}"
        );
    }
}

/// Sets one queue group for all of its endpoints, but one endpoint brings its own options.
struct ServiceQueue;

impl ServiceQueue {
    async fn get(self: Arc<Self>) -> Result<Value, HandlerError> {
        Ok(json!({"ok": true}))
    }
}

impl Service for ServiceQueue {
    fn name(&self) -> &str {
        "service-queue"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router.option(Endpoint::new().queue_group("workers"));
        router.request("sq.plain", Self::get).name("plain");
        router
            .request("own", Self::get)
            .name("own")
            .option(Endpoint::new().group("sq"));
    }
}

#[tokio::test]
async fn a_service_wide_queue_group_applies_to_endpoints_without_their_own_options() {
    let server = nats_server::NatsServer::start();
    let (nats, bus) = nats_bus(&server).await;
    let mut app = App::new()
        .bus(bus)
        .service(ServiceQueue)
        .start()
        .await
        .unwrap();
    app.add_routes("service-queue", |r: &mut Router<ServiceQueue>| {
        r.request("sq.late", ServiceQueue::get).name("late");
    })
    .await
    .unwrap();
    let client = nats.client();
    let info = &collect(client, "$SRV.INFO.service-queue").await[0];
    assert_eq!(
        info["endpoints"],
        json!([
            {"name": "plain", "subject": "sq.plain", "queue_group": "workers", "metadata": {}},
            {"name": "own", "subject": "sq.own", "queue_group": "q", "metadata": {}},
            {"name": "late", "subject": "sq.late", "queue_group": "workers", "metadata": {}},
        ])
    );
    for subject in ["sq.plain", "sq.own", "sq.late"] {
        assert_eq!(collect(client, subject).await, [json!({"ok": true})]);
    }
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// The NATS options through `#[kumi::service]`: `option = ..` on a route and a service-wide one
/// from a `#[routes]` method.
struct MacroApi;

#[kumi::service(name = "macro-api", version = "1.0.0")]
impl MacroApi {
    #[request("get", option = Endpoint::new().group("macro").metadata("via", "attribute"))]
    async fn get(&self) -> Result<Value, HandlerError> {
        Ok(json!({"ok": true}))
    }

    #[request("macro.plain")]
    async fn plain(&self) -> Result<Value, HandlerError> {
        Ok(json!({"ok": true}))
    }

    #[routes]
    fn service_wide(&self, router: &mut Router<Self>) {
        router.option(Endpoint::new().queue_group("mq"));
    }
}

#[tokio::test]
async fn macro_services_set_endpoint_options() {
    let server = nats_server::NatsServer::start();
    let (nats, bus) = nats_bus(&server).await;
    let app = App::new().bus(bus).service(MacroApi).start().await.unwrap();
    let client = nats.client();
    let info = &collect(client, "$SRV.INFO.macro-api").await[0];
    assert_eq!(
        info["endpoints"],
        json!([
            {"name": "get", "subject": "macro.get", "queue_group": "q", "metadata": {"via": "attribute"}},
            {"name": "plain", "subject": "macro.plain", "queue_group": "mq", "metadata": {}},
        ])
    );
    assert_eq!(collect(client, "macro.get").await, [json!({"ok": true})]);
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}
