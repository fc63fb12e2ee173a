//! How kumi routes map onto NATS: subjects and queue groups for core NATS routes (the service API
//! in [`crate::service_api`]), streams and durable pull consumers for JetStream routes
//! (`docs/wire.md`, "NATS" and "JetStream").
//!
//! - **Subjects**: the route's topic; NATS has `*` and `>`, not AMQP's `#`.
//! - **Core NATS event routes** subscribe in the route's group as queue group (default: the
//!   service name), or without one (`.broadcast()`). **Request routes** are ADR-32 endpoints:
//!   queue group `q` unless the route or an [`Endpoint`] option sets one.
//! - **JetStream routes**: a route consumes through JetStream when it carries the [`JetStream`]
//!   option (`.option(JetStream::durable())`) or when the bus URL says `?jetstream=true` (then
//!   every event route does, unless it carries [`CoreNats`]).
//!   - **Stream**: the one named by the option, else the existing stream that captures the route's
//!     subject, else kumi provisions `KUMI_<subject>` capturing exactly the route's subject (a
//!     kumi-provisioned stream for an overlapping pattern is extended instead). With
//!     [`JetStream::bind_only`] nothing is created: a missing stream or consumer is a startup
//!     error.
//!   - **Consumer**: a durable pull consumer named `<group>-<topic>` (or the given name) for
//!     competing routes — instances share it and restarts resume where they stopped; an
//!     ephemeral one (removed by the server after 5 minutes without the instance) for broadcast
//!     routes. Ack policy explicit, deliver policy "new" when the consumer is created,
//!     `max_ack_pending` equal to the route's concurrency: the server never has more messages out
//!     to the route than it has handlers, so no message waits unacknowledged (and without progress
//!     acks) for a free handler. A NAKed message waiting out its backoff keeps its slot: a route
//!     of concurrency 1 handles its messages in order, a failed one holding back the next until it
//!     succeeds or is dead-lettered (raise the concurrency to let others pass meanwhile). An
//!     existing durable with another limit is updated to it, nothing else changed (a bind-only
//!     route only warns). The client pulls in batches of that size.
//! - **Dead letters** (`dlq.<topic>` unless a route names its own topic) are kept in the stream
//!   `KUMI_DEAD_LETTERS`, capturing `dlq.>` (file storage, at most 30 days and 1 GiB; when full
//!   a dead letter is refused, and kept unsettled and tried again, rather than an older one
//!   dropped). kumi provisions it at connect when the server has JetStream, unless another stream
//!   already captures those subjects or the URL says `dead_letters=off`; without JetStream it warns
//!   (`dead_letters=required`: it fails) — see [`provision_dead_letters`].

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, FromConsumer};
use kumi_core::bus::{validate_pattern, Sharing, Subscription};
use kumi_core::settlement::RouteKind;
use kumi_core::{Error, ErrorKind, Result};

use crate::service_api::{Endpoint, QueueGroup, DEFAULT_QUEUE_GROUP};

/// NATS has `*` and `>`, not AMQP's `#`.
pub(crate) fn nats_subject(pattern: &str) -> Result<String> {
    validate_pattern(pattern)?;
    if pattern.split('.').any(|t| t == "#") {
        return Err(Error::config(format!(
            "topic pattern '{pattern}': NATS has no '#' wildcard; use '>' (one or more trailing tokens)"
        )));
    }
    Ok(pattern.to_owned())
}

/// Where a core NATS route listens.
pub(crate) struct CorePlan {
    /// The subject (with the endpoint's group prefix on request routes).
    pub(crate) subject: String,
    /// The queue group, if any.
    pub(crate) queue_group: Option<String>,
    /// The endpoint options of a request route.
    pub(crate) endpoint: Option<Endpoint>,
}

impl CorePlan {
    /// Where the route listens, for the banner.
    pub(crate) fn listens(&self) -> String {
        match (&self.queue_group, &self.endpoint) {
            (Some(q), Some(_)) => format!("endpoint {}, queue group {q}", self.subject),
            (None, Some(_)) => format!("endpoint {}, no queue group", self.subject),
            (Some(q), None) => format!("queue group {q}"),
            (None, None) => "every instance".to_owned(),
        }
    }
}

/// Plans a core NATS route: its subject and queue group.
pub(crate) fn core_plan(sub: &Subscription) -> Result<CorePlan> {
    let subject = nats_subject(&sub.topic)?;
    if sub.kind == RouteKind::Event {
        let queue_group = match &sub.sharing {
            Sharing::Group(g) => Some(g.clone()),
            Sharing::Broadcast => None,
        };
        return Ok(CorePlan {
            subject,
            queue_group,
            endpoint: None,
        });
    }
    let options = sub.option::<Endpoint>().cloned().unwrap_or_default();
    let subject = match &options.group {
        Some(group) => nats_subject(&format!("{group}.{subject}"))?,
        None => subject,
    };
    let queue_group = match &options.queue_group {
        QueueGroup::Named(q) => Some(q.clone()),
        QueueGroup::Disabled => None,
        QueueGroup::Default => match (&sub.sharing, sub.explicit_sharing) {
            (Sharing::Group(g), true) => Some(g.clone()),
            (Sharing::Broadcast, _) => None,
            (Sharing::Group(_), false) => Some(DEFAULT_QUEUE_GROUP.to_owned()),
        },
    };
    Ok(CorePlan {
        subject,
        queue_group,
        endpoint: Some(options),
    })
}

/// The JetStream settings of a route, if it consumes through JetStream: its own option, else
/// (event routes) the service's or the URL's default. A request route asking for JetStream
/// itself is an error; service-wide JetStream options apply to event routes only.
pub(crate) fn jetstream_of(sub: &Subscription, url_default: bool) -> Result<Option<JetStream>> {
    if sub.kind == RouteKind::Request {
        if sub.options.get::<JetStream>().is_some() {
            return Err(Error::config(format!(
                "request route '{}' cannot use JetStream; requests are answered over core NATS",
                sub.topic
            )));
        }
        return Ok(None);
    }
    Ok(match sub.option::<JetStream>() {
        Some(js) => Some(js.clone()),
        None if url_default && sub.option::<CoreNats>().is_none() => Some(JetStream::durable()),
        None => None,
    })
}

/// Route option: consume through a JetStream durable pull consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStream {
    stream: Option<String>,
    durable: Option<String>,
    pub(crate) ack_wait: Duration,
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

/// Finds or provisions the route's stream and pull consumer (see the [module docs](self)) and
/// starts pulling: the messages, with where the route listens for the banner.
pub(crate) async fn pull_consumer(
    client: &async_nats::Client,
    sub: &Subscription,
    opts: &JetStream,
) -> Result<(pull::Stream, String)> {
    let js = jetstream::new(client.clone());
    let stream = resolve_stream(&js, sub, opts).await?;
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
        match (&sub.sharing, &opts.durable) {
            (Sharing::Broadcast, None) => {
                config.inactive_threshold = Duration::from_secs(300);
                stream
                    .create_consumer(config)
                    .await
                    .map_err(|e| js_error(what(), e))?
            }
            (sharing, name) => {
                let name = name.clone().unwrap_or_else(|| {
                    let group = match sharing {
                        Sharing::Group(g) => g.as_str(),
                        Sharing::Broadcast => "broadcast",
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
    Ok((messages, listens))
}

/// The stream kumi keeps dead letters in.
pub const DEAD_LETTER_STREAM: &str = "KUMI_DEAD_LETTERS";

/// Makes sure dead letters (`dlq.>`) are stored: provisions [`DEAD_LETTER_STREAM`] unless another
/// stream already captures them. Without JetStream this warns, naming the risk and the option,
/// or with `dead_letters=required` fails. `Ok(true)` when a stream keeps dead letters.
pub(crate) async fn provision_dead_letters(
    client: &async_nats::Client,
    url: &crate::url::NatsUrl,
) -> Result<bool> {
    use crate::url::DeadLetters;
    if url.dead_letters == DeadLetters::Off {
        return Ok(false);
    }
    let js = jetstream::new(client.clone());
    let config = jetstream::stream::Config {
        name: DEAD_LETTER_STREAM.to_owned(),
        subjects: vec!["dlq.>".to_owned()],
        storage: jetstream::stream::StorageType::File,
        max_age: Duration::from_secs(30 * 24 * 3600),
        max_bytes: 1 << 30,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    let created = tokio::time::timeout(Duration::from_secs(10), js.get_or_create_stream(config))
        .await
        .map_err(|_| "JetStream did not answer within 10 s".to_owned())
        .and_then(|r| r.map(drop).map_err(|e| e.to_string()));
    let Err(cause) = created else {
        return Ok(true);
    };
    // Other streams may capture dead-letter subjects already (one on `>`, or on `dlq.orders.>`).
    if cause.contains("overlap") {
        tracing::info!(bus = %url.redacted, "nats: existing streams capture dead-letter subjects, so {DEAD_LETTER_STREAM} is not provisioned; dead letters go to the stream capturing their subject, or on core NATS (where they are lost unless a route subscribes) when none does");
        return Ok(false);
    }
    if let Ok(Ok(name)) =
        tokio::time::timeout(Duration::from_secs(5), js.stream_by_subject("dlq.kumi")).await
    {
        tracing::info!(bus = %url.redacted, stream = %name, "nats: dead letters are kept in stream {name}");
        return Ok(true);
    }
    if url.dead_letters == DeadLetters::Required {
        return Err(Error::config(format!(
            "bus URL '{}': dead_letters=required, but the stream {DEAD_LETTER_STREAM} for dead letters cannot be provisioned: {cause}",
            url.redacted
        )));
    }
    tracing::warn!(
        bus = %url.redacted,
        "nats: dead letters are not stored ({DEAD_LETTER_STREAM} cannot be provisioned: {cause}): a dead letter nobody subscribes to is lost; enable JetStream on the server, or set dead_letters=required in the bus URL to refuse to start without it (dead_letters=off silences this)"
    );
    Ok(false)
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
