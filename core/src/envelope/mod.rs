//! Envelopes (message protocols): how a payload is wrapped on the wire.
//!
//! - [`JsonBase`]: tomodachi's `tomodachi-json-base--1.0.0`, the default for events, byte-compatible
//!   with what tomodachi writes (see `python_json` for the JSON text style).
//! - [`Raw`]: the payload bytes are the message; what bare NATS clients and most non-tomodachi
//!   producers use.
//!
//! Further envelopes implement [`Envelope`]. Payloads reach an envelope already serialized (JSON text
//! for typed values), in the [`JsonStyle`] the envelope asks for.

mod json_base;
mod python_json;
mod raw;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

pub use json_base::JsonBase;
pub use raw::Raw;

use crate::error::{Error, Result};
use crate::message::Message;

/// How an envelope wants typed payloads written as JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonStyle {
    /// serde_json's compact form.
    Compact,
    /// Python's `json.dumps` default form: `", "` and `": "` separators, non-ASCII escaped as
    /// `\uXXXX` — what tomodachi produces, so kumi's messages match it byte for byte.
    Python,
}

impl JsonStyle {
    /// Serializes `value` in this style.
    pub fn to_vec<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(256);
        self.write(&mut out, value)?;
        Ok(out)
    }

    /// Serializes `value` in this style at the end of `out`.
    pub fn write<T: Serialize + ?Sized>(self, out: &mut Vec<u8>, value: &T) -> Result<()> {
        let result = match self {
            JsonStyle::Compact => serde_json::to_writer(&mut *out, value),
            JsonStyle::Python => python_json::to_writer(out, value),
        };
        result.map_err(|e| Error::codec("cannot serialize payload as JSON").with_source(e))
    }
}

/// What an envelope needs to know about the producer and the message when encoding.
#[derive(Debug, Clone, Copy)]
pub struct EncodeContext<'a> {
    /// Topic without prefixes.
    pub topic: &'a str,
    /// Producer service name.
    pub service_name: &'a str,
    /// Producer instance id.
    pub instance_id: &'a str,
}

/// An encoded message body and the id the envelope gave it.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The bytes to put on the wire.
    pub body: Bytes,
    /// The message id (inside the body where the envelope has one).
    pub message_id: String,
}

/// A message protocol: wraps serialized payloads for the wire and unwraps received bodies.
pub trait Envelope: Send + Sync + fmt::Debug + 'static {
    /// Short name shown in the startup banner and in errors (e.g. `json-base`).
    fn name(&self) -> &'static str;

    /// The JSON style typed payloads should be serialized in before [`Envelope::encode`].
    fn json_style(&self) -> JsonStyle {
        JsonStyle::Compact
    }

    /// True when payloads must be JSON text (checked for pre-serialized payloads given to
    /// [`Client::publish_bytes`](crate::Client::publish_bytes); typed payloads always are).
    fn requires_json(&self) -> bool {
        false
    }

    /// Wraps `payload` (already serialized; JSON text if [`Envelope::requires_json`]) into a wire
    /// body.
    fn encode(&self, cx: &EncodeContext<'_>, payload: &[u8]) -> Result<Encoded>;

    /// Like [`Envelope::encode`], with the payload written by `write` (serialized in
    /// [`Envelope::json_style`]) straight into the envelope's buffer where the envelope can take
    /// it that way, saving a copy. The default writes it into a buffer of its own and calls
    /// [`Envelope::encode`].
    fn encode_with(
        &self,
        cx: &EncodeContext<'_>,
        write: &mut dyn FnMut(&mut Vec<u8>) -> Result<()>,
    ) -> Result<Encoded> {
        let mut payload = Vec::with_capacity(256);
        write(&mut payload)?;
        self.encode(cx, &payload)
    }

    /// Unwraps `message.body`: sets `payload`, and the message id, timestamp and producer where the
    /// envelope carries them. An error means the body is undecodable (it will be dead-lettered).
    fn decode(&self, message: &mut Message) -> Result<()>;
}

/// A shared envelope, as routes and clients hold it.
pub type SharedEnvelope = Arc<dyn Envelope>;

/// The default envelope for events: [`JsonBase`].
pub fn default_envelope() -> SharedEnvelope {
    Arc::new(JsonBase)
}
