//! Health during startup and drain, and the graceful drain itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use kumi_core::message::Extensions;
use kumi_core::settlement::DrainReport;
use kumi_core::{
    async_trait, App, BoxError, Client, Health, Router, Service, ServiceHandle, Transport,
};
use kumi_http::{HealthPaths, HttpRouterExt, HttpTransport};
use tokio::sync::{mpsc, watch};

use crate::support::{get, within, Conn};

/// A transport whose start blocks until released, to hold the process in "starting".
struct SlowStart {
    entered: mpsc::Sender<()>,
    release: watch::Receiver<bool>,
}

#[async_trait]
impl Transport for SlowStart {
    fn name(&self) -> &'static str {
        "slow-start"
    }

    fn attach(&self, _: &ServiceHandle, _: &mut Extensions) -> kumi_core::Result<()> {
        Ok(())
    }

    async fn start(&self, _health: Health) -> kumi_core::Result<Vec<String>> {
        let _ = self.entered.send(()).await;
        let mut release = self.release.clone();
        let _ = release.wait_for(|r| *r).await;
        Ok(Vec::new())
    }

    async fn shutdown(&self, _deadline: Instant) -> kumi_core::Result<DrainReport> {
        Ok(DrainReport::default())
    }
}

struct Hello;

impl Hello {
    async fn hello(self: Arc<Self>) -> &'static str {
        "hello"
    }
}

impl Service for Hello {
    fn name(&self) -> &str {
        "hello"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.get("/hello", Self::hello);
    }
}

#[tokio::test]
async fn not_ready_until_every_transport_started() {
    let http = HttpTransport::bind("127.0.0.1:0");
    let (entered_tx, mut entered) = mpsc::channel(1);
    let (release, release_rx) = watch::channel(false);
    let starting = tokio::spawn(
        App::new()
            .transport(http.shared())
            .transport(Arc::new(SlowStart {
                entered: entered_tx,
                release: release_rx,
            }))
            .service(Hello)
            .start(),
    );
    within("the second transport starting", entered.recv()).await;
    let addr = http.local_addr().expect("the HTTP server started first");
    let ready = get(addr, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["status"], "not ready");
    assert!(ready.json()["reasons"][0]
        .as_str()
        .unwrap()
        .starts_with("starting"));
    assert_eq!(get(addr, "/health/live").await.status, StatusCode::OK);

    release.send_replace(true);
    let app = within("startup", starting).await.unwrap().unwrap();
    let ready = get(addr, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(ready.header("cache-control"), Some("no-store"));
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// A service with a slow route and a `stopping` hook that waits, to look inside the drain.
struct Slow {
    entered: mpsc::Sender<()>,
    finish: watch::Receiver<bool>,
    stopping: mpsc::Sender<()>,
    stop: watch::Receiver<bool>,
}

impl Slow {
    async fn slow(self: Arc<Self>) -> &'static str {
        let _ = self.entered.send(()).await;
        let mut finish = self.finish.clone();
        let _ = finish.wait_for(|f| *f).await;
        "finished"
    }

    async fn hello(self: Arc<Self>) -> &'static str {
        "hello"
    }
}

#[async_trait]
impl Service for Slow {
    fn name(&self) -> &str {
        "slow"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.get("/slow", Self::slow);
        router.get("/hello", Self::hello);
    }

    async fn stopping(&self, _client: &Client) -> Result<(), BoxError> {
        let _ = self.stopping.send(()).await;
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|s| *s).await;
        Ok(())
    }
}

struct SlowHandles {
    entered: mpsc::Receiver<()>,
    finish: watch::Sender<bool>,
    stopping: mpsc::Receiver<()>,
    stop: watch::Sender<bool>,
}

fn slow() -> (Slow, SlowHandles) {
    let (entered_tx, entered) = mpsc::channel(4);
    let (finish, finish_rx) = watch::channel(false);
    let (stopping_tx, stopping) = mpsc::channel(1);
    let (stop, stop_rx) = watch::channel(false);
    (
        Slow {
            entered: entered_tx,
            finish: finish_rx,
            stopping: stopping_tx,
            stop: stop_rx,
        },
        SlowHandles {
            entered,
            finish,
            stopping,
            stop,
        },
    )
}

#[tokio::test]
async fn drain_refuses_new_requests_finishes_in_flight_ones_then_closes() {
    let http = HttpTransport::bind("127.0.0.1:0");
    let (service, mut h) = slow();
    let app = App::new()
        .transport(http.shared())
        .service(service)
        .start()
        .await
        .unwrap();
    let addr = http.local_addr().unwrap();

    // A request in flight on one connection, an idle keep-alive connection next to it.
    let in_flight = tokio::spawn(async move { Conn::open(addr).await.get("/slow").await });
    within("the slow request", h.entered.recv()).await;
    let mut keep_alive = Conn::open(addr).await;
    assert_eq!(keep_alive.get("/hello").await.text(), "hello");

    // Shutdown begins: the process is draining while the stopping hook runs.
    let shutdown = tokio::spawn(app.shutdown(Duration::from_secs(10)));
    within("the stopping hook", h.stopping.recv()).await;

    let refused = within("a request while draining", keep_alive.get("/hello")).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(refused.json()["error"]
        .as_str()
        .unwrap()
        .contains("shutting down"));
    let ready = get(addr, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().contains("draining"), "{}", ready.text());
    assert_eq!(get(addr, "/health/live").await.status, StatusCode::OK);

    // The HTTP transport drains: no new connections; the request in flight still completes.
    h.stop.send_replace(true);
    within("the HTTP drain", http.drain().draining()).await;
    h.finish.send_replace(true);
    let reply = within("the in-flight request", in_flight).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "finished");

    let report = within("shutdown", shutdown).await.unwrap().unwrap();
    assert_eq!(report.abandoned, 0);
    assert!(report.settled >= 1, "{report:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn work_still_running_at_the_deadline_is_abandoned() {
    let http = HttpTransport::bind("127.0.0.1:0");
    let (service, mut h) = slow();
    h.stop.send_replace(true);
    let app = App::new()
        .transport(http.shared())
        .service(service)
        .start()
        .await
        .unwrap();
    let addr = http.local_addr().unwrap();
    let stuck = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<
            _,
            http_body_util::Full<bytes::Bytes>,
        >(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
        tokio::spawn(conn);
        sender
            .send_request(crate::support::build(
                hyper::Method::GET,
                "/slow",
                None,
                bytes::Bytes::new(),
                &[],
            ))
            .await
    });
    within("the slow request", h.entered.recv()).await;
    let started = Instant::now();
    let report = within("shutdown", app.shutdown(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(report.abandoned, 1, "{report:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The client sees its connection cut.
    assert!(within("the cut request", stuck).await.unwrap().is_err());
    drop(h.finish);
}

#[tokio::test]
async fn an_address_set_always_listens_and_paths_are_configurable() {
    struct NoRoutes;
    impl Service for NoRoutes {
        fn name(&self) -> &str {
            "quiet"
        }
        fn routes(&self, _: &mut Router<Self>) {}
    }
    let http = HttpTransport::builder()
        .addr("127.0.0.1:0")
        .health_paths(HealthPaths {
            live: Some("/livez".into()),
            ready: Some("/readyz".into()),
        })
        .build();
    let app = App::new()
        .transport(http.shared())
        .service(NoRoutes)
        .start()
        .await
        .unwrap();
    let addr = http
        .local_addr()
        .expect("listens without routes when an address is set");
    assert_eq!(get(addr, "/livez").await.status, StatusCode::OK);
    assert_eq!(get(addr, "/readyz").await.status, StatusCode::OK);
    assert_eq!(
        get(addr, "/health/live").await.status,
        StatusCode::NOT_FOUND
    );
    let lines = app.transport_lines().join("\n");
    assert!(
        lines.contains("/readyz") && lines.contains(&format!("http://{addr}")),
        "{lines}"
    );
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn unset_address_and_no_routes_means_no_server() {
    struct NoRoutes;
    impl Service for NoRoutes {
        fn name(&self) -> &str {
            "quiet"
        }
        fn routes(&self, _: &mut Router<Self>) {}
    }
    let transport =
        kumi_http::transport_from_config(&kumi_core::runner::Config::default()).unwrap();
    let app = App::new()
        .transport(transport)
        .service(NoRoutes)
        .start()
        .await
        .unwrap();
    assert!(app.transport_lines().is_empty());
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[test]
fn a_bad_address_setting_is_a_config_error_naming_it() {
    let config = kumi_core::runner::Config {
        http: Some("localhost".into()),
        ..Default::default()
    };
    let Err(err) = kumi_http::transport_from_config(&config) else {
        panic!("accepted a bad address");
    };
    assert_eq!(err.kind(), kumi_core::ErrorKind::Config);
    assert!(err.to_string().contains("KUMI_HTTP_ADDR"), "{err}");
}
