//! [`NatsBus`]: kumi's `Bus` over core NATS.
//!
//! - Event and request routes subscribe with a queue group (the route's group, by default the
//!   service name) or, for broadcast routes, without one. Subjects use NATS wildcards `*` and `>`.
//! - Each route runs at most `concurrency` handlers at once: the consumer task takes a permit
//!   before it spawns a handler, so a slow route stops reading its subscription (the client
//!   buffers, then reports a slow consumer) instead of spawning without bound.
//! - Core NATS delivers at most once. kumi retries failed messages *in process* after the backoff
//!   delay (the worker moves on meanwhile; at most one message per unit of concurrency waits out a
//!   backoff at a time, so a storm of failures pauses the route rather than piling up retries —
//!   and, core NATS being at-most-once, a route paused long enough for the client's buffer to fill
//!   loses messages as a slow consumer), and publishes exhausted or undecodable ones to the
//!   dead-letter subject. A retry still waiting when the process stops is lost: use JetStream
//!   routes for at-least-once delivery across restarts.
//! - Requests use NATS request/reply: "no responders" (the server's 503 status) and "timed out" are
//!   distinct errors; failed handlers reply with the ADR-32 error headers.
//! - Shutdown drains: subscriptions are drained (messages already buffered are still handled),
//!   in-flight handlers finish until the deadline, replies and dead letters are flushed, then the
//!   connection closes.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::{ConnectOptions, Event};
use async_trait::async_trait;
use futures_util::StreamExt;
use kumi_core::bus::{
    validate_pattern, validate_topic, Bus, Capabilities, Delivery, DrainReport, Reply, RouteKind,
    Settlement, Subscription, TopicCache,
};
use kumi_core::dispatch::{Dispatcher, RouteService};
use kumi_core::retry::{Backoff, RetrySlots};
use kumi_core::{Error, ErrorKind, Health, Message, Outgoing, Result};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

use crate::headers::{self, SERVICE_ERROR, SERVICE_ERROR_CODE};
use crate::jetstream::{CoreNats, JetStream};
use crate::service_api::{Endpoint, EndpointState, QueueGroup, Registry, DEFAULT_QUEUE_GROUP};
use crate::url::NatsUrl;

/// One delivery of a core NATS message to a route's workers.
struct Pending {
    msg: async_nats::Message,
    /// The subject, shared with the route's earlier messages on it.
    topic: Arc<str>,
    attempt: u32,
}

impl Pending {
    /// This attempt as the message a route dispatches.
    fn message(&self) -> Message {
        let mut message = Message::new(Arc::clone(&self.topic), self.msg.payload.clone());
        headers::from_nats(self.msg.headers.as_ref(), &mut message);
        message.attempt = self.attempt;
        message
    }
}

pub(crate) struct Inner {
    pub(crate) client: async_nats::Client,
    pub(crate) url: NatsUrl,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) settled: AtomicUsize,
    pub(crate) draining: AtomicBool,
    pub(crate) closed: AtomicBool,
    pub(crate) registry: Registry,
    /// Subjects' streams, for confirmed publishes in JetStream mode and JetStream dead letters.
    pub(crate) streams: StreamLookups,
    /// The process health, once an app attached it (read by the connection event callback).
    health: Arc<OnceLock<Health>>,
}

/// A NATS connection serving kumi routes. Cheap to clone.
#[derive(Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("url", &self.inner.url.redacted)
            .finish()
    }
}

/// Gives rustls a process-wide crypto provider (ring, the one async-nats is built with) unless the
/// application installed one. With more than one provider compiled in — the AWS SDK and lapin bring
/// aws-lc-rs — rustls cannot choose by itself, and a TLS connection would panic.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may install one meanwhile: either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// `<service names>-<instance id>` when an app set the label (the usual case), else
/// `<program>-<instance id>` ([`kumi_core::identity::connection_name`]).
fn default_connection_name() -> String {
    kumi_core::identity::connection_name()
}

impl NatsBus {
    /// Connects to the servers `url` names. Fails (naming the URL) if none can be reached; once
    /// connected, the client reconnects by itself and logs connection events.
    pub async fn connect(url: &str) -> Result<Self> {
        let url = NatsUrl::parse(url)?;
        ensure_crypto_provider();
        let shown = url.redacted.clone();
        let health: Arc<OnceLock<Health>> = Arc::new(OnceLock::new());
        let events_health = Arc::clone(&health);
        let mut options = ConnectOptions::new()
            .name(url.name.clone().unwrap_or_else(default_connection_name))
            .connection_timeout(url.connect_timeout.unwrap_or(Duration::from_secs(5)))
            .event_callback(move |event| {
                let shown = shown.clone();
                let health = events_health.get().cloned();
                async move {
                    match event {
                        Event::Connected => {
                            tracing::info!(bus = %shown, "nats: connected");
                            if let Some(h) = &health {
                                h.set_not_ready("nats", None);
                            }
                        }
                        Event::Disconnected => {
                            tracing::warn!(bus = %shown, "nats: disconnected; reconnecting");
                            if let Some(h) = &health {
                                h.set_not_ready("nats", Some(format!("disconnected from {shown}; reconnecting")));
                            }
                        }
                        Event::LameDuckMode => {
                            tracing::warn!(
                                bus = %shown,
                                "nats: server entered lame duck mode; draining this process"
                            );
                            if let Some(h) = &health {
                                h.request_stop(format!("NATS server of {shown} entered lame duck mode"));
                            }
                        }
                        Event::SlowConsumer(sid) => tracing::warn!(
                            bus = %shown, sid,
                            "nats: slow consumer, messages dropped by the client (raise the route's concurrency or use JetStream)"
                        ),
                        other => tracing::info!(bus = %shown, "nats: {other}"),
                    }
                }
            });
        if let Some((user, password)) = &url.user_password {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &url.token {
            options = options.token(token.clone());
        }
        if let Some(seed) = &url.nkey {
            options = options.nkey(seed.clone());
        }
        if let Some(creds) = &url.creds {
            options = options.credentials_file(creds).await.map_err(|e| {
                Error::config(format!(
                    "bus URL '{}': cannot read credentials file {}",
                    url.redacted,
                    creds.display()
                ))
                .with_source(e)
            })?;
        }
        if url.tls {
            options = options.require_tls(true);
        }
        if let Some(ca) = &url.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &url.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let client = options.connect(url.servers.clone()).await.map_err(|e| {
            Error::new(
                ErrorKind::Connect,
                format!("cannot connect to NATS at {}", url.redacted),
            )
            .with_source(e)
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                url,
                cancel: CancellationToken::new(),
                tracker: TaskTracker::new(),
                in_flight: AtomicUsize::new(0),
                settled: AtomicUsize::new(0),
                draining: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                registry: Registry::default(),
                streams: StreamLookups::default(),
                health,
            }),
        })
    }

    /// Resets the ADR-32 STATS counters of every instance of service `name` on this connection;
    /// returns how many endpoints were reset.
    pub fn reset_stats(&self, name: &str) -> usize {
        self.inner.registry.reset(name)
    }

    /// The underlying async-nats client (for NATS features kumi does not wrap).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// Waits until the server has processed everything this connection sent so far: a message to
    /// a private inbox comes back only after the server handled the commands before it
    /// (`flush` alone only empties the socket buffer).
    async fn sync_with_server(&self) -> std::result::Result<(), kumi_core::BoxError> {
        let client = &self.inner.client;
        let inbox = client.new_inbox();
        let mut echo = client.subscribe(inbox.clone()).await?;
        client.publish(inbox, bytes::Bytes::new()).await?;
        client.flush().await?;
        let got = tokio::time::timeout(Duration::from_secs(10), echo.next()).await;
        let _ = echo.unsubscribe().await;
        match got {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("the connection closed while subscribing".into()),
            Err(_) => Err("the server did not confirm the subscription within 10 s".into()),
        }
    }

    fn check_open(&self, topic: &str) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!(
                    "NATS bus {} is stopped; cannot send on '{topic}'",
                    self.inner.url.redacted
                ),
            ));
        }
        Ok(())
    }
}

/// NATS has `*` and `>`, not AMQP's `#`.
fn nats_subject(pattern: &str) -> Result<String> {
    validate_pattern(pattern)?;
    if pattern.split('.').any(|t| t == "#") {
        return Err(Error::config(format!(
            "topic pattern '{pattern}': NATS has no '#' wildcard; use '>' (one or more trailing tokens)"
        )));
    }
    Ok(pattern.to_owned())
}

impl NatsBus {
    /// JetStream mode: publish and wait for the stream's ack, so a returned `Ok` means stored. A
    /// subject no stream captures is published on core NATS instead (a JetStream publish there
    /// would reach the subject's core subscribers and then wait in vain for an ack).
    async fn publish_confirmed(&self, message: Outgoing, map: async_nats::HeaderMap) -> Result<()> {
        let inner = &self.inner;
        let fail = |e: kumi_core::BoxError| {
            Error::new(
                ErrorKind::Publish,
                format!(
                    "cannot publish on '{}' to {}",
                    message.topic, inner.url.redacted
                ),
            )
            .with_source(e)
        };
        let js = async_nats::jetstream::new(inner.client.clone());
        if inner.streams.captures(&js, &message.topic).await {
            let ack = js
                .publish_with_headers(message.topic.clone(), map.clone(), message.body.clone())
                .await
                .map_err(|e| fail(Box::new(e)))?;
            match ack.await {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::context::PublishErrorKind::StreamNotFound =>
                {
                    // The stream is gone: publish on core NATS, and look again next time.
                    inner.streams.forget(&message.topic);
                }
                Err(e) => {
                    // No ack (the stream may be gone while core subscribers took the message):
                    // look the subject up again next time.
                    inner.streams.forget(&message.topic);
                    return Err(fail(Box::new(e)));
                }
            }
        }
        inner
            .client
            .publish_with_headers(message.topic.clone(), map, message.body.clone())
            .await
            .map_err(|e| fail(Box::new(e)))
    }
}

/// Which subjects a JetStream stream captures, as looked up for confirmed publishes and JetStream
/// dead letters. An answer is used for [`StreamLookups::RECHECK`], or until a publish finds the
/// stream gone (a stream created meanwhile still stores what is published on core NATS; only the
/// confirmation waits).
#[derive(Default)]
pub(crate) struct StreamLookups(std::sync::Mutex<std::collections::HashMap<String, Lookup>>);

#[derive(Clone, Copy)]
struct Lookup {
    captured: bool,
    at: Instant,
}

impl StreamLookups {
    const RECHECK: Duration = Duration::from_secs(10);
    /// Most remembered subjects (the map is cleared when full).
    const LIMIT: usize = 10_000;

    fn cached(&self, subject: &str) -> Option<bool> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let hit = map.get(subject)?;
        (hit.at.elapsed() < Self::RECHECK).then_some(hit.captured)
    }

    fn remember(&self, subject: &str, captured: bool) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::LIMIT {
            map.clear();
        }
        map.insert(
            subject.to_owned(),
            Lookup {
                captured,
                at: Instant::now(),
            },
        );
    }

    pub(crate) fn forget(&self, subject: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(subject);
    }

    /// Whether a stream captures `subject`. When the lookup itself fails (a timeout, JetStream
    /// unavailable), the answer is "yes", uncached: the publish then asks the stream directly.
    pub(crate) async fn captures(
        &self,
        js: &async_nats::jetstream::Context,
        subject: &str,
    ) -> bool {
        if let Some(captured) = self.cached(subject) {
            return captured;
        }
        match js.stream_by_subject(subject).await {
            Ok(_) => {
                self.remember(subject, true);
                true
            }
            Err(e)
                if e.kind()
                    == async_nats::jetstream::context::GetStreamByNameErrorKind::NotFound =>
            {
                self.remember(subject, false);
                false
            }
            Err(e) => {
                tracing::debug!(subject, "nats: cannot look up the stream of a subject: {e}");
                true
            }
        }
    }
}

/// A route's subscription, read until the bus stops, then drained: what the client already
/// buffered is still returned, and `None` comes once it is empty.
struct Reader {
    sub: async_nats::Subscriber,
    /// Kept across reads: a stop future made per message would cost a registration each time.
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    draining: bool,
    topic: String,
    topics: TopicCache,
}

impl Reader {
    fn new(sub: async_nats::Subscriber, cancel: &CancellationToken, topic: &str) -> Self {
        Self {
            sub,
            stop: Box::pin(cancel.clone().cancelled_owned()),
            draining: false,
            topic: topic.to_owned(),
            topics: TopicCache::default(),
        }
    }

    /// The next message as a first delivery (counted in flight by `inner`).
    async fn next_delivery(&mut self, inner: &Inner) -> Option<Pending> {
        let msg = self.next(&inner.draining).await?;
        inner.in_flight.fetch_add(1, Ordering::AcqRel);
        let topic = self.topics.get(msg.subject.as_str());
        Some(Pending {
            msg,
            topic,
            attempt: 1,
        })
    }

    /// `stopping` is the bus's draining flag: checked first, so that a busy subscription (always
    /// ready) still notices the stop without polling the stop future for every message.
    async fn next(&mut self, stopping: &AtomicBool) -> Option<async_nats::Message> {
        loop {
            if self.draining {
                return self.sub.next().await;
            }
            if !stopping.load(Ordering::Acquire) {
                tokio::select! {
                    biased;
                    m = self.sub.next() => return m,
                    () = &mut self.stop => {}
                }
            }
            // Marked only once the drain is requested: this future may be dropped (by the inline
            // consumer's select) while it waits to send the request.
            if let Err(e) = self.sub.drain().await {
                tracing::warn!(topic = %self.topic, "nats: cannot drain subscription: {e}");
                return None;
            }
            self.draining = true;
        }
    }
}

/// What a core NATS consumer needs to handle one route's messages.
struct Route {
    dispatcher: Arc<Dispatcher>,
    kind: RouteKind,
    endpoint: Option<Arc<EndpointState>>,
    /// One per handler (see [`RetrySlots`]).
    retry_slots: RetrySlots,
}

impl Inner {
    /// Reads the subscription and runs the route's handlers: at most `concurrency` at once, each
    /// worker with its own clone of the route's service stack. A route of concurrency 1 handles
    /// messages in the reading task itself (no hand-over per message); wider routes feed
    /// `concurrency` workers through a bounded queue. Either way a busy route stops reading (the
    /// client buffers, then reports a slow consumer) instead of spawning without bound.
    async fn consume(
        self: Arc<Self>,
        nats_sub: async_nats::Subscriber,
        sub: Subscription,
        endpoint: Option<Arc<EndpointState>>,
    ) {
        let route = Arc::new(Route {
            dispatcher: Arc::clone(&sub.dispatcher),
            kind: sub.kind,
            endpoint,
            retry_slots: RetrySlots::new(sub.concurrency.max(1)),
        });
        let reader = Reader::new(nats_sub, &self.cancel, &sub.topic);
        if sub.concurrency <= 1 {
            self.consume_inline(reader, &route).await;
        } else {
            self.consume_pool(reader, route, sub.concurrency).await;
        }
    }

    /// Concurrency 1: the reading task is the worker. Retries wait in their own tasks and come back
    /// through `retries`, ahead of new messages. Only this task starts retries, so while none is
    /// waiting it reads the subscription alone, without polling the retry channel per message.
    async fn consume_inline(self: Arc<Self>, mut reader: Reader, route: &Route) {
        let mut service = route.dispatcher.service();
        let (retry_tx, mut retries) = tokio::sync::mpsc::unbounded_channel::<Pending>();
        let weak_retry = retry_tx.downgrade();
        let mut retry_tx = Some(retry_tx);
        // Retries waiting out their backoff (sent back through `retries` when it ends); an atomic
        // only because the future must be `Send`: this task alone touches it.
        let waiting = AtomicUsize::new(0);
        let requeue = |retry: Pending, backoff: Backoff| {
            let Some(tx) = weak_retry.upgrade() else {
                return Some((retry, backoff));
            };
            waiting.fetch_add(1, Ordering::Relaxed);
            self.tracker.spawn(async move {
                backoff.wait().await;
                let _ = tx.send(retry);
            });
            None
        };
        loop {
            let next = match (&retry_tx, waiting.load(Ordering::Relaxed)) {
                (Some(_), 0) => reader.next_delivery(&self).await,
                (Some(_), _) => tokio::select! {
                    biased;
                    Some(retry) = retries.recv() => {
                        waiting.fetch_sub(1, Ordering::Relaxed);
                        Some(retry)
                    }
                    m = reader.next_delivery(&self) => m,
                },
                (None, 0) => break,
                (None, _) => match retries.recv().await {
                    Some(retry) => {
                        waiting.fetch_sub(1, Ordering::Relaxed);
                        Some(retry)
                    }
                    // The backoff tasks were cancelled (the runtime is going away).
                    None => break,
                },
            };
            let Some(delivery) = next else {
                // The subscription is done: only waiting retries are left, and any further
                // retry runs in place (`requeue` finds no channel).
                retry_tx = None;
                continue;
            };
            self.handle(route, &mut service, delivery, &requeue).await;
        }
    }

    /// Concurrency above 1: a bounded queue and that many workers.
    async fn consume_pool(
        self: Arc<Self>,
        mut reader: Reader,
        route: Arc<Route>,
        concurrency: usize,
    ) {
        let (tx, rx) = async_channel::bounded::<Pending>(concurrency);
        for _ in 0..concurrency {
            let inner = Arc::clone(&self);
            let rx = rx.clone();
            let retry_tx = tx.downgrade();
            let route = Arc::clone(&route);
            self.tracker.spawn(async move {
                let mut service = route.dispatcher.service();
                let requeue = |retry: Pending, backoff: Backoff| {
                    let Some(tx) = retry_tx.upgrade() else {
                        return Some((retry, backoff));
                    };
                    inner.tracker.spawn(async move {
                        backoff.wait().await;
                        let _ = tx.send(retry).await;
                    });
                    None
                };
                while let Ok(delivery) = rx.recv().await {
                    inner.handle(&route, &mut service, delivery, &requeue).await;
                }
            });
        }
        drop(rx);
        while let Some(delivery) = reader.next_delivery(&self).await {
            if tx.send(delivery).await.is_err() {
                self.settle();
                break;
            }
        }
        // Workers finish what is queued (and pending retries), then stop.
    }

    fn settle(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.settled.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs one delivery through the route and settles it: an ack right here, anything else in
    /// [`after_attempt`](Self::after_attempt).
    async fn handle(
        &self,
        route: &Route,
        service: &mut RouteService,
        delivery: Pending,
        requeue: impl Fn(Pending, Backoff) -> Option<(Pending, Backoff)>,
    ) {
        let started = route.endpoint.as_ref().map(|_| Instant::now());
        match route
            .dispatcher
            .dispatch_with(service, delivery.message())
            .await
        {
            Settlement::Ack => self.settle(),
            other => {
                self.after_attempt(route, service, delivery, other, started, requeue)
                    .await;
            }
        }
    }

    /// Settles an attempt that did not end in a plain ack ([`handle`](Self::handle) settles
    /// that case itself, so that the per-message path awaits the dispatch alone). A retry takes a slot
    /// of the route's [`RetrySlots`] (with none free, this worker waits) and goes to `requeue`
    /// with its backoff: `requeue` spawns the backoff and puts the message back into the route's
    /// queue after it, so that this worker moves on. Once the queue is gone (the route is
    /// draining) `requeue` hands both back (`Some`): the backoff then runs and the retry happens
    /// here, until the message is settled.
    async fn after_attempt(
        &self,
        route: &Route,
        service: &mut RouteService,
        delivery: Pending,
        settlement: Settlement,
        started: Option<Instant>,
        requeue: impl Fn(Pending, Backoff) -> Option<(Pending, Backoff)>,
    ) {
        if let Some(delay) = self
            .settle_attempt(route, &delivery.msg, settlement, started)
            .await
        {
            // Boxed: the rare path keeps the per-message future small.
            Box::pin(self.retry_after(route, service, delivery, delay, requeue)).await;
        }
    }

    /// Retries `delivery` after `delay`, and again, until it is settled or requeued.
    async fn retry_after(
        &self,
        route: &Route,
        service: &mut RouteService,
        mut delivery: Pending,
        mut delay: Duration,
        requeue: impl Fn(Pending, Backoff) -> Option<(Pending, Backoff)>,
    ) {
        loop {
            delivery.attempt += 1;
            let backoff = route.retry_slots.backoff(delay).await;
            match requeue(delivery, backoff) {
                None => return,
                Some((back, backoff)) => {
                    backoff.wait().await;
                    delivery = back;
                }
            }
            let started = route.endpoint.as_ref().map(|_| Instant::now());
            let settlement = route
                .dispatcher
                .dispatch_with(service, delivery.message())
                .await;
            match self
                .settle_attempt(route, &delivery.msg, settlement, started)
                .await
            {
                None => return,
                Some(next) => delay = next,
            }
        }
    }

    /// Carries out an attempt's settlement (ack, reply, dead letter), counting the message as
    /// settled, or returns the delay after which it is to be retried. `started` times the attempt
    /// for the ADR-32 STATS of endpoints.
    async fn settle_attempt(
        &self,
        route: &Route,
        msg: &async_nats::Message,
        settlement: Settlement,
        started: Option<Instant>,
    ) -> Option<Duration> {
        match settlement {
            Settlement::Ack => {}
            Settlement::Reply(reply) => {
                if let (Some(endpoint), Some(started)) = (&route.endpoint, started) {
                    endpoint.record(started.elapsed(), reply.error.as_ref());
                }
                if route.kind == RouteKind::Request {
                    self.reply(msg, reply).await;
                }
            }
            Settlement::Retry { delay, .. } => return Some(delay),
            Settlement::DeadLetter(dead) => {
                let out = headers::dead_letter(&dead, msg);
                if let Err(e) = self
                    .client
                    .publish_with_headers(out.topic.clone(), headers::to_nats(&out), out.body)
                    .await
                {
                    tracing::error!(
                        dead_letter_topic = %dead.topic,
                        "nats: cannot publish dead letter: {e}"
                    );
                }
            }
        }
        self.settle();
        None
    }

    async fn reply(&self, msg: &async_nats::Message, reply: Reply) {
        let Some(to) = &msg.reply else { return };
        let mut map = headers::headers_to_nats(&reply.headers);
        if let Some((code, text)) = &reply.error {
            headers::set(&mut map, SERVICE_ERROR, text);
            headers::set(&mut map, SERVICE_ERROR_CODE, &code.to_string());
        }
        if let Err(e) = self
            .client
            .publish_with_headers(to.clone(), map, reply.body)
            .await
        {
            tracing::error!(subject = %msg.subject, "nats: cannot send reply: {e}");
        }
    }
}

#[async_trait]
impl Bus for NatsBus {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::default();
        c.request_reply = true;
        c.no_responders = true;
        c.wildcards = true;
        c.consumer_groups = true;
        c.redelivery = true;
        c.dead_letter = true;
        c.ordered = true;
        c.reconnect = true;
        if self.inner.url.jetstream {
            c.persistent = true;
            c.durable = true;
            c.duplicates_possible = true;
            c.retry_holds_slot = true;
        }
        c
    }

    fn url(&self) -> &str {
        &self.inner.url.redacted
    }

    fn attach_health(&self, health: Health) {
        let _ = self.inner.health.set(health);
    }

    async fn subscribe(&self, sub: Subscription) -> Result<String> {
        if self.inner.draining.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!("NATS bus is stopping; cannot subscribe to '{}'", sub.topic),
            ));
        }
        let subject = nats_subject(&sub.topic)?;
        let service = self
            .inner
            .registry
            .service(&self.inner, &sub.service)
            .await?;
        if sub.kind == RouteKind::Request && sub.options.get::<JetStream>().is_some() {
            return Err(Error::config(format!(
                "request route '{}' cannot use JetStream; requests are answered over core NATS",
                sub.topic
            )));
        }
        // Service-wide JetStream options apply to event routes only.
        let jetstream = match sub.option::<JetStream>() {
            _ if sub.kind == RouteKind::Request => None,
            Some(js) => Some(js.clone()),
            None if self.inner.url.jetstream && sub.option::<CoreNats>().is_none() => {
                Some(JetStream::durable())
            }
            None => None,
        };
        if let Some(js) = jetstream {
            return crate::jetstream::subscribe(&self.inner, sub, js).await;
        }
        let (subject, queue_group, endpoint) = if sub.kind == RouteKind::Request {
            let options = sub.option::<Endpoint>().cloned().unwrap_or_default();
            let subject = match &options.group {
                Some(group) => {
                    let s = format!("{group}.{subject}");
                    nats_subject(&s)?
                }
                None => subject,
            };
            let queue_group = match &options.queue_group {
                QueueGroup::Named(q) => Some(q.clone()),
                QueueGroup::Disabled => None,
                QueueGroup::Default => match (&sub.delivery, sub.explicit_delivery) {
                    (Delivery::Group(g), true) => Some(g.clone()),
                    (Delivery::Broadcast, _) => None,
                    (Delivery::Group(_), false) => Some(DEFAULT_QUEUE_GROUP.to_owned()),
                },
            };
            let endpoint = Registry::new_endpoint(
                &service,
                &sub.name,
                &subject,
                queue_group.clone(),
                &options,
            )?;
            (subject, queue_group, Some(endpoint))
        } else {
            let queue_group = match &sub.delivery {
                Delivery::Group(g) => Some(g.clone()),
                Delivery::Broadcast => None,
            };
            (subject, queue_group, None)
        };
        let client = &self.inner.client;
        let result = match queue_group.clone() {
            Some(group) => client.queue_subscribe(subject.clone(), group).await,
            None => client.subscribe(subject.clone()).await,
        };
        let nats_sub = result.map_err(|e| {
            Error::new(
                ErrorKind::Connect,
                format!(
                    "cannot subscribe to '{subject}' on {}",
                    self.inner.url.redacted
                ),
            )
            .with_source(e)
        })?;
        // Make sure the server has the subscription before the service reports started.
        self.sync_with_server().await.map_err(|e| {
            Error::new(
                ErrorKind::Connect,
                format!(
                    "cannot subscribe to '{subject}' on {}",
                    self.inner.url.redacted
                ),
            )
            .with_source(e)
        })?;
        if let Some(endpoint) = &endpoint {
            Registry::list_endpoint(&service, endpoint);
        }
        let listens = match (&queue_group, sub.kind) {
            (Some(q), RouteKind::Request) => format!("endpoint {subject}, queue group {q}"),
            (None, RouteKind::Request) => format!("endpoint {subject}, no queue group"),
            (Some(q), RouteKind::Event) => format!("queue group {q}"),
            (None, RouteKind::Event) => "every instance".to_owned(),
        };
        let inner = Arc::clone(&self.inner);
        self.inner
            .tracker
            .spawn(inner.consume(nats_sub, sub, endpoint));
        Ok(listens)
    }

    async fn publish(&self, message: Outgoing) -> Result<()> {
        self.check_open(&message.topic)?;
        validate_topic(&message.topic)?;
        let map = headers::to_nats(&message);
        if self.inner.url.jetstream {
            return self.publish_confirmed(message, map).await;
        }
        self.inner
            .client
            .publish_with_headers(message.topic.clone(), map, message.body)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Publish,
                    format!(
                        "cannot publish on '{}' to {}",
                        message.topic, self.inner.url.redacted
                    ),
                )
                .with_source(e)
            })
    }

    async fn request(&self, message: Outgoing, timeout: Duration) -> Result<Reply> {
        self.check_open(&message.topic)?;
        validate_topic(&message.topic)?;
        let topic = message.topic.clone();
        let map = headers::request_headers(&message);
        let mut request = async_nats::Request::new()
            .payload(message.body.clone())
            .timeout(Some(timeout));
        if !map.is_empty() {
            request = request.headers(map);
        }
        match self.inner.client.send_request(topic.clone(), request).await {
            Ok(reply) => {
                let error = reply.headers.as_ref().and_then(|h| {
                    let code = h.get(SERVICE_ERROR_CODE)?.as_str().parse().unwrap_or(500);
                    let text = h
                        .get(SERVICE_ERROR)
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default();
                    Some((code, text))
                });
                let mut out = Reply::ok(reply.payload);
                out.error = error;
                Ok(out)
            }
            Err(e) => Err(match e.kind() {
                async_nats::RequestErrorKind::NoResponders => Error::new(
                    ErrorKind::NoResponders,
                    format!("no service answers requests on '{topic}'"),
                ),
                async_nats::RequestErrorKind::TimedOut => Error::new(
                    ErrorKind::TimedOut,
                    format!("no reply on '{topic}' within {timeout:?}"),
                ),
                _ => Error::new(
                    ErrorKind::Publish,
                    format!("request on '{topic}' failed on {}", self.inner.url.redacted),
                )
                .with_source(e),
            }),
        }
    }

    async fn shutdown(&self, deadline: Instant) -> Result<DrainReport> {
        let inner = &self.inner;
        if inner.draining.swap(true, Ordering::AcqRel) {
            return Ok(DrainReport::default());
        }
        let settled_before = inner.settled.load(Ordering::Relaxed);
        inner.cancel.cancel();
        inner.tracker.close();
        let deadline = tokio::time::Instant::from_std(deadline);
        let _ = tokio::time::timeout_at(deadline, inner.tracker.wait()).await;
        let abandoned = inner.in_flight.load(Ordering::Acquire);
        inner.closed.store(true, Ordering::Release);
        // Send what is buffered (replies, dead letters, last publishes), then close.
        let flush = async {
            let _ = inner.client.flush().await;
            let _ = inner.client.drain().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), flush).await;
        if abandoned > 0 {
            tracing::error!(
                abandoned,
                bus = %inner.url.redacted,
                "nats: drain deadline passed with handlers still running"
            );
        }
        Ok(DrainReport {
            settled: inner.settled.load(Ordering::Relaxed) - settled_before,
            abandoned,
        })
    }
}
