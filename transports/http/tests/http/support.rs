//! Test helpers: a small HTTP/1.1 client on a real socket, raw requests, and bounded waits.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Fails the test instead of hanging.
pub(crate) async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(10), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after 10 s: {what}"),
    }
}

/// A response, fully read.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Conn { sender }
    }

    pub(crate) async fn send(&mut self, request: Request<Full<Bytes>>) -> Reply {
        let response = self
            .sender
            .send_request(request)
            .await
            .expect("send request");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("read body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Reply {
        self.send(build(Method::GET, path, None, Bytes::new(), &[]))
            .await
    }
}

/// A request with an optional content type and extra headers.
pub(crate) fn build(
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Full::new(body.into())).expect("request")
}

/// `GET path` on a fresh connection.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Reply {
    within(path, async { Conn::open(addr).await.get(path).await }).await
}

/// A request on a fresh connection.
pub(crate) async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Reply {
    let what = format!("{} {}", request.method(), request.uri());
    within(&what, async { Conn::open(addr).await.send(request).await }).await
}

/// Writes `request` as is (no normalisation of the path) and reads until the server closes.
pub(crate) async fn raw(addr: SocketAddr, request: &str) -> String {
    within(request, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
}

/// The status code of a raw HTTP/1.1 response.
pub(crate) fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}
