//! # kumi-sns-sqs
//!
//! The AWS SNS+SQS transport for kumi: bus URL
//! `sns+sqs://?region=us-east-1` (or, for an emulator,
//! `sns+sqs://?region=us-east-1&endpoint=http://127.0.0.1:5000&access_key_id=x&secret_access_key=y`;
//! all options in [`url`]).
//!
//! Events are published to SNS topics; each event route consumes from an SQS queue subscribed to
//! its topic, in tomodachi's topology (`docs/wire.md`, "SNS+SQS"): tomodachi's topic name encoding, its
//! notification bodies and direct-send wrapper, its message attribute types, and (opt-in) its
//! queue names. Where tomodachi loses or mishandles messages kumi does not: a message is deleted
//! only after its handler succeeded or it was dead-lettered; failures come back after the backoff
//! delay; long handlers get their visibility extended; polling continues while slow messages
//! run, within the route's concurrency limit.
//!
//! Delivery is at-least-once (duplicates possible); FIFO topics and queues (`fifo=true` or
//! [`SqsRoute::fifo`]) add ordering per message group. Not offered: request/reply and wildcard
//! subscriptions — both are startup errors naming the route.
//!
//! Tested against moto (an emulator), not AWS; see the crate README for what that proves.

//!
//! Files, bottom up: `connection.rs` (clients, publish), [`topology`] (topics, queues,
//! subscriptions, policies) with [`naming`], `consumer.rs` (a route's deliveries), `settle.rs`
//! (how each settles), [`attributes`] and [`envelope_sns`] (what travels), [`url`], and `bus.rs`
//! (the `Bus` impl).

mod bus;
mod connection;
mod consumer;
mod settle;

pub mod attributes;
pub mod envelope_sns;
pub mod naming;
pub mod topology;
pub mod url;

use std::sync::Arc;

pub use attributes::{DEDUPLICATION_ID, GROUP_ID};
pub use aws_sdk_sns;
pub use aws_sdk_sqs;
pub use bus::SnsSqsBus;
use futures_util::future::BoxFuture;
use kumi_core::bus::{BusConnector, ConnectOptions, SharedBus};
pub use topology::{FilterScope, SqsRoute};

/// Connects to SNS and SQS; the bus handle the runner and tests use.
pub async fn connect(url: &str) -> kumi_core::Result<SharedBus> {
    Ok(Arc::new(SnsSqsBus::connect(url).await?))
}

/// The connector the `kumi` facade registers for `sns+sqs://` URLs.
pub fn connector() -> BusConnector {
    Arc::new(
        |options: ConnectOptions| -> BoxFuture<'static, kumi_core::Result<SharedBus>> {
            Box::pin(async move { connect(&options.url).await })
        },
    )
}
