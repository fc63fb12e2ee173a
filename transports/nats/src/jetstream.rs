//! JetStream durable consumers: at-least-once events (WIRE.md §7).
//!
//! A route consumes through JetStream when it carries the [`JetStream`] option
//! (`.option(JetStream::durable())`) or when the bus URL says `?jetstream=true` (then every event
//! route does, unless it carries [`CoreNats`]).
//!
//! - **Stream**: the one named by the option, else the existing stream that captures the route's
//!   subject, else kumi provisions `KUMI_<subject>` capturing exactly the route's subject (a
//!   kumi-provisioned stream for an overlapping pattern is extended instead). With
//!   [`JetStream::bind_only`] nothing is created: a missing stream or consumer is a startup error.
//! - **Consumer**: a durable pull consumer named `<group>-<topic>` (or the given name) for
//!   competing routes — instances share it and restarts resume where they stopped; an ephemeral
//!   one (removed by the server after 5 minutes without the instance) for broadcast routes. Ack
//!   policy explicit, deliver policy "new" when the consumer is created, `max_ack_pending` equal to
//!   the route's concurrency: the server never has more messages out to the route than it has
//!   handlers, so no message waits unacknowledged (and without progress acks) for a free handler.
//!   A NAKed message waiting out its backoff keeps its slot: a route of concurrency 1 handles its
//!   messages in order, a failed one holding back the next until it succeeds or is dead-lettered
//!   (raise the concurrency to let others pass meanwhile). An existing durable with another limit
//!   is updated to it, nothing else changed (a bind-only route only warns). The client pulls in
//!   batches of that size.
//! - **Outcomes**: success → `+ACK`; retryable failure → `-NAK` with the backoff delay; while a
//!   handler runs, `+WPI` every half `ack_wait`; exhausted, rejected or undecodable → a dead-letter
//!   publish with the kumi headers, then `+TERM`. The delivery attempt is the server's `delivered`
//!   count. Acks are single publishes, never per-message round trips.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, FromConsumer};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use kumi_core::bus::{Delivery, Settlement, Subscription, TopicCache};
use kumi_core::dispatch::{Dispatcher, RouteService};
use kumi_core::{Error, ErrorKind, Message, Outgoing, Result};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::bus::Inner;
use crate::headers;

/// Route option: consume through a JetStream durable pull consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStream {
    stream: Option<String>,
    durable: Option<String>,
    ack_wait: Duration,
    bind_only: bool,
}

impl Default for JetStream {
    fn default() -> Self {
        Self {
            stream: None,
            durable: None,
            ack_wait: Duration::from_secs(30),
            bind_only: false,
        }
    }
}

impl JetStream {
    /// A durable consumer with the default stream, name and 30 s `ack_wait`.
    pub fn durable() -> Self {
        Self::default()
    }

    /// Uses (or creates) the stream with this name.
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = Some(name.into());
        self
    }

    /// Names the durable consumer (default `<group>-<topic>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.durable = Some(name.into());
        self
    }

    /// How long the server waits for an ack before redelivering (kumi sends progress every half
    /// of it while the handler runs).
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Creates nothing: binds to an existing stream and consumer (least-privilege deployments).
    pub fn bind_only(mut self) -> Self {
        self.bind_only = true;
        self
    }
}

/// Route option: consume with a plain core NATS subscription even when the bus URL enables
/// JetStream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreNats;

/// A name token for streams and consumers: `[A-Za-z0-9_-]`, other characters replaced.
pub(crate) fn name_token(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' => c,
            '*' => 'S',
            '>' => 'G',
            _ => '_',
        })
        .collect()
}

fn js_error(what: String, e: impl Into<kumi_core::BoxError>) -> Error {
    Error::new(ErrorKind::Connect, what).with_source(e)
}

async fn resolve_stream(
    js: &jetstream::Context,
    sub: &Subscription,
    opts: &JetStream,
) -> Result<jetstream::stream::Stream> {
    let topic = &sub.topic;
    if let Some(name) = &opts.stream {
        if opts.bind_only {
            return js.get_stream(name).await.map_err(|e| {
                js_error(
                    format!("JetStream stream '{name}' for route '{topic}' not found (bind-only)"),
                    e,
                )
            });
        }
        return js
            .get_or_create_stream(jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![topic.clone()],
                ..Default::default()
            })
            .await
            .map_err(|e| {
                js_error(
                    format!("cannot create or get JetStream stream '{name}' for '{topic}'"),
                    e,
                )
            });
    }
    if let Ok(name) = js.stream_by_subject(topic.clone()).await {
        let mut stream = js.get_stream(&name).await.map_err(|e| {
            js_error(
                format!("cannot get JetStream stream '{name}' for '{topic}'"),
                e,
            )
        })?;
        let config = stream.cached_info().config.clone();
        let covered = config.subjects.iter().any(|s| covers(s, topic));
        if covered || !name.starts_with(KUMI_STREAM_PREFIX) || opts.bind_only {
            return Ok(stream);
        }
        // A stream kumi provisioned for an overlapping pattern: extend it to this one (subjects
        // the new pattern covers are folded into it; a stream's subjects may not overlap).
        let mut config = config;
        config.subjects.retain(|s| !covers(topic, s));
        config.subjects.push(topic.clone());
        js.update_stream(config).await.map_err(|e| {
            js_error(
                format!("cannot add '{topic}' to JetStream stream '{name}'; name a stream with JetStream::stream"),
                e,
            )
        })?;
        stream = js.get_stream(&name).await.map_err(|e| {
            js_error(
                format!("cannot get JetStream stream '{name}' for '{topic}'"),
                e,
            )
        })?;
        return Ok(stream);
    }
    if opts.bind_only {
        return Err(Error::config(format!(
            "no JetStream stream captures '{topic}' and the route is bind-only; create one or name it with JetStream::stream"
        )));
    }
    // One stream per route subject: it captures exactly what the route consumes, not unrelated
    // subjects under the same prefix (a stream capturing a request subject would answer the
    // request with its publish ack).
    let name = format!("{KUMI_STREAM_PREFIX}{}", name_token(topic));
    let config = jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![topic.clone()],
        ..Default::default()
    };
    let stream = match js.get_or_create_stream(config).await {
        Ok(s) => s,
        // Another instance may have created it at the same moment.
        Err(first_err) => js.get_stream(&name).await.map_err(|_| {
            js_error(
                format!("cannot create JetStream stream '{name}' for '{topic}' (does another stream capture it? name it with JetStream::stream)"),
                first_err,
            )
        })?,
    };
    // The name is made from the subject, and different subjects can make the same name
    // (`a.b` and `a_b`): a stream of that name for other subjects is not this route's.
    let subjects = &stream.cached_info().config.subjects;
    if !subjects.iter().any(|s| covers(s, topic)) {
        return Err(Error::config(format!(
            "JetStream stream '{name}' (the name kumi gives '{topic}') already exists for {subjects:?}: \
             another subject makes the same name ('.' and '_' both become '_'); name one of the \
             routes' streams with JetStream::stream"
        )));
    }
    Ok(stream)
}

/// Most messages one pull asks for (a consumer bound with a huge or unlimited `max_ack_pending`).
const MAX_PULL_BATCH: usize = 1024;

/// Prefix of the streams kumi provisions.
const KUMI_STREAM_PREFIX: &str = "KUMI_";

/// True when every subject `pattern` matches is also matched by `subject`.
fn covers(subject: &str, pattern: &str) -> bool {
    let s: Vec<&str> = subject.split('.').collect();
    let p: Vec<&str> = pattern.split('.').collect();
    for (i, st) in s.iter().enumerate() {
        if *st == ">" {
            return p.len() > i;
        }
        let Some(pt) = p.get(i) else { return false };
        if *pt == ">" {
            return false;
        }
        if *st != "*" && st != pt {
            return false;
        }
    }
    s.len() == p.len()
}

pub(crate) async fn subscribe(
    inner: &Arc<Inner>,
    sub: Subscription,
    opts: JetStream,
) -> Result<String> {
    let js = jetstream::new(inner.client.clone());
    let stream = resolve_stream(&js, &sub, &opts).await?;
    let pending_limit = sub.concurrency.max(1);
    let max_ack_pending = i64::try_from(pending_limit).unwrap_or(i64::MAX);
    let mut config = pull::Config {
        filter_subject: sub.topic.clone(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: opts.ack_wait,
        max_ack_pending,
        deliver_policy: DeliverPolicy::New,
        ..Default::default()
    };
    let what = || format!("cannot create JetStream consumer for '{}'", sub.topic);
    let mut consumer: async_nats::jetstream::consumer::Consumer<pull::Config> =
        match (&sub.delivery, &opts.durable) {
            (Delivery::Broadcast, None) => {
                config.inactive_threshold = Duration::from_secs(300);
                stream
                    .create_consumer(config)
                    .await
                    .map_err(|e| js_error(what(), e))?
            }
            (delivery, name) => {
                let name = name.clone().unwrap_or_else(|| {
                    let group = match delivery {
                        Delivery::Group(g) => g.as_str(),
                        Delivery::Broadcast => "broadcast",
                    };
                    format!("{}-{}", name_token(group), name_token(&sub.topic))
                });
                config.durable_name = Some(name.clone());
                if opts.bind_only {
                    stream.get_consumer(&name).await.map_err(|e| {
                        js_error(
                            format!("JetStream consumer '{name}' not found (bind-only)"),
                            e,
                        )
                    })?
                } else {
                    stream
                        .get_or_create_consumer(&name, config)
                        .await
                        .map_err(|e| js_error(what(), e))?
                }
            }
        };
    let mut existing = consumer.cached_info().config.max_ack_pending;
    let durable = consumer.cached_info().config.durable_name.is_some();
    if existing != max_ack_pending && durable && !opts.bind_only {
        // A durable from an earlier deployment (another concurrency): bring its limit in line,
        // keeping the rest of its configuration as it is.
        let mut current = consumer.cached_info().config.clone();
        current.max_ack_pending = max_ack_pending;
        let update = match pull::Config::try_from_consumer_config(current) {
            Ok(update) => stream.create_consumer(update).await.map_err(Into::into),
            Err(e) => Err(e),
        };
        match update {
            Ok(updated) => {
                tracing::info!(
                    topic = %sub.topic,
                    from = existing,
                    to = max_ack_pending,
                    "nats: updated the JetStream consumer's max_ack_pending to the route's concurrency"
                );
                consumer = updated;
                existing = consumer.cached_info().config.max_ack_pending;
            }
            Err(e) => {
                tracing::debug!(topic = %sub.topic, "nats: cannot update the JetStream consumer: {e}")
            }
        }
    }
    if existing != max_ack_pending {
        // A bound (or not updatable) durable keeps its settings. More unacked messages than
        // handlers means messages wait for a handler without progress acks and may be redelivered
        // meanwhile; fewer leaves handlers idle.
        tracing::warn!(
            topic = %sub.topic,
            max_ack_pending = existing,
            expected = max_ack_pending,
            concurrency = sub.concurrency,
            "nats: the JetStream consumer's max_ack_pending differs from the route's concurrency; \
             update the consumer (or the route) so they agree"
        );
    }
    let listens = format!(
        "JetStream consumer {} on stream {}",
        consumer
            .cached_info()
            .config
            .durable_name
            .clone()
            .unwrap_or_else(|| "(ephemeral)".to_owned()),
        stream.cached_info().config.name
    );
    // Pull as many as the server lets out (an existing consumer may differ from the default).
    let batch = usize::try_from(existing)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(pending_limit)
        .min(MAX_PULL_BATCH);
    let messages = consumer
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await
        .map_err(|e| {
            js_error(
                format!("cannot consume JetStream messages for '{}'", sub.topic),
                e,
            )
        })?;
    let inner2 = Arc::clone(inner);
    inner
        .tracker
        .spawn(consume(inner2, messages, sub, opts.ack_wait));
    Ok(listens)
}

/// Reads the pull consumer and runs the route's handlers, each worker with its own clone of the
/// route's service stack: in the reading task itself for a route of concurrency 1, else in
/// `concurrency` workers fed through a bounded queue. The server never has more than
/// `max_ack_pending` (the concurrency) messages out to the route, so nothing waits long in the
/// queue. On stop, reading ends; what was already read is handled and settled.
async fn consume(inner: Arc<Inner>, messages: pull::Stream, sub: Subscription, ack_wait: Duration) {
    let dispatcher = Arc::clone(&sub.dispatcher);
    let mut reader = Reader {
        messages,
        stop: Box::pin(inner.cancel.clone().cancelled_owned()),
        topic: sub.topic.clone(),
        topics: TopicCache::default(),
    };
    if sub.concurrency <= 1 {
        let mut service = dispatcher.service();
        while let Some(msg) = reader.next(&inner).await {
            handle(&inner, &dispatcher, &mut service, msg, ack_wait).await;
        }
        return;
    }
    let (tx, rx) = async_channel::bounded::<(jetstream::Message, Arc<str>)>(sub.concurrency);
    for _ in 0..sub.concurrency {
        let worker_inner = Arc::clone(&inner);
        let dispatcher = Arc::clone(&dispatcher);
        let rx = rx.clone();
        inner.tracker.spawn(async move {
            let mut service = dispatcher.service();
            while let Ok(msg) = rx.recv().await {
                handle(&worker_inner, &dispatcher, &mut service, msg, ack_wait).await;
            }
        });
    }
    drop(rx);
    while let Some(msg) = reader.next(&inner).await {
        if tx.send(msg).await.is_err() {
            // The workers are gone: the server redelivers the message after ack_wait.
            settle(&inner);
            break;
        }
    }
}

/// A pull consumer's messages until the bus stops.
struct Reader {
    messages: pull::Stream,
    /// Kept across reads: a stop future made per message would cost a registration each time.
    stop: std::pin::Pin<Box<WaitForCancellationFutureOwned>>,
    topic: String,
    topics: TopicCache,
}

impl Reader {
    /// The next message (counted in flight), or `None` once the bus stops or the consumer ends.
    async fn next(&mut self, inner: &Inner) -> Option<(jetstream::Message, Arc<str>)> {
        loop {
            // The draining flag first: a busy consumer (always ready) still notices the stop
            // without polling the stop future for every message.
            if inner.draining.load(Ordering::Acquire) {
                return None;
            }
            let next = tokio::select! {
                biased;
                m = self.messages.next() => m,
                () = &mut self.stop => return None,
            };
            match next {
                Some(Ok(msg)) => {
                    inner.in_flight.fetch_add(1, Ordering::AcqRel);
                    let topic = self.topics.get(msg.subject.as_str());
                    return Some((msg, topic));
                }
                Some(Err(e)) => {
                    tracing::warn!(topic = %self.topic, "nats: JetStream consumer: {e}")
                }
                None => return None,
            }
        }
    }
}

fn settle(inner: &Inner) {
    inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    inner.settled.fetch_add(1, Ordering::Relaxed);
}

async fn handle(
    inner: &Inner,
    dispatcher: &Dispatcher,
    service: &mut RouteService,
    (msg, topic): (jetstream::Message, Arc<str>),
    ack_wait: Duration,
) {
    let attempt = msg
        .info()
        .map(|i| u32::try_from(i.delivered).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let (msg, acker) = msg.split();
    let mut message = Message::new(topic, msg.payload.clone());
    headers::from_nats(msg.headers.as_ref(), &mut message);
    message.attempt = attempt.max(1);

    let dispatch = dispatcher.dispatch_with(service, message);
    tokio::pin!(dispatch);
    // Most handlers finish on their first poll: only a handler that has to wait gets the progress
    // timer (a timer per message costs more than the handler itself on fast routes).
    let settlement = match futures_util::poll!(&mut dispatch) {
        std::task::Poll::Ready(s) => s,
        std::task::Poll::Pending => {
            // The first progress ack is due after half of ack_wait.
            let half = (ack_wait / 2).max(Duration::from_millis(10));
            let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + half, half);
            loop {
                tokio::select! {
                    s = &mut dispatch => break s,
                    _ = progress.tick() => {
                        if let Err(e) = acker.ack_with(AckKind::Progress).await {
                            tracing::warn!(subject = %msg.subject, "nats: cannot extend ack_wait: {e}");
                        }
                    }
                }
            }
        }
    };
    let result = match settlement {
        Settlement::Ack | Settlement::Reply(_) => acker.ack().await,
        Settlement::Retry { delay, .. } => acker.ack_with(AckKind::Nak(Some(delay))).await,
        Settlement::DeadLetter(dead) => {
            let out = headers::dead_letter(&dead, &msg);
            match publish_dead_letter(inner, &out).await {
                Ok(()) => acker.ack_with(AckKind::Term).await,
                Err(e) => {
                    // Keep the message: it is redelivered and dead-lettered again later.
                    tracing::error!(dead_letter_topic = %dead.topic, "nats: cannot publish dead letter, leaving the message for redelivery: {e}");
                    acker
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                        .await
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::warn!(subject = %msg.subject, "nats: cannot settle JetStream message (it will be redelivered): {e}");
    }
    settle(inner);
}

/// Publishes a dead letter so that the original may be terminated: into the JetStream stream that
/// captures the dead-letter subject when there is one (waiting for its ack: stored), else on core
/// NATS (flushed) with a warning, since then only a subscriber online right now receives it.
async fn publish_dead_letter(
    inner: &Inner,
    out: &Outgoing,
) -> std::result::Result<(), kumi_core::BoxError> {
    let js = jetstream::new(inner.client.clone());
    if inner.streams.captures(&js, &out.topic).await {
        let stored = async {
            js.publish_with_headers(out.topic.clone(), headers::to_nats(out), out.body.clone())
                .await?
                .await
        };
        match stored.await {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                // The stream is gone: fall through to core NATS, and look again next time.
                inner.streams.forget(&out.topic);
            }
            Err(e) => {
                inner.streams.forget(&out.topic);
                return Err(e.into());
            }
        }
    }
    tracing::warn!(
        dead_letter_topic = %out.topic,
        "nats: no JetStream stream captures the dead-letter subject; published on core NATS (create a stream on it to keep dead letters)"
    );
    inner
        .client
        .publish_with_headers(out.topic.clone(), headers::to_nats(out), out.body.clone())
        .await?;
    inner.client.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_coverage() {
        assert!(covers("a.*", "a.b"));
        assert!(covers("a.*", "a.*"));
        assert!(!covers("a.*", "a.>"));
        assert!(!covers("a.*", "a.b.c"));
        assert!(covers("a.>", "a.b.c"));
        assert!(covers("a.>", "a.*"));
        assert!(!covers("a.>", "a"));
        assert!(covers("a.b", "a.b"));
        assert!(!covers("a.b", "a.*"));
        assert_eq!(name_token("orders.*.x>"), "orders_S_xG");
    }
}
