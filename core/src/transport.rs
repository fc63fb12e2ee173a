//! Triggers that are not a message bus (HTTP routes, websockets, schedules): the [`Transport`]
//! trait their crates implement. They report to the process [`Health`](crate::health::Health).
//!
//! A transport crate adds its own route builders to [`Router`](crate::Router) through an extension
//! trait and keeps what they register in [`Router::extensions_mut`](crate::Router::extensions_mut).
//! When a service starts, the [`App`](crate::App) hands each transport that service's extensions
//! and a [`ServiceHandle`]; once every service's routes started, it starts the transports, runs
//! the services' `started` hooks, then marks the process ready. On shutdown it marks it draining,
//! drains the transports, then the bus routes.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::client::Client;
use crate::error::Result;
use crate::health::Health;
use crate::identity::Identity;
use crate::message::Extensions;
use crate::settlement::DrainReport;

/// A running service, as a transport sees it.
#[derive(Clone)]
pub struct ServiceHandle {
    /// The service's identity.
    pub identity: Identity,
    /// A client publishing as the service.
    pub client: Client,
    service: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceHandle")
            .field("identity", &self.identity)
            .finish()
    }
}

impl ServiceHandle {
    pub(crate) fn new<S: Send + Sync + 'static>(
        identity: Identity,
        client: Client,
        service: Arc<S>,
    ) -> Self {
        Self {
            identity,
            client,
            service,
        }
    }

    /// The service itself, if it is an `S`.
    pub fn downcast<S: Send + Sync + 'static>(&self) -> Option<Arc<S>> {
        Arc::clone(&self.service).downcast::<S>().ok()
    }
}

/// A non-bus transport, started and stopped with the services.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Short name for the banner and health reports (`http`, `schedule`...).
    fn name(&self) -> &'static str;

    /// Takes the routes `service` registered for this transport out of its router extensions.
    /// An error (an invalid route, say) aborts startup.
    fn attach(&self, service: &ServiceHandle, extensions: &mut Extensions) -> Result<()>;

    /// Starts serving. Returns the lines the startup banner shows (what listens where).
    async fn start(&self, health: Health) -> Result<Vec<String>>;

    /// Stops taking new work and lets in-flight work finish until `deadline`.
    async fn shutdown(&self, deadline: Instant) -> Result<DrainReport>;
}

/// A shared transport handle.
pub type SharedTransport = Arc<dyn Transport>;
