//! Extractors kumi adds to axum's: [`BusContext`] (the bus, correlated with the request), and
//! [`Json`], [`Path`] and [`Query`], which are axum's with rejections sent as JSON
//! [`HttpError`]s (`{"error": "..."}`) that custom error handlers can replace.

use std::ops::{Deref, DerefMut};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kumi_core::extract::{FromMessage, MessageParts};
use kumi_core::message::{TRACEPARENT, TRACESTATE};
use kumi_core::{Context, Message};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::errors::HttpError;
use crate::state::ServiceState;

/// Request headers a [`BusContext`] takes its correlation id from, in order.
pub const CORRELATION_HEADERS: [&str; 2] = ["x-correlation-id", "x-request-id"];

/// Publish and request on the bus from an HTTP handler, as the service.
///
/// Events and requests sent through it carry a correlation id taken from the request's
/// `X-Correlation-Id` (or `X-Request-Id`) header, or a fresh one per HTTP request, and the
/// request's W3C trace context (`traceparent`, `tracestate`), just like a [`Context`] in a bus
/// handler. Derefs to [`Context`].
///
/// ```
/// use std::sync::Arc;
/// use kumi_http::{BusContext, HttpError, Json};
///
/// struct Orders;
///
/// impl Orders {
///     async fn create(
///         self: Arc<Self>,
///         ctx: BusContext,
///         Json(order): Json<serde_json::Value>,
///     ) -> Result<Json<String>, HttpError> {
///         let id = ctx
///             .publish("orders.created", &order)
///             .await
///             .map_err(|e| HttpError::unavailable(e.to_string()))?;
///         Ok(Json(id))
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct BusContext(pub Context);

impl Deref for BusContext {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.0
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

impl<S: Send + Sync + 'static> FromRequestParts<ServiceState<S>> for BusContext {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServiceState<S>,
    ) -> Result<Self, Self::Rejection> {
        let correlation_id = CORRELATION_HEADERS
            .iter()
            .find_map(|name| header(&parts.headers, name))
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        // A stand-in message carrying what the request carries, so that the context propagates
        // it exactly like a bus handler's context does.
        let mut message = Message::new(String::new(), Bytes::new());
        message.correlation_id = Some(correlation_id);
        for name in [TRACEPARENT, TRACESTATE] {
            if let Some(value) = header(&parts.headers, name) {
                message.headers.insert(name, value);
            }
        }
        let context = <Context as FromMessage<S>>::from_message(&MessageParts {
            message: &message,
            service: state.service(),
            client: state.client(),
        })
        .map_err(|e| HttpError::internal(format!("cannot create a bus context: {e}")))?;
        Ok(BusContext(context))
    }
}

macro_rules! json_rejecting_wrapper {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name<T>(pub T);

        impl<T> Deref for $name<T> {
            type Target = T;

            fn deref(&self) -> &T {
                &self.0
            }
        }

        impl<T> DerefMut for $name<T> {
            fn deref_mut(&mut self) -> &mut T {
                &mut self.0
            }
        }
    };
}

json_rejecting_wrapper!(
    /// A JSON request body (`Content-Type: application/json`) deserialized into `T`, or a JSON
    /// response body. Like `axum::Json`, but a body that is not JSON, not valid JSON or not a
    /// `T` is answered with an [`HttpError`] (`415`, `400`, `422`; `413` when too large) whose
    /// message is axum's explanation.
    Json
);

json_rejecting_wrapper!(
    /// Path parameters (`/orders/{id}`) deserialized into `T`. Like `axum::extract::Path`, but
    /// rejected with an [`HttpError`] (`400`).
    Path
);

json_rejecting_wrapper!(
    /// The query string deserialized into `T`. Like `axum::extract::Query`, but rejected with an
    /// [`HttpError`] (`400`).
    Query
);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(HttpError::from_rejection(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(HttpError::from_rejection(rejection)),
        }
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(HttpError::from_rejection(rejection)),
        }
    }
}
