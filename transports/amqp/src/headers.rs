//! Between kumi messages and AMQP properties.
//!
//! The message id and correlation id travel in the AMQP `message_id` and `correlation_id`
//! properties; kumi headers (trace context included) as AMQP headers (long strings). Messages are
//! persistent (`delivery_mode` 2). On requests the `correlation_id` property matches the reply, so
//! kumi's correlation id travels in the `kumi-correlation-id` header instead (read back either way). kumi's own bookkeeping headers (`kumi-attempt`, `kumi-topic`)
//! are not shown to handlers.

use kumi_core::settlement::CORRELATION_ID;
use kumi_core::{Error, Headers, Message, Outgoing, Result};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

/// Header carrying the delivery attempt of a message coming back from a retry queue.
pub const ATTEMPT: &str = "kumi-attempt";
/// Header carrying the original routing key of a message coming back from a retry queue.
pub const TOPIC: &str = "kumi-topic";
/// Error reply header: the error text (same name as on NATS).
pub const SERVICE_ERROR: &str = "Nats-Service-Error";
/// Error reply header: the error code (same name as on NATS).
pub const SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";

/// A short string from a value a user or broker gave, or a clear error (AMQP caps them at 255
/// bytes).
pub(crate) fn short(what: &str, value: &str) -> Result<ShortString> {
    ShortString::try_new(value).map_err(|_| {
        Error::new(
            kumi_core::ErrorKind::Publish,
            format!(
                "{what} '{}…' is {} bytes; AMQP allows at most 255",
                value.chars().take(40).collect::<String>(),
                value.len()
            ),
        )
    })
}

fn value_text(v: &AMQPValue) -> Option<String> {
    Some(match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        _ => return None,
    })
}

/// kumi headers as an AMQP field table.
pub(crate) fn table(headers: &Headers) -> Result<FieldTable> {
    let mut t = FieldTable::default();
    for (k, v) in headers.iter() {
        t.insert(
            short("header name", k)?,
            AMQPValue::LongString(LongString::from(v)),
        );
    }
    Ok(t)
}

/// The properties of an outgoing message: persistent, ids, headers.
pub(crate) fn properties(message: &Outgoing) -> Result<BasicProperties> {
    let mut p = BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(short("message id", &message.message_id)?)
        .with_headers(table(&message.headers)?);
    if let Some(c) = &message.correlation_id {
        p = p.with_correlation_id(short("correlation id", c)?);
    }
    Ok(p)
}

/// The attempt a delivery is on: kumi's header, else RabbitMQ's `x-death` count, else 1.
pub(crate) fn attempt(properties: &BasicProperties) -> u32 {
    let Some(h) = properties.headers() else {
        return 1;
    };
    let inner = h.inner();
    if let Some(n) = inner
        .get(ATTEMPT)
        .and_then(value_text)
        .and_then(|s| s.parse::<u32>().ok())
    {
        return n.max(1);
    }
    if let Some(AMQPValue::FieldArray(deaths)) = inner.get("x-death") {
        let count: u64 = deaths
            .as_slice()
            .iter()
            .filter_map(|d| match d {
                AMQPValue::FieldTable(t) => t.inner().get("count").and_then(value_text),
                _ => None,
            })
            .filter_map(|s| s.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        return u32::try_from(count.saturating_add(1)).unwrap_or(u32::MAX);
    }
    1
}

/// The original routing key of a message back from a retry queue.
pub(crate) fn original_routing_key(properties: &BasicProperties) -> Option<String> {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(TOPIC))
        .and_then(value_text)
}

/// Fills `message` (headers, ids) from AMQP properties.
pub(crate) fn to_message(properties: &BasicProperties, message: &mut Message) {
    if let Some(id) = properties.message_id() {
        message.message_id = Some(id.as_str().to_owned());
    }
    if let Some(c) = properties.correlation_id() {
        message.correlation_id = Some(c.as_str().to_owned());
    }
    let mut headers = Headers::new();
    if let Some(h) = properties.headers() {
        for (k, v) in h.inner() {
            let k = k.as_str();
            if k == CORRELATION_ID {
                if let Some(text) = value_text(v) {
                    message.correlation_id = Some(text);
                }
                continue;
            }
            if k == ATTEMPT
                || k == TOPIC
                || k.starts_with("x-death")
                || k.starts_with("x-first-death")
                || k.starts_with("x-last-death")
            {
                continue;
            }
            if let Some(text) = value_text(v) {
                headers.append(k, text);
            }
        }
    }
    message.headers = headers;
}

/// The error code and text of an error reply, if it is one.
pub(crate) fn reply_error(properties: &BasicProperties) -> Option<(u16, String)> {
    let h = properties.headers().as_ref()?.inner();
    let code = h
        .get(SERVICE_ERROR_CODE)
        .and_then(value_text)?
        .parse()
        .unwrap_or(500);
    let text = h
        .get(SERVICE_ERROR)
        .and_then(value_text)
        .unwrap_or_default();
    Some((code, text))
}

/// Headers of a message without kumi's bookkeeping headers, as an AMQP table (for republishing).
pub(crate) fn retry_table(
    properties: &BasicProperties,
    attempt: u32,
    routing_key: &str,
) -> FieldTable {
    let mut t = FieldTable::default();
    if let Some(h) = properties.headers() {
        for (k, v) in h.inner() {
            if k.as_str().starts_with("x-") {
                continue;
            }
            t.insert(k.clone(), v.clone());
        }
    }
    t.insert(
        ATTEMPT.into(),
        AMQPValue::LongString(attempt.to_string().into()),
    );
    t.insert(TOPIC.into(), AMQPValue::LongString(routing_key.into()));
    t
}
