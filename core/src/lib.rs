//! kumi-core: services, routing, handlers and extractors, envelopes, the bus abstraction, the
//! runner and the in-memory bus. Users depend on the `kumi` facade crate, which re-exports this.
//!
//! Where to look:
//! - a message enters through a transport implementing [`bus::Bus`] ([`bus::memory`] here);
//! - it reaches its handler through [`dispatch::Dispatcher`] (envelope, middleware, extractors);
//! - its outcome is settled as a [`bus::Settlement`] chosen by [`retry::RetryPolicy`].

pub mod app;
pub mod bus;
pub mod client;
pub mod dispatch;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod handler;
pub mod identity;
pub mod message;
pub mod middleware;
pub mod outcome;
pub mod retry;
pub mod router;
pub mod runner;
pub mod service;
pub mod setting;
pub mod transport;

pub use app::{App, RunningApp};
pub use bus::{Bus, Capabilities, SharedBus};
pub use client::{Client, Context, PublishOptions};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use handler::Handler;
pub use identity::Identity;
pub use message::{Headers, Message, Outgoing};
pub use outcome::{HandlerError, IntoOutcome, Outcome};
pub use retry::RetryPolicy;
pub use router::Router;
pub use service::Service;
pub use transport::{Health, ServiceHandle, Transport};

/// Re-exported for `#[kumi::service]` expansions and for implementing [`Service`] by hand.
pub use async_trait::async_trait;
