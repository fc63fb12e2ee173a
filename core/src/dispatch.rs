//! Where a message meets its handler: [`Dispatch`], the outermost service of every route.
//!
//! It decodes the envelope, calls the route's tower stack (trace span, user middleware, timeout,
//! extractors, handler: a [`RouteService`](crate::handler::RouteService)), catches panics, and turns the [`Outcome`] into a
//! [`Settlement`] by the route's [`RetryPolicy`]: the one place where retry and dead-letter
//! policy is decided. It never touches a broker; the consume runtime ([`crate::consume`])
//! carries the settlement out.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::CatchUnwind;
use futures_util::FutureExt;
use tokio::time::Sleep;
use tower::Service;

use crate::envelope::{EncodeContext, SharedEnvelope};
use crate::error::{panic_message, BoxError};
use crate::identity::Identity;
use crate::message::Message;
use crate::outcome::{FailureKind, Outcome};
use crate::retry::RetryPolicy;
use crate::settlement::{
    dead_letter_topic, DeadLetter, DeadLetterKind, Reply, RouteKind, Settlement,
    DEAD_LETTER_REASON, ORIGINAL_TOPIC,
};

/// What a route decides with: its name, kind, envelope, retry policy and dead-letter topic.
pub struct RoutePolicy {
    name: Arc<str>,
    kind: RouteKind,
    envelope: SharedEnvelope,
    retry: RetryPolicy,
    dead_letter_topic: Option<String>,
    identity: Identity,
    /// How long one attempt may run before it fails; `None`: no bound.
    timeout: Option<Duration>,
}

impl fmt::Debug for RoutePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutePolicy")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("envelope", &self.envelope.name())
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RoutePolicy {
    pub(crate) fn new(
        name: Arc<str>,
        kind: RouteKind,
        envelope: SharedEnvelope,
        retry: RetryPolicy,
        dead_letter_topic: Option<String>,
        identity: Identity,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            name,
            kind,
            envelope,
            retry,
            dead_letter_topic,
            identity,
            timeout,
        }
    }

    /// The route's name (`service.handler`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where messages of `topic` are dead-lettered: the route's configured topic, else
    /// `dlq.<topic>`.
    pub fn dead_letter_topic(&self, topic: &str) -> String {
        dead_letter_topic(self.dead_letter_topic.as_deref(), topic)
    }

    fn reply(&self, topic: &str, payload: &Bytes) -> Settlement {
        let cx = EncodeContext {
            topic,
            service_name: &self.identity.name,
            instance_id: &self.identity.instance_id,
        };
        match self.envelope.encode(&cx, payload) {
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
            FailureKind::Retryable => DeadLetterKind::Exhausted,
            FailureKind::Rejected => DeadLetterKind::Rejected,
            FailureKind::Undecodable => DeadLetterKind::Undecodable,
        };
        let dead_letter = DeadLetter {
            topic: self.dead_letter_topic(topic),
            original_topic: topic.to_owned(),
            reason: error,
            kind,
            attempts: attempt,
        };
        tracing::error!(
            route, topic, attempt, kind = kind.as_str(), dead_letter_topic = %dead_letter.topic,
            reason = %dead_letter.reason,
            "message dead-lettered"
        );
        Settlement::DeadLetter(dead_letter)
    }
}

/// Whether `message` is a dead letter consumed from the dead-letter topic it was sent to
/// (`dlq.<original topic>`): failing again, it is not dead-lettered a second time. The headers
/// alone do not make a dead letter: a message carrying them on any other topic (a dead letter
/// replayed onto its original topic, or a producer setting them) fails like any other.
fn is_dead_letter_of(message: &Message) -> bool {
    if message.headers.get(DEAD_LETTER_REASON).is_none() {
        return false;
    }
    message
        .headers
        .get(ORIGINAL_TOPIC)
        .is_some_and(|original| *message.topic == *dead_letter_topic(None, original))
}

/// The outermost service of a route: envelope, the route's stack, panics, retry policy. See the
/// [module docs](self).
#[derive(Clone)]
pub struct Dispatch<S> {
    inner: S,
    policy: Arc<RoutePolicy>,
    /// A `poll_ready` failure of the inner stack, turned into the next call's settlement.
    not_ready: Option<Arc<str>>,
}

impl<S> fmt::Debug for Dispatch<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatch")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S> Dispatch<S> {
    /// Dispatches to `inner` (a route's handler stack) by `policy`.
    pub fn new(inner: S, policy: Arc<RoutePolicy>) -> Self {
        Self {
            inner,
            policy,
            not_ready: None,
        }
    }
}

impl<S> Service<Message> for Dispatch<S>
where
    S: Service<Message, Response = Outcome>,
    S::Error: Into<BoxError>,
{
    type Response = Settlement;
    type Error = Infallible;
    type Future = DispatchFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => {
                self.not_ready = Some(e.into().to_string().into());
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, mut message: Message) -> Self::Future {
        let policy = &self.policy;
        // Envelopes decode what brokers deliver: a panic there must not take the consumer down.
        let decoded =
            std::panic::catch_unwind(AssertUnwindSafe(|| policy.envelope.decode(&mut message)));
        let decode_error = match decoded {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "the {} envelope panicked while decoding",
                policy.envelope.name()
            )),
        };
        let is_dead_letter = is_dead_letter_of(&message);
        if let Some(error) = decode_error {
            let settlement = policy.failed(
                &message.topic,
                message.attempt,
                FailureKind::Undecodable,
                error,
                is_dead_letter,
            );
            return DispatchFuture::done(settlement);
        }
        if let Some(error) = self.not_ready.take() {
            let settlement = policy.failed(
                &message.topic,
                message.attempt,
                FailureKind::Retryable,
                error.to_string(),
                is_dead_letter,
            );
            return DispatchFuture::done(settlement);
        }
        let topic = Arc::clone(&message.topic);
        let attempt = message.attempt;
        // The message goes straight to the service; a panic while the call starts (in an
        // extractor, a layer) is caught like one while it runs.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(message))) {
            Ok(future) => DispatchFuture::running(
                future,
                Call {
                    policy: Arc::clone(policy),
                    topic,
                    attempt,
                    is_dead_letter,
                },
            ),
            Err(panic) => DispatchFuture::done(policy.failed(
                &topic,
                attempt,
                FailureKind::Retryable,
                format!("handler panicked: {}", panic_message(&*panic)),
                is_dead_letter,
            )),
        }
    }
}

/// What the future needs to decide once the handler is done.
struct Call {
    policy: Arc<RoutePolicy>,
    topic: Arc<str>,
    attempt: u32,
    is_dead_letter: bool,
}

impl Call {
    fn settle<E: Into<BoxError>>(
        self,
        outcome: Result<Result<Outcome, E>, Box<dyn std::any::Any + Send>>,
    ) -> Settlement {
        let policy = &self.policy;
        let (kind, error) = match outcome {
            Ok(Ok(Outcome::Ok(reply))) => {
                return match policy.kind {
                    RouteKind::Event => Settlement::Ack,
                    RouteKind::Request => policy.reply(&self.topic, &reply.unwrap_or_default()),
                }
            }
            Ok(Ok(Outcome::Failed(kind, e))) => (kind, e.to_string()),
            Ok(Err(e)) => (FailureKind::Retryable, e.into().to_string()),
            Err(panic) => (
                FailureKind::Retryable,
                format!("handler panicked: {}", panic_message(&*panic)),
            ),
        };
        policy.failed(&self.topic, self.attempt, kind, error, self.is_dead_letter)
    }

    /// The attempt ran longer than the route's timeout: it failed, and is retried like any
    /// failure.
    fn timed_out(self, limit: Duration) -> Settlement {
        self.policy.failed(
            &self.topic,
            self.attempt,
            FailureKind::Retryable,
            format!("handler timed out after {limit:?}"),
            self.is_dead_letter,
        )
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Dispatch`]: the route's call, then its settlement.
    pub struct DispatchFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        // Decided before any handler ran (an undecodable body).
        Done { settlement: Option<Settlement> },
        // The route's stack is running.
        Running {
            #[pin]
            future: CatchUnwind<AssertUnwindSafe<F>>,
            call: Option<Call>,
            // The route's timeout, started when the call first has to wait (a call that
            // finishes on its first poll costs no timer).
            timer: Option<Pin<Box<Sleep>>>,
        },
    }
}

impl<F: Future> DispatchFuture<F> {
    fn done(settlement: Settlement) -> Self {
        Self {
            state: State::Done {
                settlement: Some(settlement),
            },
        }
    }

    fn running(future: F, call: Call) -> Self {
        Self {
            state: State::Running {
                future: AssertUnwindSafe(future).catch_unwind(),
                call: Some(call),
                timer: None,
            },
        }
    }
}

impl<F, E> Future for DispatchFuture<F>
where
    F: Future<Output = Result<Outcome, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Settlement, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        const DONE: &str = "a dispatch future is not polled after it completed";
        let mut state = self.project().state;
        let (call, limit) = match state.as_mut().project() {
            StateProj::Done { settlement } => {
                return Poll::Ready(Ok(settlement.take().expect(DONE)));
            }
            StateProj::Running {
                future,
                call,
                timer,
            } => {
                if let Poll::Ready(outcome) = future.poll(cx) {
                    return Poll::Ready(Ok(call.take().expect(DONE).settle(outcome)));
                }
                let Some(limit) = call.as_ref().and_then(|c| c.policy.timeout) else {
                    return Poll::Pending;
                };
                let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                std::task::ready!(timer.as_mut().poll(cx));
                (call.take().expect(DONE), limit)
            }
        };
        // The handler is dropped here, not when the worker takes its next message.
        state.set(State::Done { settlement: None });
        Poll::Ready(Ok(call.timed_out(limit)))
    }
}

/// Builds a route's [`DispatchService`](crate::consume::DispatchService) around its handler stack.
pub(crate) fn dispatch_service<S>(
    inner: S,
    policy: Arc<RoutePolicy>,
) -> crate::consume::DispatchService
where
    S: Service<Message, Response = Outcome> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    crate::consume::DispatchService::new(Dispatch::new(inner, policy))
}
