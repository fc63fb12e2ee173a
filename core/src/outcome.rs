//! What a handler's return value means: [`Outcome`], [`HandlerError`] and [`IntoOutcome`].
//!
//! - `()` / `Ok(_)` → ack (for request routes the `Ok` value is serialized as the reply);
//! - `Err(e)` → retry with backoff per the route's policy, then dead-letter;
//! - `Err(HandlerError::reject(e))` → dead-letter now, no retry.

use std::fmt;

use bytes::Bytes;
use serde::Serialize;

use crate::envelope::JsonStyle;
use crate::error::BoxError;

/// Why a message is being dead-lettered rather than retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The handler failed; it may succeed on another attempt.
    Retryable,
    /// The handler rejected the message: retrying cannot help.
    Rejected,
    /// The envelope or an extractor could not decode the message.
    Undecodable,
}

/// The outcome of one handler call, before the route's retry policy is applied.
#[derive(Debug)]
pub enum Outcome {
    /// Success. For request routes, the serialized reply (`None` for event routes).
    Ok(Option<Bytes>),
    /// Failure, with whether a retry may help.
    Failed(FailureKind, BoxError),
}

/// An error returned by a handler: any error (anything `Into<BoxError>`: std errors, `String`,
/// `&str`, `anyhow::Error`...) converts into one with `?`, meaning "retry". Use
/// [`HandlerError::reject`] for messages that can never succeed.
pub struct HandlerError {
    kind: FailureKind,
    error: BoxError,
}

impl HandlerError {
    /// A failure that should be retried.
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self {
            kind: FailureKind::Retryable,
            error: error.into(),
        }
    }

    /// A failure that retrying cannot fix: the message is dead-lettered at once.
    pub fn reject(error: impl Into<BoxError>) -> Self {
        Self {
            kind: FailureKind::Rejected,
            error: error.into(),
        }
    }

    /// Whether this failure may be retried.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The underlying error.
    pub fn error(&self) -> &BoxError {
        &self.error
    }
}

impl<E: Into<BoxError>> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::retry(error)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("kind", &self.kind)
            .field("error", &self.error)
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

/// Turns a handler's return value into an [`Outcome`].
///
/// `reply` is `Some(style)` on request routes: the success value is then serialized as JSON in
/// that style. On event routes it is `None` and success values are dropped unserialized.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid kumi handler return type",
    label = "return `()`, `Result<T, E>` with `T: Serialize` and `E: Into<HandlerError>`, or an `Outcome`"
)]
pub trait IntoOutcome {
    /// Converts the value.
    fn into_outcome(self, reply: Option<JsonStyle>) -> Outcome;
}

impl IntoOutcome for () {
    fn into_outcome(self, reply: Option<JsonStyle>) -> Outcome {
        Outcome::Ok(reply.map(|_| Bytes::from_static(b"null")))
    }
}

impl IntoOutcome for Outcome {
    fn into_outcome(self, _reply: Option<JsonStyle>) -> Outcome {
        self
    }
}

impl<T: Serialize, E: Into<HandlerError>> IntoOutcome for Result<T, E> {
    fn into_outcome(self, reply: Option<JsonStyle>) -> Outcome {
        match self {
            Ok(value) => match reply {
                None => Outcome::Ok(None),
                Some(style) => match style.to_vec(&value) {
                    Ok(bytes) => Outcome::Ok(Some(Bytes::from(bytes))),
                    Err(e) => Outcome::Failed(FailureKind::Rejected, Box::new(e)),
                },
            },
            Err(e) => {
                let e = e.into();
                Outcome::Failed(e.kind, e.error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_map_to_outcomes() {
        let ok: Result<u32, String> = Ok(7);
        assert!(matches!(ok.into_outcome(None), Outcome::Ok(None)));
        let ok: Result<u32, String> = Ok(7);
        match ok.into_outcome(Some(JsonStyle::Compact)) {
            Outcome::Ok(Some(b)) => assert_eq!(&b[..], b"7"),
            other => panic!("unexpected {other:?}"),
        }
        let err: Result<(), &str> = Err("boom");
        assert!(matches!(
            err.into_outcome(None),
            Outcome::Failed(FailureKind::Retryable, _)
        ));
        let rej: Result<(), HandlerError> = Err(HandlerError::reject("bad"));
        assert!(matches!(
            rej.into_outcome(None),
            Outcome::Failed(FailureKind::Rejected, _)
        ));
    }
}
