//! Parsing `amqp://` and `amqps://` bus URLs.
//!
//! ```text
//! amqp://[user:password@]host[:port]/[vhost][?option=value&...]
//! amqps://user:password@host:5671/%2f?heartbeat=30&name=orders
//! ```
//!
//! The vhost is the URL path, percent-encoded (`%2f` is the default vhost `/`). `amqps://` uses TLS
//! (rustls), verifying the server against the system's roots and, with `tls_ca`, the CA
//! certificates of that PEM file too (e.g. a private CA); `tls_cert` and `tls_key` (PEM files,
//! given together) add a client certificate for brokers that require one.
//!
//! Options passed to the AMQP client: `heartbeat` (seconds), `connection_timeout` (milliseconds,
//! default 10000), `frame_max` (bytes, default 32768: the client keeps receive and send buffers of
//! 32 frames each, so RabbitMQ's own 131072 would hold 8 MiB per connection; larger messages are
//! sent in several frames), `channel_max`, `auth_mechanism`.
//!
//! kumi's options:
//! - `name`: the connection name shown by RabbitMQ (default: the app's service names and instance
//!   id, `<services>-<id>`);
//! - `exchange`: the topic exchange (default `amq.topic`; another name is declared `topic`, durable);
//! - `routing_key_prefix`: prepended to every routing key on the wire (tomodachi's
//!   `amqp.routing_key_prefix`);
//! - `queue_prefix`: prepended to every queue name kumi derives (tomodachi's `amqp.queue_prefix`);
//! - `queue_names`: `kumi` (default) or `tomodachi` — how the queue of a route in its service's
//!   default group is named (see [`crate::topology`]);
//! - `queue_expires`: the `x-expires` of the shared queues kumi declares (default `1d`; e.g. `10m`,
//!   `30s`);
//! - `queue_type`: `classic` (default) or `quorum` — the type of the shared event queues and their
//!   retry and dead-letter queues (a route or service can choose with the [`QueueType`] option;
//!   broadcast and request queues are exclusive or auto-delete, so always classic);
//! - `reconnect`: `true` (default) or `false`;
//! - `tls_ca`, `tls_cert`, `tls_key`: see above (`amqps://` only).

use std::path::PathBuf;
use std::time::Duration;

use kumi_core::bus::redact;
use kumi_core::bus::url_options::{parse_bool, percent_decode};
use kumi_core::Error;

/// How the queue of a route in its service's default consumer group is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueNames {
    /// `queue_prefix + service + "." + sha256_hex(routing key)`: two services subscribing to one
    /// topic each get every message (kumi's consumer-group semantics on every bus).
    #[default]
    Kumi,
    /// `queue_prefix + sha256_hex(routing key)`, exactly as tomodachi names a competing consumer's
    /// queue, so a kumi service can take over a tomodachi service's queue. Every service on the
    /// same prefix then competes for the topic's messages, as in tomodachi.
    Tomodachi,
}

/// The type of a shared event queue and its retry and dead-letter queues (`x-queue-type`): URL
/// option `queue_type=`, or per route (or service) as an option,
/// `.option(QueueType::Quorum)`. Quorum queues are replicated over a RabbitMQ cluster's nodes
/// and survive the loss of a minority of them. Declaring an existing queue with another type is a
/// startup error naming the queue (RabbitMQ cannot change a queue's type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// RabbitMQ's classic queues.
    #[default]
    Classic,
    /// Replicated quorum queues.
    Quorum,
}

/// A parsed `amqp://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    /// The URL handed to the AMQP client (kumi's options removed).
    pub client_url: String,
    /// TLS (`amqps://`).
    pub tls: bool,
    /// PEM file of CA certificates to trust besides the system's roots (`tls_ca`).
    pub tls_ca: Option<PathBuf>,
    /// PEM files of a client certificate and its key (`tls_cert`, `tls_key`).
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Connection name.
    pub name: Option<String>,
    /// Topic exchange.
    pub exchange: String,
    /// Routing key prefix.
    pub routing_key_prefix: String,
    /// Queue name prefix.
    pub queue_prefix: String,
    /// Default-group queue naming.
    pub queue_names: QueueNames,
    /// `x-expires` of shared queues.
    pub queue_expires: Duration,
    /// Type of shared event queues, unless a route says otherwise.
    pub queue_type: QueueType,
    /// Reconnect after losing the connection.
    pub reconnect: bool,
    /// The URL with secrets removed.
    pub redacted: String,
}

/// The default topic exchange (tomodachi's).
pub const DEFAULT_EXCHANGE: &str = "amq.topic";

/// The frame size kumi asks for unless the URL says `frame_max`.
const DEFAULT_FRAME_MAX: &str = "frame_max=32768";

pub(crate) fn parse_duration(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        "d" => Some(Duration::from_secs(n.checked_mul(86_400)?)),
        _ => None,
    }
}

impl AmqpUrl {
    /// Parses an `amqp://` or `amqps://` URL. Errors name the URL (credentials removed) and the
    /// part at fault.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let shown = redact(url);
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::config(format!("bus URL '{shown}' is not an amqp:// URL")))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "amqp" && scheme != "amqps" {
            return Err(Error::config(format!(
                "bus URL '{shown}' is not an amqp:// or amqps:// URL"
            )));
        }
        let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = base.split('/').next().unwrap_or("");
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if hostport.is_empty() || hostport.starts_with(':') {
            return Err(Error::config(format!("bus URL '{shown}' names no host")));
        }
        if let Some((_, port)) = hostport.rsplit_once(':') {
            if !hostport.ends_with(']') && port.parse::<u16>().is_err() {
                return Err(Error::config(format!(
                    "bus URL '{shown}': '{hostport}' has no valid port"
                )));
            }
        }
        let mut parsed = AmqpUrl {
            client_url: String::new(),
            tls: scheme == "amqps",
            tls_ca: None,
            tls_client: None,
            name: None,
            exchange: DEFAULT_EXCHANGE.to_owned(),
            routing_key_prefix: String::new(),
            queue_prefix: String::new(),
            queue_names: QueueNames::default(),
            queue_expires: Duration::from_secs(86_400),
            queue_type: QueueType::Classic,
            reconnect: true,
            redacted: shown.clone(),
        };
        let mut passed: Vec<&str> = Vec::new();
        let mut has_timeout = false;
        let mut has_frame_max = false;
        let (mut cert, mut key) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(raw);
            match k {
                "heartbeat" | "frame_max" | "channel_max" | "connection_timeout" => {
                    if v.parse::<u64>().is_err() {
                        return Err(Error::config(format!(
                            "bus URL '{shown}': option '{k}' must be a whole number, got '{v}'"
                        )));
                    }
                    has_timeout |= k == "connection_timeout";
                    has_frame_max |= k == "frame_max";
                    passed.push(pair);
                }
                "auth_mechanism" => passed.push(pair),
                "name" => parsed.name = Some(v),
                "exchange" => {
                    if v.len() > 255 {
                        return Err(Error::config(format!(
                            "bus URL '{shown}': exchange name is longer than 255 bytes"
                        )));
                    }
                    if v.is_empty() {
                        return Err(Error::config(format!(
                            "bus URL '{shown}': exchange must not be empty (the default exchange cannot route by topic)"
                        )));
                    }
                    parsed.exchange = v;
                }
                "routing_key_prefix" => parsed.routing_key_prefix = v,
                "queue_prefix" => parsed.queue_prefix = v,
                "queue_type" => {
                    parsed.queue_type = match v.as_str() {
                        "classic" => QueueType::Classic,
                        "quorum" => QueueType::Quorum,
                        _ => {
                            return Err(Error::config(format!(
                                "bus URL '{shown}': queue_type must be 'classic' or 'quorum', got '{v}'"
                            )))
                        }
                    }
                }
                "queue_names" => {
                    parsed.queue_names = match v.as_str() {
                        "kumi" => QueueNames::Kumi,
                        "tomodachi" => QueueNames::Tomodachi,
                        _ => {
                            return Err(Error::config(format!(
                                "bus URL '{shown}': queue_names must be 'kumi' or 'tomodachi', got '{v}'"
                            )))
                        }
                    }
                }
                "queue_expires" => {
                    parsed.queue_expires = parse_duration(&v)
                        .filter(|d| d.as_millis() > 0 && d.as_millis() <= u128::from(u32::MAX))
                        .ok_or_else(|| {
                            Error::config(format!(
                                "bus URL '{shown}': queue_expires '{v}' is not a duration like 1d, 10m or 30s"
                            ))
                        })?
                }
                "reconnect" => parsed.reconnect = parse_bool(&shown, k, &v)?,
                "tls_ca" => parsed.tls_ca = Some(PathBuf::from(v)),
                "tls_cert" => cert = Some(PathBuf::from(v)),
                "tls_key" => key = Some(PathBuf::from(v)),
                other => {
                    return Err(Error::config(format!(
                        "bus URL '{shown}': unknown option '{other}' (known: name, exchange, routing_key_prefix, queue_prefix, queue_names, queue_expires, queue_type, reconnect, tls_ca, tls_cert, tls_key, heartbeat, connection_timeout, frame_max, channel_max, auth_mechanism)"
                    )))
                }
            }
        }
        parsed.tls_client = kumi_core::bus::client_certificate(&shown, cert, key)?;
        if !parsed.tls && (parsed.tls_ca.is_some() || parsed.tls_client.is_some()) {
            return Err(Error::config(format!(
                "bus URL '{shown}': TLS options need an amqps:// URL"
            )));
        }
        if !has_timeout {
            passed.push("connection_timeout=10000");
        }
        if !has_frame_max {
            passed.push(DEFAULT_FRAME_MAX);
        }
        parsed.client_url = format!("{scheme}://{base}?{}", passed.join("&"));
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_and_kumi_options() {
        let u = AmqpUrl::parse(
            "amqp://alice:s%3Acret@h:5672/%2f?heartbeat=30&name=orders&exchange=ex&routing_key_prefix=p.&queue_prefix=q-&queue_names=tomodachi&queue_expires=10m",
        )
        .unwrap();
        assert_eq!(
            u.client_url,
            "amqp://alice:s%3Acret@h:5672/%2f?heartbeat=30&connection_timeout=10000&frame_max=32768"
        );
        assert_eq!(u.name.as_deref(), Some("orders"));
        assert_eq!(u.exchange, "ex");
        assert_eq!(u.routing_key_prefix, "p.");
        assert_eq!(u.queue_prefix, "q-");
        assert_eq!(u.queue_names, QueueNames::Tomodachi);
        assert_eq!(u.queue_expires, Duration::from_secs(600));
        assert!(!u.redacted.contains("s%3Acret"));
        let u = AmqpUrl::parse("amqps://h").unwrap();
        assert!(u.tls);
        assert_eq!(u.exchange, DEFAULT_EXCHANGE);
    }

    #[test]
    fn bad_urls_name_the_fault_without_secrets() {
        for (url, needle) in [
            ("amqp://u:hunter2@h:x/", "no valid port"),
            ("amqp://u:hunter2@h/?bogus=1", "unknown option 'bogus'"),
            ("amqp://u:hunter2@h/?reconnect=maybe", "true or false"),
            ("amqp://u:hunter2@h/?heartbeat=soon", "whole number"),
            (
                "amqps://u:hunter2@h/?tls_cert=/c.pem",
                "tls_cert and tls_key must be given together",
            ),
            (
                "amqp://u:hunter2@h/?tls_ca=/ca.pem",
                "TLS options need an amqps:// URL",
            ),
            ("amqp://u:hunter2@h/?queue_names=x", "'kumi' or 'tomodachi'"),
            ("amqp://u:hunter2@h/?queue_expires=1y", "not a duration"),
            ("amqp://u:hunter2@/", "names no host"),
            ("nats://h", "not an amqp://"),
        ] {
            let e = AmqpUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(needle), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
    }
}
