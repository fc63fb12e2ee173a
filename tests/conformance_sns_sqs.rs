//! The conformance suite on SNS+SQS, against the moto emulator `scripts/brokers` starts
//! (`KUMI_TEST_SNS_SQS_ENDPOINT`, default `http://127.0.0.1:5000`). Every case uses unique topic
//! names, so its topics and queues are its own; nothing global is reset.
//!
//! moto is not AWS: these runs prove kumi's logic against moto's model of SNS and SQS (moto does
//! not enforce IAM or queue policies, nor SNS subscription dead-letter queues).

#![cfg(feature = "sns-sqs")]

mod conformance;

use async_trait::async_trait;
use kumi::bus::SharedBus;

fn endpoint() -> String {
    std::env::var("KUMI_TEST_SNS_SQS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned())
}

fn url() -> String {
    // Short long-polls keep shutdowns quick; static credentials are fine for the emulator.
    format!(
        "sns+sqs://?region=us-east-1&endpoint={}&access_key_id=testing&secret_access_key=testing&wait_time=1&visibility_timeout=10",
        endpoint()
    )
}

struct SnsSqs;

#[async_trait]
impl conformance::BusHarness for SnsSqs {
    fn name(&self) -> &'static str {
        "sns-sqs"
    }

    async fn connect(&self) -> SharedBus {
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        kumi::sns_sqs::connect(&url()).await.unwrap_or_else(|e| {
            panic!("moto must be running for these tests (scripts/brokers): {e}")
        })
    }

    async fn peer(&self, _bus: &SharedBus) -> SharedBus {
        self.connect().await
    }

    fn unreachable_url(&self) -> Option<String> {
        Some(
            "sns+sqs://127.0.0.1:1?region=us-east-1&endpoint=http://127.0.0.1:1&access_key_id=x&secret_access_key=y"
                .to_owned(),
        )
    }
}

conformance_suite!(SnsSqs);
