//! The conformance suite on RabbitMQ (`KUMI_TEST_AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`, the broker `scripts/brokers` starts). Every case uses
//! unique topics; the queues it declares expire (`queue_expires=2m`) once unused, so the shared
//! broker stays clean.

#![cfg(feature = "amqp")]

mod conformance;

use async_trait::async_trait;
use kumi::bus::SharedBus;

fn url() -> String {
    let base = std::env::var("KUMI_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}queue_expires=2m")
}

struct Rabbit;

#[async_trait]
impl conformance::BusHarness for Rabbit {
    fn name(&self) -> &'static str {
        "amqp"
    }

    async fn connect(&self) -> SharedBus {
        kumi::amqp::connect(&url()).await.unwrap_or_else(|e| {
            panic!("RabbitMQ must be running for these tests (scripts/brokers): {e}")
        })
    }

    async fn peer(&self, _bus: &SharedBus) -> SharedBus {
        self.connect().await
    }

    fn unreachable_url(&self) -> Option<String> {
        Some("amqp://127.0.0.1:1/%2f".to_owned())
    }
}

conformance_suite!(Rabbit);
