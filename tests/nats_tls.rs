//! NATS over TLS, against `nats-server` processes the tests start with certificates made for the
//! run: server authentication with a private CA (`tls_ca`), and mutual TLS (`tls_cert`/`tls_key`).

#![cfg(feature = "nats")]

#[path = "support/nats_server.rs"]
mod nats_server;
#[path = "support/pki.rs"]
mod pki;

use std::sync::Arc;
use std::time::Duration;

use kumi::nats::NatsBus;
use kumi::prelude::*;
use kumi::App;
use pki::Pki;
use serde_json::{json, Value};

/// `nats-server` arguments for TLS with `pki`'s server certificate (and client verification).
fn server_args(pki: &Pki, verify_clients: bool) -> Vec<String> {
    let mut args = vec![
        "--tls".to_owned(),
        "--tlscert".to_owned(),
        pki.path("server.pem"),
        "--tlskey".to_owned(),
        pki.path("server-key.pem"),
    ];
    if verify_clients {
        args.extend([
            "--tlsverify".to_owned(),
            "--tlscacert".to_owned(),
            pki.path("ca.pem"),
        ]);
    }
    args
}

fn start_server(pki: &Pki, verify_clients: bool) -> nats_server::NatsServer {
    let args = server_args(pki, verify_clients);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    nats_server::NatsServer::start_with(&args)
}

/// `tls://` URL of `server` with `options`.
fn tls_url(server: &nats_server::NatsServer, options: &str) -> String {
    format!(
        "{}?{options}&connect_timeout=3s",
        server.url().replace("nats://", "tls://")
    )
}

struct Echo;

impl Echo {
    async fn echo(self: Arc<Self>, Data(v): Data<Value>) -> Result<Value, HandlerError> {
        Ok(json!({"echo": v}))
    }
}

impl Service for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router.request("tls.echo", Self::echo);
    }
}

/// A request answered over the TLS connection `url` names.
async fn round_trip(url: &str) {
    let bus = NatsBus::connect(url).await.expect("connect over TLS");
    let app = App::new()
        .bus(Arc::new(bus))
        .service(Echo)
        .start()
        .await
        .expect("start");
    let reply: Value = app
        .client()
        .request("tls.echo", &json!({"n": 1}))
        .await
        .expect("request over TLS");
    assert_eq!(reply, json!({"echo": {"n": 1}}));
    app.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

fn ca_option(pki: &Pki) -> String {
    format!("tls_ca={}", pki.path("ca.pem"))
}

#[tokio::test]
async fn server_authenticated_with_a_private_ca() {
    let pki = Pki::new();
    let server = start_server(&pki, false);
    round_trip(&tls_url(&server, &ca_option(&pki))).await;

    // Without the CA the server's certificate is not trusted: a connect error naming the URL.
    let err = NatsBus::connect(&tls_url(&server, "name=untrusted"))
        .await
        .expect_err("an unknown CA is refused");
    assert_eq!(err.kind(), kumi::ErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("tls://127.0.0.1"), "{err}");
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate() {
    let pki = Pki::new();
    let server = start_server(&pki, true);
    let with_cert = format!(
        "{}&tls_cert={}&tls_key={}",
        ca_option(&pki),
        pki.path("client.pem"),
        pki.path("client-key.pem")
    );
    round_trip(&tls_url(&server, &with_cert)).await;

    let err = NatsBus::connect(&tls_url(&server, &ca_option(&pki)))
        .await
        .expect_err("a client without a certificate is refused");
    assert_eq!(err.kind(), kumi::ErrorKind::Connect, "{err}");
}
