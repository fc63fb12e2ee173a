//! # kumi-nats
//!
//! The NATS transport for kumi, on async-nats: bus URL `nats://host:4222` (several servers
//! comma-separated; `tls://` to require TLS; auth by user/password, token, nkey or creds file — see
//! [`url`]).
//!
//! Delivery guarantee: routes on plain NATS are at-most-once at the broker (core NATS keeps no
//! messages), with in-process retries and dead-lettering on top. Routes that need at-least-once
//! delivery across restarts use JetStream durable consumers.
//!
//! Files, bottom up: `connection.rs` (connect, publish, request), [`topology`] (subjects, queue
//! groups, streams and consumers), `consumer.rs` (a route's deliveries), `settle.rs` (how each
//! settles), [`headers`], [`url`], [`service_api`] (ADR-32), and `bus.rs` (the `Bus` impl).

mod bus;
mod connection;
mod consumer;
pub mod headers;
pub mod service_api;
mod settle;
pub mod topology;
pub mod url;

use std::sync::Arc;

pub use bus::NatsBus;
use futures_util::future::BoxFuture;
use kumi_core::bus::{BusConnector, ConnectOptions, SharedBus};
pub use service_api::{Endpoint, QueueGroup};
pub use topology::{CoreNats, JetStream};

/// Connects to NATS; the bus handle the runner and tests use.
pub async fn connect(url: &str) -> kumi_core::Result<SharedBus> {
    Ok(Arc::new(NatsBus::connect(url).await?))
}

/// The connector the `kumi` facade registers for `nats://` and `tls://` URLs.
pub fn connector() -> BusConnector {
    Arc::new(
        |options: ConnectOptions| -> BoxFuture<'static, kumi_core::Result<SharedBus>> {
            Box::pin(
                async move { Ok(Arc::new(NatsBus::connect_with(options).await?) as SharedBus) },
            )
        },
    )
}
