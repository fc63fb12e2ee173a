//! Between kumi headers and NATS headers.
//!
//! The message id travels as `Nats-Msg-Id` (also JetStream's de-duplication key) and the
//! correlation id as `kumi-correlation-id`; every other header is carried as is.

use async_nats::HeaderMap;
use kumi_core::bus::CORRELATION_ID;
use kumi_core::{Headers, Message, Outgoing};

/// NATS's message id header.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// ADR-32 error text header.
pub const SERVICE_ERROR: &str = "Nats-Service-Error";
/// ADR-32 error code header.
pub const SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";

/// The NATS headers for an outgoing event (with its message id).
pub(crate) fn to_nats(message: &Outgoing) -> HeaderMap {
    let mut map = request_headers(message);
    map.insert(NATS_MSG_ID, message.message_id.as_str());
    map
}

/// The NATS headers for a request: no message id (a request is answered, not de-duplicated), so a
/// request without headers or correlation id goes out as a plain message, as bare clients send.
pub(crate) fn request_headers(message: &Outgoing) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in message.headers.iter() {
        map.append(k, v);
    }
    if let Some(c) = &message.correlation_id {
        map.insert(CORRELATION_ID, c.as_str());
    }
    map
}

/// Plain kumi headers as NATS headers.
pub(crate) fn headers_to_nats(headers: &Headers) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers.iter() {
        map.append(k, v);
    }
    map
}

/// Fills `message` (headers, message id, correlation id) from NATS headers.
pub(crate) fn from_nats(map: Option<&HeaderMap>, message: &mut Message) {
    let Some(map) = map else { return };
    let mut headers = Headers::new();
    for (name, values) in map.iter() {
        let name: &str = name.as_ref();
        for value in values {
            match name {
                NATS_MSG_ID => message.message_id = Some(value.as_str().to_owned()),
                CORRELATION_ID => message.correlation_id = Some(value.as_str().to_owned()),
                _ => headers.append(name, value.as_str()),
            }
        }
    }
    message.headers = headers;
}
