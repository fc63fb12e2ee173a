//! Registering HTTP routes on a service: the [`HttpRouterExt`] methods on
//! [`kumi_core::Router`], and the [`HttpRoute`] options builder they return.
//!
//! What a service registers is kept in its router's extensions until the
//! [`HttpTransport`](crate::HttpTransport) attaches the service at startup; then every route
//! becomes an axum route with the service's [`ServiceState`], and all services' routes are merged
//! onto the one HTTP server of the process.

use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;

use axum::extract::{OriginalUri, Request};
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter, Route};
use kumi_core::message::Extensions;
use kumi_core::{Error, ErrorKind, Result, Router, ServiceHandle};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service};
use tower_http::services::ServeDir;

use crate::drain::Drain;
use crate::errors::{ErrorHandler, HttpError};
use crate::state::ServiceState;

/// What a route speaks, for the startup banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// Plain HTTP requests.
    Http,
    /// A websocket endpoint (an HTTP `GET` that upgrades).
    WebSocket,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::WebSocket => "websocket",
        }
    }
}

/// An HTTP handler of service `S`: an axum [`Handler`] on the service's [`ServiceState`] (any
/// such handler is one; this trait only gives the compile error kumi's words).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an HTTP handler of service `{S}`",
    label = "not an HTTP handler",
    note = "an HTTP handler is an `async fn` whose arguments are axum extractors (`Path<T>`, `Query<T>`, `HeaderMap`, `kumi::http::BusContext`, `Arc<Self>`..., and last at most one that reads the body: `Json<T>`, `String`, `Bytes`...), whose return type implements `IntoResponse`, and whose future is `Send`"
)]
pub trait HttpHandler<T, S>: Handler<T, ServiceState<S>> {}

impl<H, T, S> HttpHandler<T, S> for H where H: Handler<T, ServiceState<S>> {}

/// HTTP route builders on a service's [`Router`].
///
/// Handlers are axum handlers whose state is [`ServiceState<S>`]: any axum extractor works, plus
/// `Arc<S>` (so `self: Arc<Self>` methods are handlers), [`BusContext`](crate::BusContext) and
/// [`Drain`]. Paths use axum 0.8 syntax: `/orders/{id}`, `/files/{*path}`.
///
/// ```
/// use std::sync::Arc;
/// use kumi_core::{Router, Service};
/// use kumi_http::{ErrorInfo, HttpError, HttpRouterExt, Json, Method, Path, StatusCode};
///
/// struct Orders;
///
/// impl Orders {
///     async fn get_order(self: Arc<Self>, Path(id): Path<u64>) -> Result<Json<u64>, HttpError> {
///         if id == 0 {
///             return Err(HttpError::not_found("no order 0"));
///         }
///         Ok(Json(id))
///     }
///
///     async fn not_found(self: Arc<Self>, info: ErrorInfo) -> Json<serde_json::Value> {
///         Json(serde_json::json!({ "error": "not-found", "path": info.uri().path() }))
///     }
/// }
///
/// impl Service for Orders {
///     fn name(&self) -> &str { "orders" }
///     fn routes(&self, router: &mut Router<Self>) {
///         router.http(Method::GET, "/orders/{id}", Self::get_order);
///         router.http_error(StatusCode::NOT_FOUND, Self::not_found);
///         router.http_static("/static", "examples/static");
///     }
/// }
/// ```
pub trait HttpRouterExt<S: Send + Sync + 'static> {
    /// Routes `method` requests for `path` to `handler`.
    fn http<H, T>(&mut self, method: Method, path: &str, handler: H) -> HttpRoute<'_, S>
    where
        H: HttpHandler<T, S>,
        T: 'static;

    /// `GET` (and `HEAD`) requests for `path`.
    fn get<H, T>(&mut self, path: &str, handler: H) -> HttpRoute<'_, S>
    where
        H: HttpHandler<T, S>,
        T: 'static,
    {
        self.http(Method::GET, path, handler)
    }

    /// `POST` requests for `path`.
    fn post<H, T>(&mut self, path: &str, handler: H) -> HttpRoute<'_, S>
    where
        H: HttpHandler<T, S>,
        T: 'static,
    {
        self.http(Method::POST, path, handler)
    }

    /// `PUT` requests for `path`.
    fn put<H, T>(&mut self, path: &str, handler: H) -> HttpRoute<'_, S>
    where
        H: HttpHandler<T, S>,
        T: 'static,
    {
        self.http(Method::PUT, path, handler)
    }

    /// `PATCH` requests for `path`.
    fn patch<H, T>(&mut self, path: &str, handler: H) -> HttpRoute<'_, S>
    where
        H: HttpHandler<T, S>,
        T: 'static,
    {
        self.http(Method::PATCH, path, handler)
    }

    /// `DELETE` requests for `path`.
    fn delete<H, T>(&mut self, path: &str, handler: H) -> HttpRoute<'_, S>
    where
        H: HttpHandler<T, S>,
        T: 'static,
    {
        self.http(Method::DELETE, path, handler)
    }

    /// Serves the files under `dir` at `prefix` (`/static/app.js` → `<dir>/app.js`) with
    /// `GET`/`HEAD`, using tower-http's `ServeDir`: content types from the file extension,
    /// ranges and conditional requests, `index.html` for directories. Paths that would leave
    /// `dir` (`..`, also percent-encoded as `%2e%2e`) are answered `404`, as are missing files
    /// (through the custom `404` handler, if any). `dir` must exist when the service starts.
    fn http_static(&mut self, prefix: &str, dir: impl Into<PathBuf>) -> HttpRoute<'_, S>;

    /// Produces the response for errors with `status` (a [`StatusCode`] or a number such as
    /// `404`, from 400 to 599; another one fails the service's start) with `handler`, an axum
    /// handler that can take [`ErrorInfo`](crate::ErrorInfo), `Method`, `Uri` and `Arc<S>`. See
    /// [`errors`](crate::errors) for when it runs. Error handlers apply to the whole HTTP
    /// server.
    fn http_error<H, T>(&mut self, status: impl IntoStatus, handler: H) -> HttpErrorRoute<'_, S>
    where
        H: HttpHandler<T, S>,
        T: 'static;

    /// Wraps every HTTP route of this service (static files and websockets included) in a tower
    /// layer, like axum's `Router::route_layer`. Later layers wrap earlier ones.
    fn http_layer<L>(&mut self, layer: L) -> &mut Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static;

    /// Merges a whole axum router into the service's routes (for what the builders above do not
    /// offer: nesting, `route_service`, ...).
    fn http_router(&mut self, router: axum::Router<ServiceState<S>>) -> &mut Self;
}

/// A route being registered: set its options with the builder methods. It is registered when
/// the builder is dropped (at the end of the statement).
pub struct HttpRoute<'a, S: Send + Sync + 'static> {
    router: &'a mut Router<S>,
    def: Option<RouteDef<S>>,
}

impl<S: Send + Sync + 'static> fmt::Debug for HttpRoute<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("HttpRoute");
        if let Some(def) = &self.def {
            d.field("method", &def.method)
                .field("path", &def.path)
                .field("name", &def.name);
        }
        d.finish()
    }
}

impl<S: Send + Sync + 'static> HttpRoute<'_, S> {
    /// Names the route in the banner and logs (default: the handler function's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        if let Some(def) = &mut self.def {
            def.name = name.into();
        }
        self
    }

    /// Says what the route speaks, for the banner (default: [`Protocol::Http`]).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        if let Some(def) = &mut self.def {
            def.protocol = protocol;
        }
        self
    }

    /// Wraps this route in a tower layer (like `MethodRouter::layer` in axum). Later layers wrap
    /// earlier ones.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.def = self.def.take().map(|mut def| {
            def.endpoint = match def.endpoint {
                Endpoint::Handler(router) => Endpoint::Handler(router.layer(layer)),
                Endpoint::Static { dir, router } => Endpoint::Static {
                    dir,
                    router: router.layer(layer),
                },
            };
            def
        });
        self
    }
}

impl<S: Send + Sync + 'static> HttpRoute<'_, S> {
    /// Fails the service's start with `problem`, naming this route: for options checked after
    /// the route was registered, such as the durations of a websocket endpoint built on it.
    pub fn config_error(mut self, problem: impl Into<String>) -> Self {
        if let Some(def) = &mut self.def {
            let problem = problem.into();
            def.error = Some(match def.error.take() {
                Some(earlier) => format!("{earlier}; {problem}"),
                None => problem,
            });
        }
        self
    }
}

/// An HTTP status as [`HttpRouterExt::http_error`] takes it: a [`StatusCode`] or a number such
/// as `404`.
pub trait IntoStatus {
    /// The status, or why the value is not one.
    fn into_status(self) -> std::result::Result<StatusCode, String>;
}

impl IntoStatus for StatusCode {
    fn into_status(self) -> std::result::Result<StatusCode, String> {
        Ok(self)
    }
}

impl IntoStatus for u16 {
    fn into_status(self) -> std::result::Result<StatusCode, String> {
        StatusCode::from_u16(self).map_err(|_| format!("{self} is not an HTTP status"))
    }
}

/// An error handler being registered, returned by [`HttpRouterExt::http_error`]. It is
/// registered when the builder is dropped (at the end of the statement).
pub struct HttpErrorRoute<'a, S: Send + Sync + 'static> {
    router: &'a mut Router<S>,
    def: Option<ErrorHandlerDef<S>>,
}

struct ErrorHandlerDef<S> {
    status: std::result::Result<StatusCode, String>,
    name: String,
    make: MakeErrorHandler<S>,
}

impl<S: Send + Sync + 'static> fmt::Debug for HttpErrorRoute<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("HttpErrorRoute");
        if let Some(def) = &self.def {
            d.field("status", &def.status).field("name", &def.name);
        }
        d.finish()
    }
}

impl<S: Send + Sync + 'static> HttpErrorRoute<'_, S> {
    /// Names the handler in the banner (default: the handler function's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        if let Some(def) = &mut self.def {
            def.name = name.into();
        }
        self
    }
}

impl<S: Send + Sync + 'static> Drop for HttpErrorRoute<'_, S> {
    fn drop(&mut self) {
        if let Some(def) = self.def.take() {
            with_routes(self.router, |routes| routes.error_handlers.push(def));
        }
    }
}

impl<S: Send + Sync + 'static> Drop for HttpRoute<'_, S> {
    fn drop(&mut self) {
        if let Some(def) = self.def.take() {
            with_routes(self.router, |routes| routes.routes.push(def));
        }
    }
}

enum Endpoint<S> {
    Handler(MethodRouter<ServiceState<S>>),
    Static { dir: PathBuf, router: MethodRouter },
}

struct RouteDef<S> {
    protocol: Protocol,
    method: String,
    path: String,
    name: String,
    endpoint: Endpoint<S>,
    error: Option<String>,
}

type ServiceLayer<S> =
    Box<dyn FnOnce(axum::Router<ServiceState<S>>) -> axum::Router<ServiceState<S>> + Send + Sync>;
type MakeErrorHandler<S> = Box<dyn FnOnce(ServiceState<S>) -> ErrorHandler + Send + Sync>;

/// A service's HTTP registrations, kept in its router's extensions until attach.
struct ServiceRoutes<S> {
    routes: Vec<RouteDef<S>>,
    layers: Vec<ServiceLayer<S>>,
    routers: Vec<axum::Router<ServiceState<S>>>,
    error_handlers: Vec<ErrorHandlerDef<S>>,
}

impl<S> Default for ServiceRoutes<S> {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            layers: Vec::new(),
            routers: Vec::new(),
            error_handlers: Vec::new(),
        }
    }
}

type AttachFn = fn(&ServiceHandle, &mut Extensions, &Drain) -> Result<ServiceHttp>;

/// Found in a router's extensions when the service registered HTTP routes: how to build them
/// for that service's type.
#[derive(Default)]
pub(crate) struct AttachHook(Option<AttachFn>);

impl AttachHook {
    /// Takes the hook out of `extensions` (if the service registered anything).
    pub(crate) fn take(extensions: &mut Extensions) -> Option<AttachFn> {
        extensions.insert(AttachHook(None)).and_then(|hook| hook.0)
    }
}

fn with_routes<S: Send + Sync + 'static>(
    router: &mut Router<S>,
    change: impl FnOnce(&mut ServiceRoutes<S>),
) {
    let extensions = router.extensions_mut();
    let mut routes = extensions
        .insert(ServiceRoutes::<S>::default())
        .unwrap_or_default();
    change(&mut routes);
    extensions.insert(routes);
    extensions.insert(AttachHook(Some(attach_service::<S>)));
}

impl<S: Send + Sync + 'static> HttpRouterExt<S> for Router<S> {
    fn http<H, T>(&mut self, method: Method, path: &str, handler: H) -> HttpRoute<'_, S>
    where
        H: HttpHandler<T, S>,
        T: 'static,
    {
        let (router, error) = match MethodFilter::try_from(method.clone()) {
            Ok(filter) => (axum::routing::on(filter, handler), None),
            Err(e) => (
                MethodRouter::new(),
                Some(format!("method {method} cannot be routed: {e}")),
            ),
        };
        HttpRoute {
            router: self,
            def: Some(RouteDef {
                protocol: Protocol::Http,
                method: method.to_string(),
                path: path.to_owned(),
                name: kumi_core::handler::handler_name::<H>(),
                endpoint: Endpoint::Handler(router),
                error,
            }),
        }
    }

    fn http_static(&mut self, prefix: &str, dir: impl Into<PathBuf>) -> HttpRoute<'_, S> {
        let dir = dir.into();
        let not_found = tower::service_fn(|req: Request| async move {
            let path = req
                .extensions()
                .get::<OriginalUri>()
                .map_or_else(|| req.uri().path().to_owned(), |o| o.0.path().to_owned());
            Ok::<_, Infallible>(HttpError::not_found(format!("no file at {path}")).into_response())
        });
        let serve = ServeDir::new(&dir).not_found_service(not_found);
        let router: MethodRouter = axum::routing::get_service(serve);
        let prefix = match prefix.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        HttpRoute {
            router: self,
            def: Some(RouteDef {
                protocol: Protocol::Http,
                method: "GET".to_owned(),
                path: prefix.to_owned(),
                name: format!("files in {}", dir.display()),
                endpoint: Endpoint::Static { dir, router },
                error: None,
            }),
        }
    }

    fn http_error<H, T>(&mut self, status: impl IntoStatus, handler: H) -> HttpErrorRoute<'_, S>
    where
        H: HttpHandler<T, S>,
        T: 'static,
    {
        let make: MakeErrorHandler<S> = Box::new(move |state: ServiceState<S>| {
            BoxCloneSyncService::new(handler.with_state(state))
        });
        let status = status.into_status().and_then(|status| {
            if status.is_client_error() || status.is_server_error() {
                Ok(status)
            } else {
                Err(format!(
                    "error handlers are for error statuses, 400 to 599, not {}",
                    status.as_u16()
                ))
            }
        });
        HttpErrorRoute {
            router: self,
            def: Some(ErrorHandlerDef {
                status,
                name: kumi_core::handler::handler_name::<H>(),
                make,
            }),
        }
    }

    fn http_layer<L>(&mut self, layer: L) -> &mut Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        let apply: ServiceLayer<S> = Box::new(move |router| router.route_layer(layer));
        with_routes(self, |routes| routes.layers.push(apply));
        self
    }

    fn http_router(&mut self, router: axum::Router<ServiceState<S>>) -> &mut Self {
        with_routes(self, |routes| routes.routers.push(router));
        self
    }
}

/// One line of what a service serves, for the banner and duplicate checks.
#[derive(Debug, Clone)]
pub(crate) struct RouteLine {
    pub(crate) protocol: Protocol,
    /// `GET`, or empty for a merged axum router.
    pub(crate) method: String,
    /// The path; `/static/*` for static files.
    pub(crate) path: String,
    /// `service.handler`, or what serves it.
    pub(crate) target: String,
    /// Whether (method, path) must be unique across services.
    pub(crate) exclusive: bool,
}

impl RouteLine {
    pub(crate) fn banner(&self, base: &str) -> String {
        let route = if self.method.is_empty() || self.protocol == Protocol::WebSocket {
            self.path.clone()
        } else {
            format!("{} {}", self.method, self.path)
        };
        let url = match self.protocol {
            Protocol::WebSocket => {
                if let Some(rest) = base.strip_prefix("https://") {
                    format!("wss://{rest}")
                } else {
                    base.replacen("http://", "ws://", 1)
                }
            }
            Protocol::Http => base.to_owned(),
        };
        format!(
            "{:<9} {:<28} -> {:<28} on {}",
            self.protocol.label(),
            route,
            self.target,
            url
        )
    }
}

/// A service's HTTP routes, ready to merge onto the server.
pub(crate) struct ServiceHttp {
    pub(crate) service: String,
    pub(crate) router: axum::Router,
    pub(crate) routes: Vec<RouteLine>,
    /// By status: the handler's name (`service.handler`) and the handler.
    pub(crate) error_handlers: Vec<(StatusCode, String, ErrorHandler)>,
}

/// Checks what axum would panic about, to give an error naming the route instead.
fn validate_path(path: &str) -> std::result::Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("the path '{path}' must start with '/'"));
    }
    if let Some(segment) = path
        .split('/')
        .find(|s| s.starts_with(':') || s.starts_with('*'))
    {
        return Err(format!(
            "the path segment '{segment}' uses the old ':param' / '*rest' syntax; \
             write '{{param}}' / '{{*rest}}'"
        ));
    }
    Ok(())
}

/// Runs an axum router operation that panics on invalid input, as a kumi error naming `what`.
pub(crate) fn guarded<T>(what: &str, op: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(op)).map_err(|panic| {
        Error::config(format!(
            "{what}: {}",
            kumi_core::error::panic_message(&*panic)
        ))
    })
}

fn attach_service<S: Send + Sync + 'static>(
    handle: &ServiceHandle,
    extensions: &mut Extensions,
    drain: &Drain,
) -> Result<ServiceHttp> {
    let registered = extensions
        .insert(ServiceRoutes::<S>::default())
        .unwrap_or_default();
    let service_name = handle.identity.name.clone();
    let service = handle.downcast::<S>().ok_or_else(|| {
        Error::new(
            ErrorKind::Other,
            format!(
                "service '{service_name}': its HTTP routes were registered for another type than {}",
                std::any::type_name::<S>()
            ),
        )
    })?;
    let state = ServiceState::new(service, handle.client.clone(), drain.clone());
    let mut app = axum::Router::<ServiceState<S>>::new();
    let mut lines = Vec::new();
    for def in registered.routes {
        let what = format!(
            "http route {} {} ({service_name}.{})",
            def.method, def.path, def.name
        );
        if let Some(e) = def.error {
            return Err(Error::config(format!("{what}: {e}")));
        }
        validate_path(&def.path).map_err(|e| Error::config(format!("{what}: {e}")))?;
        let path = def.path.as_str();
        let (path, target) = match def.endpoint {
            Endpoint::Handler(router) => {
                app = guarded(&what, move || app.route(path, router))?;
                (def.path.clone(), format!("{service_name}.{}", def.name))
            }
            Endpoint::Static { dir, router } => {
                if path == "/" {
                    return Err(Error::config(format!(
                        "{what}: static files cannot be served at '/'; use a prefix such as '/static'"
                    )));
                }
                if !dir.is_dir() {
                    return Err(Error::config(format!(
                        "{what}: the directory '{}' does not exist (relative paths are relative to {})",
                        dir.display(),
                        std::env::current_dir()
                            .map_or_else(|_| "the working directory".to_owned(), |d| d.display().to_string())
                    )));
                }
                app = guarded(&what, move || app.nest_service(path, router))?;
                (format!("{path}/*"), def.name)
            }
        };
        lines.push(RouteLine {
            protocol: def.protocol,
            method: def.method,
            path,
            target,
            exclusive: true,
        });
    }
    for router in registered.routers {
        let what = format!("axum router of service '{service_name}'");
        app = guarded(&what, move || app.merge(router))?;
        lines.push(RouteLine {
            protocol: Protocol::Http,
            method: String::new(),
            path: "(axum router)".to_owned(),
            target: service_name.clone(),
            exclusive: false,
        });
    }
    if app.has_routes() {
        for layer in registered.layers {
            app = layer(app);
        }
    }
    let error_handlers = registered
        .error_handlers
        .into_iter()
        .map(|def| {
            let name = format!("{service_name}.{}", def.name);
            let status = def
                .status
                .map_err(|e| Error::config(format!("http error handler {name}: {e}")))?;
            Ok((status, name, (def.make)(state.clone())))
        })
        .collect::<Result<_>>()?;
    let router: axum::Router = app.with_state(state);
    Ok(ServiceHttp {
        service: service_name,
        router,
        routes: lines,
        error_handlers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert!(validate_path("/orders/{id}").is_ok());
        assert!(validate_path("orders")
            .unwrap_err()
            .contains("must start with '/'"));
        assert!(validate_path("/orders/:id")
            .unwrap_err()
            .contains("{param}"));
        assert!(validate_path("/files/*rest")
            .unwrap_err()
            .contains("{*rest}"));
    }

    #[test]
    fn banner_lines_show_method_path_target_and_url() {
        let line = RouteLine {
            protocol: Protocol::Http,
            method: "GET".into(),
            path: "/orders/{id}".into(),
            target: "orders.get_order".into(),
            exclusive: true,
        };
        let text = line.banner("http://127.0.0.1:4000");
        assert!(text.starts_with("http      GET /orders/{id}"), "{text}");
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(
            words,
            [
                "http",
                "GET",
                "/orders/{id}",
                "->",
                "orders.get_order",
                "on",
                "http://127.0.0.1:4000"
            ]
        );
        let ws = RouteLine {
            protocol: Protocol::WebSocket,
            method: "GET".into(),
            path: "/ws".into(),
            target: "chat.session".into(),
            exclusive: true,
        };
        assert!(ws
            .banner("http://127.0.0.1:4000")
            .ends_with("on ws://127.0.0.1:4000"));
        assert!(ws
            .banner("https://127.0.0.1:4000")
            .ends_with("on wss://127.0.0.1:4000"));
    }
}
