//! HTTP errors: [`HttpError`] (a JSON `{"error": "..."}` response), and the custom error
//! handlers a service registers per status with
//! [`HttpRouterExt::http_error`](crate::HttpRouterExt::http_error).
//!
//! # When a custom error handler runs
//!
//! The handler registered for a status produces the response for:
//!
//! - every [`HttpError`] with that status, whether kumi made it (unknown route `404`, wrong method
//!   `405`, body too large `413`, malformed JSON `400`/`415`/`422` from kumi's extractors, handler
//!   panic `500`, timeout or draining `503`) or a handler returned it;
//! - a handler response with that status and an **empty** body (e.g. a handler returning
//!   `StatusCode::NOT_FOUND`).
//!
//! A handler response with a body of its own is left alone: the handler already said what it
//! meant. If the error handler's response has status `200` it is given the error's status;
//! `Allow`, `Connection`, `Retry-After` and `WWW-Authenticate` headers of the original response are
//! kept. Error handlers are process-wide (one HTTP server serves every service), so two services
//! registering a handler for the same status is a startup error. Without a custom handler, kumi's
//! own errors have the body `{"error": "<what went wrong>"}`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

/// An HTTP error response: a status and a message, sent as `{"error": "<message>"}` with
/// `Content-Type: application/json`. A custom error handler registered for the status replaces
/// the body (see the [module docs](crate::errors)).
///
/// ```
/// use kumi_http::{HttpError, StatusCode};
///
/// async fn find(id: u64) -> Result<String, HttpError> {
///     Err(HttpError::new(StatusCode::NOT_FOUND, format!("no order {id}")))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct HttpError {
    status: StatusCode,
    message: Arc<str>,
}

impl HttpError {
    /// An error with `status` and a message saying what went wrong.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into().into(),
        }
    }

    /// `400 Bad Request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// `404 Not Found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// `500 Internal Server Error`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// `503 Service Unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// The error for an axum extractor rejection: its status and its text.
    pub fn from_rejection<R: IntoResponse + fmt::Display>(rejection: R) -> Self {
        let message = rejection.to_string();
        let status = rejection.into_response().status();
        Self::new(status, message)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for HttpError {}

/// Marks a response as an [`HttpError`], so that custom error handlers replace it.
#[derive(Clone)]
pub(crate) struct ErrorMarker(pub(crate) Arc<str>);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": &*self.message }).to_string();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.extensions_mut().insert(ErrorMarker(self.message));
        response
    }
}

/// What a custom error handler is told about the error. Take it as an extractor in the handler
/// registered with [`HttpRouterExt::http_error`](crate::HttpRouterExt::http_error); `Method` and
/// `Uri` are the original request's too (its headers and body are gone by then).
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    status: StatusCode,
    method: Method,
    uri: Uri,
    message: String,
}

impl ErrorInfo {
    /// The error status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// What went wrong: the [`HttpError`] message, or the status's reason phrase.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ErrorInfo {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<ErrorInfo>().cloned().ok_or_else(|| {
            HttpError::internal(
                "ErrorInfo is only available in handlers registered with http_error(..)",
            )
        })
    }
}

/// A custom error handler with its service state applied.
pub(crate) type ErrorHandler = BoxCloneSyncService<Request<Body>, Response, Infallible>;

/// The process-wide custom error handlers, by status.
#[derive(Clone, Default)]
pub(crate) struct ErrorHandlers {
    by_status: HashMap<StatusCode, (String, ErrorHandler)>,
}

impl ErrorHandlers {
    /// Adds the handler named `service` (`service.handler`) for `status`; the name of the one
    /// that already has the status if taken.
    pub(crate) fn insert(
        &mut self,
        status: StatusCode,
        service: &str,
        handler: ErrorHandler,
    ) -> Result<(), String> {
        if let Some((owner, _)) = self.by_status.get(&status) {
            return Err(owner.clone());
        }
        self.by_status.insert(status, (service.to_owned(), handler));
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_status.is_empty()
    }

    /// The statuses with a handler, for the banner.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (StatusCode, &str)> {
        self.by_status
            .iter()
            .map(|(s, (owner, _))| (*s, owner.as_str()))
    }

    /// The handler that should replace `response`, with the error message to give it.
    fn handler_for(&self, response: &Response) -> Option<(ErrorHandler, String)> {
        let status = response.status();
        if !(status.is_client_error() || status.is_server_error()) {
            return None;
        }
        let (_, handler) = self.by_status.get(&status)?;
        let message = match response.extensions().get::<ErrorMarker>() {
            Some(marker) => marker.0.to_string(),
            None if response.body().size_hint().exact() == Some(0) => {
                status.canonical_reason().unwrap_or("error").to_owned()
            }
            None => return None,
        };
        Some((handler.clone(), message))
    }

    /// Lets the custom error handler for `response`'s status produce the response, if there is
    /// one and it applies.
    pub(crate) async fn apply(&self, response: Response, method: &Method, uri: &Uri) -> Response {
        let Some((handler, message)) = self.handler_for(&response) else {
            return response;
        };
        let status = response.status();
        let mut request = Request::new(Body::empty());
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri.clone();
        request.extensions_mut().insert(ErrorInfo {
            status,
            method: method.clone(),
            uri: uri.clone(),
            message,
        });
        let produced = std::panic::AssertUnwindSafe(handler.oneshot(request))
            .catch_unwind()
            .await;
        let mut custom = match produced {
            Ok(Ok(custom)) => custom,
            Ok(Err(never)) => match never {},
            Err(panic) => {
                tracing::error!(
                    %status,
                    panic = kumi_core::error::panic_message(&*panic),
                    "the custom error handler for {status} panicked; sending the original response"
                );
                return response;
            }
        };
        if custom.status() == StatusCode::OK {
            *custom.status_mut() = status;
        }
        for name in [
            header::ALLOW,
            header::CONNECTION,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
        ] {
            if let Some(value) = response.headers().get(&name) {
                if !custom.headers().contains_key(&name) {
                    custom.headers_mut().insert(name, value.clone());
                }
            }
        }
        custom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn http_error_is_a_marked_json_body() {
        let response = HttpError::not_found("no order 7").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert!(response.extensions().get::<ErrorMarker>().is_some());
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"error":"no order 7"}"#);
    }

    #[tokio::test]
    async fn custom_handler_applies_to_marked_and_empty_responses_only() {
        let mut handlers = ErrorHandlers::default();
        let handler = tower::service_fn(|req: Request<Body>| async move {
            let info = req.extensions().get::<ErrorInfo>().cloned().unwrap();
            Ok::<_, Infallible>(format!("custom: {}", info.message()).into_response())
        });
        handlers
            .insert(
                StatusCode::NOT_FOUND,
                "svc",
                BoxCloneSyncService::new(handler),
            )
            .unwrap();
        assert_eq!(
            handlers.insert(
                StatusCode::NOT_FOUND,
                "other",
                BoxCloneSyncService::new(tower::service_fn(|_: Request<Body>| async {
                    Ok::<_, Infallible>(().into_response())
                }))
            ),
            Err("svc".to_owned())
        );
        let uri: Uri = "/x".parse().unwrap();
        let run = |response: Response| {
            let handlers = handlers.clone();
            let uri = uri.clone();
            async move {
                let r = handlers.apply(response, &Method::GET, &uri).await;
                let status = r.status();
                let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
                (status, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        assert_eq!(
            run(HttpError::not_found("gone").into_response()).await,
            (StatusCode::NOT_FOUND, "custom: gone".to_owned())
        );
        assert_eq!(
            run(StatusCode::NOT_FOUND.into_response()).await,
            (StatusCode::NOT_FOUND, "custom: Not Found".to_owned())
        );
        assert_eq!(
            run((StatusCode::NOT_FOUND, "mine").into_response()).await,
            (StatusCode::NOT_FOUND, "mine".to_owned())
        );
        assert_eq!(
            run(HttpError::internal("boom").into_response()).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
