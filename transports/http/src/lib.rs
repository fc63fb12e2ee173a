//! # kumi-http
//!
//! HTTP routes on kumi services, served by axum: one server per process for every service's
//! routes, static files and websocket endpoints, with health endpoints, custom error handlers,
//! safety limits, an access log and a graceful drain. Users reach it as `kumi::http`.
//!
//! A route handler is a real axum handler whose state is the service's [`ServiceState`]: take
//! `self: Arc<Self>` (or `State<Arc<S>>`) for the service, [`BusContext`] to publish or request
//! on the bus, and any axum extractor.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kumi_core::{Router, Service};
//! use kumi_http::{BusContext, HttpError, HttpRouterExt, Json, Path, StatusCode};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Order { id: u64, item: String }
//!
//! struct Orders;
//!
//! impl Orders {
//!     async fn get_order(self: Arc<Self>, Path(id): Path<u64>) -> Result<Json<Order>, HttpError> {
//!         Ok(Json(Order { id, item: "green tea".into() }))
//!     }
//!
//!     async fn create(self: Arc<Self>, ctx: BusContext, Json(order): Json<Order>) -> Result<StatusCode, HttpError> {
//!         ctx.publish("orders.created", &order).await.map_err(|e| HttpError::unavailable(e.to_string()))?;
//!         Ok(StatusCode::ACCEPTED)
//!     }
//! }
//!
//! impl Service for Orders {
//!     fn name(&self) -> &str { "orders" }
//!     fn routes(&self, router: &mut Router<Self>) {
//!         router.get("/orders/{id}", Self::get_order);
//!         router.post("/orders", Self::create);
//!     }
//! }
//! ```
//!
//! | concern | where |
//! |---|---|
//! | registering routes, static files, error handlers, layers | [`HttpRouterExt`] |
//! | the server, its address and limits | [`HttpTransport`], [`HttpTransportBuilder`] |
//! | errors as JSON, custom error handlers | [`errors`] |
//! | extractors: bus context, JSON-rejecting `Json`/`Path`/`Query` | [`BusContext`], [`Json`] |
//! | health endpoints | [`health`] |
//! | graceful shutdown | [`drain`] |
//!
//! ## Defaults
//!
//! - Address: `--http` / `KUMI_HTTP_ADDR`; unset, `127.0.0.1:8080` and only when some service has
//!   routes; set, always (health endpoints at least). Port `0` picks a free port; the banner shows
//!   the actual URL.
//! - Request body: at most 2 MiB (`413`); request head: 64 KiB and 100 headers (`431`); time to
//!   the response: 30 s (`503`); handler panic: `500` and the server keeps running. Unknown route
//!   `404`, wrong method `405` (with `Allow`): all as `{"error": "..."}`.
//! - Access log: one `tracing` event per request at `info` on target `kumi_http::access` with
//!   `method`, `path`, `status`, `latency_ms`, `bytes` (when known) and `peer`. Silence it with
//!   `KUMI_LOG=info,kumi_http::access=warn`.
//! - HTTP/1.1 (with upgrades for websockets); HTTP/2 is not served.

pub mod drain;
pub mod errors;
mod extract;
mod guard;
pub mod health;
mod listen;
mod routes;
mod server;
mod state;
mod tls;

pub use drain::{Drain, InFlight};
pub use errors::{ErrorInfo, HttpError};
pub use extract::{BusContext, Json, Path, Query, CORRELATION_HEADERS};
pub use health::HealthPaths;
pub use listen::DEFAULT_ADDR;
pub use routes::{HttpErrorRoute, HttpHandler, HttpRoute, HttpRouterExt, IntoStatus, Protocol};
pub use server::{
    transport_from_config, HttpTransport, HttpTransportBuilder, DEFAULT_BODY_LIMIT,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_REQUEST_TIMEOUT,
};
pub use state::ServiceState;

/// The axum this crate is built on, so handlers and layers use the same version.
pub use axum;
pub use axum::http::{Method, StatusCode};
