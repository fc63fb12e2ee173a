//! Request/reply over RabbitMQ direct reply-to (`amq.rabbitmq.reply-to`).
//!
//! A request is published `mandatory` on the connection's RPC channel (which consumes its direct
//! replies), with a fresh correlation id in the AMQP `correlation_id` property (kumi's own
//! correlation id, if any, travels in the `kumi-correlation-id` header). If no queue is bound to
//! the topic, RabbitMQ returns the message and the request fails at once with
//! [`ErrorKind::NoResponders`]; otherwise the reply is awaited until the timeout
//! ([`ErrorKind::TimedOut`]). Error replies carry `Nats-Service-Error-Code` / `Nats-Service-Error`
//! headers, as on NATS.

use std::time::Duration;

use kumi_core::bus::validate_topic;
use kumi_core::settlement::{Reply, CORRELATION_ID};
use kumi_core::{Error, ErrorKind, Outgoing, Result};
use lapin::Confirmation;
use tokio::sync::oneshot;

use crate::connection::{Connection, Pending, REPLY_TO};
use crate::headers;
use crate::topology::routing_key;

struct Waiting<'a> {
    pending: &'a Pending,
    id: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&self.id);
        }
    }
}

pub(crate) async fn request(
    inner: &Connection,
    mut message: Outgoing,
    timeout: Duration,
) -> Result<Reply> {
    inner.check_open(&message.topic)?;
    validate_topic(&message.topic)?;
    let topic = message.topic.clone();
    let timed_out = || {
        Error::new(
            ErrorKind::TimedOut,
            format!("no reply on '{topic}' within {timeout:?}"),
        )
    };
    let work = async {
        let link = inner.current(timeout, &message.topic).await?;
        if let Some(c) = message.correlation_id.take() {
            message.headers.insert(CORRELATION_ID, c);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let props = headers::properties(&message)?
            .with_correlation_id(id.as_str().into())
            .with_reply_to(REPLY_TO.into())
            .with_delivery_mode(1);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = inner.pending.lock() {
            p.insert(id.clone(), tx);
        }
        let _guard = Waiting {
            pending: &inner.pending,
            id,
        };
        let confirm = inner
            .publish_confirmed(
                &link.rpc,
                &inner.url.exchange,
                &routing_key(&inner.url, &message.topic),
                &message.body,
                props,
                true,
            )
            .await?;
        if let Confirmation::Ack(Some(_)) = confirm {
            return Err(Error::new(
                ErrorKind::NoResponders,
                format!("no service answers requests on '{topic}'"),
            ));
        }
        let (props, data) = rx.await.map_err(|_| {
            Error::new(
                ErrorKind::Publish,
                format!(
                    "request on '{topic}': the connection to {} was lost before the reply",
                    inner.url.redacted
                ),
            )
        })?;
        let mut reply = Reply::ok(data.into());
        reply.error = headers::reply_error(&props);
        let mut m = kumi_core::Message::new(topic.clone(), bytes::Bytes::new());
        headers::to_message(&props, &mut m);
        reply.headers = m.headers;
        reply.headers.remove(headers::SERVICE_ERROR);
        reply.headers.remove(headers::SERVICE_ERROR_CODE);
        Ok(reply)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(timed_out()),
    }
}
