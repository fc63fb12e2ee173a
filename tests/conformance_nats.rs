//! The conformance suite on NATS: on core NATS against the broker `scripts/brokers` starts
//! (`KUMI_TEST_NATS_URL`, default `nats://127.0.0.1:4222`), and with every event route on a
//! JetStream durable consumer (`?jetstream=true`) against a `nats-server` each test starts for
//! itself (so the streams it provisions never land on the shared broker).

#![cfg(feature = "nats")]

mod conformance;
#[path = "support/nats_server.rs"]
mod nats_server;

use async_trait::async_trait;
use kumi::bus::SharedBus;

fn url() -> String {
    std::env::var("KUMI_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

struct CoreNats;

#[async_trait]
impl conformance::BusHarness for CoreNats {
    fn name(&self) -> &'static str {
        "nats"
    }

    async fn connect(&self) -> SharedBus {
        kumi::nats::connect(&url()).await.unwrap_or_else(|e| {
            panic!("NATS must be running for these tests (scripts/brokers): {e}")
        })
    }

    async fn peer(&self, _bus: &SharedBus) -> SharedBus {
        self.connect().await
    }

    fn unreachable_url(&self) -> Option<String> {
        Some("nats://127.0.0.1:1".to_owned())
    }
}

conformance_suite!(CoreNats);

struct JetStreamNats {
    server: nats_server::NatsServer,
}

impl JetStreamNats {
    fn start() -> Self {
        Self {
            server: nats_server::NatsServer::start(),
        }
    }
}

#[async_trait]
impl conformance::BusHarness for JetStreamNats {
    fn name(&self) -> &'static str {
        "nats-jetstream"
    }

    async fn connect(&self) -> SharedBus {
        let url = format!("{}?jetstream=true", self.server.url());
        kumi::nats::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test's nats-server: {e}"))
    }

    async fn peer(&self, _bus: &SharedBus) -> SharedBus {
        self.connect().await
    }

    fn unreachable_url(&self) -> Option<String> {
        Some("nats://127.0.0.1:1?jetstream=true".to_owned())
    }
}

mod jetstream {
    crate::conformance_suite!(super::JetStreamNats::start());
}
