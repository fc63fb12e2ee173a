//! Transport-neutral messages: what a transport hands to a route ([`Message`]) and what a producer
//! hands to a bus ([`Outgoing`]).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

/// Header carrying the W3C trace context (`traceparent`), propagated from a handled message to the
/// messages its handler publishes.
pub const TRACEPARENT: &str = "traceparent";
/// Header carrying the W3C `tracestate`.
pub const TRACESTATE: &str = "tracestate";

/// Ordered message headers (string keys and values; keys compare case-sensitively, as on NATS).
///
/// A small vector rather than a map: messages carry few headers and lookups stay cheap.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// The first value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` to `value`, replacing any earlier values.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.0.retain(|(k, _)| *k != key);
        self.0.push((key, value.into()));
    }

    /// Adds a value for `key`, keeping earlier ones.
    pub fn append(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.push((key.into(), value.into()));
    }

    /// Removes every value of `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    /// All headers in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of header values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Typed, transport-specific metadata attached to a message (an SQS receipt handle, an AMQP
/// delivery tag, a JetStream sequence...). Keyed by type, like `http::Extensions`.
#[derive(Default)]
// Boxed on purpose: messages rarely carry extensions, and a bare map would add 40 bytes to every
// `Message`, which is moved several times per dispatch.
#[allow(clippy::box_collection)]
pub struct Extensions(Option<Box<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>);

impl Extensions {
    /// Stores `value`, returning the previous value of the same type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.0
            .get_or_insert_with(Default::default)
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast().ok().map(|b| *b))
    }

    /// The stored value of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0
            .as_ref()
            .and_then(|m| m.get(&TypeId::of::<T>()))
            .and_then(|b| b.downcast_ref())
    }

    /// The stored value of type `T`, mutably.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.0
            .as_mut()
            .and_then(|m| m.get_mut(&TypeId::of::<T>()))
            .and_then(|b| b.downcast_mut())
    }

    /// The stored value of type `T`, inserting `T::default()` first if there is none.
    pub fn get_or_default<T: Default + Send + Sync + 'static>(&mut self) -> &mut T {
        self.0
            .get_or_insert_with(Default::default)
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("the entry for T holds a T")
    }

    /// Takes the stored value of type `T` out.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.0
            .as_mut()
            .and_then(|m| m.remove(&TypeId::of::<T>()))
            .and_then(|b| b.downcast().ok().map(|b| *b))
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_ref().map_or(0, |m| m.len());
        write!(f, "Extensions({n})")
    }
}

/// Who produced a message, when its envelope says so (tomodachi's `service` block).
///
/// Holds one buffer — usually the message body itself — and where the name and instance id are in
/// it, so decoding it costs neither an allocation nor more than one reference count.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Producer {
    source: Bytes,
    name: Option<Span>,
    instance: Option<Span>,
}

/// A byte range of [`Producer::source`] known to be UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Producer {
    /// A producer from its name and instance id (each dropped unless UTF-8).
    pub fn new(name: Option<Bytes>, instance: Option<Bytes>) -> Self {
        let utf8 = |b: Option<Bytes>| b.filter(|b| std::str::from_utf8(b).is_ok());
        let (name, instance) = (utf8(name), utf8(instance));
        let mut source = Vec::new();
        let mut span = |part: Option<Bytes>| {
            part.and_then(|p| {
                let start = u32::try_from(source.len()).ok()?;
                source.extend_from_slice(&p);
                let end = u32::try_from(source.len()).ok()?;
                Some(Span { start, end })
            })
        };
        let name = span(name);
        let instance = span(instance);
        Self {
            source: Bytes::from(source),
            name,
            instance,
        }
    }

    /// A producer whose name and instance id are the UTF-8 texts at these ranges of `source`
    /// (slices of a parsed JSON text). Ranges outside `source` are dropped.
    pub(crate) fn in_source(
        source: &Bytes,
        name: Option<std::ops::Range<usize>>,
        instance: Option<std::ops::Range<usize>>,
    ) -> Self {
        let span = |r: Option<std::ops::Range<usize>>| {
            let r = r.filter(|r| r.start <= r.end && r.end <= source.len())?;
            Some(Span {
                start: u32::try_from(r.start).ok()?,
                end: u32::try_from(r.end).ok()?,
            })
        };
        Self {
            source: source.clone(),
            name: span(name),
            instance: span(instance),
        }
    }

    fn text(&self, span: Option<Span>) -> Option<&str> {
        let span = span?;
        let bytes = self.source.get(span.start as usize..span.end as usize)?;
        std::str::from_utf8(bytes).ok()
    }

    /// Producer service name.
    pub fn name(&self) -> Option<&str> {
        self.text(self.name)
    }

    /// Producer instance id.
    pub fn instance(&self) -> Option<&str> {
        self.text(self.instance)
    }
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("name", &self.name())
            .field("instance", &self.instance())
            .finish()
    }
}

/// An incoming message, as a transport received it and the route's envelope decoded it.
///
/// `body` is the bytes on the wire; `payload` is what the envelope carried (for the raw envelope the
/// two are the same bytes). Cheap to clone parts of: both are [`Bytes`].
#[derive(Debug)]
pub struct Message {
    /// The concrete topic (subject, routing key) the message arrived on, without prefixes. Shared:
    /// transports reuse one allocation for the messages of a topic.
    pub topic: Arc<str>,
    /// Bytes on the wire.
    pub body: Bytes,
    /// The payload inside the envelope: empty until the route's envelope has decoded `body`
    /// (which happens before the handler runs).
    pub payload: Bytes,
    /// Headers or message attributes.
    pub headers: Headers,
    /// The message id (from the envelope or the transport), if known.
    pub message_id: Option<String>,
    /// The correlation id, if the producer set one.
    pub correlation_id: Option<String>,
    /// Delivery attempt, starting at 1.
    pub attempt: u32,
    /// When the producer sent it, if known.
    pub timestamp: Option<SystemTime>,
    /// The producer named by the envelope.
    pub producer: Producer,
    /// Transport-specific metadata.
    pub extensions: Extensions,
}

impl Message {
    /// A first delivery of `body` on `topic`, with nothing else known yet (not even the payload:
    /// see [`Message::payload`]).
    pub fn new(topic: impl Into<Arc<str>>, body: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            payload: Bytes::new(),
            body: body.into(),
            headers: Headers::new(),
            message_id: None,
            correlation_id: None,
            attempt: 1,
            timestamp: None,
            producer: Producer::default(),
            extensions: Extensions::default(),
        }
    }
}

/// A message on its way to a bus: already encoded by its envelope.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Topic to publish on (without prefixes; the transport adds them).
    pub topic: String,
    /// Encoded body.
    pub body: Bytes,
    /// Headers or message attributes.
    pub headers: Headers,
    /// The message id (also inside the body for enveloped messages).
    pub message_id: String,
    /// Correlation id to carry.
    pub correlation_id: Option<String>,
}

impl Outgoing {
    /// A message with a fresh id and no headers.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            body: body.into(),
            headers: Headers::new(),
            message_id: uuid::Uuid::new_v4().to_string(),
            correlation_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_insert_replaces_append_keeps() {
        let mut h = Headers::new();
        h.append("a", "1");
        h.append("a", "2");
        assert_eq!(h.get("a"), Some("1"));
        h.insert("a", "3");
        assert_eq!(h.len(), 1);
        assert_eq!(h.get("a"), Some("3"));
        h.remove("a");
        assert!(h.is_empty());
    }

    #[test]
    fn producers_keep_their_utf8_parts() {
        let p = Producer::new(Some(Bytes::from("orders")), Some(Bytes::from("i-1")));
        assert_eq!((p.name(), p.instance()), (Some("orders"), Some("i-1")));
        let p = Producer::new(Some(Bytes::from_static(b"\xff")), Some(Bytes::from("i-2")));
        assert_eq!((p.name(), p.instance()), (None, Some("i-2")));
        let body = Bytes::from_static(b"xx name yy id");
        let p = Producer::in_source(&body, Some(3..7), Some(11..13));
        assert_eq!((p.name(), p.instance()), (Some("name"), Some("id")));
        let p = Producer::in_source(&body, Some(3..99), None);
        assert_eq!((p.name(), p.instance()), (None, None));
        assert_eq!(Producer::default().name(), None);
    }

    #[test]
    fn extensions_are_typed() {
        let mut e = Extensions::default();
        assert!(e.get::<u64>().is_none());
        e.insert(7u64);
        assert_eq!(e.insert(8u64), Some(7));
        assert_eq!(e.get::<u64>(), Some(&8));
        assert!(e.get::<u32>().is_none());
        *e.get_mut::<u64>().unwrap() += 1;
        e.get_or_default::<Vec<u8>>().push(1);
        assert_eq!(e.len(), 2);
        assert_eq!(e.remove::<u64>(), Some(9));
        assert_eq!(e.remove::<Vec<u8>>(), Some(vec![1]));
        assert!(e.is_empty());
    }
}
