//! Where a message meets its handler: the [`Dispatcher`] of one route.
//!
//! `dispatch` decodes the envelope, runs the route's tower stack (trace span, user middleware,
//! timeout, extractors, handler), catches panics, and turns the [`Outcome`] into a [`Settlement`]
//! using the route's [`RetryPolicy`]. Transports call it and settle what it returns.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::bus::{DeadLetter, Reply, RouteKind, Settlement, DEAD_LETTER_REASON};
use crate::client::Client;
use crate::envelope::{EncodeContext, JsonStyle, SharedEnvelope};
use crate::error::BoxError;
use crate::extract::MessageParts;
use crate::handler::Handler;
use crate::identity::Identity;
use crate::message::Message;
use crate::outcome::{FailureKind, Outcome};
use crate::retry::RetryPolicy;

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
                Outcome::Failed(FailureKind::Undecodable, Box::new(rejection)),
            ))),
        }
    }
}

/// One route, ready to receive messages from a transport.
pub struct Dispatcher {
    name: Arc<str>,
    kind: RouteKind,
    envelope: SharedEnvelope,
    retry: RetryPolicy,
    dead_letter_topic: Option<String>,
    identity: Identity,
    service: RouteService,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("envelope", &self.envelope.name())
            .field("retry", &self.retry)
            .finish()
    }
}

impl Dispatcher {
    pub(crate) fn new(
        name: Arc<str>,
        kind: RouteKind,
        envelope: SharedEnvelope,
        retry: RetryPolicy,
        dead_letter_topic: Option<String>,
        identity: Identity,
        service: RouteService,
    ) -> Self {
        Self {
            name,
            kind,
            envelope,
            retry,
            dead_letter_topic,
            identity,
            service,
        }
    }

    /// The route's name (`service.handler`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Event or request route.
    pub fn kind(&self) -> RouteKind {
        self.kind
    }

    /// The route's retry policy (transports with native redelivery read the limits from it).
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Where messages of `topic` are dead-lettered: the route's configured topic, else
    /// `dlq.<topic>`.
    pub fn dead_letter_topic(&self, topic: &str) -> String {
        match &self.dead_letter_topic {
            Some(t) => t.clone(),
            None => format!("dlq.{topic}"),
        }
    }

    /// A clone of the route's service stack, for a consumer task to keep and pass to
    /// [`Dispatcher::dispatch_with`] (saves a clone per message).
    pub fn service(&self) -> RouteService {
        self.service.clone()
    }

    /// Handles one delivery of `message` and says how to settle it. Never panics: handler panics
    /// are caught and count as failures.
    pub async fn dispatch(&self, message: Message) -> Settlement {
        self.dispatch_with(&mut self.service.clone(), message).await
    }

    /// [`Dispatcher::dispatch`] with a service stack the caller keeps (from
    /// [`Dispatcher::service`]).
    pub async fn dispatch_with(
        &self,
        service: &mut RouteService,
        mut message: Message,
    ) -> Settlement {
        // Envelopes decode what brokers deliver: a panic there must not take the consumer down.
        let decoded =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.envelope.decode(&mut message)));
        let decode_error = match decoded {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "the {} envelope panicked while decoding",
                self.envelope.name()
            )),
        };
        let is_dead_letter = message.headers.get(DEAD_LETTER_REASON).is_some();
        if let Some(error) = decode_error {
            return self.failed(
                &message.topic,
                message.attempt,
                FailureKind::Undecodable,
                error,
                is_dead_letter,
            );
        }
        let topic = message.topic.clone();
        let attempt = message.attempt;
        let ready = match service.ready().await {
            Ok(ready) => ready,
            Err(e) => {
                return self.failed(
                    &topic,
                    attempt,
                    FailureKind::Retryable,
                    e.to_string(),
                    is_dead_letter,
                )
            }
        };
        // The message goes straight to the service (not through an async block, which would
        // copy it into each future around it); a panic while the call starts (in an extractor,
        // a layer) is caught like one while it runs.
        let call = std::panic::catch_unwind(AssertUnwindSafe(|| ready.call(message)));
        let outcome = match call {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        match outcome {
            Ok(Ok(Outcome::Ok(reply))) => match self.kind {
                RouteKind::Event => Settlement::Ack,
                RouteKind::Request => self.reply(&topic, reply.unwrap_or_default()),
            },
            Ok(Ok(Outcome::Failed(kind, e))) => {
                self.failed(&topic, attempt, kind, e.to_string(), is_dead_letter)
            }
            Ok(Err(e)) => self.failed(
                &topic,
                attempt,
                FailureKind::Retryable,
                e.to_string(),
                is_dead_letter,
            ),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                self.failed(
                    &topic,
                    attempt,
                    FailureKind::Retryable,
                    format!("handler panicked: {text}"),
                    is_dead_letter,
                )
            }
        }
    }

    fn reply(&self, topic: &str, payload: Bytes) -> Settlement {
        let cx = EncodeContext {
            topic,
            service_name: &self.identity.name,
            instance_id: &self.identity.instance_id,
        };
        match self.envelope.encode(&cx, &payload) {
            Ok(encoded) => Settlement::Reply(Reply::ok(encoded.body)),
            Err(e) => Settlement::Reply(Reply::error(500, e.to_string())),
        }
    }

    fn failed(
        &self,
        topic: &str,
        attempt: u32,
        kind: FailureKind,
        error: String,
        is_dead_letter: bool,
    ) -> Settlement {
        let route = &*self.name;
        if self.kind == RouteKind::Request {
            let code = if kind == FailureKind::Undecodable {
                400
            } else {
                500
            };
            tracing::warn!(route, topic, code, error = %error, "request handler failed");
            return Settlement::Reply(Reply::error(code, error));
        }
        if kind == FailureKind::Retryable && self.retry.should_retry(attempt) {
            let delay = self.retry.backoff(attempt);
            tracing::warn!(
                route, topic, attempt, max_attempts = self.retry.max_attempts,
                retry_in = ?delay, error = %error,
                "handler failed; will retry"
            );
            return Settlement::Retry { delay, error };
        }
        if is_dead_letter {
            // Dead-lettering a dead letter again (a failing catch-all route on `>` or `#`) would
            // loop through dlq.dlq.… forever: stop here, loudly.
            tracing::error!(
                route, topic, attempt, error = %error,
                "a dead letter failed in its handler too; it is acknowledged, not dead-lettered again"
            );
            return Settlement::Ack;
        }
        let kind = match kind {
            FailureKind::Retryable => "exhausted",
            FailureKind::Rejected => "rejected",
            FailureKind::Undecodable => "undecodable",
        };
        let dead_letter = DeadLetter {
            topic: self.dead_letter_topic(topic),
            original_topic: topic.to_owned(),
            reason: error,
            kind,
            attempts: attempt,
        };
        tracing::error!(
            route, topic, attempt, kind, dead_letter_topic = %dead_letter.topic,
            reason = %dead_letter.reason,
            "message dead-lettered"
        );
        Settlement::DeadLetter(dead_letter)
    }
}
