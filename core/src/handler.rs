//! Message handlers: async functions whose arguments are extractors, and [`HandlerService`], a
//! handler as the tower service at the core of a route.
//!
//! Any `Fn(T1, .., Tn) -> impl Future<Output = R>` with every `Ti: FromMessage<S>` and
//! `R: IntoOutcome` is a [`Handler`] — including methods taking `self: Arc<Self>`, because the
//! service itself (`Arc<S>`) is an extractor. Up to 12 arguments.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use tower::util::BoxCloneSyncService;
use tower::Service;

use crate::client::Client;
use crate::envelope::JsonStyle;
use crate::error::BoxError;
use crate::extract::{FromMessage, MessageParts, Rejection};
use crate::message::Message;
use crate::outcome::{IntoOutcome, Outcome};

/// A readable default route name for a handler type: the function's name
/// (`my_crate::Orders::on_order` → `on_order`). Transport crates use it for their routes too.
pub fn handler_name<H>() -> String {
    // Closures keep a readable tail.
    let full = std::any::type_name::<H>();
    let trimmed = full.split('<').next().unwrap_or(full);
    trimmed
        .rsplit("::")
        .find(|s| !s.starts_with('{'))
        .unwrap_or(trimmed)
        .to_owned()
}

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An async function usable as a message handler for service `S`. `T` is the tuple of its
/// argument types; it only exists to let the impls for each arity coexist.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a kumi message handler",
    label = "not a handler",
    note = "a handler is an `async fn` whose arguments all implement `FromMessage<S>` (e.g. `Data<T>`, `Context`, `Arc<Self>`) and whose return type implements `IntoOutcome` (`()`, or `Result<T: Serialize, E: Into<HandlerError>>`)"
)]
pub trait Handler<T, S>: Clone + Send + Sync + 'static {
    /// The running handler.
    type Future: Future<Output = Outcome> + Send + 'static;

    /// Runs the extractors, then starts the handler. A rejection means the handler never ran.
    fn call(
        &self,
        parts: &MessageParts<'_, S>,
        reply: Option<JsonStyle>,
    ) -> Result<Self::Future, Rejection>;
}

pin_project_lite::pin_project! {
    /// A handler function's future, its value turned into an [`Outcome`]. Not boxed: the route's
    /// service stack boxes the whole call once.
    pub struct HandlerFuture<Fut> {
        #[pin]
        fut: Fut,
        reply: Option<JsonStyle>,
    }
}

impl<Fut> Future for HandlerFuture<Fut>
where
    Fut: Future,
    Fut::Output: IntoOutcome,
{
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.project();
        let reply = *this.reply;
        this.fut.poll(cx).map(|value| value.into_outcome(reply))
    }
}

macro_rules! impl_handler {
    ($($ty:ident),*) => {
        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, R, S, $($ty,)*> Handler<($($ty,)*), S> for F
        where
            F: Fn($($ty),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoOutcome + 'static,
            S: Send + Sync + 'static,
            $($ty: FromMessage<S> + Send + 'static,)*
        {
            type Future = HandlerFuture<Fut>;

            fn call(
                &self,
                parts: &MessageParts<'_, S>,
                reply: Option<JsonStyle>,
            ) -> Result<Self::Future, Rejection> {
                $(let $ty = $ty::from_message(parts)?;)*
                Ok(HandlerFuture { fut: (self)($($ty),*), reply })
            }
        }
    };
}

impl_handler!();
impl_handler!(T1);
impl_handler!(T1, T2);
impl_handler!(T1, T2, T3);
impl_handler!(T1, T2, T3, T4);
impl_handler!(T1, T2, T3, T4, T5);
impl_handler!(T1, T2, T3, T4, T5, T6);
impl_handler!(T1, T2, T3, T4, T5, T6, T7);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);

/// A route's handler as a tower service.
pub type RouteService = BoxCloneSyncService<Message, Outcome, BoxError>;

/// Adapts a [`Handler`] to a tower [`Service`]: runs the extractors, then the handler.
pub(crate) struct HandlerService<H, T, S> {
    handler: H,
    service: Arc<S>,
    client: Client,
    reply: Option<JsonStyle>,
    _args: std::marker::PhantomData<fn() -> T>,
}

impl<H, T, S> HandlerService<H, T, S> {
    pub(crate) fn new(
        handler: H,
        service: Arc<S>,
        client: Client,
        reply: Option<JsonStyle>,
    ) -> Self {
        Self {
            handler,
            service,
            client,
            reply,
            _args: std::marker::PhantomData,
        }
    }
}

impl<H: Clone, T, S> Clone for HandlerService<H, T, S> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            service: Arc::clone(&self.service),
            client: self.client.clone(),
            reply: self.reply,
            _args: std::marker::PhantomData,
        }
    }
}

impl<H, T, S> Service<Message> for HandlerService<H, T, S>
where
    H: Handler<T, S>,
    S: Send + Sync + 'static,
{
    type Response = Outcome;
    type Error = BoxError;
    type Future = futures_util::future::Either<
        futures_util::future::Map<H::Future, fn(Outcome) -> Result<Outcome, BoxError>>,
        std::future::Ready<Result<Outcome, BoxError>>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, message: Message) -> Self::Future {
        let parts = MessageParts {
            message: &message,
            service: &self.service,
            client: &self.client,
        };
        match self.handler.call(&parts, self.reply) {
            Ok(fut) => futures_util::future::Either::Left(fut.map(Ok as fn(_) -> _)),
            Err(rejection) => futures_util::future::Either::Right(std::future::ready(Ok(
                Outcome::Failed(rejection.kind(), Box::new(rejection)),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn on_order() {}

    #[test]
    fn handler_names_are_readable() {
        assert_eq!(handler_name::<fn()>(), "fn()");
        let _ = on_order;
        fn name_of<H>(_: &H) -> String {
            handler_name::<H>()
        }
        assert_eq!(name_of(&on_order), "on_order");
    }
}
