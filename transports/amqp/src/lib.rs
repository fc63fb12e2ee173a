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
//!
//! Files, bottom up: `connection.rs` (connect, confirmed publish, reconnect), `rpc.rs`
//! (request/reply), [`topology`] (exchange, queues, bindings), `consumer.rs` (a route's
//! deliveries), `settle.rs` (how each settles), [`headers`], [`url`], and `bus.rs` (the `Bus`
//! impl).

mod bus;
mod connection;
mod consumer;
pub mod headers;
mod rpc;
mod settle;
pub mod topology;
pub mod url;

use std::sync::Arc;

pub use bus::AmqpBus;
use futures_util::future::BoxFuture;
use kumi_core::bus::{BusConnector, ConnectOptions, SharedBus};
/// The lapin crate kumi-amqp is built on, for AMQP features kumi does not wrap.
pub use lapin;
pub use url::QueueType;

/// Connects to RabbitMQ; the bus handle the runner and tests use.
pub async fn connect(url: &str) -> kumi_core::Result<SharedBus> {
    Ok(Arc::new(AmqpBus::connect(url).await?))
}

/// The connector the `kumi` facade registers for `amqp://` and `amqps://` URLs.
pub fn connector() -> BusConnector {
    Arc::new(
        |options: ConnectOptions| -> BoxFuture<'static, kumi_core::Result<SharedBus>> {
            Box::pin(
                async move { Ok(Arc::new(AmqpBus::connect_with(options).await?) as SharedBus) },
            )
        },
    )
}
