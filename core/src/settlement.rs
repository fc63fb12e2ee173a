//! The vocabulary of settling a message: what a route is ([`RouteKind`]), what its dispatch
//! decided ([`Settlement`]), a dead letter with its headers ([`DeadLetter`]), a reply
//! ([`Reply`]) and what a drain reports ([`DrainReport`]).
//!
//! The dispatcher ([`crate::dispatch`]) decides a settlement; the consume runtime
//! ([`crate::consume`]) carries it out through the bus's [`Delivery`](crate::delivery::Delivery).
//! Nothing here touches a broker. The wire form of the dead-letter headers is in
//! `docs/wire.md` ("Dead letters").

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::message::{Headers, Message, Outgoing};

/// Header on dead-lettered messages: why the message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "kumi-dead-letter-reason";
/// Header on dead-lettered messages: its [`DeadLetterKind`] (`exhausted`, `rejected` or
/// `undecodable`).
pub const DEAD_LETTER_KIND: &str = "kumi-dead-letter-kind";
/// Header on dead-lettered messages: the topic the message was consumed from.
pub const ORIGINAL_TOPIC: &str = "kumi-original-topic";
/// Header on dead-lettered messages: how many delivery attempts were made.
pub const ATTEMPTS: &str = "kumi-attempts";
/// Header on dead-lettered messages: the message id of the original (the dead letter has an id
/// of its own, so that a broker de-duplicating by id never takes it for the original).
pub const ORIGINAL_MESSAGE_ID: &str = "kumi-original-message-id";
/// Header carrying the message id on transports without a native field for it.
pub const MESSAGE_ID: &str = "kumi-message-id";
/// Header carrying the correlation id on transports without a native field for it.
pub const CORRELATION_ID: &str = "kumi-correlation-id";

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

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadLetterKind {
    /// The handler kept failing until the route's attempts were used up.
    Exhausted,
    /// The handler (or an extractor) rejected the message: retrying cannot help.
    Rejected,
    /// The envelope or an extractor could not decode the message.
    Undecodable,
}

impl DeadLetterKind {
    /// The header value: `exhausted`, `rejected` or `undecodable`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Exhausted => "exhausted",
            DeadLetterKind::Rejected => "rejected",
            DeadLetterKind::Undecodable => "undecodable",
        }
    }

    /// The kind a header value names.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "exhausted" => Some(DeadLetterKind::Exhausted),
            "rejected" => Some(DeadLetterKind::Rejected),
            "undecodable" => Some(DeadLetterKind::Undecodable),
            _ => None,
        }
    }
}

impl fmt::Display for DeadLetterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// Why: exhausted, rejected or undecodable.
    pub kind: DeadLetterKind,
    /// Delivery attempts made.
    pub attempts: u32,
}

impl DeadLetter {
    /// The headers a dead-lettered message carries: its original headers plus the four
    /// dead-letter headers (replacing any the original carried).
    pub fn headers(&self, original: &Headers) -> Headers {
        let mut h = original.clone();
        h.insert(DEAD_LETTER_REASON, self.reason.clone());
        h.insert(DEAD_LETTER_KIND, self.kind.as_str());
        h.insert(ORIGINAL_TOPIC, self.original_topic.clone());
        h.insert(ATTEMPTS, self.attempts.to_string());
        h
    }

    /// The message to publish for `original`, the message as it was received (its body as on
    /// the wire, its headers and correlation id): the one conversion every bus uses. Its message
    /// id is its own, `<original id>.dlq<attempts>` (the same for the same failure, so a broker
    /// de-duplicating by id stores a dead letter published twice once, and never mistakes it for
    /// the original); the original's is kept in [`ORIGINAL_MESSAGE_ID`].
    pub fn to_outgoing(&self, original: &Message) -> Outgoing {
        let mut out = Outgoing::new(self.topic.clone(), original.body.clone());
        out.headers = self.headers(&original.headers);
        if let Some(id) = &original.message_id {
            out.message_id = format!("{id}.dlq{}", self.attempts);
            out.headers.insert(ORIGINAL_MESSAGE_ID, id.clone());
        }
        out.correlation_id.clone_from(&original.correlation_id);
        out
    }
}

/// `dlq.<topic>` unless a route names its dead-letter topic.
pub fn dead_letter_topic(configured: Option<&str>, topic: &str) -> String {
    match configured {
        Some(t) => t.to_owned(),
        None => format!("dlq.{topic}"),
    }
}

/// How a message is to be settled after its dispatch.
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

/// What a drain reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Messages whose handlers finished and were settled during the drain.
    pub settled: usize,
    /// Messages still queued or running at the deadline (given back to the broker for
    /// redelivery where it keeps them; lost on the in-memory bus and on core NATS).
    pub abandoned: usize,
}

impl std::ops::AddAssign for DrainReport {
    fn add_assign(&mut self, other: Self) {
        self.settled += other.settled;
        self.abandoned += other.abandoned;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_carry_the_original_and_why() {
        let mut original = Message::new("orders.created", Bytes::from_static(b"{}"));
        original.headers.insert("traceparent", "00-a-b-01");
        original.headers.insert(DEAD_LETTER_REASON, "forged");
        original.message_id = Some("m-1".into());
        original.correlation_id = Some("c-1".into());
        let dead = DeadLetter {
            topic: "dlq.orders.created".into(),
            original_topic: "orders.created".into(),
            reason: "boom".into(),
            kind: DeadLetterKind::Exhausted,
            attempts: 3,
        };
        let out = dead.to_outgoing(&original);
        assert_eq!(out.topic, "dlq.orders.created");
        assert_eq!(&out.body[..], b"{}");
        assert_eq!(out.message_id, "m-1.dlq3", "an id of its own");
        assert_eq!(out.headers.get(ORIGINAL_MESSAGE_ID), Some("m-1"));
        assert_eq!(out.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(out.headers.get("traceparent"), Some("00-a-b-01"));
        assert_eq!(out.headers.get(DEAD_LETTER_REASON), Some("boom"));
        assert_eq!(out.headers.get(DEAD_LETTER_KIND), Some("exhausted"));
        assert_eq!(out.headers.get(ORIGINAL_TOPIC), Some("orders.created"));
        assert_eq!(out.headers.get(ATTEMPTS), Some("3"));
        for kind in [
            DeadLetterKind::Exhausted,
            DeadLetterKind::Rejected,
            DeadLetterKind::Undecodable,
        ] {
            assert_eq!(DeadLetterKind::parse(kind.as_str()), Some(kind));
        }
    }
}
