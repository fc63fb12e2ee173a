//! The bus abstraction: what every message transport (in-memory, NATS, AMQP, SNS+SQS) implements.
//!
//! A message's path through kumi:
//!
//! 1. the transport receives a delivery and builds a [`Message`](crate::Message);
//! 2. it hands it to the route's [`Dispatcher`](crate::dispatch::Dispatcher) (`dispatch`), which
//!    decodes the envelope, runs the middleware and the handler, and applies the retry policy;
//! 3. the dispatcher returns a [`Settlement`], which the transport maps onto its native vocabulary
//!    (ack, delayed redelivery, dead-letter publish, reply).
//!
//! Transports never decide retry policy; dispatchers never touch a broker.

pub(crate) mod connect;
pub mod memory;
pub(crate) mod topic;
pub mod url_options;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

pub use connect::{client_certificate, redact, BusConnector, Connectors};
pub use topic::{validate_pattern, validate_topic, TopicCache};

use crate::dispatch::Dispatcher;
use crate::error::Result;
use crate::message::{Extensions, Headers, Outgoing};

/// Header on dead-lettered messages: why the message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "kumi-dead-letter-reason";
/// Header on dead-lettered messages: `exhausted`, `rejected` or `undecodable`.
pub const DEAD_LETTER_KIND: &str = "kumi-dead-letter-kind";
/// Header on dead-lettered messages: the topic the message was consumed from.
pub const ORIGINAL_TOPIC: &str = "kumi-original-topic";
/// Header on dead-lettered messages: how many delivery attempts were made.
pub const ATTEMPTS: &str = "kumi-attempts";
/// Header carrying the message id on transports without a native field for it.
pub const MESSAGE_ID: &str = "kumi-message-id";
/// Header carrying the correlation id on transports without a native field for it.
pub const CORRELATION_ID: &str = "kumi-correlation-id";

/// What a bus can and cannot do. The conformance suite skips (visibly) the cases a bus lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// Messages published before a subscriber exists are kept for it.
    pub persistent: bool,
    /// Request/reply is offered.
    pub request_reply: bool,
    /// A request to a topic nobody serves fails fast with "no responders".
    pub no_responders: bool,
    /// Subscriptions may use wildcards.
    pub wildcards: bool,
    /// Competing consumer groups (each message once per group).
    pub consumer_groups: bool,
    /// Failed messages are redelivered after a backoff delay.
    pub redelivery: bool,
    /// Exhausted and poison messages go to a dead-letter destination.
    pub dead_letter: bool,
    /// A single consumer sees messages in publish order (while nothing fails).
    pub ordered: bool,
    /// A message may be delivered more than once even when its handler succeeded.
    pub duplicates_possible: bool,
    /// Durable subscriptions survive a subscriber restart without losing messages.
    pub durable: bool,
    /// The bus reconnects by itself after losing its broker connection.
    pub reconnect: bool,
    /// A message waiting out its retry backoff keeps one of the route's concurrency slots at the
    /// broker (JetStream's `max_ack_pending`): a route of concurrency 1 waits for the retry
    /// before taking the next message, so it handles messages in order. Without it, later
    /// messages are handled while the failed one waits.
    pub retry_holds_slot: bool,
}

/// Whether a route consumes events or answers requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Fire-and-forget messages, acked after success.
    Event,
    /// Requests: the handler's value is the reply.
    Request,
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouteKind::Event => "subscribe",
            RouteKind::Request => "request",
        })
    }
}

/// How subscribers of one topic share its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Competing consumers: each message goes to one member of the named group.
    Group(String),
    /// Every subscriber instance gets every message.
    Broadcast,
}

/// A route as a bus sees it: where to listen and whom to hand messages to.
#[derive(Clone)]
pub struct Subscription {
    /// Topic pattern (wildcards: `*` one token, `>` the rest; `#` zero or more tokens).
    pub topic: String,
    /// How instances share the messages.
    pub delivery: Delivery,
    /// True when the route chose its group or broadcast itself; false when `delivery` is the
    /// default (the service name as group). Transports with their own convention for the default
    /// (NATS service endpoints use the queue group `q`) apply it only then.
    pub explicit_delivery: bool,
    /// The route's name within its service (the handler name unless renamed).
    pub name: String,
    /// The service the route belongs to.
    pub service: crate::identity::Identity,
    /// Event or request.
    pub kind: RouteKind,
    /// At most this many handler calls run at once; the bus takes no more than that from the broker.
    pub concurrency: usize,
    /// Receives each message and says how to settle it.
    pub dispatcher: Arc<Dispatcher>,
    /// Transport-specific options the route set (a JetStream durable, an SQS queue name...).
    pub options: Arc<Extensions>,
    /// Transport-specific options its service set for every route
    /// ([`Router::option`](crate::Router::option)); the route's own take precedence.
    pub service_options: Arc<Extensions>,
}

impl Subscription {
    /// The option of type `T`: the route's own, else its service's. A bus that cannot apply an
    /// option to this kind of route (a JetStream durable on a request route, say) rejects it
    /// when the route set it, and ignores it when it came from the service.
    pub fn option<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.options
            .get::<T>()
            .or_else(|| self.service_options.get::<T>())
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("delivery", &self.delivery)
            .field("kind", &self.kind)
            .field("concurrency", &self.concurrency)
            .field("route", &self.dispatcher.name())
            .finish()
    }
}

/// A reply to a request, or the error the handler failed with.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Reply body (encoded by the route's envelope); empty for errors.
    pub body: Bytes,
    /// Reply headers.
    pub headers: Headers,
    /// `Some((code, text))` when the handler failed (500) or the request did not decode (400).
    pub error: Option<(u16, String)>,
}

impl Reply {
    /// A successful reply.
    pub fn ok(body: Bytes) -> Self {
        Self {
            body,
            headers: Headers::new(),
            error: None,
        }
    }

    /// An error reply.
    pub fn error(code: u16, text: impl Into<String>) -> Self {
        Self {
            body: Bytes::new(),
            headers: Headers::new(),
            error: Some((code, text.into())),
        }
    }
}

/// Why and where a message is dead-lettered.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Destination topic.
    pub topic: String,
    /// The topic the message was consumed from.
    pub original_topic: String,
    /// Error text.
    pub reason: String,
    /// `exhausted`, `rejected` or `undecodable`.
    pub kind: &'static str,
    /// Delivery attempts made.
    pub attempts: u32,
}

impl DeadLetter {
    /// The headers a dead-lettered message carries (added to its original headers).
    pub fn headers(&self, original: &Headers) -> Headers {
        let mut h = original.clone();
        h.insert(DEAD_LETTER_REASON, self.reason.clone());
        h.insert(DEAD_LETTER_KIND, self.kind);
        h.insert(ORIGINAL_TOPIC, self.original_topic.clone());
        h.insert(ATTEMPTS, self.attempts.to_string());
        h
    }
}

/// How the transport must settle a message after its dispatch.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// Done: acknowledge / delete.
    Ack,
    /// Send this reply (request routes), then acknowledge.
    Reply(Reply),
    /// Redeliver after `delay` (without blocking other messages).
    Retry {
        /// Backoff before the next attempt.
        delay: Duration,
        /// The failure, for logs.
        error: String,
    },
    /// Publish to the dead-letter destination, then acknowledge the original.
    DeadLetter(DeadLetter),
}

/// What a bus reports after draining.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Messages whose handlers finished and were settled during the drain.
    pub settled: usize,
    /// Messages still queued or running at the deadline (left unacked for redelivery where the
    /// broker keeps them; lost on the in-memory bus).
    pub abandoned: usize,
}

/// A message transport. Implemented by the in-memory bus and by each broker crate.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// What this bus offers.
    fn capabilities(&self) -> Capabilities;

    /// The bus URL with credentials removed, for banners and errors.
    fn url(&self) -> &str;

    /// Starts consuming for a route. Returns where it listens, in the bus's own terms, for the
    /// startup banner (e.g. `queue group q` or `JetStream consumer orders-created on stream
    /// ORDERS`). Fails with a clear error if the bus cannot serve it (e.g. request routes on a bus
    /// without request/reply).
    async fn subscribe(&self, subscription: Subscription) -> Result<String>;

    /// Publishes an event. Returns once the bus has accepted it (confirmed, where it confirms).
    async fn publish(&self, message: Outgoing) -> Result<()>;

    /// Sends a request and waits for its reply. Fails with [`ErrorKind::NoResponders`] or
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut), or [`ErrorKind::Remote`] carrying the
    /// handler's error.
    ///
    /// [`ErrorKind::NoResponders`]: crate::ErrorKind::NoResponders
    /// [`ErrorKind::Remote`]: crate::ErrorKind::Remote
    async fn request(&self, message: Outgoing, timeout: Duration) -> Result<Reply>;

    /// Gives the bus the process health, to report a lost connection or to ask for a graceful stop
    /// (a broker going away). Called once when an app starts on the bus.
    fn attach_health(&self, _health: crate::transport::Health) {}

    /// Stops taking new messages, lets in-flight handlers finish and settle until `deadline`, then
    /// disconnects. Publishing afterwards fails with [`ErrorKind::Closed`](crate::ErrorKind::Closed).
    /// Calling it again is a no-op.
    async fn shutdown(&self, deadline: Instant) -> Result<DrainReport>;
}

/// A shared bus handle.
pub type SharedBus = Arc<dyn Bus>;
