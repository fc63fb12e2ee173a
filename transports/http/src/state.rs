//! [`ServiceState`]: the axum state of a service's HTTP routes, and the extractors it backs.
//!
//! Every route a service registers is an axum handler whose state is `ServiceState<S>`. Besides
//! the extractors axum offers, such handlers can take:
//!
//! | argument | gives |
//! |---|---|
//! | `Arc<S>` (so `self: Arc<Self>` methods) | the service |
//! | `State<Arc<S>>`, `State<Client>`, `State<ServiceState<S>>` | the same, axum style |
//! | [`BusContext`](crate::BusContext) | publish and request on the bus, correlated with the request |
//! | [`Drain`] | the server's shutdown signal |

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use kumi_core::Client;

use crate::drain::Drain;

struct Inner<S> {
    service: Arc<S>,
    client: Client,
    drain: Drain,
}

/// The state of one service's HTTP routes: the service, a client publishing as it, and the
/// server's [`Drain`] signal. Cheap to clone (one reference count; axum clones the state for
/// every request).
pub struct ServiceState<S>(Arc<Inner<S>>);

impl<S> Clone for ServiceState<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<S> fmt::Debug for ServiceState<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceState")
            .field("service", &std::any::type_name::<S>())
            .field("client", &self.0.client)
            .finish()
    }
}

impl<S> ServiceState<S> {
    /// State for `service`, publishing with `client`.
    pub fn new(service: Arc<S>, client: Client, drain: Drain) -> Self {
        Self(Arc::new(Inner {
            service,
            client,
            drain,
        }))
    }

    /// The service.
    pub fn service(&self) -> &Arc<S> {
        &self.0.service
    }

    /// A client publishing as the service (no correlation with the request; see
    /// [`BusContext`](crate::BusContext) for that).
    pub fn client(&self) -> &Client {
        &self.0.client
    }

    /// The server's shutdown signal.
    pub fn drain(&self) -> &Drain {
        &self.0.drain
    }
}

impl<S> FromRef<ServiceState<S>> for Arc<S> {
    fn from_ref(state: &ServiceState<S>) -> Self {
        Arc::clone(state.service())
    }
}

impl<S> FromRef<ServiceState<S>> for Client {
    fn from_ref(state: &ServiceState<S>) -> Self {
        state.client().clone()
    }
}

/// `Arc<S>` as an extractor, so that `self: Arc<Self>` methods are axum handlers.
impl<S: Send + Sync + 'static> FromRequestParts<ServiceState<S>> for Arc<S> {
    type Rejection = Infallible;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &ServiceState<S>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Arc::clone(state.service()))
    }
}

/// The server's drain signal, as a handler argument.
impl<S: Send + Sync + 'static> FromRequestParts<ServiceState<S>> for Drain {
    type Rejection = Infallible;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &ServiceState<S>,
    ) -> Result<Self, Self::Rejection> {
        Ok(state.drain().clone())
    }
}
