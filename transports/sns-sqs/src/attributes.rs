//! Between kumi headers and SNS/SQS message attributes (`docs/wire.md`, "SNS+SQS").
//!
//! Outgoing: the message id travels as `kumi-message-id`, the correlation id as
//! `kumi-correlation-id`, trace context (`traceparent`, `tracestate`) and every other header as a
//! `String` attribute of the same name. SQS accepts at most 10 attributes per message, and
//! attribute names are limited to `[A-Za-z0-9_.-]`: headers that do not fit (too many, invalid
//! names, empty values, repeated names) travel together as JSON `[[name, value], ...]` in the
//! `kumi-headers` attribute. Bodies that SQS cannot carry as text are base64-encoded and marked
//! with `kumi-body-encoding: base64`.
//!
//! Incoming: `String` and `Number` values are used as they are, `String.Array` as its JSON text,
//! `Binary` as UTF-8 text when it is, else base64. SQS-level attributes win over attributes from an
//! SNS notification body.

use std::collections::BTreeMap;

use base64::Engine as _;
use kumi_core::settlement::{CORRELATION_ID, MESSAGE_ID};
use kumi_core::{Headers, Message, Outgoing};

/// Attribute holding headers that do not fit as attributes of their own.
pub const HEADERS_ATTRIBUTE: &str = "kumi-headers";
/// Attribute marking a base64-encoded body.
pub const BODY_ENCODING: &str = "kumi-body-encoding";
/// Header (and attribute) naming the FIFO message group of a publish.
pub const GROUP_ID: &str = "kumi-group-id";
/// Header (and attribute) giving the FIFO deduplication id of a publish (default: the message id).
pub const DEDUPLICATION_ID: &str = "kumi-deduplication-id";
/// Most message attributes SQS takes per message.
pub const MAX_ATTRIBUTES: usize = 10;

/// One message attribute value, transport-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// `String`, `Number` (and custom subtypes) or `String.Array` text.
    Text {
        /// The SNS/SQS data type.
        data_type: String,
        /// The value.
        value: String,
    },
    /// `Binary`.
    Binary(Vec<u8>),
}

impl AttributeValue {
    /// A `String` value.
    pub fn string(value: impl Into<String>) -> Self {
        Self::Text {
            data_type: "String".to_owned(),
            value: value.into(),
        }
    }

    /// The value as header text.
    pub fn as_text(&self) -> String {
        match self {
            Self::Text { value, .. } => value.clone(),
            Self::Binary(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => s.to_owned(),
                Err(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
    }
}

/// True for a name SNS and SQS accept as a message attribute name.
pub fn valid_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
}

/// True when SQS can carry `body` as message text (valid UTF-8 without characters outside
/// `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`).
pub fn body_is_safe_text(body: &[u8]) -> bool {
    match std::str::from_utf8(body) {
        Ok(s) => s.chars().all(|c| {
            matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
                || c >= '\u{10000}'
        }),
        Err(_) => false,
    }
}

/// The message text and attributes of an outgoing message.
pub fn outgoing(message: &Outgoing) -> (String, Vec<(String, AttributeValue)>) {
    let mut attrs: Vec<(String, AttributeValue)> = Vec::new();
    attrs.push((
        MESSAGE_ID.to_owned(),
        AttributeValue::string(&message.message_id),
    ));
    if let Some(c) = message.correlation_id.as_deref().filter(|c| !c.is_empty()) {
        attrs.push((CORRELATION_ID.to_owned(), AttributeValue::string(c)));
    }
    let text = if body_is_safe_text(&message.body) {
        String::from_utf8_lossy(&message.body).into_owned()
    } else {
        attrs.push((BODY_ENCODING.to_owned(), AttributeValue::string("base64")));
        base64::engine::general_purpose::STANDARD.encode(&message.body)
    };
    let mut overflow: Vec<(&str, &str)> = Vec::new();
    let mut fitting: Vec<(&str, &str)> = Vec::new();
    for (k, v) in message.headers.iter() {
        let reserved = matches!(
            k,
            MESSAGE_ID | CORRELATION_ID | HEADERS_ATTRIBUTE | BODY_ENCODING
        );
        let seen = fitting.iter().any(|(n, _)| *n == k);
        if valid_name(k) && !v.is_empty() && !seen && !reserved {
            fitting.push((k, v));
        } else {
            overflow.push((k, v));
        }
    }
    // Keep one slot for `kumi-headers` when some headers do not fit.
    while attrs.len() + fitting.len() + usize::from(!overflow.is_empty()) > MAX_ATTRIBUTES {
        match fitting.pop() {
            Some(last) => overflow.insert(0, last),
            None => break,
        }
    }
    for (k, v) in fitting {
        attrs.push((k.to_owned(), AttributeValue::string(v)));
    }
    if !overflow.is_empty() {
        let json = serde_json::to_string(&overflow).unwrap_or_else(|_| "[]".to_owned());
        attrs.push((HEADERS_ATTRIBUTE.to_owned(), AttributeValue::string(json)));
    }
    (text, attrs)
}

/// Received attributes: SNS-body ones first, then SQS-level ones (which win).
#[derive(Debug, Default)]
pub struct Incoming {
    attrs: BTreeMap<String, AttributeValue>,
}

impl Incoming {
    /// Adds (or replaces) an attribute.
    pub fn set(&mut self, name: impl Into<String>, value: AttributeValue) {
        self.attrs.insert(name.into(), value);
    }

    /// True when the body was base64-encoded by the producer.
    pub fn body_is_base64(&self) -> bool {
        self.attrs
            .get(BODY_ENCODING)
            .is_some_and(|v| v.as_text() == "base64")
    }

    /// Fills the message's headers, message id and correlation id.
    pub fn apply(self, message: &mut Message) {
        let mut headers = Headers::new();
        let mut overflow = None;
        for (name, value) in self.attrs {
            match name.as_str() {
                MESSAGE_ID => message.message_id = Some(value.as_text()),
                CORRELATION_ID => message.correlation_id = Some(value.as_text()),
                BODY_ENCODING => {}
                HEADERS_ATTRIBUTE => overflow = Some(value.as_text()),
                _ => headers.append(name, value.as_text()),
            }
        }
        if let Some(Ok(pairs)) =
            overflow.map(|json| serde_json::from_str::<Vec<(String, String)>>(&json))
        {
            for (k, v) in pairs {
                headers.append(k, v);
            }
        }
        message.headers = headers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_attributes() {
        let mut out = Outgoing::new("t", &b"\x00 binary"[..]);
        out.correlation_id = Some("c1".into());
        for i in 0..12 {
            out.headers.insert(format!("x-{i}"), i.to_string());
        }
        out.headers.insert("bad name!", "v");
        out.headers.insert("empty", "");
        out.headers.append("x-0", "again");
        let (text, attrs) = outgoing(&out);
        assert!(attrs.len() <= MAX_ATTRIBUTES, "{attrs:?}");
        let mut incoming = Incoming::default();
        for (k, v) in attrs {
            incoming.set(k, v);
        }
        assert!(incoming.body_is_base64());
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap(),
            b"\x00 binary"
        );
        let mut m = Message::new("t", "");
        incoming.apply(&mut m);
        assert_eq!(m.message_id.as_deref(), Some(out.message_id.as_str()));
        assert_eq!(m.correlation_id.as_deref(), Some("c1"));
        for i in 0..12 {
            assert_eq!(
                m.headers.get(&format!("x-{i}")),
                Some(i.to_string().as_str())
            );
        }
        assert_eq!(m.headers.get("bad name!"), Some("v"));
        assert_eq!(m.headers.get("empty"), Some(""));
        assert_eq!(m.headers.len(), 15);
    }

    #[test]
    fn names_and_text() {
        assert!(valid_name("traceparent"));
        assert!(valid_name("kumi-dead-letter-reason"));
        assert!(!valid_name("AWS.x"));
        assert!(!valid_name("a..b"));
        assert!(body_is_safe_text("héllo ☃ {}".as_bytes()));
        assert!(!body_is_safe_text(b"\x00"));
        assert!(!body_is_safe_text(b"\xff"));
        assert_eq!(AttributeValue::Binary(b"ok".to_vec()).as_text(), "ok");
    }
}
