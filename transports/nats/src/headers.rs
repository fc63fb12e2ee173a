//! Between kumi headers and NATS headers.
//!
//! The message id travels as `Nats-Msg-Id` (also JetStream's de-duplication key) and the
//! correlation id as `kumi-correlation-id`; every other header is carried as is.

use async_nats::HeaderMap;
use kumi_core::settlement::CORRELATION_ID;
use kumi_core::{Headers, Message, Outgoing};

/// NATS's message id header.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// ADR-32 error text header.
pub const SERVICE_ERROR: &str = "Nats-Service-Error";
/// ADR-32 error code header.
pub const SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";

/// Adds a header, never panicking on what a user or a handler error put in it: names that NATS
/// cannot carry (`:`, control characters, non-ASCII) are skipped with a warning, and line breaks in
/// values become spaces (error texts often span lines).
pub(crate) fn append(map: &mut HeaderMap, name: &str, value: &str) {
    let Ok(name) = name.parse::<async_nats::header::HeaderName>() else {
        tracing::warn!(
            header = name,
            "nats: header name cannot travel on NATS; dropped"
        );
        return;
    };
    if value.contains(['\r', '\n']) {
        map.append(name, value.replace(['\r', '\n'], " ").as_str());
    } else {
        map.append(name, value);
    }
}

/// Sets a header (replacing), with the same care as [`append`].
pub(crate) fn set(map: &mut HeaderMap, name: &str, value: &str) {
    let Ok(parsed) = name.parse::<async_nats::header::HeaderName>() else {
        tracing::warn!(
            header = name,
            "nats: header name cannot travel on NATS; dropped"
        );
        return;
    };
    if value.contains(['\r', '\n']) {
        map.insert(parsed, value.replace(['\r', '\n'], " ").as_str());
    } else {
        map.insert(parsed, value);
    }
}

/// The NATS headers for an outgoing event (with its message id).
pub(crate) fn to_nats(message: &Outgoing) -> HeaderMap {
    let mut map = request_headers(message);
    set(&mut map, NATS_MSG_ID, &message.message_id);
    map
}

/// The NATS headers for a request: no message id (a request is answered, not de-duplicated), so a
/// request without headers or correlation id goes out as a plain message, as bare clients send.
pub(crate) fn request_headers(message: &Outgoing) -> HeaderMap {
    let mut map = headers_to_nats(&message.headers);
    if let Some(c) = &message.correlation_id {
        set(&mut map, CORRELATION_ID, c);
    }
    map
}

/// Plain kumi headers as NATS headers.
pub(crate) fn headers_to_nats(headers: &Headers) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers.iter() {
        append(&mut map, k, v);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_headers_never_panic() {
        let mut h = Headers::new();
        h.insert("bad:name", "x");
        h.insert("ünicode", "x");
        h.insert("reason", "assertion failed\n left: 1\r\n right: 2");
        let map = headers_to_nats(&h);
        let names: Vec<String> = map.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names, vec!["reason".to_owned()], "unsendable names dropped");
        assert_eq!(
            map.get("reason").unwrap().as_str(),
            "assertion failed  left: 1   right: 2"
        );
    }
}
