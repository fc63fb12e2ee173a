//! The bus abstraction: what every message transport (in-memory, NATS, AMQP, SNS+SQS)
//! implements.
//!
//! A bus does three things for kumi: it publishes (and sends requests), it subscribes a route
//! and turns what its broker delivers into [`Deliveries`](crate::delivery::Deliveries) for the
//! consume runtime ([`crate::consume`]), and it settles each delivery the way the runtime tells
//! it (ack, redeliver later, dead-letter, reply). Everything between — worker pools, concurrency
//! bounds, retries in process, lease heartbeats, counters, drain — is the runtime's, written once
//! for every bus; retry and dead-letter policy is the dispatcher's ([`crate::dispatch`]).

pub(crate) mod connect;
pub(crate) mod topic;
pub mod url_options;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

pub use connect::{client_certificate, redact, BusConnector, ConnectOptions, Connectors};
pub use topic::{validate_pattern, validate_topic, TopicCache};

use crate::consume::Consumer;
use crate::error::Result;
use crate::health::Health;
use crate::identity::Identity;
use crate::message::{Extensions, Outgoing};
use crate::settlement::{DrainReport, Reply, RouteKind};
use crate::stats::RouteStats;

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

/// How subscribers of one topic share its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sharing {
    /// Competing consumers: each message goes to one member of the named group.
    Group(String),
    /// Every subscriber instance gets every message.
    Broadcast,
}

/// A route as a bus sees it: where to listen, how instances share its messages, and the options
/// it set.
#[derive(Clone)]
pub struct Subscription {
    /// Topic pattern (wildcards: `*` one token, `>` the rest; `#` zero or more tokens).
    pub topic: String,
    /// How instances share the messages.
    pub sharing: Sharing,
    /// True when the route chose its group or broadcast itself; false when `sharing` is the
    /// default (the service name as group). Transports with their own convention for the default
    /// (NATS service endpoints use the queue group `q`) apply it only then.
    pub explicit_sharing: bool,
    /// The route's name within its service (the handler name unless renamed).
    pub name: String,
    /// `service.name`, for logs and errors.
    pub route: Arc<str>,
    /// The service the route belongs to.
    pub service: Identity,
    /// Event or request.
    pub kind: RouteKind,
    /// At most this many handler calls run at once: take no more than that from the broker
    /// (prefetch, `max_ack_pending`, receive batch).
    pub concurrency: usize,
    /// Delivery attempts before a failing message is dead-lettered (for broker-side limits such
    /// as an SQS redrive policy, which must not come first).
    pub max_attempts: u32,
    /// The dead-letter topic the route names, if it names one (else `dlq.<topic>`; see
    /// [`Subscription::dead_letter_topic`]).
    pub dead_letter_topic: Option<String>,
    /// Transport-specific options the route set (a JetStream durable, an SQS queue name...).
    pub options: Arc<Extensions>,
    /// Transport-specific options its service set for every route
    /// ([`Router::option`](crate::Router::option)); the route's own take precedence.
    pub service_options: Arc<Extensions>,
    /// The route's counters, kept by the consume runtime (a bus reports them: the NATS service
    /// API's `STATS`, say).
    pub stats: Arc<RouteStats>,
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

    /// Where messages of `topic` (the route's pattern, or a concrete topic it matched) are
    /// dead-lettered: the route's dead-letter topic, else `dlq.<topic>`.
    pub fn dead_letter_topic(&self, topic: &str) -> String {
        crate::settlement::dead_letter_topic(self.dead_letter_topic.as_deref(), topic)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("sharing", &self.sharing)
            .field("kind", &self.kind)
            .field("concurrency", &self.concurrency)
            .field("route", &self.route)
            .finish()
    }
}

/// A route a bus subscribed: where it listens and the deliveries it produces.
#[derive(Debug)]
pub struct Subscribed {
    /// Where it listens, in the bus's own terms, for the startup banner (e.g. `queue group q`
    /// or `JetStream consumer orders-created on stream ORDERS`).
    pub listens: String,
    /// Its deliveries, for the consume runtime.
    pub consumer: Consumer,
}

/// A message transport. Implemented by the in-memory bus and by each broker crate.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// What this bus offers.
    fn capabilities(&self) -> Capabilities;

    /// The bus URL with credentials removed, for banners and errors.
    fn url(&self) -> &str;

    /// Subscribes a route: sets up what the broker needs (a subscription, a queue, a consumer)
    /// and returns its deliveries for the consume runtime, with where it listens. Fails with a
    /// clear error naming the route if the bus cannot serve it (e.g. request routes on a bus
    /// without request/reply).
    async fn subscribe(&self, subscription: Subscription) -> Result<Subscribed>;

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
    fn attach_health(&self, _health: Health) {}

    /// Closes the bus once the consume runtime has drained its routes: sends what is still
    /// buffered (until `deadline`), then disconnects. Reports the messages the bus itself still
    /// held and loses (the in-memory bus's queues); buses whose broker keeps them report none.
    /// Publishing afterwards fails with [`ErrorKind::Closed`](crate::ErrorKind::Closed). Calling
    /// it again is a no-op.
    async fn shutdown(&self, deadline: Instant) -> Result<DrainReport>;
}

/// A shared bus handle.
pub type SharedBus = Arc<dyn Bus>;
