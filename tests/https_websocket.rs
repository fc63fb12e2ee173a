//! HTTPS and `wss://` end to end (feature `http-tls`): the HTTP server terminates TLS with a
//! certificate made for the run, and kumi's websocket client connects over `wss://`, trusting
//! the run's CA (`ClientOptions::tls_ca`); without it the server is unknown.

#![cfg(all(feature = "http-tls", feature = "websocket"))]

#[path = "support/pki.rs"]
mod pki;

use std::sync::Arc;
use std::time::Duration;

use kumi::http::HttpTransport;
use kumi::prelude::*;
use kumi::websocket::{ClientOptions, Session, WebSocketRouterExt, WsClient};
use kumi::App;
use pki::Pki;

struct Echo;

impl Echo {
    async fn echo(self: Arc<Self>, mut session: Session) -> Result<(), kumi::Error> {
        while let Some(frame) = session.recv().await {
            if let Some(text) = frame.as_text() {
                session.send_text(format!("echo: {text}")).await?;
            }
        }
        Ok(())
    }
}

impl Service for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router.websocket("/echo", Self::echo);
    }
}

#[tokio::test]
async fn a_websocket_over_tls_with_a_private_ca() {
    let pki = Pki::new();
    let http = HttpTransport::builder()
        .addr("127.0.0.1:0")
        .tls(pki.path("server.pem"), pki.path("server-key.pem"))
        .build();
    let app = App::new()
        .transport(http.shared())
        .service(Echo)
        .start()
        .await
        .expect("start");
    let url = format!(
        "{}/echo",
        http.url().unwrap().replacen("https://", "wss://", 1)
    );
    let options = ClientOptions {
        tls_ca: Some(pki.path("ca.pem").into()),
        ..ClientOptions::default()
    };
    let mut ws = WsClient::connect_with(&url, options)
        .await
        .expect("wss connect trusting the run's CA");
    ws.send_text("hello").await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.recv_text())
        .await
        .expect("a reply in time")
        .unwrap();
    assert_eq!(reply, "echo: hello");
    ws.close().await.unwrap();

    // The webpki roots do not know the run's CA.
    let err = WsClient::connect(&url)
        .await
        .expect_err("an unknown CA fails");
    assert_eq!(err.kind(), kumi::ErrorKind::Connect, "{err}");
    let err = WsClient::connect_with(
        &url,
        ClientOptions {
            tls_ca: Some("/nonexistent/ca.pem".into()),
            ..ClientOptions::default()
        },
    )
    .await
    .expect_err("a missing CA file fails");
    assert!(
        err.to_string()
            .contains("cannot use tls_ca /nonexistent/ca.pem"),
        "{err}"
    );
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}
