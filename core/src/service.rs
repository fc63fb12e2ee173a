//! The [`Service`] trait: what a user implements for their struct.

use async_trait::async_trait;

use crate::client::Client;
use crate::error::BoxError;
use crate::router::Router;

/// A service: a named struct whose methods are handlers bound to triggers.
///
/// Implement it by hand, or let `#[kumi::service]` generate the same impl from method attributes.
///
/// ```
/// use std::sync::Arc;
/// use kumi_core::{Service, Router, extract::Data, HandlerError};
///
/// struct Orders;
///
/// impl Orders {
///     async fn on_created(self: Arc<Self>, Data(id): Data<u64>) -> Result<(), HandlerError> {
///         println!("order {id} created");
///         Ok(())
///     }
///     async fn get(self: Arc<Self>, Data(id): Data<u64>) -> Result<String, HandlerError> {
///         Ok(format!("order {id}"))
///     }
/// }
///
/// impl Service for Orders {
///     fn name(&self) -> &str { "orders" }
///     fn routes(&self, router: &mut Router<Self>) {
///         router.subscribe("orders.created", Self::on_created).retries(3);
///         router.request("orders.get", Self::get);
///     }
/// }
/// ```
#[async_trait]
pub trait Service: Send + Sync + Sized + 'static {
    /// The service name: the default consumer group, the producer name in envelopes, and the NATS
    /// service name. Use `[A-Za-z0-9_-]`.
    fn name(&self) -> &str;

    /// The service version (semver).
    fn version(&self) -> &str {
        "0.0.0"
    }

    /// A one-line description (shown by service discovery such as NATS `$SRV.INFO`).
    fn description(&self) -> &str {
        ""
    }

    /// Metadata shown by service discovery (NATS `$SRV.*` responses).
    fn metadata(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::new()
    }

    /// Registers the service's routes.
    fn routes(&self, router: &mut Router<Self>);

    /// Runs before any route starts. An error aborts startup.
    async fn starting(&self, _client: &Client) -> Result<(), BoxError> {
        Ok(())
    }

    /// Runs once every route of every service in the app listens and the transports (HTTP,
    /// schedules...) started, before the process reports ready: a hook may publish to any
    /// service's routes. An error aborts startup.
    async fn started(&self, _client: &Client) -> Result<(), BoxError> {
        Ok(())
    }

    /// Runs when shutdown begins, before the bus drains.
    async fn stopping(&self, _client: &Client) -> Result<(), BoxError> {
        Ok(())
    }

    /// Runs after the bus drained; publishing is no longer possible.
    async fn stopped(&self) -> Result<(), BoxError> {
        Ok(())
    }
}
