//! The bus swap: the service of `examples/swap.rs` runs unchanged over the in-memory bus, NATS
//! (feature `nats`, `KUMI_TEST_NATS_URL`), RabbitMQ (feature `amqp`, `KUMI_TEST_AMQP_URL`) and
//! SNS+SQS (feature `sns-sqs`, the moto emulator; no request/reply there), and observes the same
//! results on each.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/swap.rs"]
mod swap;

use std::collections::BTreeSet;

use serde_json::json;

fn expected() -> swap::Report {
    swap::Report {
        created: BTreeSet::from([1, 2, 3]),
        confirmed: BTreeSet::from([1, 2, 3]),
        reply: json!({"id": 2, "cents": 200}),
        error_code: Some(500),
        request_reply: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_on_memory() {
    assert_eq!(swap::run_flow("memory://").await, Ok(expected()));
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_on_nats() {
    let url =
        std::env::var("KUMI_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    assert_eq!(swap::run_flow(&url).await, Ok(expected()));
}

#[cfg(feature = "amqp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_on_amqp() {
    let url = std::env::var("KUMI_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}queue_expires=2m");
    assert_eq!(swap::run_flow(&url).await, Ok(expected()));
}

#[cfg(feature = "sns-sqs")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_on_sns_sqs() {
    let endpoint = std::env::var("KUMI_TEST_SNS_SQS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned());
    let url = format!(
        "sns+sqs://?region=us-east-1&endpoint={endpoint}&access_key_id=testing&secret_access_key=testing&wait_time=1"
    );
    let events_only = swap::Report {
        reply: serde_json::Value::Null,
        error_code: None,
        request_reply: false,
        ..expected()
    };
    assert_eq!(swap::run_flow(&url).await, Ok(events_only));
}
