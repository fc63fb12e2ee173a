//! # kumi
//!
//! Microservices in Rust, in the style of Python's tomodachi: a service is a plain struct, its
//! methods are handlers, and each handler is bound to triggers — a message on a bus (in-memory,
//! NATS, RabbitMQ, SNS+SQS), with more triggers (HTTP, websockets, schedules) in their own crates.
//! One handler model and one envelope model across every transport: the bus is chosen by URL
//! (`KUMI_BUS=memory://`), not by code.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kumi::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: u64 }
//!
//! struct Orders;
//!
//! impl Orders {
//!     async fn on_created(self: Arc<Self>, Data(order): Data<Order>) -> Result<(), HandlerError> {
//!         tracing::info!(order.id, "order created");
//!         Ok(())
//!     }
//! }
//!
//! impl Service for Orders {
//!     fn name(&self) -> &str { "orders" }
//!     fn routes(&self, router: &mut Router<Self>) {
//!         router.subscribe("orders.created", Self::on_created).retries(3);
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     kumi::run(Orders).await
//! }
//! ```
//!
//! See the README for the quickstart, the `#[kumi::service]` macro and the list of features.

pub use kumi_core::*;

pub use kumi_core::extract::{
    Attempt, CorrelationId, Data, FromMessage, MessageId, MessageParts, RawBody, Rejection, Topic,
};

/// `#[kumi::service]`: generates the [`Service`] impl from an `impl` block whose methods carry
/// route attributes (`#[subscribe("topic")]`, `#[http(GET, "/path")]`, `#[schedule("10s")]`...),
/// each the router method of its name. See the crate README and the macro's documentation.
#[cfg(feature = "macros")]
pub use kumi_macros::service;

/// The names most services need.
pub mod prelude {
    pub use crate::extract::{Attempt, CorrelationId, Data, MessageId, RawBody, Topic};
    pub use crate::{
        Client, Context, Error, HandlerError, Headers, PublishOptions, Router, Service,
    };
    #[cfg(feature = "macros")]
    pub use kumi_macros::service;

    /// The router extension traits of the enabled transports (`http`, `websocket`,
    /// `schedule`...), without their names.
    pub use crate::__macro::router_ext::*;
}

#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __macro;

/// The AMQP (RabbitMQ) bus.
#[cfg(feature = "amqp")]
pub use kumi_amqp as amqp;
/// The NATS bus.
#[cfg(feature = "nats")]
pub use kumi_nats as nats;
/// The AWS SNS+SQS bus.
#[cfg(feature = "sns-sqs")]
pub use kumi_sns_sqs as sns_sqs;

/// The bus connectors this build of kumi offers (by enabled features); `memory` always.
pub fn connectors() -> bus::Connectors {
    #[allow(unused_mut)]
    let mut connectors = bus::Connectors::default();
    #[cfg(feature = "nats")]
    {
        connectors.register("nats", kumi_nats::connector());
        connectors.register("tls", kumi_nats::connector());
    }
    #[cfg(feature = "amqp")]
    {
        connectors.register("amqp", kumi_amqp::connector());
        connectors.register("amqps", kumi_amqp::connector());
    }
    #[cfg(feature = "sns-sqs")]
    connectors.register("sns+sqs", kumi_sns_sqs::connector());
    connectors
}

/// HTTP routes on kumi services (axum), error handlers, static files, health endpoints.
#[cfg(feature = "http")]
pub use kumi_http as http;
/// Scheduled handlers: intervals, cron, one-shot and daily triggers.
#[cfg(feature = "schedule")]
pub use kumi_schedule as schedule;
/// Websocket endpoints on the HTTP server, fan-out hubs, and a client.
#[cfg(feature = "websocket")]
pub use kumi_websocket as websocket;

/// A [`Runner`](runner::Runner) with every transport this build enables.
pub fn runner() -> runner::Runner {
    let runner = runner::Runner::new().connectors(connectors());
    #[cfg(feature = "http")]
    let runner = runner.transport_with(kumi_http::transport_from_config);
    #[cfg(feature = "schedule")]
    let runner = runner.transport_with(kumi_schedule::transport_from_config);
    runner
}

/// Runs `service` until SIGINT/SIGTERM with configuration from flags and `KUMI_*` variables
/// (`KUMI_BUS`, `KUMI_LOG`, `KUMI_LOG_FORMAT`, `KUMI_DRAIN_TIMEOUT`), then drains gracefully.
/// Returns the process exit code.
pub async fn run<S: Service>(service: S) -> std::process::ExitCode {
    runner().service(service).run().await
}

/// Connects to the bus at `url` with the transports this build enables.
pub async fn connect(url: &str) -> Result<SharedBus> {
    connectors().connect(url).await
}

/// The README's code blocks, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
