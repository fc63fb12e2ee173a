//! Route consumers: one channel per route, prefetch = concurrency, bounded handlers, settlement.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use kumi_core::bus::{RouteKind, Settlement, Subscription};
use kumi_core::dispatch::RouteService;
use kumi_core::{ErrorKind, Message, Result};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio::sync::Semaphore;

use crate::bus::{lapin_error, send_reply, Inner, Link};
use crate::headers;
use crate::topology::{self, topic_of, QueuePlan};

/// A route's consumer on one connection.
struct Open {
    channel: Channel,
    consumer: Consumer,
    tag: String,
}

async fn open(inner: &Inner, link: &Link, sub: &Subscription, plan: &QueuePlan) -> Result<Open> {
    let fail = |what: &str, e: lapin::Error| {
        lapin_error(
            ErrorKind::Connect,
            format!(
                "cannot {what} for '{}' (queue '{}') on RabbitMQ at {}",
                sub.topic, plan.name, inner.url.redacted
            ),
            e,
        )
    };
    let channel = link
        .connection
        .create_channel()
        .await
        .map_err(|e| fail("open a channel", e))?;
    let prefetch = u16::try_from(sub.concurrency.max(1)).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| fail("set the prefetch", e))?;
    topology::declare(&channel, &inner.url, plan)
        .await
        .map_err(|e| fail("declare the queue and binding", e))?;
    let tag = format!("kumi-{}", uuid::Uuid::new_v4().simple());
    let consumer = channel
        .basic_consume(
            headers::short("queue name", &plan.name)?,
            tag.as_str().into(),
            BasicConsumeOptions {
                exclusive: plan.exclusive,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| fail("start consuming", e))?;
    Ok(Open {
        channel,
        consumer,
        tag,
    })
}

/// Declares the route's queue, starts consuming, and keeps consuming (across reconnects) until
/// the bus stops. Returns where it listens.
pub(crate) async fn start(inner: &Arc<Inner>, sub: Subscription) -> Result<String> {
    let plan = topology::plan(&inner.url, &sub)?;
    let link = inner.current(Duration::from_secs(5), &sub.topic).await?;
    let first = open(inner, &link, &sub, &plan).await?;
    let listens = format!(
        "queue {} bound to {} with '{}' (prefetch {})",
        plan.name, inner.url.exchange, plan.binding, sub.concurrency
    );
    let inner2 = Arc::clone(inner);
    inner
        .consumers
        .spawn(async move { run(inner2, sub, plan, first).await });
    Ok(listens)
}

enum End {
    Stopped,
    Lost,
}

async fn run(inner: Arc<Inner>, sub: Subscription, plan: QueuePlan, first: Open) {
    let permits = Arc::new(Semaphore::new(sub.concurrency.max(1)));
    let mut current = Some(first);
    let retry: Option<Arc<str>> = plan.retry_queue.as_deref().map(Arc::from);
    let mut backoff = Duration::from_millis(100);
    loop {
        let open_now = match current.take() {
            Some(o) => o,
            None => {
                let link = tokio::select! {
                    l = inner.current(Duration::from_secs(3600), &sub.topic) => l,
                    () = inner.cancel.cancelled() => return,
                };
                let Ok(link) = link else {
                    if inner.cancel.is_cancelled() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    continue;
                };
                match open(&inner, &link, &sub, &plan).await {
                    Ok(o) => {
                        tracing::info!(topic = %sub.topic, queue = %plan.name, "amqp: consumer resumed");
                        o
                    }
                    Err(e) => {
                        tracing::warn!(topic = %sub.topic, "amqp: cannot resume consumer: {e}");
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = inner.cancel.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
        };
        let since = std::time::Instant::now();
        match consume(&inner, &sub, &retry, &permits, open_now).await {
            End::Stopped => return,
            End::Lost if !inner.url.reconnect => {
                tracing::error!(topic = %sub.topic, queue = %plan.name, "amqp: consumer lost its channel and reconnect=false; the route stops consuming");
                return;
            }
            End::Lost => {
                // The channel or the connection went away. Reopen after a pause: on the same
                // connection if it is still healthy (a channel-level error, a deleted queue), else
                // on the one the supervisor brings back (`Inner::current` waits for it).
                tracing::warn!(topic = %sub.topic, queue = %plan.name, "amqp: consumer lost its channel; resuming");
                if since.elapsed() > Duration::from_secs(30) {
                    backoff = Duration::from_millis(100);
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = inner.cancel.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn consume(
    inner: &Arc<Inner>,
    sub: &Subscription,
    retry: &Option<Arc<str>>,
    permits: &Arc<Semaphore>,
    open: Open,
) -> End {
    let Open {
        channel,
        mut consumer,
        tag,
        ..
    } = open;
    loop {
        let next = tokio::select! {
            d = consumer.next() => d,
            () = inner.cancel.cancelled() => {
                if let Err(e) = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await {
                    tracing::debug!(topic = %sub.topic, "amqp: cancel consumer: {e}");
                }
                return End::Stopped;
            }
        };
        let delivery = match next {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                tracing::warn!(topic = %sub.topic, "amqp: consumer error: {e}");
                return End::Lost;
            }
            None => {
                return if inner.cancel.is_cancelled() {
                    End::Stopped
                } else {
                    End::Lost
                };
            }
        };
        let permit = tokio::select! {
            p = Arc::clone(permits).acquire_owned() => match p { Ok(p) => p, Err(_) => return End::Stopped },
            () = inner.cancel.cancelled() => {
                // Not started: left unacked, RabbitMQ redelivers it.
                return End::Stopped;
            }
        };
        inner.in_flight.fetch_add(1, Ordering::AcqRel);
        let inner2 = Arc::clone(inner);
        let dispatcher = Arc::clone(&sub.dispatcher);
        let kind = sub.kind;
        let channel = channel.clone();
        let retry = retry.clone();
        inner.tracker.spawn(async move {
            let mut service = dispatcher.service();
            handle(
                &inner2,
                &dispatcher,
                &mut service,
                kind,
                retry.as_deref(),
                &channel,
                delivery,
            )
            .await;
            drop(permit);
            inner2.in_flight.fetch_sub(1, Ordering::AcqRel);
            inner2.settled.fetch_add(1, Ordering::Relaxed);
        });
    }
}

async fn ack(channel: &Channel, tag: u64) {
    if let Err(e) = channel.basic_ack(tag, BasicAckOptions::default()).await {
        tracing::debug!("amqp: ack failed (the message will be redelivered): {e}");
    }
}

/// Gives the message back to the queue after a pause (a broker that cannot take the retry or
/// dead letter now is not hammered in a loop; the message is kept, never dropped).
async fn requeue(channel: &Channel, tag: u64) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let opts = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    if let Err(e) = channel.basic_nack(tag, opts).await {
        tracing::debug!("amqp: nack failed (the message will be redelivered): {e}");
    }
}

async fn handle(
    inner: &Inner,
    dispatcher: &kumi_core::dispatch::Dispatcher,
    service: &mut RouteService,
    kind: RouteKind,
    retry_queue: Option<&str>,
    channel: &Channel,
    delivery: Delivery,
) {
    let Delivery {
        delivery_tag,
        routing_key,
        properties,
        data,
        ..
    } = delivery;
    let rk = headers::original_routing_key(&properties).unwrap_or_else(|| routing_key.to_string());
    let topic = topic_of(&inner.url, &rk);
    let body = Bytes::from(data);
    let mut message = Message::new(topic, body.clone());
    headers::to_message(&properties, &mut message);
    let attempt = headers::attempt(&properties);
    message.attempt = attempt;
    let settlement = dispatcher.dispatch_with(service, message).await;
    if let Settlement::Ack = settlement {
        return ack(channel, delivery_tag).await;
    }
    // Replies, retries and dead letters are published on the connection's confirm channel.
    let link = match inner.current(Duration::from_secs(5), &rk).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("amqp: cannot settle a message (it will be redelivered): {e}");
            return;
        }
    };
    match settlement {
        Settlement::Ack => ack(channel, delivery_tag).await,
        Settlement::Reply(reply) => {
            if kind == RouteKind::Request {
                if let Some(to) = properties.reply_to() {
                    let corr = properties.correlation_id().as_ref().map(|c| c.to_string());
                    send_reply(inner, &link, to.as_str(), corr.as_deref(), reply).await;
                }
            }
            ack(channel, delivery_tag).await;
        }
        Settlement::Retry { delay, .. } => {
            let next = crate::retry::Retry {
                queue: retry_queue,
                properties: &properties,
                body: &body,
                routing_key: &rk,
                attempt: attempt.saturating_add(1),
                delay,
            };
            match crate::retry::schedule(inner, &link, next).await {
                Ok(()) => ack(channel, delivery_tag).await,
                Err(e) => {
                    tracing::error!("amqp: cannot schedule a retry, requeueing: {e}");
                    requeue(channel, delivery_tag).await;
                }
            }
        }
        Settlement::DeadLetter(dead) => {
            // The original's headers and ids, read again from the properties: only this path
            // needs them, so the hot path keeps no copy.
            let mut original = Message::new(topic_of(&inner.url, &rk), Bytes::new());
            headers::to_message(&properties, &mut original);
            match crate::retry::dead_letter(inner, &link, &dead, original, &body).await {
                Ok(()) => ack(channel, delivery_tag).await,
                Err(e) => {
                    tracing::error!("amqp: cannot publish a dead letter, requeueing: {e}");
                    requeue(channel, delivery_tag).await;
                }
            }
        }
    }
}
