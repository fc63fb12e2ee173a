//! NATS connection loss, server restarts and authentication, against `nats-server` processes the
//! tests start themselves (never the shared broker).

#![cfg(feature = "nats")]

#[path = "support/nats_server.rs"]
mod nats_server;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kumi::bus::SharedBus;
use kumi::nats::{CoreNats, JetStream, NatsBus};
use kumi::prelude::*;
use kumi::{App, RunningApp};
use serde_json::json;
use tokio::sync::mpsc;

struct Sink {
    tx: mpsc::UnboundedSender<u64>,
    durable: bool,
    work_ms: u64,
    /// Opt the route out of JetStream (on a `?jetstream=true` bus).
    core: bool,
}

impl Sink {
    async fn on_event(self: Arc<Self>, Data(v): Data<serde_json::Value>) {
        tokio::time::sleep(Duration::from_millis(self.work_ms)).await;
        let _ = self.tx.send(v["n"].as_u64().unwrap_or(u64::MAX));
    }
}

impl Service for Sink {
    fn name(&self) -> &str {
        "sink"
    }
    fn routes(&self, router: &mut Router<Self>) {
        let route = router
            .subscribe("resilience.events", Self::on_event)
            .concurrency(2);
        if self.durable {
            let _ = route.option(JetStream::durable().ack_wait(Duration::from_secs(2)));
        } else if self.core {
            let _ = route.option(CoreNats);
        }
    }
}

/// Connects to `url` and starts the sink service on it; returns the bus, the app and what the
/// sink receives.
async fn start_sink(
    url: &str,
    durable: bool,
    work_ms: u64,
    core: bool,
) -> (NatsBus, RunningApp, mpsc::UnboundedReceiver<u64>) {
    let nats = NatsBus::connect(url).await.unwrap();
    let bus: SharedBus = Arc::new(nats.clone());
    let (tx, rx) = mpsc::unbounded_channel();
    let app = App::new()
        .bus(bus)
        .service(Sink {
            tx,
            durable,
            work_ms,
            core,
        })
        .start()
        .await
        .unwrap();
    (nats, app, rx)
}

async fn wait_connected(bus: &NatsBus) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while bus.client().connection_state() != async_nats::connection::State::Connected {
        assert!(Instant::now() < deadline, "client never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn receive(rx: &mut mpsc::UnboundedReceiver<u64>, want: &BTreeSet<u64>) -> BTreeSet<u64> {
    let mut got = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !want.is_subset(&got) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(n)) => {
                got.insert(n);
            }
            _ => panic!(
                "missing {:?}; received {got:?}",
                want.difference(&got).collect::<Vec<_>>()
            ),
        }
    }
    got
}

#[tokio::test]
async fn core_subscription_resumes_after_server_restart() {
    let mut server = nats_server::NatsServer::start();
    let (nats, app, mut rx) = start_sink(&server.url(), false, 0, false).await;
    let client = app.client();
    for n in 0..5 {
        client
            .publish("resilience.events", &json!({"n": n}))
            .await
            .unwrap();
    }
    receive(&mut rx, &(0..5).collect()).await;

    server.restart();
    wait_connected(&nats).await;
    // Core NATS keeps nothing: what is published while the client is cut off may be lost. Probe
    // until the subscription delivers again, then check that it keeps delivering everything.
    let deadline = Instant::now() + Duration::from_secs(20);
    'probe: for i in 1000u64.. {
        assert!(Instant::now() < deadline, "the subscription never resumed");
        let _ = client.publish("resilience.events", &json!({"n": i})).await;
        let wait = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Ok(Some(n)) = tokio::time::timeout_at(wait, rx.recv()).await {
            if n >= 1000 {
                break 'probe;
            }
        }
    }
    for n in 5..10 {
        client
            .publish("resilience.events", &json!({"n": n}))
            .await
            .unwrap();
    }
    receive(&mut rx, &(5..10).collect()).await;
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn jetstream_durable_loses_nothing_across_server_restart() {
    let mut server = nats_server::NatsServer::start();
    let (nats, app, mut rx) =
        start_sink(&format!("{}?jetstream=true", server.url()), true, 50, false).await;
    let client = app.client();
    for n in 0..20 {
        // Confirmed publishes: Ok means stored in the stream.
        client
            .publish("resilience.events", &json!({"n": n}))
            .await
            .unwrap();
    }
    // Restart while most messages are still queued or in flight.
    tokio::time::sleep(Duration::from_millis(120)).await;
    server.restart();
    wait_connected(&nats).await;
    let got = receive(&mut rx, &(0..20).collect()).await;
    assert_eq!(got, (0..20).collect::<BTreeSet<u64>>());
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn jetstream_mode_publishes_on_core_nats_where_no_stream_captures() {
    let server = nats_server::NatsServer::start();
    let (_nats, app, mut rx) =
        start_sink(&format!("{}?jetstream=true", server.url()), false, 0, true).await;
    let client = app.client();
    // No stream captures the subject, but a core subscriber listens: a JetStream publish would
    // reach it and then wait for an ack no stream sends.
    let started = Instant::now();
    for n in 0..5 {
        client
            .publish("resilience.events", &json!({"n": n}))
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "publishes returned without waiting for a stream ack ({:?})",
        started.elapsed()
    );
    let got = receive(&mut rx, &(0..5).collect()).await;
    assert_eq!(got, (0..5).collect::<BTreeSet<u64>>());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.try_recv().is_err(), "each message delivered once");
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn an_existing_durable_gets_the_routes_max_ack_pending() {
    use async_nats::jetstream::{
        self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy,
    };
    let server = nats_server::NatsServer::start();
    // A durable left by an earlier deployment that ran the route with concurrency 1.
    let raw = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(raw);
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "KUMI_resilience_events".to_owned(),
            subjects: vec!["resilience.events".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
    let config = pull::Config {
        durable_name: Some("sink-resilience_events".to_owned()),
        filter_subject: "resilience.events".to_owned(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(2),
        max_ack_pending: 1,
        deliver_policy: DeliverPolicy::New,
        max_deliver: 7,
        description: Some("kept".to_owned()),
        ..Default::default()
    };
    stream.create_consumer(config).await.unwrap();
    // The route runs with concurrency 2 now: the durable is brought to 2, nothing else changed.
    let (_nats, app, mut rx) = start_sink(&server.url(), true, 0, false).await;
    let mut consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer("sink-resilience_events").await.unwrap();
    let info = consumer.info().await.unwrap().config.clone();
    assert_eq!(info.max_ack_pending, 2);
    assert_eq!(
        (info.max_deliver, info.description.as_deref()),
        (7, Some("kept"))
    );
    app.client()
        .publish("resilience.events", &json!({"n": 1}))
        .await
        .unwrap();
    receive(&mut rx, &BTreeSet::from([1])).await;
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn authentication_and_clear_errors() {
    let server = nats_server::NatsServer::start_with(&["--user", "kumi", "--pass", "s3cret"]);
    let url = server.url().replace("nats://", "nats://kumi:s3cret@");
    let bus = kumi::connect(&url)
        .await
        .expect("right credentials connect");
    assert!(
        !bus.url().contains("s3cret"),
        "password never shown: {}",
        bus.url()
    );

    let wrong = server.url().replace("nats://", "nats://kumi:wrong@");
    let err = kumi::connect(&wrong)
        .await
        .err()
        .expect("wrong password fails");
    let text = err.to_string();
    assert_eq!(err.kind(), kumi::ErrorKind::Connect);
    assert!(
        text.contains("kumi:***@127.0.0.1"),
        "names the URL without the password: {text}"
    );
    assert!(!text.contains("wrong"), "{text}");
}

#[tokio::test]
async fn token_and_nkey_authentication() {
    let server = nats_server::NatsServer::start_with(&["--auth", "t0ken"]);
    for url in [
        server.url().replace("nats://", "nats://t0ken@"),
        format!("{}?token=t0ken", server.url()),
    ] {
        let bus = kumi::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(
            !bus.url().contains("t0ken"),
            "token never shown: {}",
            bus.url()
        );
        bus.shutdown(Instant::now() + Duration::from_secs(1))
            .await
            .unwrap();
    }
    let err = kumi::connect(&format!("{}?token=wrong", server.url()))
        .await
        .err()
        .expect("a wrong token fails");
    assert_eq!(err.kind(), kumi::ErrorKind::Connect, "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");

    let user = nkeys::KeyPair::new_user();
    let config = std::env::temp_dir().join(format!("kumi-nkey-{}.conf", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let server = nats_server::NatsServer::start_with(&["-c", config.to_str().unwrap()]);
    let seed = user.seed().unwrap();
    let bus = kumi::connect(&format!("{}?nkey={seed}", server.url()))
        .await
        .expect("the nkey's seed signs the server's nonce");
    assert!(
        !bus.url().contains(&seed),
        "seed never shown: {}",
        bus.url()
    );
    let other = nkeys::KeyPair::new_user().seed().unwrap();
    let err = kumi::connect(&format!("{}?nkey={other}", server.url()))
        .await
        .err()
        .expect("an unknown nkey fails");
    assert_eq!(err.kind(), kumi::ErrorKind::Connect, "{err}");
    let missing = kumi::connect(&format!("{}?creds=/nonexistent/app.creds", server.url()))
        .await
        .err()
        .expect("a missing credentials file fails");
    assert!(
        missing
            .to_string()
            .contains("cannot read credentials file /nonexistent/app.creds"),
        "{missing}"
    );
    let _ = std::fs::remove_file(config);
}

/// The connection's name as the server's monitoring endpoint lists it.
async fn connection_names(monitor_port: u16) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", monitor_port))
        .await
        .expect("monitoring port");
    stream
        .write_all(b"GET /connz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let body = &response[response.find("\r\n\r\n").expect("HTTP response") + 4..];
    let connz: serde_json::Value = serde_json::from_str(body).expect("connz JSON");
    connz["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_connection_is_named_after_the_services_and_their_instance_id() {
    let monitor_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = nats_server::NatsServer::start_with(&["-m", &monitor_port.to_string()]);
    let (tx, _rx) = mpsc::unbounded_channel();
    let app = kumi::App::new()
        .connectors(kumi::connectors())
        .bus_url(server.url())
        .service(Sink {
            tx,
            durable: false,
            work_ms: 0,
            core: false,
        })
        .start()
        .await
        .expect("start");
    let id = app
        .identities()
        .next()
        .expect("one service")
        .instance_id
        .clone();
    let names = connection_names(monitor_port).await;
    let expected = format!("sink-{id}");
    assert!(names.contains(&expected), "{expected} in {names:?}");
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn bare_json_clients_interoperate_with_raw_routes() {
    struct Raw(mpsc::UnboundedSender<serde_json::Value>);
    impl Raw {
        async fn on(
            self: Arc<Self>,
            Data(v): Data<serde_json::Value>,
            ctx: Context,
        ) -> Result<(), HandlerError> {
            let _ = self.0.send(v.clone());
            ctx.publish_with(
                "interop.out",
                &json!({"seen": v}),
                PublishOptions::new().envelope(Arc::new(kumi::envelope::Raw)),
            )
            .await?;
            Ok(())
        }
    }
    impl Service for Raw {
        fn name(&self) -> &str {
            "interop"
        }
        fn routes(&self, router: &mut Router<Self>) {
            router
                .subscribe("interop.in", Self::on)
                .envelope(kumi::envelope::Raw);
        }
    }
    let server = nats_server::NatsServer::start();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = App::new()
        .bus(kumi::nats::connect(&server.url()).await.unwrap())
        .service(Raw(tx))
        .start()
        .await
        .unwrap();
    // A plain NATS client, knowing nothing of kumi.
    let plain = async_nats::connect(server.url()).await.unwrap();
    let mut out = plain.subscribe("interop.out").await.unwrap();
    plain.flush().await.unwrap();
    plain
        .publish("interop.in", r#"{"order": 7}"#.into())
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, json!({"order": 7}));
    let msg = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::StreamExt::next(&mut out),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&msg.payload).unwrap(),
        json!({"seen": {"order": 7}})
    );
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn lame_duck_mode_asks_the_process_to_drain() {
    let server = nats_server::NatsServer::start();
    let nats = NatsBus::connect(&server.url()).await.unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let app = App::new()
        .bus(Arc::new(nats))
        .service(Sink {
            tx,
            durable: false,
            work_ms: 0,
            core: false,
        })
        .start()
        .await
        .unwrap();
    server.lame_duck();
    let reason = tokio::time::timeout(Duration::from_secs(10), app.health().stop_requested())
        .await
        .expect("a stop is requested when the server enters lame duck mode");
    assert!(reason.contains("lame duck"), "{reason}");
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Starts `service` on a server of its own and returns the startup error it must end with.
async fn start_error<S: Service>(service: S) -> kumi::Error {
    let server = nats_server::NatsServer::start();
    let nats = NatsBus::connect(&server.url()).await.unwrap();
    App::new()
        .bus(Arc::new(nats))
        .service(service)
        .start()
        .await
        .expect_err("the service must not start")
}

/// Two durable routes whose subjects make the same stream name.
struct LookAlike;

impl LookAlike {
    async fn on_event(self: Arc<Self>) {}
}

impl Service for LookAlike {
    fn name(&self) -> &str {
        "look-alike"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router
            .subscribe("stock.level", Self::on_event)
            .option(JetStream::durable());
        router
            .subscribe("stock_level", Self::on_event)
            .option(JetStream::durable());
    }
}

#[tokio::test]
async fn subjects_that_make_the_same_stream_name_are_a_clear_error() {
    let err = start_error(LookAlike).await;
    let text = err.to_string();
    assert_eq!(err.kind(), kumi::ErrorKind::Config, "{text}");
    assert!(
        text.contains("'KUMI_stock_level'")
            && text.contains("'stock_level'")
            && text.contains("JetStream::stream"),
        "{text}"
    );
}

/// A NATS JWT (`ed25519-nkey`) for `subject` with the `nats` claims, signed by `issuer`.
fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = json!({
        "jti": format!("{:X}", uuid::Uuid::new_v4().as_u128()),
        "iat": 1_700_000_000u64,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let payload = b64.encode(serde_json::to_vec(&claims).unwrap());
    let signed = format!("{header}.{payload}");
    let signature = b64.encode(issuer.sign(signed.as_bytes()).unwrap());
    format!("{signed}.{signature}")
}

#[tokio::test]
async fn a_credentials_file_authenticates_in_operator_mode() {
    // Operator, account and user keys, their JWTs, and a server that trusts the operator.
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        "kumi-test",
        json!({"type": "operator", "version": 2}),
    );
    let unlimited = json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                           "wildcards": true, "conn": -1, "leaf": -1});
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "app",
        json!({"type": "account", "version": 2, "limits": unlimited}),
    );
    // JetStream (the test servers run with -js) needs a system account in operator mode.
    let system = nkeys::KeyPair::new_account();
    let system_jwt = nats_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        json!({"type": "account", "version": 2, "limits": unlimited}),
    );
    let user_jwt = nats_jwt(
        &account,
        &user.public_key(),
        "orders",
        json!({"type": "user", "version": 2, "pub": {}, "sub": {},
               "subs": -1, "data": -1, "payload": -1}),
    );
    let dir = std::env::temp_dir().join(format!("kumi-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("server.conf");
    std::fs::write(
        &config,
        format!(
            "operator: {operator_jwt}\nsystem_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {app}: {account_jwt}\n  {sys}: {system_jwt}\n}}\n",
            app = account.public_key(),
            sys = system.public_key(),
        ),
    )
    .unwrap();
    let creds = dir.join("orders.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    )
    .unwrap();
    let server = nats_server::NatsServer::start_with(&["-c", config.to_str().unwrap()]);

    let nats = NatsBus::connect(&format!("{}?creds={}", server.url(), creds.display()))
        .await
        .expect("the creds file's user JWT and seed authenticate");
    // The connection works: an event published over it reaches a kumi route.
    let bus: SharedBus = Arc::new(nats.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = App::new()
        .bus(bus)
        .service(Sink {
            tx,
            durable: false,
            work_ms: 0,
            core: true,
        })
        .start()
        .await
        .expect("start over the creds connection");
    app.client()
        .publish("resilience.events", &json!({"n": 7}))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(got.ok().flatten(), Some(7));
    app.shutdown(Duration::from_secs(5)).await.unwrap();

    // Without credentials the server refuses, and the error says so.
    let err = NatsBus::connect(&server.url())
        .await
        .expect_err("no credentials: refused");
    assert_eq!(err.kind(), kumi::ErrorKind::Connect, "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Every event route durable, service-wide; its request route stays a core NATS endpoint.
struct DurableByDefault;

impl DurableByDefault {
    async fn on_event(self: Arc<Self>) {}

    async fn get(self: Arc<Self>) -> Result<serde_json::Value, HandlerError> {
        Ok(json!({"ok": true}))
    }
}

impl Service for DurableByDefault {
    fn name(&self) -> &str {
        "durable-default"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router.option(JetStream::durable());
        router.subscribe("dd.events", Self::on_event);
        router.request("dd.get", Self::get);
    }
}

#[tokio::test]
async fn a_service_wide_jetstream_option_makes_event_routes_durable_and_leaves_requests_alone() {
    let server = nats_server::NatsServer::start();
    let nats = NatsBus::connect(&server.url()).await.unwrap();
    let app = App::new()
        .bus(Arc::new(nats.clone()))
        .service(DurableByDefault)
        .start()
        .await
        .expect("a request route ignores the service-wide JetStream option");
    let listens: Vec<(String, String)> = app
        .routes()
        .map(|r| (r.topic.clone(), r.listens.clone()))
        .collect();
    assert!(listens[0].1.contains("JetStream"), "{listens:?}");
    assert!(listens[1].1.starts_with("endpoint dd.get"), "{listens:?}");
    let reply = nats
        .client()
        .request("dd.get", "{}".into())
        .await
        .expect("the endpoint answers");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap(),
        json!({"ok": true})
    );
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// A request route that asks for JetStream itself.
struct DurableRequest;

impl Service for DurableRequest {
    fn name(&self) -> &str {
        "durable-request"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router
            .request("dr.get", |_: Arc<Self>| async {
                Ok::<_, HandlerError>(json!({}))
            })
            .option(JetStream::durable());
    }
}

#[tokio::test]
async fn a_request_route_that_sets_jetstream_itself_is_a_clear_error() {
    let err = start_error(DurableRequest).await;
    assert_eq!(err.kind(), kumi::ErrorKind::Config, "{err}");
    assert!(
        err.to_string()
            .contains("request route 'dr.get' cannot use JetStream"),
        "{err}"
    );
}
