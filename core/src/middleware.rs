//! Message middleware: tower layers around a route's handler.
//!
//! A route's handler is a `tower::Service<Message, Response = Outcome, Error = BoxError>`. Any tower
//! layer with that shape composes: add one per route with
//! [`RouteBuilder::layer`](crate::router::RouteBuilder::layer) or for every route of a service with
//! [`Router::layer`](crate::router::Router::layer). An `Err` from the stack (a timeout, an overloaded
//! limiter) counts as a retryable handler failure.
//!
//! kumi applies [`TraceLayer`] to every route (outermost) and, when asked,
//! [`tower::timeout::TimeoutLayer`] (`.timeout(..)`). [`ConcurrencyLimitLayer`] is re-exported for
//! limits shared by several routes; the per-route limit itself is enforced by the transport so that
//! it also bounds what is taken from the broker.

use std::task::{Context, Poll};

use tower::{Layer, Service};
use tracing::Instrument;

pub use tower::limit::ConcurrencyLimitLayer;
pub use tower::timeout::TimeoutLayer;

use crate::message::{Message, TRACEPARENT};

/// The target of the per-message spans, for log filters: `KUMI_LOG=info,kumi::message=off` keeps
/// the logs and drops the spans (their fields are formatted for every message, which costs more
/// than a fast handler when a subscriber records them).
pub const MESSAGE_SPAN_TARGET: &str = "kumi::message";

/// Opens an `info`-level span `message` (target [`MESSAGE_SPAN_TARGET`]) per handled message, with
/// the route, topic, attempt, message id, correlation id and incoming `traceparent` as fields; the
/// handler (and everything it logs or publishes) runs inside it.
#[derive(Debug, Clone)]
pub struct TraceLayer {
    route: std::sync::Arc<str>,
}

impl TraceLayer {
    /// A layer naming spans after `route`.
    pub fn new(route: impl Into<std::sync::Arc<str>>) -> Self {
        Self {
            route: route.into(),
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace {
            inner,
            route: self.route.clone(),
        }
    }
}

/// The service [`TraceLayer`] produces.
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
    route: std::sync::Arc<str>,
}

impl<S> Service<Message> for Trace<S>
where
    S: Service<Message>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        let span = tracing::info_span!(
            target: MESSAGE_SPAN_TARGET,
            "message",
            route = %self.route,
            topic = %message.topic,
            attempt = message.attempt,
            // Debug-formatted (quoted, escaped): it comes from the wire.
            message_id = message.message_id.as_deref().unwrap_or(""),
            correlation_id = tracing::field::Empty,
            traceparent = tracing::field::Empty,
        );
        if !span.is_disabled() {
            if let Some(id) = &message.correlation_id {
                span.record("correlation_id", id.as_str());
            }
            if let Some(tp) = message.headers.get(TRACEPARENT) {
                span.record("traceparent", tp);
            }
        }
        self.inner.call(message).instrument(span)
    }
}
