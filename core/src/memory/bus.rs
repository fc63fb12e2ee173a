//! The [`Bus`] impl of the in-memory bus.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::consumer::MemoryDeliveries;
use super::{Item, MemoryBus};
use crate::bus::topic::matches;
use crate::bus::{
    validate_pattern, validate_topic, Bus, Capabilities, Sharing, Subscribed, Subscription,
    TopicCache,
};
use crate::consume::Consumer;
use crate::error::{Error, ErrorKind, Result};
use crate::message::Outgoing;
use crate::settlement::{DrainReport, Reply, RouteKind};

#[async_trait]
impl Bus for MemoryBus {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            persistent: false,
            request_reply: true,
            no_responders: true,
            wildcards: true,
            consumer_groups: true,
            redelivery: true,
            dead_letter: true,
            ordered: true,
            duplicates_possible: false,
            durable: false,
            reconnect: false,
            retry_holds_slot: false,
        }
    }

    fn url(&self) -> &str {
        "memory://"
    }

    async fn subscribe(&self, sub: Subscription) -> Result<Subscribed> {
        validate_pattern(&sub.topic)?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!(
                    "memory:// bus is stopped; cannot subscribe route {} to '{}'",
                    sub.route, sub.topic
                ),
            ));
        }
        let queue = self.queue(&sub.topic, &sub.sharing, sub.kind, sub.concurrency);
        let listens = match &sub.sharing {
            Sharing::Group(g) => format!("group {g}"),
            Sharing::Broadcast => "broadcast".to_owned(),
        };
        Ok(Subscribed {
            listens,
            consumer: Consumer::new(MemoryDeliveries {
                bus: self.clone(),
                queue,
                stopping: false,
                topics: TopicCache::default(),
            }),
        })
    }

    async fn publish(&self, message: Outgoing) -> Result<()> {
        self.check_open(&message.topic)?;
        validate_topic(&message.topic)?;
        self.route(Item::new(message, None)).await;
        Ok(())
    }

    async fn request(&self, message: Outgoing, timeout: Duration) -> Result<Reply> {
        self.check_open(&message.topic)?;
        validate_topic(&message.topic)?;
        let topic = message.topic.clone();
        let queue = self
            .snapshot()
            .iter()
            .find(|q| q.kind == RouteKind::Request && matches(&q.pattern, &topic))
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NoResponders,
                    format!("no service answers requests on topic '{topic}'"),
                )
            })?;
        let (tx, rx) = oneshot::channel();
        let item = Item::new(message, Some(tx));
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || {
            Error::new(
                ErrorKind::TimedOut,
                format!("no reply on topic '{topic}' within {timeout:?}"),
            )
        };
        match tokio::time::timeout_at(deadline, self.enqueue(&queue, item)).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::new(
                    ErrorKind::Closed,
                    format!("memory:// bus closed; request on '{topic}' not sent"),
                ))
            }
            Err(_) => return Err(timed_out()),
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(Error::new(
                ErrorKind::Closed,
                format!(
                    "request on topic '{topic}' was dropped before it was answered (bus stopping)"
                ),
            )),
            Err(_) => Err(timed_out()),
        }
    }

    async fn shutdown(&self, _deadline: Instant) -> Result<DrainReport> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(DrainReport::default());
        }
        // What is left was never taken by a route (the routes have drained).
        let abandoned = self
            .snapshot()
            .iter()
            .map(|q| {
                q.items.close();
                q.items.drain().len()
            })
            .sum::<usize>();
        if abandoned > 0 {
            tracing::error!(
                abandoned,
                "memory:// bus stopped with messages still queued; they are lost"
            );
        }
        Ok(DrainReport {
            settled: 0,
            abandoned,
        })
    }
}
