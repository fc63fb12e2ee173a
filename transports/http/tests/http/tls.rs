//! HTTPS: the server terminates TLS with a certificate made for the run (the workspace tests'
//! PKI helper); a client that trusts the run's CA gets answers, plain HTTP on the TLS port gets
//! nothing, bad files fail the start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use kumi_core::{App, ErrorKind, Router, Service};
use kumi_http::{HttpRouterExt, HttpTransport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::pki::Pki;
use crate::support::{raw, within};

/// The run's CA certificate.
fn ca(pki: &Pki) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(pki.path("ca.pem")).expect("the CA certificate")
}

struct Hello;

impl Hello {
    async fn hello(self: Arc<Self>) -> &'static str {
        "hello over tls"
    }
}

impl Service for Hello {
    fn name(&self) -> &str {
        "hello"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.get("/hello", Self::hello);
    }
}

/// `GET path` over TLS, trusting only `ca`.
async fn https_get(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    path: &str,
) -> (StatusCode, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .expect("TLS handshake with the server");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let certs = Pki::new();
    let http = HttpTransport::builder()
        .addr("127.0.0.1:0")
        .tls(certs.path("server.pem"), certs.path("server-key.pem"))
        .build();
    let app = within(
        "start",
        App::new()
            .transport(http.clone().shared())
            .service(Hello)
            .start(),
    )
    .await
    .unwrap();
    let addr = http.local_addr().unwrap();
    assert_eq!(http.url().unwrap(), format!("https://{addr}"));
    let (status, body) = within("https get", https_get(addr, &ca(&certs), "/hello")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello over tls"));

    // Plain HTTP on the TLS port gets no HTTP answer, and the server keeps serving.
    let plain = within(
        "plain request",
        raw(addr, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
    let (status, _) = within(
        "https get again",
        https_get(addr, &ca(&certs), "/health/ready"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    within("shutdown", app.shutdown(Duration::from_secs(5)))
        .await
        .unwrap();
}

#[tokio::test]
async fn unusable_certificate_files_fail_the_start_naming_them() {
    let certs = Pki::new();
    for (cert, key, needle) in [
        (
            certs.path("missing.pem"),
            certs.path("server-key.pem"),
            "missing.pem",
        ),
        (
            certs.path("server.pem"),
            certs.path("missing-key.pem"),
            "missing-key.pem",
        ),
        (
            certs.path("server-key.pem"),
            certs.path("server-key.pem"),
            "no certificate in",
        ),
    ] {
        let http = HttpTransport::builder()
            .addr("127.0.0.1:0")
            .tls(cert, key)
            .build();
        let err = within(
            "start",
            App::new().transport(http.shared()).service(Hello).start(),
        )
        .await
        .expect_err("bad TLS files fail the start");
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}
