//! Retries through a route's retry queue, and dead letters.
//!
//! A failed message is republished (confirmed) to `<queue>.retry` through the default exchange,
//! with `expiration` = the backoff delay and the headers `kumi-attempt` (the next attempt) and
//! `kumi-topic` (its routing key); when it expires RabbitMQ dead-letters it back to the route's
//! queue. Only then is the original acked, so a crash in between redelivers rather than loses it.
//! The attempt count comes from `kumi-attempt`, else from RabbitMQ's `x-death` count.

use std::time::Duration;

use kumi_core::bus::DeadLetter;
use kumi_core::{Error, ErrorKind, Message, Outgoing, Result};
use lapin::types::ShortString;
use lapin::BasicProperties;

use crate::bus::{Inner, Link};
use crate::headers;
use crate::topology::routing_key;

/// A retry to schedule.
pub(crate) struct Retry<'a> {
    pub(crate) queue: Option<&'a str>,
    pub(crate) properties: &'a BasicProperties,
    pub(crate) body: &'a [u8],
    pub(crate) routing_key: &'a str,
    pub(crate) attempt: u32,
    pub(crate) delay: Duration,
}

/// Publishes the message to the retry queue with its delay.
pub(crate) async fn schedule(inner: &Inner, link: &Link, retry: Retry<'_>) -> Result<()> {
    let Some(queue) = retry.queue else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "request routes do not retry".to_owned(),
        ));
    };
    let table = headers::retry_table(retry.properties, retry.attempt, retry.routing_key);
    let ms = retry.delay.as_millis().max(1);
    let props = retry
        .properties
        .clone()
        .with_delivery_mode(2)
        .with_headers(table)
        .with_expiration(ShortString::from(ms.to_string()));
    inner
        .publish_confirmed(&link.publisher, "", queue, retry.body, props, false)
        .await
        .map(|_| ())
}

/// Publishes a dead letter to its topic with kumi's dead-letter headers.
pub(crate) async fn dead_letter(
    inner: &Inner,
    link: &Link,
    dead: &DeadLetter,
    original: Message,
    body: &bytes::Bytes,
) -> Result<()> {
    let mut out = Outgoing::new(dead.topic.clone(), body.clone());
    out.headers = dead.headers(&original.headers);
    if let Some(id) = original.message_id {
        out.message_id = id;
    }
    out.correlation_id = original.correlation_id;
    let props = headers::properties(&out)?;
    inner
        .publish_confirmed(
            &link.publisher,
            &inner.url.exchange,
            &routing_key(&inner.url, &dead.topic),
            &out.body,
            props,
            false,
        )
        .await
        .map(|_| ())
}
