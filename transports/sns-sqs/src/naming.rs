//! Topic and queue names (`docs/wire.md`, "SNS+SQS").
//!
//! - **Topics**: `encode(topic_prefix + topic)`, where every character outside `[A-Za-z0-9_*#-]`
//!   becomes `___` + the lowercase hex of its UTF-8 bytes + `_` (tomodachi's encoding: `a.b` →
//!   `a___2e_b`); FIFO topics end in `.fifo`.
//! - **Queues** (unless a route names its queue):
//!   - competing routes (`Delivery::Group(g)`, the service name by default):
//!     `queue_prefix + <g, sanitized, at most 30 chars> + "-" + sha256_hex(g + "|" + encoded topic)[..24]`
//!     — stable across restarts, one queue per group and topic, so two services (groups) each get
//!     every message and the instances of one service compete;
//!   - with tomodachi naming (`queue_naming=tomodachi` or [`SqsRoute::tomodachi_queue_name`]):
//!     `queue_prefix + sha256_hex(encoded topic)`, tomodachi's competing-consumer name, so a kumi
//!     service can take over a tomodachi service's queue (note that every service using it then
//!     competes for the same messages, as with tomodachi);
//!   - broadcast routes: `queue_prefix + "bc-" + sha256_hex(service | route | topic | instance)[..40]`,
//!     one queue per running instance, deleted with its subscription on graceful shutdown;
//!   - FIFO queues end in `.fifo`. The SQS dead-letter queue of a queue is `<name>-dlq`
//!     (before `.fifo`).
//!
//! [`SqsRoute::tomodachi_queue_name`]: crate::SqsRoute::tomodachi_queue_name

use sha2::{Digest, Sha256};

/// `FIFO` suffix of topic and queue names.
pub const FIFO_SUFFIX: &str = ".fifo";
/// Longest SQS queue name.
pub const MAX_QUEUE_NAME: usize = 80;

/// tomodachi's topic encoding: characters outside `[A-Za-z0-9_*#-]` become `___<hex>_`.
pub fn encode_topic(topic: &str) -> String {
    let mut out = String::with_capacity(topic.len());
    for c in topic.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*' | '#') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            out.push_str("___");
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("{b:02x}"));
            }
            out.push('_');
        }
    }
    out
}

/// Reverses [`encode_topic`] (invalid sequences are kept as they are).
pub fn decode_topic(encoded: &str) -> String {
    let mut bytes = Vec::with_capacity(encoded.len());
    let raw = encoded.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i..].starts_with(b"___") {
            let hex_start = i + 3;
            let hex_len = raw[hex_start..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if hex_len > 0 && hex_len % 2 == 0 && raw.get(hex_start + hex_len) == Some(&b'_') {
                let hex = &encoded[hex_start..hex_start + hex_len];
                let decoded: Option<Vec<u8>> = (0..hex_len)
                    .step_by(2)
                    .map(|j| u8::from_str_radix(&hex[j..j + 2], 16).ok())
                    .collect();
                if let Some(decoded) = decoded {
                    bytes.extend(decoded);
                    i = hex_start + hex_len + 1;
                    continue;
                }
            }
        }
        bytes.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The SNS topic name of `topic`.
pub fn topic_name(topic_prefix: &str, topic: &str, fifo: bool) -> String {
    let mut name = encode_topic(&format!("{topic_prefix}{topic}"));
    if fifo {
        name.push_str(FIFO_SUFFIX);
    }
    name
}

/// The kumi topic of an SNS topic name (suffix removed, decoded, prefix stripped).
pub fn topic_of_name(topic_prefix: &str, name: &str) -> String {
    let name = name.strip_suffix(FIFO_SUFFIX).unwrap_or(name);
    let decoded = decode_topic(name);
    match decoded.strip_prefix(topic_prefix) {
        Some(t) => t.to_owned(),
        None => decoded,
    }
}

/// Lowercase hex of SHA-256.
pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `[A-Za-z0-9_-]` only, other characters replaced by `_`, at most `max` characters.
fn token(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}

fn with_suffix(mut name: String, fifo: bool) -> String {
    if fifo && !name.ends_with(FIFO_SUFFIX) {
        name.push_str(FIFO_SUFFIX);
    }
    name
}

/// tomodachi's competing-consumer queue name: `queue_prefix + sha256_hex(encoded topic)`.
pub fn tomodachi_queue_name(queue_prefix: &str, topic: &str, fifo: bool) -> String {
    with_suffix(
        format!("{queue_prefix}{}", sha256_hex(&encode_topic(topic))),
        fifo,
    )
}

/// kumi's stable queue name for a competing group on `topic`.
pub fn group_queue_name(queue_prefix: &str, group: &str, topic: &str, fifo: bool) -> String {
    let hash = sha256_hex(&format!("{group}|{}", encode_topic(topic)));
    with_suffix(
        format!("{queue_prefix}{}-{}", token(group, 30), &hash[..24]),
        fifo,
    )
}

/// The queue of one broadcast route instance.
pub fn broadcast_queue_name(
    queue_prefix: &str,
    service: &str,
    route: &str,
    topic: &str,
    instance: &str,
    fifo: bool,
) -> String {
    let hash = sha256_hex(&format!(
        "{service}|{route}|{}|{instance}",
        encode_topic(topic)
    ));
    with_suffix(format!("{queue_prefix}bc-{}", &hash[..40]), fifo)
}

/// The SQS dead-letter queue of `queue`: `<name>-dlq` (keeping `.fifo` last, within 80 chars).
pub fn dlq_name(queue: &str) -> String {
    let (base, fifo) = match queue.strip_suffix(FIFO_SUFFIX) {
        Some(b) => (b, true),
        None => (queue, false),
    };
    let room = MAX_QUEUE_NAME - 4 - if fifo { FIFO_SUFFIX.len() } else { 0 };
    let base: String = base.chars().take(room).collect();
    with_suffix(format!("{base}-dlq"), fifo)
}

/// Checks an SQS queue name: 1–80 characters of `[A-Za-z0-9_-]`, `.fifo` allowed at the end.
pub fn check_queue_name(name: &str) -> Result<(), String> {
    let base = name.strip_suffix(FIFO_SUFFIX).unwrap_or(name);
    if name.is_empty() || name.len() > MAX_QUEUE_NAME {
        return Err(format!(
            "SQS queue name '{name}' must be 1 to {MAX_QUEUE_NAME} characters (shorten queue_prefix or name the queue)"
        ));
    }
    if !base
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "SQS queue name '{name}' may only contain letters, digits, '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_encoding_is_tomodachis() {
        assert_eq!(encode_topic("a.b"), "a___2e_b");
        assert_eq!(encode_topic("orders-created_v1"), "orders-created_v1");
        assert_eq!(encode_topic("é/x"), "___c3a9____2f_x");
        for t in ["a.b", "é/x", "x___y", "a.b.c", "a___zz_b"] {
            assert_eq!(decode_topic(&encode_topic(t)), t, "{t}");
        }
        assert_eq!(topic_name("dev-", "a.b", false), "dev-a___2e_b");
        assert_eq!(topic_name("", "a.b", true), "a___2e_b.fifo");
        assert_eq!(topic_of_name("dev-", "dev-a___2e_b.fifo"), "a.b");
    }

    #[test]
    fn queue_names_are_stable_and_valid() {
        // tomodachi: sha256 of the encoded topic.
        assert_eq!(
            tomodachi_queue_name("", "a.b", false),
            sha256_hex("a___2e_b")
        );
        let g1 = group_queue_name("p-", "orders", "a.b", false);
        assert_eq!(g1, group_queue_name("p-", "orders", "a.b", false));
        assert_ne!(g1, group_queue_name("p-", "billing", "a.b", false));
        assert!(g1.starts_with("p-orders-"));
        let f = group_queue_name("", "orders.svc", "a", true);
        assert!(f.ends_with(".fifo"));
        for name in [
            g1,
            f.clone(),
            dlq_name(&f),
            broadcast_queue_name("", "s", "r", "t", "i", false),
            dlq_name(&"x".repeat(80)),
        ] {
            check_queue_name(&name).unwrap();
        }
        assert!(dlq_name(&f).ends_with("-dlq.fifo"));
        assert!(check_queue_name("a.b").is_err());
        assert!(check_queue_name(&"x".repeat(81)).is_err());
    }
}
