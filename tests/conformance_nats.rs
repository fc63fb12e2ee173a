//! The conformance suite on core NATS (`nats://`), against the broker `scripts/brokers` starts
//! (`KUMI_TEST_NATS_URL`, default `nats://127.0.0.1:4222`).

#![cfg(feature = "nats")]

mod conformance;

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
