//! What travels on a websocket: data [`Frame`]s, close codes and [`CloseInfo`].

use std::fmt;

use axum::extract::ws::Message;
use bytes::Bytes;
use kumi_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use axum::extract::ws::Utf8Bytes;

/// Websocket close codes kumi uses (RFC 6455, section 7.4.1).
pub mod close_code {
    /// The purpose of the connection was fulfilled (the handler returned).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A message broke the endpoint's rules (the connect hook refused the session).
    pub const POLICY: u16 = 1008;
    /// A message was larger than the endpoint's maximum message size.
    pub const TOO_BIG: u16 = 1009;
    /// The handler failed or panicked, or the peer stopped answering pings.
    pub const INTERNAL: u16 = 1011;
    /// The session could not keep up with what was sent to it (its send queue was full).
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// A websocket data message: text or binary. Pings, pongs and close frames are handled by
/// kumi. Cheap to clone (the bytes are shared), so one frame can go to many sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A UTF-8 text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Frame {
    /// A text frame holding `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Frame> {
        let text = serde_json::to_string(value).map_err(|e| {
            Error::codec(format!(
                "cannot encode a {} as a JSON websocket message",
                std::any::type_name::<T>()
            ))
            .with_source(e)
        })?;
        Ok(Frame::Text(text.into()))
    }

    /// The text, for a text frame.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Frame::Text(t) => Some(t.as_str()),
            Frame::Binary(_) => None,
        }
    }

    /// The bytes of either kind.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Frame::Text(t) => t.as_bytes(),
            Frame::Binary(b) => b,
        }
    }

    /// Decodes the frame (text or binary) as JSON.
    pub fn decode_json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(self.as_bytes()).map_err(|e| {
            Error::codec(format!(
                "websocket message does not decode as {}: {e}",
                std::any::type_name::<T>()
            ))
            .with_source(e)
        })
    }

    pub(crate) fn into_message(self) -> Message {
        match self {
            Frame::Text(t) => Message::Text(t),
            Frame::Binary(b) => Message::Binary(b),
        }
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Frame::Text(text.into())
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Self {
        Frame::Text(text.into())
    }
}

impl From<Utf8Bytes> for Frame {
    fn from(text: Utf8Bytes) -> Self {
        Frame::Text(text)
    }
}

impl From<Bytes> for Frame {
    fn from(bytes: Bytes) -> Self {
        Frame::Binary(bytes)
    }
}

impl From<Vec<u8>> for Frame {
    fn from(bytes: Vec<u8>) -> Self {
        Frame::Binary(bytes.into())
    }
}

/// Who ended a websocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClosedBy {
    /// The other end sent a close frame or dropped the connection.
    Peer,
    /// This end closed it (shutdown, handler done, limit broken, unresponsive peer).
    Local,
}

/// How a websocket connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code, if a close frame was exchanged (`None`: the connection just dropped).
    pub code: Option<u16>,
    /// The close reason (or what happened, when there was no close frame).
    pub reason: String,
    /// Who ended it.
    pub by: ClosedBy,
}

impl CloseInfo {
    pub(crate) fn new(code: Option<u16>, reason: impl Into<String>, by: ClosedBy) -> Self {
        Self {
            code,
            reason: reason.into(),
            by,
        }
    }
}

impl fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = match self.by {
            ClosedBy::Peer => "peer",
            ClosedBy::Local => "server",
        };
        match self.code {
            Some(code) => write!(f, "closed by {by} with {code} '{}'", self.reason),
            None => write!(f, "dropped by {by}: {}", self.reason),
        }
    }
}

/// A close reason cut to the 123 bytes a close frame can carry.
pub(crate) fn close_reason(reason: &str) -> Utf8Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Utf8Bytes::from(&reason[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_convert_and_decode() {
        let f = Frame::json(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(f.as_text(), Some(r#"{"a":1}"#));
        assert_eq!(f.decode_json::<serde_json::Value>().unwrap()["a"], 1);
        assert!(Frame::from("x").decode_json::<u32>().is_err());
        assert_eq!(Frame::from(vec![1u8, 2]).as_bytes(), &[1, 2]);
    }

    #[test]
    fn close_reasons_fit_a_frame() {
        assert_eq!(close_reason("short").as_str(), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(cut.as_str()));
    }
}
