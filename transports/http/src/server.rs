//! [`HttpTransport`]: the process-wide HTTP server every service's routes are merged onto, its
//! settings ([`HttpTransportBuilder`]), the accept loop, and graceful shutdown.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, OriginalUri, Request};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::Route;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use kumi_core::message::Extensions;
use kumi_core::runner::Config;
use kumi_core::settlement::DrainReport;
use kumi_core::transport::SharedTransport;
use kumi_core::{async_trait, Error, Health, Result, ServiceHandle, Transport};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tower::{Layer, Service};

use crate::drain::Drain;
use crate::errors::{ErrorHandlers, HttpError};
use crate::guard::Guard;
use crate::health::HealthPaths;
use crate::listen::{AddrSource, ListenAddr};
use crate::routes::{guarded, AttachHook, Protocol, RouteLine};
use crate::tls::{Acceptor, TlsFiles};

/// Default largest request body: 2 MiB (larger bodies get `413`).
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// Default time a request may take until its response starts: 30 s (then `503`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default largest request head (request line and headers): 64 KiB (then `431`).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Default largest number of request headers: 100 (then `431`).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default time a client has to send the request head: 30 s (then the connection is closed).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The body limit axum's extractors apply by themselves.
const AXUM_BODY_LIMIT: usize = 2 * 1024 * 1024;

type GlobalLayer = Arc<dyn Fn(axum::Router) -> axum::Router + Send + Sync>;

#[derive(Clone)]
struct Settings {
    addr: ListenAddr,
    body_limit: usize,
    request_timeout: Option<Duration>,
    max_header_bytes: usize,
    max_headers: usize,
    header_read_timeout: Duration,
    health: HealthPaths,
    layers: Vec<GlobalLayer>,
    tls: Option<TlsFiles>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            addr: ListenAddr::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            health: HealthPaths::default(),
            layers: Vec::new(),
            tls: None,
        }
    }
}

/// Settings of an [`HttpTransport`]. Start with [`HttpTransport::builder`].
#[derive(Clone, Default)]
pub struct HttpTransportBuilder {
    settings: Settings,
}

impl fmt::Debug for HttpTransportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransportBuilder")
            .field("addr", &self.settings.addr.addr)
            .field("body_limit", &self.settings.body_limit)
            .field("request_timeout", &self.settings.request_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpTransportBuilder {
    /// Listens on `addr` (`127.0.0.1:8080`, `0.0.0.0:0`, `[::1]:8080`, `:8080` for every
    /// interface; port `0` picks a free port, see [`HttpTransport::local_addr`]). With an address
    /// set, the server always listens, serving at least the health endpoints. Without one it
    /// listens on [`DEFAULT_ADDR`](crate::DEFAULT_ADDR), and only if some service has routes.
    pub fn addr(mut self, addr: impl AsRef<str>) -> Self {
        self.settings.addr = ListenAddr::new(addr.as_ref(), AddrSource::Code);
        self
    }

    /// The address from `--http` / `KUMI_HTTP_ADDR` (errors name that setting).
    fn addr_from_setting(mut self, addr: &str) -> Self {
        self.settings.addr = ListenAddr::new(addr, AddrSource::Setting);
        self
    }

    /// Largest request body in bytes (default [`DEFAULT_BODY_LIMIT`]). A larger
    /// `Content-Length` is answered `413` before the handler runs; a streamed body is cut off
    /// there, and kumi's and axum's body extractors answer `413`.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.settings.body_limit = bytes;
        self
    }

    /// How long a request may take until its response starts (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]); then the handler is cancelled and the client gets
    /// `503 Service Unavailable` (kumi uses `503`, not `408`: the server, not the client, was too
    /// slow). `None` turns the timeout off.
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.request_timeout = timeout;
        self
    }

    /// Largest request head in bytes, request line included (default
    /// [`DEFAULT_MAX_HEADER_BYTES`]); larger heads get `431` and the connection is closed.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_header_bytes = bytes;
        self
    }

    /// Largest number of request headers (default [`DEFAULT_MAX_HEADERS`]); more get `431`.
    pub fn max_headers(mut self, count: usize) -> Self {
        self.settings.max_headers = count;
        self
    }

    /// How long a client has to send a request head (default
    /// [`DEFAULT_HEADER_READ_TIMEOUT`]); protects against slow-loris clients.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.settings.header_read_timeout = timeout;
        self
    }

    /// Where the health endpoints are served (default `/health/live` and `/health/ready`;
    /// [`HealthPaths::none`] turns them off).
    pub fn health_paths(mut self, paths: HealthPaths) -> Self {
        self.settings.health = paths;
        self
    }

    /// Wraps the whole server (every service's routes and the `404`/`405` fallbacks) in a tower
    /// layer, like axum's `Router::layer`: CORS, compression, tracing... Later layers wrap
    /// earlier ones. Health endpoints, the drain gate, limits and the access log stay outside.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<std::convert::Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.settings
            .layers
            .push(Arc::new(move |router: axum::Router| {
                router.layer(layer.clone())
            }));
        self
    }

    /// Serves HTTPS (and WSS) with the certificate chain and private key in these PEM files,
    /// read when the server starts (an unreadable or mismatched file is a startup error naming
    /// it). HTTP/1.1 over TLS 1.2 or 1.3, via rustls.
    #[cfg(feature = "tls")]
    pub fn tls(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.settings.tls = Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// The transport.
    pub fn build(self) -> HttpTransport {
        HttpTransport {
            inner: Arc::new(Inner {
                settings: self.settings,
                drain: Drain::new(),
                state: Mutex::new(State::default()),
                local_addr: Mutex::new(None),
                server: Mutex::new(None),
            }),
        }
    }
}

#[derive(Default)]
struct State {
    router: Option<axum::Router>,
    lines: Vec<RouteLine>,
    exclusive: HashMap<(String, String), String>,
    errors: ErrorHandlers,
    started: bool,
}

struct Inner {
    settings: Settings,
    drain: Drain,
    state: Mutex<State>,
    local_addr: Mutex<Option<SocketAddr>>,
    server: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The HTTP server of a kumi process: one listener for every service's HTTP routes, static
/// files and websocket endpoints, plus the health endpoints. A [`Transport`]; cheap to clone.
///
/// `kumi::runner()` adds one built from `--http` / `KUMI_HTTP_ADDR`
/// ([`transport_from_config`](crate::transport_from_config)). Tests and embedders build their
/// own:
///
/// ```no_run
/// # use kumi_core::{Router, Service};
/// # struct Orders;
/// # impl Service for Orders { fn name(&self) -> &str { "orders" } fn routes(&self, _: &mut Router<Self>) {} }
/// # async fn run() -> kumi_core::Result<()> {
/// let http = kumi_http::HttpTransport::builder().addr("127.0.0.1:0").build();
/// let app = kumi_core::App::new()
///     .transport(http.shared())
///     .service(Orders)
///     .start()
///     .await?;
/// println!("listening on {}", http.local_addr().expect("started"));
/// app.shutdown(std::time::Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpTransport {
    inner: Arc<Inner>,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("addr", &self.inner.settings.addr.addr)
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl HttpTransport {
    /// Settings for a new transport.
    pub fn builder() -> HttpTransportBuilder {
        HttpTransportBuilder::default()
    }

    /// A transport listening on `addr` with default settings.
    pub fn bind(addr: impl AsRef<str>) -> Self {
        Self::builder().addr(addr).build()
    }

    /// The same transport as a [`SharedTransport`] for
    /// [`App::transport`](kumi_core::App::transport).
    pub fn shared(&self) -> SharedTransport {
        Arc::new(self.clone())
    }

    /// The address the server listens on, once started (`None` before, or when it did not
    /// listen because no service had routes and no address was set).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *lock(&self.inner.local_addr)
    }

    /// `http://<local address>` (`https://` with TLS), once started.
    pub fn url(&self) -> Option<String> {
        let scheme = if self.inner.settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        self.local_addr().map(|a| format!("{scheme}://{a}"))
    }

    /// The server's drain signal.
    pub fn drain(&self) -> &Drain {
        &self.inner.drain
    }

    fn finish_router(&self, router: axum::Router) -> axum::Router {
        let settings = &self.inner.settings;
        let mut router = router
            .fallback(|method: Method, OriginalUri(uri): OriginalUri| async move {
                HttpError::not_found(format!("no route for {method} {}", uri.path()))
            })
            .method_not_allowed_fallback(
                |method: Method, OriginalUri(uri): OriginalUri| async move {
                    HttpError::new(
                        StatusCode::METHOD_NOT_ALLOWED,
                        format!("method {method} is not allowed for {}", uri.path()),
                    )
                },
            );
        if settings.body_limit > AXUM_BODY_LIMIT {
            router = router.layer(DefaultBodyLimit::max(settings.body_limit));
        }
        for layer in &settings.layers {
            router = layer(router);
        }
        router
    }
}

/// Builds the transport from the runner configuration: the listen address from `--http` /
/// `KUMI_HTTP_ADDR` (a bad address is a configuration error naming the setting).
pub fn transport_from_config(config: &Config) -> Result<SharedTransport> {
    let mut builder = HttpTransport::builder();
    if let Some(addr) = &config.http {
        crate::listen::check(addr)
            .map_err(|e| Error::config(format!("KUMI_HTTP_ADDR / --http: {e}")))?;
        builder = builder.addr_from_setting(addr);
    }
    match (&config.http_tls_cert, &config.http_tls_key) {
        (Some(cert), Some(key)) => {
            builder.settings.tls = Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        (None, None) => {}
        _ => {
            return Err(Error::config(
                "KUMI_HTTP_TLS_CERT / --http-tls-cert and KUMI_HTTP_TLS_KEY / --http-tls-key go together",
            ))
        }
    }
    Ok(builder.build().shared())
}

#[async_trait]
impl Transport for HttpTransport {
    fn name(&self) -> &'static str {
        "http"
    }

    fn attach(&self, service: &ServiceHandle, extensions: &mut Extensions) -> Result<()> {
        let Some(attach) = AttachHook::take(extensions) else {
            return Ok(());
        };
        let http = attach(service, extensions, &self.inner.drain)?;
        let mut state = lock(&self.inner.state);
        if state.started {
            return Err(Error::config(format!(
                "service '{}': HTTP routes cannot be added after the HTTP server started",
                http.service
            )));
        }
        for line in http.routes.iter().filter(|l| l.exclusive) {
            let key = (line.method.clone(), line.path.clone());
            if let Some(owner) = state.exclusive.get(&key) {
                return Err(Error::config(format!(
                    "http route {} {} of {} is already served by {owner}",
                    line.method, line.path, line.target
                )));
            }
        }
        for (status, name, handler) in http.error_handlers {
            state
                .errors
                .insert(status, &name, handler)
                .map_err(|owner| {
                    Error::config(format!(
                        "'{owner}' and '{name}' are both HTTP error handlers for {status}; \
                         error handlers are process-wide, keep one"
                    ))
                })?;
        }
        let merged = state.router.take().unwrap_or_default();
        let service_router = http.router;
        state.router = Some(guarded(
            &format!("HTTP routes of service '{}'", http.service),
            move || merged.merge(service_router),
        )?);
        for line in http.routes {
            if line.exclusive {
                state.exclusive.insert(
                    (line.method.clone(), line.path.clone()),
                    line.target.clone(),
                );
            }
            state.lines.push(line);
        }
        Ok(())
    }

    async fn start(&self, health: Health) -> Result<Vec<String>> {
        let settings = &self.inner.settings;
        let (router, lines, errors) = {
            let mut state = lock(&self.inner.state);
            state.started = true;
            (
                state.router.take(),
                state.lines.clone(),
                state.errors.clone(),
            )
        };
        if lines.is_empty() && !settings.addr.explicit() {
            return Ok(Vec::new());
        }
        let router = self.finish_router(router.unwrap_or_default());
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::acceptor)
            .transpose()?;
        let (listener, local) = settings.addr.bind().await?;
        *lock(&self.inner.local_addr) = Some(local);
        let guard = Arc::new(Guard {
            router,
            health,
            health_paths: settings.health.clone(),
            drain: self.inner.drain.clone(),
            errors: errors.clone(),
            body_limit: settings.body_limit,
            request_timeout: settings.request_timeout,
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .max_header_size(settings.max_header_bytes)
            .max_headers(settings.max_headers);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = Server {
            guard,
            builder,
            tls: tls.map(Arc::new),
            handshake_timeout: settings.header_read_timeout,
            drain: self.inner.drain.clone(),
        };
        let task = tokio::spawn(server.serve(listener));
        *lock(&self.inner.server) = Some(task);

        let base = format!("{scheme}://{local}");
        let mut banner: Vec<String> = lines.iter().map(|l| l.banner(&base)).collect();
        for (path, what) in [
            (&settings.health.live, "liveness"),
            (&settings.health.ready, "readiness"),
        ] {
            if let Some(path) = path {
                banner.push(
                    RouteLine {
                        protocol: Protocol::Http,
                        method: "GET".to_owned(),
                        path: path.clone(),
                        target: what.to_owned(),
                        exclusive: false,
                    }
                    .banner(&base),
                );
            }
        }
        let mut statuses: Vec<_> = errors.iter().collect();
        statuses.sort_unstable();
        for (status, owner) in statuses {
            banner.push(format!(
                "{:<9} {:<28} -> {:<28} on {base}",
                "http",
                format!("error {}", status.as_u16()),
                owner
            ));
        }
        Ok(banner)
    }

    async fn shutdown(&self, deadline: Instant) -> Result<DrainReport> {
        let drain = &self.inner.drain;
        drain.begin(deadline);
        let server = lock(&self.inner.server).take();
        let Some(mut server) = server else {
            drain.wait_idle(deadline).await;
            return Ok(DrainReport {
                settled: drain.settled(),
                abandoned: drain.in_flight() + drain.abandoned(),
            });
        };
        let server_done = tokio::select! {
            _ = &mut server => true,
            () = tokio::time::sleep_until(deadline.into()) => false,
        };
        drain.wait_idle(deadline).await;
        let report = DrainReport {
            settled: drain.settled(),
            abandoned: drain.in_flight() + drain.abandoned(),
        };
        if !server_done {
            server.abort();
        }
        if report.abandoned > 0 {
            tracing::warn!(
                abandoned = report.abandoned,
                "HTTP drain deadline passed with requests or sessions still in flight"
            );
        }
        Ok(report)
    }
}

/// What every connection of the server needs.
#[derive(Clone)]
struct Server {
    guard: Arc<Guard>,
    builder: http1::Builder,
    tls: Option<Arc<Acceptor>>,
    /// How long a client has for the TLS handshake (the header read timeout).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    handshake_timeout: Duration,
    drain: Drain,
}

impl Server {
    /// Accepts connections until the drain begins, then waits for the open ones to finish.
    async fn serve(self, listener: TcpListener) {
        let mut connections = JoinSet::new();
        let draining = self.drain.draining();
        tokio::pin!(draining);
        loop {
            tokio::select! {
                biased;
                () = &mut draining => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(self.clone().connection(stream, peer));
                    }
                    Err(e) if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionRefused
                    ) => {}
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting an HTTP connection failed");
                        tokio::select! {
                            () = &mut draining => break,
                            () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                },
            }
        }
        drop(listener);
        while connections.join_next().await.is_some() {}
    }

    /// Serves one connection (after the TLS handshake, with TLS).
    async fn connection(self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let Some(tls) = self.tls.clone() else {
            return self.http(TokioIo::new(stream), peer).await;
        };
        // A client that has not finished its handshake when the drain begins has sent no
        // request yet: it is dropped, like a connection the accept loop has not taken.
        #[cfg(feature = "tls")]
        tokio::select! {
            handshake = tokio::time::timeout(self.handshake_timeout, tls.accept(stream)) => {
                match handshake {
                    Ok(Ok(stream)) => self.http(TokioIo::new(stream), peer).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
            () = self.drain.draining() => {}
        }
        #[cfg(not(feature = "tls"))]
        match *tls {}
    }

    /// Serves HTTP/1.1 on `io`; on drain, finishes the request in flight and closes.
    async fn http<I>(self, io: I, peer: SocketAddr)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let guard = self.guard;
        let service =
            hyper::service::service_fn(move |request| Arc::clone(&guard).handle(request, peer));
        let conn = self.builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(conn);
        let draining = self.drain.draining();
        tokio::pin!(draining);
        let mut shutting_down = false;
        let result = loop {
            tokio::select! {
                result = conn.as_mut() => break result,
                () = &mut draining, if !shutting_down => {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
        }
    }
}
