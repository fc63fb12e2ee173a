//! How a RabbitMQ delivery settles (`docs/wire.md`, "AMQP").
//!
//! - **Success**: `basic.ack` on the channel it came from.
//! - **Retry**: republished (confirmed) to the route's retry queue `<queue>.retry` through the
//!   default exchange, with `expiration` = the backoff delay and the headers `kumi-attempt` (the
//!   next attempt) and `kumi-topic` (its routing key); when it expires RabbitMQ dead-letters it
//!   back to the route's queue. Only then is the original acked, so a crash in between
//!   redelivers rather than loses it. The attempt count comes from `kumi-attempt`, else from
//!   RabbitMQ's `x-death` count. The retry is published `mandatory`: one the broker refuses, or
//!   returns because the retry queue is gone, waits in process instead.
//! - **Dead letter**: published (confirmed) to the exchange with the dead-letter topic's routing
//!   key (kept in `<queue>.dlq`, see [`crate::topology`]), then acked. Where the route has a
//!   `<queue>.dlq` it is published `mandatory`: one the broker returns is not acked but published
//!   again later (the consume runtime's refused dead letter).
//! - **Reply**: published (confirmed) to the request's `reply_to` with its correlation id, then
//!   acked.
//! - **Given back** at a drain deadline: `basic.nack` with requeue.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kumi_core::bus::TopicCache;
use kumi_core::delivery::{Delivery, Refused, Retry};
use kumi_core::settlement::{Reply, RouteKind};
use kumi_core::{Error, ErrorKind, Message, Outgoing, Result};
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel};

use crate::connection::{lapin_error, send_reply, Connection, Link};
use crate::headers;
use crate::topology::{routing_key, topic_of};

/// How long a settlement waits for the connection while the supervisor reconnects.
const RECONNECT_WAIT: Duration = Duration::from_secs(5);

/// What the deliveries of one route share.
pub(crate) struct RouteQueue {
    /// The retry queue (event routes).
    pub(crate) retry: Option<String>,
    /// Whether the route's dead letters are kept in a queue of its own (`<queue>.dlq`): they
    /// are then published `mandatory`, and one the broker cannot route is refused, not acked.
    pub(crate) dead_letter_queue: bool,
    pub(crate) kind: RouteKind,
}

/// One message from a route's queue.
pub(crate) struct AmqpDelivery {
    tag: u64,
    channel: Channel,
    properties: BasicProperties,
    body: Bytes,
    /// The routing key it was published with (a retry keeps the original in a header).
    routing_key: String,
    topic: Arc<str>,
    conn: Arc<Connection>,
    queue: Arc<RouteQueue>,
}

impl AmqpDelivery {
    pub(crate) fn new(
        delivery: lapin::message::Delivery,
        channel: Channel,
        conn: Arc<Connection>,
        queue: Arc<RouteQueue>,
        topics: &mut TopicCache,
    ) -> Self {
        // A retry keeps the original routing key in a header.
        let lapin::message::Delivery {
            delivery_tag,
            routing_key,
            properties,
            data,
            ..
        } = delivery;
        let routing_key =
            headers::original_routing_key(&properties).unwrap_or_else(|| routing_key.to_string());
        let topic = topics.get(&topic_of(&conn.url, &routing_key));
        Self {
            tag: delivery_tag,
            channel,
            properties,
            body: Bytes::from(data),
            routing_key,
            topic,
            conn,
            queue,
        }
    }

    /// The connection's link, for publishing replies, retries and dead letters.
    async fn link(&self) -> Result<Arc<Link>> {
        self.conn.current(RECONNECT_WAIT, &self.routing_key).await
    }

    async fn ack_now(&self) -> Result<()> {
        self.channel
            .basic_ack(self.tag, BasicAckOptions::default())
            .await
            .map_err(|e| {
                lapin_error(
                    ErrorKind::Publish,
                    format!(
                        "cannot acknowledge a message on '{}' (it will be redelivered)",
                        self.topic
                    ),
                    e,
                )
            })
    }

    /// Republishes the message to the route's retry queue with its delay.
    async fn schedule(&self, queue: &str, delay: Duration) -> Result<()> {
        let link = self.link().await?;
        let attempt = headers::attempt(&self.properties).saturating_add(1);
        let table = headers::retry_table(&self.properties, attempt, &self.routing_key);
        let ms = delay.as_millis().max(1);
        let props = self
            .properties
            .clone()
            .with_delivery_mode(2)
            .with_headers(table)
            .with_expiration(ShortString::from(ms.to_string()));
        let confirm = self
            .conn
            .publish_confirmed(&link.publisher, "", queue, &self.body, props, true)
            .await?;
        routed(confirm, queue)
    }

    async fn publish_dead_letter(&self, letter: &Outgoing) -> Result<()> {
        let link = self.link().await?;
        let props = headers::properties(letter)?;
        let key = routing_key(&self.conn.url, &letter.topic);
        let confirm = self
            .conn
            .publish_confirmed(
                &link.publisher,
                &self.conn.url.exchange,
                &key,
                &letter.body,
                props,
                self.queue.dead_letter_queue,
            )
            .await?;
        routed(confirm, &key)
    }
}

/// A confirmed `mandatory` publish that the broker returned reached no queue: an error, so that
/// the original is not acked (its retry or dead letter would be lost).
fn routed(confirm: lapin::Confirmation, key: &str) -> Result<()> {
    match confirm {
        lapin::Confirmation::Ack(Some(returned)) => Err(Error::new(
            ErrorKind::Publish,
            format!(
                "RabbitMQ routed the message to '{key}' to no queue (returned: {} {})",
                returned.reply_code, returned.reply_text
            ),
        )),
        _ => Ok(()),
    }
}

impl Delivery for AmqpDelivery {
    fn message(&self) -> Message {
        let mut message = Message::new(Arc::clone(&self.topic), self.body.clone());
        headers::to_message(&self.properties, &mut message);
        message.attempt = headers::attempt(&self.properties);
        message
    }

    async fn ack(self) -> Result<(), Error> {
        self.ack_now().await
    }

    async fn reply(self, reply: Reply) -> Result<(), Error> {
        if self.queue.kind == RouteKind::Request {
            if let Some(to) = self.properties.reply_to() {
                let link = self.link().await?;
                let correlation = self
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|c| c.to_string());
                send_reply(
                    &self.conn,
                    &link,
                    to.as_str(),
                    correlation.as_deref(),
                    reply,
                )
                .await?;
            }
        }
        self.ack_now().await
    }

    async fn retry(self, delay: Duration) -> Retry<Self> {
        let Some(queue) = self.queue.retry.clone() else {
            return Retry::InProcess(self);
        };
        match self.schedule(&queue, delay).await {
            Ok(()) => {
                if let Err(e) = self.ack_now().await {
                    tracing::warn!("amqp: {e}");
                }
                Retry::Scheduled
            }
            Err(e) => Retry::Failed(self, e),
        }
    }

    async fn dead_letter(self, letter: Outgoing) -> Result<(), Refused<Self>> {
        match self.publish_dead_letter(&letter).await {
            Ok(()) => {
                if let Err(e) = self.ack_now().await {
                    tracing::warn!("amqp: {e}");
                }
                Ok(())
            }
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    async fn release(self) {
        let requeue = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        if let Err(e) = self.channel.basic_nack(self.tag, requeue).await {
            tracing::debug!("amqp: nack failed (the message will be redelivered): {e}");
        }
    }
}
