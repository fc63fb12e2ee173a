//! AMQP over TLS (`amqps://`): a TLS endpoint the test owns, with certificates made for the run,
//! terminates TLS in front of the shared RabbitMQ (which keeps its plain listener). Server
//! authentication with a private CA (`tls_ca`), mutual TLS (`tls_cert`/`tls_key`), and the errors
//! when either side cannot be verified.

#![cfg(feature = "amqp")]

#[path = "support/amqp.rs"]
mod amqp_broker;
#[path = "support/pki.rs"]
mod pki;

use std::sync::Arc;
use std::time::Duration;

use amqp_broker::{base_url, broker_addr};
use kumi::prelude::*;
use kumi::App;
use pki::Pki;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Listens on 127.0.0.1 with `pki`'s server certificate (requiring a client certificate signed
/// by its CA when `verify_clients`) and forwards the decrypted stream to the broker. Returns the
/// listening port.
async fn tls_front(pki: &Pki, verify_clients: bool) -> u16 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.path("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path("server-key.pem")).unwrap();
    let builder = rustls::ServerConfig::builder();
    let config = if verify_clients {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(pki.path("ca.pem")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
    } else {
        builder.with_no_client_auth().with_single_cert(certs, key)
    }
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = broker_addr(&base_url());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                // A client that fails the handshake is simply dropped.
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut broker) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            });
        }
    });
    port
}

fn url(port: u16, options: &str) -> String {
    format!("amqps://guest:guest@127.0.0.1:{port}/%2f?queue_expires=2m&{options}")
}

struct Echo {
    topic: String,
    tx: mpsc::UnboundedSender<Value>,
}

impl Echo {
    async fn on_event(self: Arc<Self>, Data(v): Data<Value>) {
        let _ = self.tx.send(v);
    }
}

impl Service for Echo {
    fn name(&self) -> &str {
        "amqp-tls"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe(&self.topic, Self::on_event);
    }
}

/// An event published over the TLS connection `url` names comes back to a route on it.
async fn round_trip(url: &str) {
    let topic = format!("tls.{}", uuid::Uuid::new_v4().simple());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = App::new()
        .connectors(kumi::connectors())
        .bus_url(url)
        .service(Echo {
            topic: topic.clone(),
            tx,
        })
        .start()
        .await
        .unwrap_or_else(|e| panic!("start over {url}: {e}"));
    app.client()
        .publish(&topic, &json!({"over": "tls"}))
        .await
        .expect("publish over TLS");
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the event came back in time");
    assert_eq!(got, Some(json!({"over": "tls"})));
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn server_authenticated_with_a_private_ca() {
    let pki = Pki::new();
    let port = tls_front(&pki, false).await;
    round_trip(&url(port, &format!("tls_ca={}", pki.path("ca.pem")))).await;

    // Without the CA, the system's roots do not know the server: a connect error naming the URL.
    let err = kumi::connect(&url(port, "reconnect=false"))
        .await
        .err()
        .expect("an unknown CA fails");
    assert_eq!(err.kind(), kumi::ErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert!(!err.to_string().contains("guest:guest"), "{err}");

    let err = kumi::connect(&url(port, "tls_ca=/nonexistent/ca.pem"))
        .await
        .err()
        .expect("a missing CA file fails");
    assert_eq!(err.kind(), kumi::ErrorKind::Config, "{err}");
    assert!(
        err.to_string()
            .contains("cannot read tls_ca /nonexistent/ca.pem"),
        "{err}"
    );

    let key = pki.path("server-key.pem");
    let err = kumi::connect(&url(port, &format!("tls_ca={key}")))
        .await
        .err()
        .expect("a CA file without a certificate fails");
    assert_eq!(err.kind(), kumi::ErrorKind::Config, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("tls_ca {key} holds no PEM certificate")),
        "{err}"
    );
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate() {
    let pki = Pki::new();
    let port = tls_front(&pki, true).await;
    round_trip(&url(
        port,
        &format!(
            "tls_ca={}&tls_cert={}&tls_key={}",
            pki.path("ca.pem"),
            pki.path("client.pem"),
            pki.path("client-key.pem")
        ),
    ))
    .await;
    let err = kumi::connect(&url(
        port,
        &format!("tls_ca={}&reconnect=false", pki.path("ca.pem")),
    ))
    .await
    .err()
    .expect("no client certificate: refused");
    assert_eq!(err.kind(), kumi::ErrorKind::Connect, "{err}");
}
