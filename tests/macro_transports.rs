//! `#[kumi::service]` with the transport attributes: `#[http]`, `#[http_error]`, `#[websocket]`
//! and `#[schedule]` register real routes, which answer over real sockets.

use std::sync::Arc;
use std::time::Duration;

use kumi::http::axum::response::Response;
use kumi::http::{BusContext, ErrorInfo, HttpError, HttpTransport, Json, Path, StatusCode};
use kumi::prelude::*;
use kumi::schedule::{ScheduleTransport, ScheduledTime, Tick};
use kumi::websocket::{close_code, Session, SessionClosed, SessionSender, WsClient};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
}

/// What the handlers saw.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Created(Order),
    Deleted(u64),
    Joined(String),
    Left(String, Option<u16>),
    Tick { immediate: bool },
    StockChecked,
}

struct Shop {
    seen: mpsc::UnboundedSender<Seen>,
}

impl Shop {
    fn record(&self, seen: Seen) {
        // The receiver outlives every test; a closed channel would only drop the record.
        let _ = self.seen.send(seen);
    }
}

/// Marks responses of the route with the layer.
async fn tag(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("x-layer", "orders".parse().expect("a valid header value"));
    response
}

const REPORT_TZ: &str = "Europe/Stockholm";

#[kumi::service(name = "shop")]
impl Shop {
    #[http(GET, "/orders/{id}")]
    async fn get_order(&self, Path(id): Path<u64>) -> Result<Json<Order>, HttpError> {
        if id == 0 {
            return Err(HttpError::not_found("no order 0"));
        }
        Ok(Json(Order {
            id,
            item: "green tea".to_owned(),
        }))
    }

    /// `self: Arc<Self>`, a bus context, a body extractor last; a name and a layer.
    #[http(
        POST,
        "/orders",
        name = "create_order",
        layer = kumi::http::axum::middleware::map_response(tag)
    )]
    async fn create(
        self: Arc<Self>,
        ctx: BusContext,
        Json(order): Json<Order>,
    ) -> Result<StatusCode, HttpError> {
        ctx.publish("orders.created", &order)
            .await
            .map_err(|e| HttpError::unavailable(e.to_string()))?;
        self.record(Seen::Created(order));
        Ok(StatusCode::CREATED)
    }

    /// No receiver, and the service as an explicit extractor.
    #[http(DELETE, "/orders/{id}")]
    async fn delete(this: Arc<Self>, Path(id): Path<u64>) -> StatusCode {
        this.record(Seen::Deleted(id));
        StatusCode::NO_CONTENT
    }

    #[http_error(404)]
    async fn not_found(&self, info: ErrorInfo) -> Json<serde_json::Value> {
        Json(serde_json::json!({
            "error": "custom-not-found",
            "path": info.uri().path(),
            "message": info.message(),
        }))
    }

    /// Echoes text frames; the room comes from the path.
    #[websocket(
        "/ws/{room}",
        max_message_size = 65536,
        ping_interval = "20s",
        pong_timeout = "20s",
        close_timeout = "1s",
        send_queue = 16,
        on_connect = joined,
        on_close = left,
        name = "chat"
    )]
    async fn chat(self: Arc<Self>, mut session: Session) -> Result<(), kumi::Error> {
        while let Some(frame) = session.recv().await {
            let text = frame.as_text().unwrap_or_default();
            let room = session.info().param("room").unwrap_or_default().to_owned();
            session.send_text(format!("{room}: {text}")).await?;
        }
        Ok(())
    }

    /// Refuses the `closed` room.
    async fn joined(&self, sender: SessionSender) -> Result<(), String> {
        let room = sender.info().param("room").unwrap_or_default().to_owned();
        if room == "closed" {
            return Err("this room is closed".to_owned());
        }
        self.record(Seen::Joined(room));
        Ok(())
    }

    /// An associated function as a hook.
    async fn left(this: Arc<Self>, closed: SessionClosed) {
        let room = closed.info().param("room").unwrap_or_default().to_owned();
        this.record(Seen::Left(room, closed.close().code));
    }

    /// A websocket endpoint without options, with a `&self` handler.
    #[websocket("/plain")]
    async fn plain(&self, session: Session) {
        let _ = session.send_text("hello").await;
    }

    /// Fires at start and every 100 ms; a second, hourly schedule on the same method.
    #[schedule("100ms", immediately)]
    #[schedule(Duration::from_secs(3600), name = "hourly_tick")]
    async fn tick(&self, tick: Tick, ScheduledTime(_at): ScheduledTime) {
        self.record(Seen::Tick {
            immediate: tick.is_immediate(),
        });
    }

    #[schedule(
        "0 0 0 1 1 *",
        tz = "Europe/Stockholm",
        concurrency = 2,
        timeout = "30s"
    )]
    async fn new_year(self: Arc<Self>) {}

    #[schedule("08:30", timezone = REPORT_TZ)]
    #[schedule("weekdays", name = "weekday_report")]
    #[schedule(
        kumi::schedule::Trigger::timestamp("2099-12-01T08:00:00Z"),
        name = "far_future"
    )]
    async fn report(_this: Arc<Self>, _ctx: Context) {}

    /// One handler on a topic, an HTTP route and a schedule at once.
    #[subscribe("stock.check")]
    #[http(POST, "/stock/check")]
    #[schedule("1h", name = "stock_check")]
    async fn check_stock(self: Arc<Self>) {
        self.record(Seen::StockChecked);
    }
}

/// A raw HTTP/1.1 exchange: the status, the headers (names lower case) and the body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends one request with `Connection: close` and reads the whole response.
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: Option<&str>) -> Reply {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(body.unwrap_or_default());
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send the request");
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .expect("read the response");
        raw
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the HTTP exchange finishes in time");
    let raw = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Decodes a chunked body.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for a handler")
        .expect("the service dropped its sender")
}

/// The next record that is not a tick (ticks arrive all the time).
async fn next_non_tick(rx: &mut mpsc::UnboundedReceiver<Seen>, what: &str) -> Seen {
    let wait = async {
        loop {
            match rx.recv().await {
                Some(Seen::Tick { .. }) => continue,
                Some(other) => return other,
                None => panic!("the service dropped its sender"),
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

struct Running {
    app: kumi::RunningApp,
    http: HttpTransport,
    schedules: Arc<ScheduleTransport>,
    rx: mpsc::UnboundedReceiver<Seen>,
}

async fn start() -> Running {
    let (tx, rx) = mpsc::unbounded_channel();
    let http = HttpTransport::bind("127.0.0.1:0");
    let schedules = Arc::new(ScheduleTransport::new());
    let app = kumi::App::new()
        .transport(http.shared())
        .transport(schedules.clone())
        .service(Shop { seen: tx })
        .start()
        .await
        .expect("the app starts");
    Running {
        app,
        http,
        schedules,
        rx,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_and_error_handler() {
    let mut running = start().await;
    let addr = running.http.local_addr().expect("listening");

    let reply = http(addr, "GET", "/orders/7", None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        serde_json::json!({"id": 7, "item": "green tea"})
    );

    // A 404 from an unknown route goes through the custom handler...
    let reply = http(addr, "GET", "/nowhere", None).await;
    assert_eq!(reply.status, 404);
    let body = reply.json();
    assert_eq!(body["error"], "custom-not-found");
    assert_eq!(body["path"], "/nowhere");
    // ... and so does a handler's own 404.
    let reply = http(addr, "GET", "/orders/0", None).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "custom-not-found");
    assert_eq!(reply.json()["message"], "no order 0");

    // POST with a JSON body, through the layer.
    let reply = http(
        addr,
        "POST",
        "/orders",
        Some(r#"{"id": 8, "item": "matcha"}"#),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.header("x-layer"), Some("orders"));
    let order = Order {
        id: 8,
        item: "matcha".to_owned(),
    };
    assert_eq!(
        next_non_tick(&mut running.rx, "the POST").await,
        Seen::Created(order)
    );

    // The layer is on that route only.
    let reply = http(addr, "GET", "/orders/8", None).await;
    assert_eq!(reply.header("x-layer"), None);

    // The method is part of the route: GET on a DELETE route is 405.
    let reply = http(addr, "DELETE", "/orders/9", None).await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        next_non_tick(&mut running.rx, "the DELETE").await,
        Seen::Deleted(9)
    );
    let reply = http(addr, "PUT", "/orders", None).await;
    assert_eq!(reply.status, 405);

    // One method behind an HTTP route, a topic and a schedule.
    let reply = http(addr, "POST", "/stock/check", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        next_non_tick(&mut running.rx, "the HTTP stock check").await,
        Seen::StockChecked
    );
    running
        .app
        .client()
        .publish("stock.check", &1u64)
        .await
        .expect("publish");
    assert_eq!(
        next_non_tick(&mut running.rx, "the bus stock check").await,
        Seen::StockChecked
    );

    running
        .app
        .shutdown(Duration::from_secs(5))
        .await
        .expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_round_trip_and_hooks() {
    let mut running = start().await;
    let base = format!("ws://{}", running.http.local_addr().expect("listening"));

    let mut client = tokio::time::timeout(WAIT, WsClient::connect(&format!("{base}/ws/lobby")))
        .await
        .expect("connects in time")
        .expect("connects");
    assert_eq!(
        next_non_tick(&mut running.rx, "the connect hook").await,
        Seen::Joined("lobby".to_owned())
    );
    client.send_text("hi").await.expect("send");
    let echoed = tokio::time::timeout(WAIT, client.recv_text())
        .await
        .expect("an answer in time")
        .expect("an answer");
    assert_eq!(echoed, "lobby: hi");
    let close = tokio::time::timeout(WAIT, client.close())
        .await
        .expect("closes in time")
        .expect("closes");
    assert_eq!(close.and_then(|c| c.code), Some(close_code::NORMAL));
    assert_eq!(
        next_non_tick(&mut running.rx, "the close hook").await,
        Seen::Left("lobby".to_owned(), Some(close_code::NORMAL))
    );

    // The connect hook refuses the `closed` room with 1008 and its reason.
    let mut refused = tokio::time::timeout(WAIT, WsClient::connect(&format!("{base}/ws/closed")))
        .await
        .expect("connects in time")
        .expect("the upgrade itself succeeds");
    let frame = tokio::time::timeout(WAIT, refused.recv())
        .await
        .expect("closed in time")
        .expect("a clean close");
    assert!(frame.is_none(), "no frame expected: {frame:?}");
    let info = refused.close_info().expect("a close frame").clone();
    assert_eq!(info.code, Some(close_code::POLICY));
    assert_eq!(info.reason, "this room is closed");

    // The endpoint without options.
    let mut plain = tokio::time::timeout(WAIT, WsClient::connect(&format!("{base}/plain")))
        .await
        .expect("connects in time")
        .expect("connects");
    let hello = tokio::time::timeout(WAIT, plain.recv_text())
        .await
        .expect("an answer in time")
        .expect("an answer");
    assert_eq!(hello, "hello");
    // The handler returned: the server closes the session normally.
    let end = tokio::time::timeout(WAIT, plain.recv())
        .await
        .expect("closed in time")
        .expect("a clean close");
    assert!(end.is_none(), "no frame expected: {end:?}");
    assert_eq!(
        plain.close_info().and_then(|c| c.code),
        Some(close_code::NORMAL)
    );

    running
        .app
        .shutdown(Duration::from_secs(5))
        .await
        .expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_run_and_are_named() {
    let mut running = start().await;

    let routes = running.schedules.routes();
    assert_eq!(
        routes,
        [
            "shop.far_future",
            "shop.hourly_tick",
            "shop.new_year",
            "shop.report",
            "shop.stock_check",
            "shop.tick",
            "shop.weekday_report",
        ]
    );

    // `immediately`: the first run is the one at start, then every 100 ms.
    assert_eq!(next(&mut running.rx).await, Seen::Tick { immediate: true });
    for _ in 0..2 {
        assert_eq!(next(&mut running.rx).await, Seen::Tick { immediate: false });
    }
    let stats = running.schedules.stats("shop.tick").expect("registered");
    assert!(stats.runs() >= 3, "{stats:?}");
    assert_eq!(stats.failures(), 0);
    let hourly = running
        .schedules
        .stats("shop.hourly_tick")
        .expect("registered");
    assert_eq!(hourly.runs(), 0);

    running
        .app
        .shutdown(Duration::from_secs(5))
        .await
        .expect("clean shutdown");
}

/// What the transports check when the service starts, each in a service of its own.
struct BadCron;

#[kumi::service(name = "reports")]
impl BadCron {
    #[schedule("61 * * * *")]
    async fn nightly(&self) {}
}

struct TwoTicks;

#[kumi::service(name = "reports")]
impl TwoTicks {
    #[schedule("hourly")]
    #[schedule("daily")]
    async fn tick(&self) {}
}

struct BadKeepalive;

#[kumi::service(name = "chat")]
impl BadKeepalive {
    #[websocket("/ws", ping_interval = "20")]
    async fn room(&self, _session: Session) {}
}

struct RedirectHandler;

#[kumi::service(name = "shop")]
impl RedirectHandler {
    #[http_error(302)]
    async fn moved(&self) -> StatusCode {
        StatusCode::FOUND
    }
}

#[tokio::test]
async fn invalid_values_are_startup_errors_naming_the_route() {
    let app = || {
        kumi::App::new()
            .transport(HttpTransport::bind("127.0.0.1:0").shared())
            .transport(Arc::new(ScheduleTransport::new()))
    };
    for (app, expected) in [
        (
            app().service(BadCron),
            "schedule route 'reports.nightly': invalid cron expression '61 * * * *'",
        ),
        (
            app().service(TwoTicks),
            "schedule route 'reports.tick': registered twice",
        ),
        (
            app().service(BadKeepalive),
            "(chat.room): ping_interval '20' is not a duration: the unit is missing; did you mean '20s'?",
        ),
        (
            app().service(RedirectHandler),
            "http error handler shop.moved: error handlers are for error statuses, 400 to 599, not 302",
        ),
    ] {
        let error = tokio::time::timeout(WAIT, app.start())
            .await
            .expect("start ends in time")
            .expect_err("the service does not start");
        assert_eq!(error.kind(), kumi::ErrorKind::Config, "{error}");
        let text = error.to_string();
        assert!(text.contains(expected), "{text:?} should contain {expected:?}");
    }
}
