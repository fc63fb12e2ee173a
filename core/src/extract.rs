//! Extractors: the arguments of a message handler.
//!
//! Like axum's extractors, each argument type implements [`FromMessage`]. Extraction is synchronous
//! and borrows the message; a failing extractor yields a [`Rejection`], which says what becomes of
//! the message, as a handler's error would: dead-lettered at once as undecodable (what the
//! built-in extractors say of a payload that does not fit), dead-lettered as rejected, or
//! retried. Never a panic.
//!
//! | extractor | gives |
//! |---|---|
//! | [`Data<T>`] | the payload deserialized from JSON with serde |
//! | [`Bytes`] | the payload bytes (inside the envelope) |
//! | [`RawBody`] | the bytes on the wire (envelope included) |
//! | [`Topic`] | the concrete topic the message arrived on |
//! | [`Headers`] | headers / message attributes |
//! | [`MessageId`], [`CorrelationId`] | ids |
//! | [`Attempt`] | delivery attempt, from 1 |
//! | [`Producer`] | the producing service named by the envelope |
//! | [`Context`] | publish and request, with correlation and trace propagated |
//! | `Arc<S>` | the service itself (this is how `self: Arc<Self>` methods work) |
//! | `Option<T>` | `None` when the value is absent (no message id, an empty payload); any other rejection stands |

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::client::{Client, Context};
use crate::message::{Headers, Message, Producer};
use crate::outcome::FailureKind;

/// What an extractor sees: the message, the service and a client for the bus.
#[derive(Debug)]
pub struct MessageParts<'a, S> {
    /// The decoded message.
    pub message: &'a Message,
    /// The service the route belongs to.
    pub service: &'a Arc<S>,
    /// A client publishing as that service.
    pub client: &'a Client,
}

/// A handler argument that can be taken from a message.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a kumi message handler argument",
    label = "not an extractor",
    note = "handler arguments must implement `FromMessage<S>`: `Data<T>`, `Bytes`, `Topic`, `Headers`, `MessageId`, `CorrelationId`, `Attempt`, `Context`, `Arc<YourService>`..."
)]
pub trait FromMessage<S>: Sized {
    /// Extracts the value, or says why the message does not fit.
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection>;
}

/// Why an extractor could not produce its value, and what becomes of the message: like a
/// handler's error, a rejection is a failure of the attempt, of a [`FailureKind`].
#[derive(Debug, Clone)]
pub struct Rejection {
    message: String,
    kind: FailureKind,
    absent: bool,
}

impl Rejection {
    /// The message does not fit (a payload of another shape, a malformed header): it is
    /// dead-lettered at once as undecodable.
    pub fn new(message: impl Into<String>) -> Self {
        Self::undecodable(message)
    }

    /// The message does not fit: dead-lettered at once as undecodable.
    pub fn undecodable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind: FailureKind::Undecodable,
            absent: false,
        }
    }

    /// The message can never be handled (it names an unknown tenant, say): dead-lettered at
    /// once as rejected.
    pub fn reject(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind: FailureKind::Rejected,
            absent: false,
        }
    }

    /// The value cannot be had now but may be later (a lookup that failed): the message is
    /// retried, as when a handler fails.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind: FailureKind::Retryable,
            absent: false,
        }
    }

    /// The message does not carry the value at all (no message id, no such header): as an
    /// argument `Option<T>` this is `None`; as `T`, the message is undecodable.
    pub fn absent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind: FailureKind::Undecodable,
            absent: true,
        }
    }

    /// What becomes of the message.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// True when the value is absent rather than wrong (see [`Rejection::absent`]).
    pub fn is_absent(&self) -> bool {
        self.absent
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rejection {}

/// The payload, deserialized from JSON with serde.
///
/// ```
/// # use kumi_core::extract::Data;
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64 }
/// async fn on_order(Data(order): Data<Order>) { let _ = order.id; }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Data<T>(pub T);

impl<S, T: DeserializeOwned> FromMessage<S> for Data<T> {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        let payload = &parts.message.payload;
        if payload.is_empty() {
            return Err(Rejection::absent(format!(
                "message on topic '{}' has an empty payload; expected {}",
                parts.message.topic,
                std::any::type_name::<T>()
            )));
        }
        // One UTF-8 check of the whole payload is cheaper than serde_json's check of each string
        // it reads from bytes; invalid UTF-8 goes through `from_slice` for its precise error.
        match std::str::from_utf8(payload) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(payload),
        }
        .map(Data)
        .map_err(|e| {
            Rejection::new(format!(
                "payload on topic '{}' does not decode as {}: {e}",
                parts.message.topic,
                std::any::type_name::<T>()
            ))
        })
    }
}

impl<S> FromMessage<S> for Bytes {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        Ok(parts.message.payload.clone())
    }
}

/// The message body as it was on the wire, envelope included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBody(pub Bytes);

impl<S> FromMessage<S> for RawBody {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        Ok(RawBody(parts.message.body.clone()))
    }
}

/// The concrete topic the message arrived on (useful with wildcard subscriptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic(pub String);

impl<S> FromMessage<S> for Topic {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        Ok(Topic(parts.message.topic.to_string()))
    }
}

impl<S> FromMessage<S> for Headers {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        Ok(parts.message.headers.clone())
    }
}

/// The message id. Rejects messages without one; use `Option<MessageId>` to accept those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageId(pub String);

impl<S> FromMessage<S> for MessageId {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        parts
            .message
            .message_id
            .clone()
            .map(MessageId)
            .ok_or_else(|| {
                Rejection::absent(format!(
                    "message on topic '{}' has no message id",
                    parts.message.topic
                ))
            })
    }
}

/// The correlation id, if the producer set one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(pub Option<String>);

impl<S> FromMessage<S> for CorrelationId {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        Ok(CorrelationId(parts.message.correlation_id.clone()))
    }
}

/// The delivery attempt, starting at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt(pub u32);

impl<S> FromMessage<S> for Attempt {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        Ok(Attempt(parts.message.attempt))
    }
}

impl<S> FromMessage<S> for Producer {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        Ok(parts.message.producer.clone())
    }
}

impl<S> FromMessage<S> for Context {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        Ok(parts.client.context_for(parts.message))
    }
}

impl<S> FromMessage<S> for Arc<S> {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        Ok(Arc::clone(parts.service))
    }
}

/// `None` when `T` is absent from the message; any other rejection of `T` stands (a payload
/// that is there but does not decode is still undecodable).
impl<S, T: FromMessage<S>> FromMessage<S> for Option<T> {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        match T::from_message(parts) {
            Ok(value) => Ok(Some(value)),
            Err(rejection) if rejection.is_absent() => Ok(None),
            Err(rejection) => Err(rejection),
        }
    }
}

/// The value, or the rejection itself (to decide in the handler what a rejection means).
impl<S, T: FromMessage<S>> FromMessage<S> for Result<T, Rejection> {
    fn from_message(parts: &MessageParts<'_, S>) -> Result<Self, Rejection> {
        Ok(T::from_message(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_of<'a>(
        message: &'a Message,
        service: &'a Arc<()>,
        client: &'a Client,
    ) -> MessageParts<'a, ()> {
        MessageParts {
            message,
            service,
            client,
        }
    }

    #[test]
    fn option_means_absent_not_any_rejection() {
        let client = Client::new(Arc::new(crate::memory::MemoryBus::new()));
        let service = Arc::new(());
        let mut message = Message::new("t", Bytes::new());
        let parts = parts_of(&message, &service, &client);
        // Absent: None.
        assert!(matches!(
            Option::<MessageId>::from_message(&parts),
            Ok(None)
        ));
        assert!(matches!(
            Option::<Data<u32>>::from_message(&parts),
            Ok(None)
        ));
        // Present but wrong: the rejection stands, as undecodable.
        message.payload = Bytes::from_static(b"\"not a number\"");
        let parts = parts_of(&message, &service, &client);
        let rejection = Option::<Data<u32>>::from_message(&parts).unwrap_err();
        assert_eq!(rejection.kind(), FailureKind::Undecodable);
        assert!(!rejection.is_absent());
        assert!(matches!(
            Result::<Data<u32>, Rejection>::from_message(&parts),
            Ok(Err(_))
        ));
        message.payload = Bytes::from_static(b"7");
        let parts = parts_of(&message, &service, &client);
        assert!(matches!(
            Option::<Data<u32>>::from_message(&parts),
            Ok(Some(Data(7)))
        ));
    }

    #[test]
    fn rejections_carry_their_outcome() {
        assert_eq!(Rejection::new("x").kind(), FailureKind::Undecodable);
        assert_eq!(Rejection::reject("x").kind(), FailureKind::Rejected);
        assert_eq!(Rejection::retry("x").kind(), FailureKind::Retryable);
        assert!(Rejection::absent("x").is_absent());
    }
}
