//! # kumi-amqp
//!
//! The AMQP (RabbitMQ) transport for kumi, on lapin: bus URL
//! `amqp://user:password@host:5672/%2f` (or `amqps://` for TLS; options in [`url`]).
//!
//! - Topology ([`topology`]): a topic exchange (`amq.topic` by default), durable shared queues per
//!   consumer group named as tomodachi does (or per service), exclusive auto-delete queues for
//!   broadcast routes, a retry queue per event queue.
//! - Delivery: at-least-once. Prefetch = the route's concurrency; ack after success; failures retry
//!   through the retry queue with backoff, then go to the dead-letter topic (`dlq.<topic>`).
//! - Publishing: persistent messages with publisher confirms.
//! - Request/reply over direct reply-to, with "no responders" detection.
//! - Reconnects with backoff and resumes consuming; drains on shutdown.

mod bus;
mod consumer;
pub mod headers;
mod reconnect;
mod retry;
mod rpc;
pub mod topology;
pub mod url;

use std::sync::Arc;

pub use bus::AmqpBus;
use kumi_core::bus::{BusConnector, SharedBus};
use kumi_core::handler::BoxFuture;
/// The lapin crate kumi-amqp is built on, for AMQP features kumi does not wrap.
pub use lapin;

/// Connects to RabbitMQ; the bus handle the runner and tests use.
pub async fn connect(url: &str) -> kumi_core::Result<SharedBus> {
    Ok(Arc::new(AmqpBus::connect(url).await?))
}

/// The connector the `kumi` facade registers for `amqp://` and `amqps://` URLs.
pub fn connector() -> BusConnector {
    Arc::new(|url: String| -> BoxFuture<kumi_core::Result<SharedBus>> {
        Box::pin(async move { connect(&url).await })
    })
}
