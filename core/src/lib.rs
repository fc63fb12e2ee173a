//! kumi-core: services, routing, handlers and extractors, envelopes, the bus abstraction, the
//! runner and the in-memory bus. Users depend on the `kumi` facade crate, which re-exports this.
//!
//! Where to look (`docs/architecture.md` has the whole path, file by file, for every bus):
//! - a message enters as a [`delivery::Delivery`] from a bus's [`delivery::Deliveries`] (the bus
//!   implements [`bus::Bus`]; [`memory`] is the in-memory one);
//! - the consume runtime ([`consume`]) takes it within the route's concurrency bound and runs it
//!   through [`dispatch::Dispatch`] (envelope, middleware, extractors, handler), which decides a
//!   [`settlement::Settlement`] by the route's [`retry::RetryPolicy`];
//! - the runtime settles it through the delivery (ack, retry, dead letter, reply), extending its
//!   lease while the handler runs, and counts it ([`stats`]).

pub mod app;
pub mod bus;
pub mod client;
pub mod consume;
pub mod delivery;
pub mod dispatch;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod handler;
pub mod health;
pub mod identity;
pub mod log_context;
pub mod memory;
pub mod message;
pub mod middleware;
pub mod outcome;
pub mod retry;
pub mod router;
pub mod runner;
pub mod service;
pub mod setting;
pub mod settlement;
pub mod stats;
pub mod transport;

pub use app::{App, RunningApp};
pub use bus::{Bus, Capabilities, SharedBus};
pub use client::{Client, Context, PublishOptions};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use handler::Handler;
pub use health::Health;
pub use identity::Identity;
pub use message::{Headers, Message, Outgoing};
pub use outcome::{HandlerError, IntoOutcome, Outcome};
pub use retry::RetryPolicy;
pub use router::Router;
pub use service::Service;
pub use transport::{ServiceHandle, Transport};

/// Re-exported for `#[kumi::service]` expansions and for implementing [`Service`] by hand.
pub use async_trait::async_trait;
