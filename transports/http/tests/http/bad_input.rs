//! Bad input gets a clear JSON error, never a crash: malformed JSON, oversized bodies and
//! headers, unknown routes (through a custom 404 handler), wrong methods, panics, timeouts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use kumi_core::{App, Router, RunningApp, Service};
use kumi_http::{ErrorInfo, HttpRouterExt, HttpTransport, Json, Path};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::support::{build, get, raw, raw_status, send, Conn};

#[derive(Debug, Deserialize)]
struct Order {
    id: u64,
}

struct Api;

impl Api {
    async fn hello(self: Arc<Self>) -> &'static str {
        "hello"
    }

    async fn order(self: Arc<Self>, Json(order): Json<Order>) -> Json<Value> {
        Json(json!({ "id": order.id }))
    }

    async fn raw_body(body: Bytes) -> String {
        body.len().to_string()
    }

    async fn item(Path(id): Path<u32>) -> String {
        id.to_string()
    }

    async fn boom(self: Arc<Self>) -> &'static str {
        panic!("boom: a handler bug")
    }

    async fn forever(self: Arc<Self>) -> &'static str {
        std::future::pending::<()>().await;
        "never"
    }

    async fn missing() -> StatusCode {
        StatusCode::NOT_FOUND
    }

    async fn missing_with_body() -> (StatusCode, &'static str) {
        (StatusCode::NOT_FOUND, "my own 404")
    }

    async fn not_found(self: Arc<Self>, info: ErrorInfo) -> Json<Value> {
        Json(json!({
            "custom": true,
            "path": info.uri().path(),
            "message": info.message(),
        }))
    }
}

impl Service for Api {
    fn name(&self) -> &str {
        "api"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.get("/hello", Self::hello);
        router.post("/orders", Self::order);
        router.post("/raw", Self::raw_body);
        router.get("/items/{id}", Self::item);
        router.get("/boom", Self::boom);
        router.get("/forever", Self::forever);
        router.get("/missing", Self::missing);
        router.get("/missing-with-body", Self::missing_with_body);
        router.http_error(StatusCode::NOT_FOUND, Self::not_found);
    }
}

async fn start() -> (RunningApp, std::net::SocketAddr) {
    let http = HttpTransport::builder()
        .addr("127.0.0.1:0")
        .body_limit(1024)
        .max_header_bytes(8 * 1024)
        .request_timeout(Some(Duration::from_millis(200)))
        .build();
    let app = App::new()
        .transport(http.shared())
        .service(Api)
        .start()
        .await
        .expect("start");
    let addr = http.local_addr().expect("listening");
    (app, addr)
}

#[tokio::test]
async fn malformed_json_is_a_json_400_415_or_422() {
    let (app, addr) = start().await;
    let ok = send(
        addr,
        build(
            Method::POST,
            "/orders",
            Some("application/json"),
            r#"{"id": 7}"#,
            &[],
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json(), json!({ "id": 7 }));

    let syntax = send(
        addr,
        build(
            Method::POST,
            "/orders",
            Some("application/json"),
            "{not json",
            &[],
        ),
    )
    .await;
    assert_eq!(syntax.status, StatusCode::BAD_REQUEST, "{}", syntax.text());
    assert_eq!(syntax.header("content-type"), Some("application/json"));
    let error = syntax.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("JSON"), "{error}");

    let shape = send(
        addr,
        build(
            Method::POST,
            "/orders",
            Some("application/json"),
            r#"{"id": "seven"}"#,
            &[],
        ),
    )
    .await;
    assert_eq!(shape.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        shape.json()["error"].as_str().unwrap().contains("id"),
        "{}",
        shape.text()
    );

    let no_type = send(
        addr,
        build(Method::POST, "/orders", None, r#"{"id": 7}"#, &[]),
    )
    .await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(no_type.json()["error"].is_string());

    let bad_param = get(addr, "/items/seven").await;
    assert_eq!(bad_param.status, StatusCode::BAD_REQUEST);
    assert!(bad_param.json()["error"].is_string());
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let (app, addr) = start().await;
    let big = vec![b'x'; 4096];
    // Declared too large: refused before the handler runs.
    let declared = send(
        addr,
        build(
            Method::POST,
            "/raw",
            Some("application/octet-stream"),
            big.clone(),
            &[],
        ),
    )
    .await;
    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(declared.json()["error"].as_str().unwrap().contains("1024"));
    // Streamed (chunked, no length): cut off at the limit.
    let chunk = "x".repeat(4096);
    let request = format!(
        "POST /raw HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let streamed = raw(addr, &request).await;
    assert_eq!(raw_status(&streamed), 413, "{streamed}");
    // Within the limit: fine.
    let small = send(
        addr,
        build(
            Method::POST,
            "/raw",
            Some("application/octet-stream"),
            vec![b'x'; 1000],
            &[],
        ),
    )
    .await;
    assert_eq!(small.status, StatusCode::OK);
    assert_eq!(small.text(), "1000");
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let (app, addr) = start().await;
    let huge = "y".repeat(16 * 1024);
    let request =
        format!("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(&raw(addr, &request).await), 431);
    // The server is still fine.
    assert_eq!(get(addr, "/hello").await.text(), "hello");
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn unknown_route_goes_through_the_custom_404_handler() {
    let (app, addr) = start().await;
    let reply = get(addr, "/nowhere").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let body = reply.json();
    assert_eq!(body["custom"], true);
    assert_eq!(body["path"], "/nowhere");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("no route for GET /nowhere"));
    // An empty-bodied 404 from a handler gets the custom body too...
    let empty = get(addr, "/missing").await;
    assert_eq!(empty.status, StatusCode::NOT_FOUND);
    assert_eq!(empty.json()["custom"], true);
    // ...one with a body of its own is left alone.
    let own = get(addr, "/missing-with-body").await;
    assert_eq!(own.status, StatusCode::NOT_FOUND);
    assert_eq!(own.text(), "my own 404");
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let (app, addr) = start().await;
    let reply = send(
        addr,
        build(Method::DELETE, "/hello", None, Bytes::new(), &[]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let allow = reply.header("allow").unwrap_or_default();
    assert!(allow.contains("GET"), "allow: {allow}");
    assert!(reply.json()["error"]
        .as_str()
        .unwrap()
        .contains("DELETE is not allowed for /hello"));
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_panicking_handler_gives_500_and_the_server_keeps_running() {
    let (app, addr) = start().await;
    let mut conn = Conn::open(addr).await;
    for _ in 0..3 {
        let reply = conn.get("/boom").await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.json(), json!({ "error": "internal server error" }));
    }
    // Same connection, still served.
    assert_eq!(conn.get("/hello").await.text(), "hello");
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_slow_handler_times_out_with_503() {
    let (app, addr) = start().await;
    let reply = get(addr, "/forever").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.json()["error"].as_str().unwrap().contains("timeout"));
    assert_eq!(get(addr, "/hello").await.status, StatusCode::OK);
    let report = app.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.abandoned, 0);
}
