//! How kumi routes map onto RabbitMQ: exchange, routing keys, queues and their arguments
//! (`docs/wire.md`, "AMQP": tomodachi's topology, plus kumi's retry queues).
//!
//! - **Exchange**: `amq.topic` unless the URL says `exchange=`; another name is declared `topic`,
//!   durable.
//! - **Routing key** on the wire: `routing_key_prefix + topic`. Binding keys translate kumi's
//!   wildcards: `*` stays (one word), `#` stays (zero or more words), `>` (one or more trailing
//!   words) becomes `*.#`.
//! - **Event routes in a consumer group** consume a shared queue: durable, non-exclusive, not
//!   auto-delete, `x-expires` one day (URL `queue_expires=`), bound by the binding key. Its name:
//!   - default group, `queue_names=tomodachi`: `queue_prefix + sha256_hex(binding key)` (tomodachi's
//!     competing-consumer name);
//!   - default group, `queue_names=kumi` (default): `queue_prefix + service + "." + sha256_hex(binding key)`;
//!   - explicit group: `queue_prefix + group + "." + sha256_hex(binding key)`.
//!
//!   All are stable across restarts: nothing leaks.
//! - **Broadcast event routes** consume an exclusive, auto-delete queue of their own
//!   (`queue_prefix + "broadcast." + service + "." + random`), which RabbitMQ deletes with the
//!   connection: nothing leaks across restarts.
//! - **Retry queue** of each event queue: `<queue>.retry`, with the same lifetime as its queue,
//!   no consumers (a running route declares it again every quarter of `queue_expires`, at most
//!   hourly, so it does not expire while the route runs, and comes back if deleted), and `x-dead-letter-exchange = ""`, `x-dead-letter-routing-key = <queue>`: a
//!   failed message is published there with a per-message `expiration` (the backoff delay) and
//!   comes back to its queue when it expires. RabbitMQ expires messages only at the head of a queue,
//!   so a long delay can hold back shorter ones queued behind it (never loses them).
//! - **Dead-letter queue** of each shared event queue: `<queue>.dlq`, durable, same `x-expires`
//!   (renewed like the retry queue's while the route runs),
//!   bound to the route's dead-letter topic (`dlq.<topic>` unless the route names one), so a dead
//!   letter is kept even when nothing else subscribes to that topic (RabbitMQ drops messages no
//!   queue is bound for). Read it with any AMQP client, or subscribe a kumi route to the topic.
//! - **Quorum queues** (`queue_type=quorum` in the URL, or the [`QueueType`] option on a route or
//!   service): a shared event queue and its retry and dead-letter queues are declared with
//!   `x-queue-type: quorum`; broadcast and request queues stay classic.
//! - **Request routes** consume `queue_prefix + "rpc." + [group + "."] + routing key`: non-durable and
//!   auto-delete, so that once no instance serves it, a request is unroutable and fails fast with
//!   "no responders".

use std::time::Duration;

use kumi_core::bus::{validate_pattern, Sharing, Subscription};
use kumi_core::settlement::RouteKind;
use kumi_core::Result;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use sha2::{Digest, Sha256};

use crate::url::{AmqpUrl, QueueNames, QueueType};

/// `sha256_hex(text)`, lowercase.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// The routing key a message on `topic` is published with.
pub fn routing_key(url: &AmqpUrl, topic: &str) -> String {
    format!("{}{topic}", url.routing_key_prefix)
}

/// The binding key for a kumi topic pattern (validated).
pub fn binding_key(url: &AmqpUrl, pattern: &str) -> Result<String> {
    validate_pattern(pattern)?;
    let mapped: Vec<&str> = pattern
        .split('.')
        .map(|t| if t == ">" { "*.#" } else { t })
        .collect();
    Ok(format!("{}{}", url.routing_key_prefix, mapped.join(".")))
}

/// The kumi topic of a routing key received on the wire (the prefix removed).
pub fn topic_of(url: &AmqpUrl, routing_key: &str) -> String {
    routing_key
        .strip_prefix(url.routing_key_prefix.as_str())
        .unwrap_or(routing_key)
        .to_owned()
}

/// The queue a route consumes, and how it is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePlan {
    /// Queue name.
    pub name: String,
    /// Binding key.
    pub binding: String,
    /// Exclusive to this connection (broadcast routes).
    pub exclusive: bool,
    /// Deleted when its last consumer goes (request routes).
    pub auto_delete: bool,
    /// Survives a broker restart.
    pub durable: bool,
    /// Failed messages go through `<name>.retry` (event routes).
    pub retry_queue: Option<String>,
    /// `<name>.dlq`, bound to the route's dead-letter topic, keeps dead letters even when nothing
    /// else subscribes to that topic (shared event queues).
    pub dead_letter_queue: Option<(String, String)>,
    /// Quorum queues (shared event queues only: the queue, its retry and dead-letter queues).
    pub quorum: bool,
}

/// Plans the queue of `sub`.
pub fn plan(url: &AmqpUrl, sub: &Subscription) -> Result<QueuePlan> {
    let binding = binding_key(url, &sub.topic)?;
    let qp = &url.queue_prefix;
    let sha = sha256_hex(&binding);
    let mut plan = match (sub.kind, &sub.sharing) {
        (RouteKind::Request, Sharing::Group(g)) => QueuePlan {
            name: if sub.explicit_sharing {
                format!("{qp}rpc.{g}.{binding}")
            } else {
                format!("{qp}rpc.{binding}")
            },
            binding,
            exclusive: false,
            auto_delete: true,
            durable: false,
            retry_queue: None,
            dead_letter_queue: None,
            quorum: false,
        },
        (RouteKind::Event, Sharing::Group(g)) => QueuePlan {
            name: match (sub.explicit_sharing, url.queue_names) {
                (false, QueueNames::Tomodachi) => format!("{qp}{sha}"),
                (false, QueueNames::Kumi) => format!("{qp}{}.{sha}", sub.service.name),
                (true, _) => format!("{qp}{g}.{sha}"),
            },
            binding,
            exclusive: false,
            auto_delete: false,
            durable: true,
            retry_queue: None,
            dead_letter_queue: None,
            quorum: false,
        },
        (_, Sharing::Broadcast) => QueuePlan {
            name: format!(
                "{qp}broadcast.{}.{}.{}",
                sub.service.name,
                &sha[..16],
                uuid::Uuid::new_v4().simple()
            ),
            binding,
            exclusive: true,
            auto_delete: true,
            durable: false,
            retry_queue: None,
            dead_letter_queue: None,
            quorum: false,
        },
    };
    plan.quorum = plan.durable
        && !plan.exclusive
        && sub.option::<QueueType>().copied().unwrap_or(url.queue_type) == QueueType::Quorum;
    if sub.kind == RouteKind::Event {
        plan.retry_queue = Some(format!("{}.retry", plan.name));
        if !plan.exclusive {
            let dead = binding_key(url, &sub.dead_letter_topic(&sub.topic))?;
            plan.dead_letter_queue = Some((format!("{}.dlq", plan.name), dead));
        }
    }
    let mut names = vec![&plan.name, &plan.binding];
    names.extend(plan.retry_queue.as_ref());
    if let Some((q, k)) = &plan.dead_letter_queue {
        names.push(q);
        names.push(k);
    }
    if let Some(long) = names.into_iter().find(|n| n.len() > 255) {
        return Err(kumi_core::Error::config(format!(
            "topic '{}': the AMQP name '{long}' is {} bytes; AMQP allows at most 255 (shorten the topic, group or prefixes)",
            sub.topic,
            long.len()
        )));
    }
    Ok(plan)
}

/// `x-queue-type: quorum` for a quorum plan.
fn quorum_arg(args: &mut FieldTable, plan: &QueuePlan) {
    if plan.quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
}

fn expires_arg(expires: Duration) -> AMQPValue {
    AMQPValue::LongUInt(u32::try_from(expires.as_millis()).unwrap_or(u32::MAX))
}

/// True for exchanges RabbitMQ predeclares (which cannot be declared by clients).
fn predeclared(exchange: &str) -> bool {
    exchange.starts_with("amq.")
}

/// Declares the exchange (unless predeclared).
pub(crate) async fn declare_exchange(channel: &Channel, url: &AmqpUrl) -> lapin::Result<()> {
    if predeclared(&url.exchange) {
        return Ok(());
    }
    channel
        .exchange_declare(
            url.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Declares the exchange, the queue, its binding, and its retry and dead-letter queues.
pub(crate) async fn declare(
    channel: &Channel,
    url: &AmqpUrl,
    plan: &QueuePlan,
) -> lapin::Result<()> {
    declare_exchange(channel, url).await?;
    let mut args = FieldTable::default();
    if plan.durable && !plan.exclusive {
        args.insert("x-expires".into(), expires_arg(url.queue_expires));
    }
    quorum_arg(&mut args, plan);
    channel
        .queue_declare(
            plan.name.as_str().into(),
            QueueDeclareOptions {
                durable: plan.durable,
                exclusive: plan.exclusive,
                auto_delete: plan.auto_delete,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await?;
    channel
        .queue_bind(
            plan.name.as_str().into(),
            url.exchange.as_str().into(),
            plan.binding.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    declare_companions(channel, url, plan).await
}

/// Declares the queue's retry and dead-letter queues, if it has them. Declaring renews their
/// `x-expires` lease (neither ever has a consumer): the consumer does so every [`renew_every`]
/// while the route runs, and so re-creates them if they were deleted.
pub(crate) async fn declare_companions(
    channel: &Channel,
    url: &AmqpUrl,
    plan: &QueuePlan,
) -> lapin::Result<()> {
    if let Some((dlq, dead_key)) = &plan.dead_letter_queue {
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), expires_arg(url.queue_expires));
        quorum_arg(&mut args, plan);
        channel
            .queue_declare(
                dlq.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await?;
        channel
            .queue_bind(
                dlq.as_str().into(),
                url.exchange.as_str().into(),
                dead_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    if let Some(retry) = &plan.retry_queue {
        let mut args = FieldTable::default();
        if plan.durable && !plan.exclusive {
            args.insert("x-expires".into(), expires_arg(url.queue_expires));
        }
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(plan.name.as_str().into()),
        );
        quorum_arg(&mut args, plan);
        channel
            .queue_declare(
                retry.as_str().into(),
                QueueDeclareOptions {
                    durable: plan.durable,
                    exclusive: plan.exclusive,
                    auto_delete: false,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await?;
    }
    Ok(())
}

/// How often a running route declares its retry and dead-letter queues again: well within their
/// `x-expires`, so that they never expire while the service runs.
pub(crate) fn renew_every(url: &AmqpUrl) -> Duration {
    (url.queue_expires / 4).clamp(Duration::from_millis(250), Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_hashes() {
        let url = AmqpUrl::parse("amqp://h/?routing_key_prefix=pre.").unwrap();
        assert_eq!(routing_key(&url, "orders.created"), "pre.orders.created");
        assert_eq!(binding_key(&url, "a.*.#").unwrap(), "pre.a.*.#");
        assert_eq!(binding_key(&url, "a.>").unwrap(), "pre.a.*.#");
        assert_eq!(topic_of(&url, "pre.a.b"), "a.b");
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
