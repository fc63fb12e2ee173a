//! Requests per second of kumi HTTP routes against the same handlers on bare axum. Not a test:
//! it prints a table.
//!
//! ```text
//! cargo bench -p kumi-http --bench http_vs_axum
//! KUMI_BENCH_SECS=5 KUMI_BENCH_CONNS=64 cargo bench -p kumi-http --bench http_vs_axum
//! ```
//!
//! - **axum**: `axum::serve` with a `Router` of the handlers below (TCP_NODELAY on, like kumi).
//! - **kumi**: the same handler functions registered on a kumi service, served by
//!   `HttpTransport` (health endpoints, drain gate, body limit, request timeout, panic
//!   recovery, error-handler check and access-log event per request; no tracing subscriber is
//!   installed, as in a service logging at `warn`).
//!
//! Both servers run in this process on one tokio runtime, and one load generator drives both:
//! `KUMI_BENCH_CONNS` (32) keep-alive HTTP/1.1 connections (hyper clients), each sending
//! requests back to back for `KUMI_BENCH_SECS` (2) seconds per run. Runs alternate (axum, kumi,
//! axum, kumi...) for `KUMI_BENCH_ROUNDS` (5) rounds so that background noise hits both alike;
//! the median run of each is reported, with the ratio kumi/axum and the median of the
//! per-round ratios. On a small machine the load generator shares the cores with the server:
//! compare ratios, not absolute numbers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Json;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use kumi_core::{App, Router, Service};
use kumi_http::{HttpRouterExt, HttpTransport};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    items: Vec<String>,
    cents: u64,
}

async fn hello() -> &'static str {
    "Hello, World!"
}

async fn order(Path(id): Path<u64>) -> Json<Order> {
    Json(Order {
        id,
        customer: "customer-42".into(),
        items: vec!["green tea".into(), "mochi".into()],
        cents: 1250,
    })
}

async fn echo(Json(order): Json<Order>) -> Json<Order> {
    Json(order)
}

struct Bench;

impl Service for Bench {
    fn name(&self) -> &str {
        "bench"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.get("/hello", hello);
        router.get("/orders/{id}", order);
        router.post("/echo", echo);
    }
}

struct Scenario {
    name: &'static str,
    method: Method,
    path: &'static str,
    body: &'static str,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "GET /hello (text)",
        method: Method::GET,
        path: "/hello",
        body: "",
    },
    Scenario {
        name: "GET /orders/{id} (path + JSON)",
        method: Method::GET,
        path: "/orders/42",
        body: "",
    },
    Scenario {
        name: "POST /echo (JSON in + out)",
        method: Method::POST,
        path: "/echo",
        body: r#"{"id":42,"customer":"customer-42","items":["green tea","mochi"],"cents":1250}"#,
    },
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests per second that `conns` keep-alive connections get from `addr` in `duration`.
async fn load(addr: SocketAddr, scenario: &Scenario, conns: u64, duration: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let stop = Arc::clone(&stop);
        let done = Arc::clone(&done);
        let method = scenario.method.clone();
        let path = scenario.path;
        let body = Bytes::from_static(scenario.body.as_bytes());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut request = Request::builder()
                    .method(method.clone())
                    .uri(path)
                    .header("host", "localhost");
                if !body.is_empty() {
                    request = request.header("content-type", "application/json");
                }
                let request = request.body(Full::new(body.clone())).expect("request");
                let response = sender.send_request(request).await.expect("response");
                assert!(response.status().is_success(), "{}", response.status());
                let body = response.into_body().collect().await.expect("body");
                std::hint::black_box(body);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("load task");
    }
    count as f64 / elapsed.as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let secs = env_or("KUMI_BENCH_SECS", 2);
    let conns = env_or("KUMI_BENCH_CONNS", 32);
    let rounds = env_or("KUMI_BENCH_ROUNDS", 5).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let axum_addr = listener.local_addr().expect("addr");
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let bare = axum::Router::new()
            .route("/hello", get(hello))
            .route("/orders/{id}", get(order))
            .route("/echo", post(echo));
        tokio::spawn(async move { axum::serve(listener, bare).await });

        let http = HttpTransport::bind("127.0.0.1:0");
        let app = App::new()
            .transport(http.shared())
            .service(Bench)
            .start()
            .await
            .expect("kumi starts");
        let kumi_addr = http.local_addr().expect("kumi listens");

        println!(
            "http_vs_axum: {conns} connections, {secs} s per run, median of {rounds} alternating runs each, {} worker threads",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "{:<34} {:>12} {:>12} {:>10} {:>14}",
            "scenario", "axum req/s", "kumi req/s", "kumi/axum", "median ratio"
        );
        let duration = Duration::from_secs(secs);
        for scenario in &SCENARIOS {
            // Warm both up (connections, allocator, caches).
            load(axum_addr, scenario, conns, Duration::from_millis(300)).await;
            load(kumi_addr, scenario, conns, Duration::from_millis(300)).await;
            let (mut axum_runs, mut kumi_runs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                let axum_rps = load(axum_addr, scenario, conns, duration).await;
                let kumi_rps = load(kumi_addr, scenario, conns, duration).await;
                axum_runs.push(axum_rps);
                kumi_runs.push(kumi_rps);
                ratios.push(kumi_rps / axum_rps);
            }
            let (axum_rps, kumi_rps) = (median(&mut axum_runs), median(&mut kumi_runs));
            println!(
                "{:<34} {:>12.0} {:>12.0} {:>10.3} {:>14.3}",
                scenario.name,
                axum_rps,
                kumi_rps,
                kumi_rps / axum_rps,
                median(&mut ratios)
            );
        }
        app.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    });
}
