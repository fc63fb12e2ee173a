//! The built-in health endpoints: liveness and readiness.
//!
//! - `GET /health/live` answers `200 {"status":"live"}` while the process serves HTTP at all.
//! - `GET /health/ready` answers `200 {"status":"ready"}` once every service and transport started
//!   ([`Health::readiness`]) and while not draining; otherwise
//!   `503 {"status":"not ready","reasons":["starting: ...", "draining: ..."]}`.
//!
//! Both are answered before routing, so no service route or middleware can shadow or slow them,
//! and they keep answering while the server drains. Change or turn off the paths with
//! [`HttpTransportBuilder::health_paths`](crate::HttpTransportBuilder::health_paths).

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use kumi_core::Health;

/// Where the health endpoints are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPaths {
    /// The liveness path (`None`: not served).
    pub live: Option<String>,
    /// The readiness path (`None`: not served).
    pub ready: Option<String>,
}

impl Default for HealthPaths {
    fn default() -> Self {
        Self {
            live: Some("/health/live".to_owned()),
            ready: Some("/health/ready".to_owned()),
        }
    }
}

impl HealthPaths {
    /// No health endpoints.
    pub fn none() -> Self {
        Self {
            live: None,
            ready: None,
        }
    }

    /// The health response for a request, if it is a health request.
    pub(crate) fn respond(
        &self,
        method: &Method,
        path: &str,
        health: &Health,
        server_draining: bool,
    ) -> Option<Response> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        if self.live.as_deref() == Some(path) {
            return Some(json(StatusCode::OK, r#"{"status":"live"}"#.to_owned()));
        }
        if self.ready.as_deref() != Some(path) {
            return None;
        }
        let mut reasons = match health.readiness() {
            Ok(()) => Vec::new(),
            Err(reasons) => reasons,
        };
        if server_draining && !health.is_draining() {
            reasons.push("http: the server is shutting down".to_owned());
        }
        Some(if reasons.is_empty() {
            json(StatusCode::OK, r#"{"status":"ready"}"#.to_owned())
        } else {
            let body = serde_json::json!({ "status": "not ready", "reasons": reasons });
            json(StatusCode::SERVICE_UNAVAILABLE, body.to_string())
        })
    }
}

fn json(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn readiness_follows_health() {
        let paths = HealthPaths::default();
        let health = Health::new();
        let r = paths
            .respond(&Method::GET, "/health/ready", &health, false)
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body(r).await.contains("starting"));
        health.set_started();
        let r = paths
            .respond(&Method::GET, "/health/ready", &health, false)
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = paths
            .respond(&Method::GET, "/health/ready", &health, true)
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body(r).await.contains("shutting down"));
        let r = paths
            .respond(&Method::GET, "/health/live", &health, true)
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(paths
            .respond(&Method::POST, "/health/live", &health, false)
            .is_none());
        assert!(paths
            .respond(&Method::GET, "/other", &health, false)
            .is_none());
        assert!(HealthPaths::none()
            .respond(&Method::GET, "/health/live", &health, false)
            .is_none());
    }
}
