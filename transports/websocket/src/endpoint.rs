//! Websocket endpoints on a service: [`WebSocketRouterExt::websocket`] and the
//! [`WebSocketRoute`] options builder. An endpoint is an HTTP `GET` route on the kumi HTTP
//! server (one listener for everything) whose handler upgrades the connection and runs a
//! [`Session`].

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::Route;
use futures_util::FutureExt;
use kumi_core::setting::IntoDuration;
use kumi_core::{Client, Router};
use kumi_http::{Drain, HttpError, HttpRoute, HttpRouterExt, InFlight, Protocol};
use tokio::sync::{mpsc, watch};
use tower::{Layer, Service};

use crate::connection::{self, Limits, Wiring};
use crate::frame::{close_code, CloseInfo};
use crate::session::{Session, SessionId, SessionInfo, SessionSender};

/// Default largest message (and frame) a peer may send: 1 MiB; larger ones close the
/// connection with `1009`.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1024 * 1024;
/// Default time between server pings: 20 s.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);
/// Default time a peer has to show life after a ping: 20 s; then it is closed with `1011`.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(20);
/// Default number of frames queued for sending to one session: 256.
pub const DEFAULT_SEND_QUEUE: usize = 256;
/// Default number of received frames waiting for the handler: 32 (then reading pauses).
pub const DEFAULT_RECV_QUEUE: usize = 32;
/// Default time to wait for the peer's close frame after sending ours: 2 s.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a session handler or connect hook returns: `()`, or `Result<(), E>` where an `Err`
/// closes the session with `1011` (handler) or `1008` (connect hook) and the error as reason.
pub trait SessionOutcome: Send + 'static {
    /// `Err(reason)` for a failure.
    fn into_result(self) -> Result<(), String>;
}

impl SessionOutcome for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Display + Send + 'static> SessionOutcome for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// How a session ended, for the close hook.
#[derive(Debug, Clone)]
pub struct SessionClosed {
    info: Arc<SessionInfo>,
    close: CloseInfo,
}

impl SessionClosed {
    /// The session id.
    pub fn id(&self) -> SessionId {
        self.info.id()
    }

    /// What the upgrade request said.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// How the connection closed.
    pub fn close(&self) -> &CloseInfo {
        &self.close
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type HandlerFn<S> = Arc<dyn Fn(Arc<S>, Session) -> BoxFuture<Result<(), String>> + Send + Sync>;
type ConnectFn<S> =
    Arc<dyn Fn(Arc<S>, SessionSender) -> BoxFuture<Result<(), String>> + Send + Sync>;
type CloseFn<S> = Arc<dyn Fn(Arc<S>, SessionClosed) -> BoxFuture<()> + Send + Sync>;
type RouteLayer<S> = Box<dyn for<'r> FnOnce(HttpRoute<'r, S>) -> HttpRoute<'r, S>>;

#[derive(Clone)]
struct Settings {
    max_message_size: usize,
    limits: Limits,
    send_queue: usize,
    recv_queue: usize,
}

struct Endpoint<S> {
    handler: HandlerFn<S>,
    on_connect: Option<ConnectFn<S>>,
    on_close: Option<CloseFn<S>>,
    settings: Settings,
}

struct WebSocketDef<S: Send + Sync + 'static> {
    path: String,
    name: String,
    endpoint: Endpoint<S>,
    layers: Vec<RouteLayer<S>>,
    /// Invalid options: the service fails to start, naming the endpoint.
    problems: Vec<String>,
}

/// Websocket endpoints on a service's [`Router`].
///
/// ```
/// use std::sync::Arc;
/// use kumi_core::{Router, Service};
/// use kumi_websocket::{Session, WebSocketRouterExt};
///
/// struct Echo;
///
/// impl Echo {
///     async fn session(self: Arc<Self>, mut session: Session) {
///         while let Some(frame) = session.recv().await {
///             if session.send(frame).await.is_err() {
///                 break;
///             }
///         }
///     }
/// }
///
/// impl Service for Echo {
///     fn name(&self) -> &str { "echo" }
///     fn routes(&self, router: &mut Router<Self>) {
///         router.websocket("/echo", Self::session);
///     }
/// }
/// ```
pub trait WebSocketRouterExt<S: Send + Sync + 'static> {
    /// Serves a websocket endpoint at `path` (axum path syntax, `/rooms/{room}` allowed): each
    /// connection runs `handler` with the service and its [`Session`].
    fn websocket<H, Fut>(&mut self, path: &str, handler: H) -> WebSocketRoute<'_, S>
    where
        H: Fn(Arc<S>, Session) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: SessionOutcome;
}

impl<S: Send + Sync + 'static> WebSocketRouterExt<S> for Router<S> {
    fn websocket<H, Fut>(&mut self, path: &str, handler: H) -> WebSocketRoute<'_, S>
    where
        H: Fn(Arc<S>, Session) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: SessionOutcome,
    {
        let name = kumi_core::handler::handler_name::<H>();
        let handler: HandlerFn<S> = Arc::new(move |service, session| {
            let running = handler(service, session);
            Box::pin(async move { running.await.into_result() })
        });
        WebSocketRoute {
            router: self,
            def: Some(WebSocketDef {
                path: path.to_owned(),
                name,
                endpoint: Endpoint {
                    handler,
                    on_connect: None,
                    on_close: None,
                    settings: Settings {
                        max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
                        limits: Limits {
                            ping_interval: DEFAULT_PING_INTERVAL,
                            pong_timeout: DEFAULT_PONG_TIMEOUT,
                            close_timeout: DEFAULT_CLOSE_TIMEOUT,
                        },
                        send_queue: DEFAULT_SEND_QUEUE,
                        recv_queue: DEFAULT_RECV_QUEUE,
                    },
                },
                layers: Vec::new(),
                problems: Vec::new(),
            }),
        }
    }
}

/// A websocket endpoint being registered: set its options with the builder methods. It is
/// registered (as an HTTP route) when the builder is dropped at the end of the statement.
pub struct WebSocketRoute<'a, S: Send + Sync + 'static> {
    router: &'a mut Router<S>,
    def: Option<WebSocketDef<S>>,
}

impl<S: Send + Sync + 'static> fmt::Debug for WebSocketRoute<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("WebSocketRoute");
        if let Some(def) = &self.def {
            d.field("path", &def.path).field("name", &def.name);
        }
        d.finish()
    }
}

fn route_layer<S, F>(f: F) -> RouteLayer<S>
where
    S: Send + Sync + 'static,
    F: for<'r> FnOnce(HttpRoute<'r, S>) -> HttpRoute<'r, S> + 'static,
{
    Box::new(f)
}

impl<S: Send + Sync + 'static> WebSocketRoute<'_, S> {
    fn settings(&mut self) -> Option<&mut Settings> {
        self.def.as_mut().map(|d| &mut d.endpoint.settings)
    }

    /// Names the endpoint in the banner and logs (default: the handler function's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        if let Some(def) = &mut self.def {
            def.name = name.into();
        }
        self
    }

    /// Largest message (and frame) a peer may send (default [`DEFAULT_MAX_MESSAGE_SIZE`]);
    /// a larger one closes the connection with `1009 Message Too Big`.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        if let Some(s) = self.settings() {
            s.max_message_size = bytes;
        }
        self
    }

    /// Runs `set` with the duration `value` gives, or remembers why it is not one (the service
    /// then fails to start, naming the endpoint and `option`).
    fn duration(
        mut self,
        option: &str,
        value: impl IntoDuration,
        set: impl FnOnce(&mut Limits, Duration),
    ) -> Self {
        match value.into_duration() {
            Ok(duration) => {
                if let Some(s) = self.settings() {
                    set(&mut s.limits, duration);
                }
            }
            Err(e) => {
                if let Some(def) = &mut self.def {
                    def.problems.push(format!("{option} {e}"));
                }
            }
        }
        self
    }

    /// Time between server pings (default [`DEFAULT_PING_INTERVAL`]): a `Duration` or a string
    /// such as `"20s"` ([`IntoDuration`]; an invalid one fails the service's start).
    pub fn ping_interval(self, interval: impl IntoDuration) -> Self {
        self.duration("ping_interval", interval, |l, d| {
            l.ping_interval = d.max(Duration::from_millis(1));
        })
    }

    /// Time a peer has after a ping to send anything (a pong, usually) before it is closed with
    /// `1011` (default [`DEFAULT_PONG_TIMEOUT`]); a `Duration` or a string such as `"20s"`.
    pub fn pong_timeout(self, timeout: impl IntoDuration) -> Self {
        self.duration("pong_timeout", timeout, |l, d| l.pong_timeout = d)
    }

    /// Time to wait for the peer's close frame after sending ours (default
    /// [`DEFAULT_CLOSE_TIMEOUT`]; during shutdown, never past the drain deadline); a
    /// `Duration` or a string such as `"2s"`.
    pub fn close_timeout(self, timeout: impl IntoDuration) -> Self {
        self.duration("close_timeout", timeout, |l, d| l.close_timeout = d)
    }

    /// Frames that can wait to be sent to one session (default [`DEFAULT_SEND_QUEUE`]).
    /// [`Session::send`] waits when it is full; a [`Hub`](crate::Hub) closes such a session
    /// with `1013` instead of waiting for it.
    pub fn send_queue(mut self, frames: usize) -> Self {
        if let Some(s) = self.settings() {
            s.send_queue = frames.max(1);
        }
        self
    }

    /// Received frames that can wait for the handler (default [`DEFAULT_RECV_QUEUE`]); when
    /// full, reading from the peer pauses (backpressure).
    pub fn recv_queue(mut self, frames: usize) -> Self {
        if let Some(s) = self.settings() {
            s.recv_queue = frames.max(1);
        }
        self
    }

    /// Runs `hook` when a connection opened, before the handler. An `Err` refuses the session:
    /// it is closed with `1008` and the error as reason, and the handler does not run.
    pub fn on_connect<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Arc<S>, SessionSender) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: SessionOutcome,
    {
        if let Some(def) = &mut self.def {
            def.endpoint.on_connect = Some(Arc::new(move |service, sender| {
                let running = hook(service, sender);
                Box::pin(async move { running.await.into_result() })
            }));
        }
        self
    }

    /// Runs `hook` once the connection closed (however it closed).
    pub fn on_close<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Arc<S>, SessionClosed) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Some(def) = &mut self.def {
            def.endpoint.on_close = Some(Arc::new(move |service, closed| {
                Box::pin(hook(service, closed))
            }));
        }
        self
    }

    /// Wraps the endpoint's upgrade request in a tower layer (authentication, say), like
    /// [`HttpRoute::layer`].
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        if let Some(def) = &mut self.def {
            def.layers
                .push(route_layer(move |route| route.layer(layer)));
        }
        self
    }
}

impl<S: Send + Sync + 'static> Drop for WebSocketRoute<'_, S> {
    fn drop(&mut self) {
        let Some(def) = self.def.take() else {
            return;
        };
        let endpoint = Arc::new(def.endpoint);
        let upgrade =
            move |service: Arc<S>,
                  State(client): State<Client>,
                  drain: Drain,
                  params: Result<RawPathParams, RawPathParamsRejection>,
                  uri: Uri,
                  headers: HeaderMap,
                  ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>| {
                let endpoint = Arc::clone(&endpoint);
                async move {
                    let request = Upgrade {
                        service,
                        client,
                        drain,
                        params,
                        uri,
                        headers,
                    };
                    accept(endpoint, request, ws)
                }
            };
        let mut route = self
            .router
            .http(Method::GET, &def.path, upgrade)
            .protocol(Protocol::WebSocket)
            .name(def.name);
        for problem in def.problems {
            route = route.config_error(problem);
        }
        for layer in def.layers {
            route = layer(route);
        }
    }
}

/// What the upgrade request brings to a session.
struct Upgrade<S> {
    service: Arc<S>,
    client: Client,
    drain: Drain,
    params: Result<RawPathParams, RawPathParamsRejection>,
    uri: Uri,
    headers: HeaderMap,
}

fn accept<S: Send + Sync + 'static>(
    endpoint: Arc<Endpoint<S>>,
    request: Upgrade<S>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match ws {
        Ok(upgrade) => upgrade,
        Err(rejection) => return HttpError::from_rejection(rejection).into_response(),
    };
    if request.drain.is_draining() {
        return HttpError::unavailable("the server is shutting down").into_response();
    }
    let params = request
        .params
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let info = Arc::new(SessionInfo {
        id: SessionId::next(),
        uri: request.uri,
        headers: request.headers,
        params,
    });
    let in_flight = request.drain.track();
    let max = endpoint.settings.max_message_size;
    let (service, client, drain) = (request.service, request.client, request.drain);
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |ws| run(ws, endpoint, service, client, info, drain, in_flight))
}

async fn run<S: Send + Sync + 'static>(
    ws: WebSocket,
    endpoint: Arc<Endpoint<S>>,
    service: Arc<S>,
    client: Client,
    info: Arc<SessionInfo>,
    drain: Drain,
    in_flight: InFlight,
) {
    let settings = &endpoint.settings;
    let id = info.id();
    let (out_tx, out_rx) = mpsc::channel(settings.send_queue);
    let (in_tx, in_rx) = mpsc::channel(settings.recv_queue);
    let (force_tx, force_rx) = watch::channel(None);
    let (closed_tx, closed_rx) = watch::channel(None);
    let sender = SessionSender::new(Arc::clone(&info), out_tx, Arc::new(force_tx));
    let wiring = Wiring {
        inbound: in_tx,
        outbound: out_rx,
        force_close: force_rx,
    };
    tracing::debug!(session = %id, path = info.uri().path(), "websocket session opened");

    if let Some(on_connect) = &endpoint.on_connect {
        let refused = match AssertUnwindSafe(on_connect(Arc::clone(&service), sender.clone()))
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some((close_code::POLICY, reason)),
            Err(panic) => {
                tracing::error!(session = %id, panic = kumi_core::error::panic_message(&*panic), "websocket connect hook panicked");
                Some((close_code::INTERNAL, "internal error".to_owned()))
            }
        };
        if let Some((code, reason)) = refused {
            tracing::debug!(session = %id, %reason, "websocket session refused by the connect hook");
            sender.force_close(code, &reason);
            connection::drive(ws, wiring, &drain, &settings.limits).await;
            drop(sender);
            return;
        }
    }

    let session = Session::new(sender, in_rx, closed_rx, client);
    let handler = Arc::clone(&endpoint.handler);
    let handler_service = Arc::clone(&service);
    let mut task = tokio::spawn(async move {
        let sender = session.sender();
        let outcome = AssertUnwindSafe(handler(handler_service, session))
            .catch_unwind()
            .await;
        let (code, reason) = match outcome {
            Ok(Ok(())) => (close_code::NORMAL, String::new()),
            Ok(Err(reason)) => {
                tracing::warn!(session = %id, error = %reason, "websocket handler failed");
                (close_code::INTERNAL, reason)
            }
            Err(panic) => {
                tracing::error!(session = %id, panic = kumi_core::error::panic_message(&*panic), "websocket handler panicked");
                (close_code::INTERNAL, "internal error".to_owned())
            }
        };
        // Closes after what the handler queued; fails harmlessly if already closed.
        let _ = sender.close(code, reason).await;
    });

    let close = connection::drive(ws, wiring, &drain, &settings.limits).await;
    tracing::debug!(session = %id, %close, "websocket session closed");
    closed_tx.send_replace(Some(close.clone()));

    if let Some(on_close) = &endpoint.on_close {
        let closed = SessionClosed {
            info: Arc::clone(&info),
            close,
        };
        if let Err(panic) = AssertUnwindSafe(on_close(service, closed))
            .catch_unwind()
            .await
        {
            tracing::error!(session = %id, panic = kumi_core::error::panic_message(&*panic), "websocket close hook panicked");
        }
    }

    // The handler sees the end (its `recv` returns `None`, its sends fail); give it until the
    // drain deadline to return when shutting down.
    let give_up = async {
        drain.draining().await;
        if let Some(deadline) = drain.deadline() {
            tokio::time::sleep_until(deadline.into()).await;
        }
    };
    tokio::select! {
        _ = &mut task => drop(in_flight),
        () = give_up => {
            task.abort();
            in_flight.abandon();
            tracing::warn!(session = %id, "websocket handler still running at the drain deadline; aborted");
        }
    }
}
