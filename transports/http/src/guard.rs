//! What every request goes through before and after its route: health endpoints, the drain
//! gate, the body limit, the request timeout, panic recovery, custom error handlers and the
//! access log. One hand-written step instead of a stack of boxed tower layers, so the framework
//! costs little per request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::http::{header, HeaderValue, Method, Request, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http_body_util::Limited;
use kumi_core::Health;
use tower::Service;

use crate::drain::Drain;
use crate::errors::{ErrorHandlers, HttpError};
use crate::health::HealthPaths;

/// The request pipeline around the merged router of all services.
pub(crate) struct Guard {
    pub(crate) router: axum::Router,
    pub(crate) health: Health,
    pub(crate) health_paths: HealthPaths,
    pub(crate) drain: Drain,
    pub(crate) errors: ErrorHandlers,
    pub(crate) body_limit: usize,
    pub(crate) request_timeout: Option<Duration>,
}

impl Guard {
    /// Answers one request. Never fails: every problem becomes a response.
    pub(crate) async fn handle<B>(
        self: Arc<Self>,
        request: Request<B>,
        peer: SocketAddr,
    ) -> Result<Response, Infallible>
    where
        B: HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let started = Instant::now();
        let method = request.method().clone();
        let uri = request.uri().clone();
        let http1 = request.version() <= Version::HTTP_11;
        let draining = self.drain.is_draining() || self.health.is_draining();
        let mut response = if let Some(response) =
            self.health_paths
                .respond(&method, uri.path(), &self.health, draining)
        {
            response
        } else if draining {
            let error = HttpError::unavailable("the server is shutting down").into_response();
            self.render(error, &method, &uri).await
        } else {
            self.dispatch(request, &method, &uri).await
        };
        if draining && http1 {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        access_log(&method, &uri, &response, started, peer);
        Ok(response)
    }

    async fn dispatch<B>(&self, request: Request<B>, method: &Method, uri: &Uri) -> Response
    where
        B: HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let _in_flight = self.drain.track();
        let (parts, body) = request.into_parts();
        let limit = self.body_limit as u64;
        let size = body.size_hint();
        if size.lower() > limit {
            let error = HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body has {} bytes; at most {limit} are accepted",
                    size.lower()
                ),
            );
            return self.render(error.into_response(), method, uri).await;
        }
        // A body of known, acceptable length needs no counting (hyper holds it to its
        // Content-Length); anything else is cut off at the limit.
        let body = if size.upper().is_some_and(|upper| upper <= limit) {
            Body::new(body)
        } else {
            Body::new(Limited::new(body, self.body_limit))
        };
        let request = Request::from_parts(parts, body);
        let mut router = self.router.clone();
        let call = AssertUnwindSafe(async move { router.call(request).await }).catch_unwind();
        let outcome = match self.request_timeout {
            Some(timeout) => tokio::time::timeout(timeout, call).await.ok(),
            None => Some(call.await),
        };
        let response = match outcome {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(never))) => match never {},
            Some(Err(panic)) => {
                tracing::error!(
                    %method,
                    path = uri.path(),
                    panic = kumi_core::error::panic_message(&*panic),
                    "HTTP handler panicked; answering 500"
                );
                HttpError::internal("internal server error").into_response()
            }
            None => HttpError::unavailable(format!(
                "no response within the request timeout ({:?})",
                self.request_timeout.unwrap_or_default()
            ))
            .into_response(),
        };
        self.render(response, method, uri).await
    }

    async fn render(&self, response: Response, method: &Method, uri: &Uri) -> Response {
        if self.errors.is_empty() {
            return response;
        }
        self.errors.apply(response, method, uri).await
    }
}

fn access_log(method: &Method, uri: &Uri, response: &Response, started: Instant, peer: SocketAddr) {
    if !tracing::enabled!(target: "kumi_http::access", tracing::Level::INFO) {
        return;
    }
    let status = response.status().as_u16();
    // Microsecond resolution, so the field prints as e.g. `0.132`.
    let latency_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let path = uri.path();
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| response.body().size_hint().exact());
    match bytes {
        Some(bytes) => tracing::info!(
            target: "kumi_http::access",
            %method, path, status, latency_ms, bytes, %peer,
            "{method} {path} {status} ({latency_ms:.2} ms, {bytes} bytes)"
        ),
        None => tracing::info!(
            target: "kumi_http::access",
            %method, path, status, latency_ms, %peer,
            "{method} {path} {status} ({latency_ms:.2} ms, streamed)"
        ),
    }
}
