//! # kumi-nats
//!
//! The NATS transport for kumi, on async-nats: bus URL `nats://host:4222` (several servers
//! comma-separated; `tls://` to require TLS; auth by user/password, token, nkey or creds file — see
//! [`url`]).
//!
//! Delivery guarantee: routes on plain NATS are at-most-once at the broker (core NATS keeps no
//! messages), with in-process retries and dead-lettering on top. Routes that need at-least-once
//! delivery across restarts use JetStream durable consumers.

mod bus;
pub mod headers;
mod jetstream;
pub mod service_api;
pub mod url;

use std::sync::Arc;

pub use bus::NatsBus;
pub use jetstream::{CoreNats, JetStream};
use kumi_core::bus::{BusConnector, SharedBus};
use kumi_core::handler::BoxFuture;
pub use service_api::{Endpoint, QueueGroup};

/// Connects to NATS; the bus handle the runner and tests use.
pub async fn connect(url: &str) -> kumi_core::Result<SharedBus> {
    Ok(Arc::new(NatsBus::connect(url).await?))
}

/// The connector the `kumi` facade registers for `nats://` and `tls://` URLs.
pub fn connector() -> BusConnector {
    Arc::new(|url: String| -> BoxFuture<kumi_core::Result<SharedBus>> {
        Box::pin(async move { connect(&url).await })
    })
}
