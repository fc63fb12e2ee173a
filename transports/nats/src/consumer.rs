//! What a route's NATS subscription delivers, as [`Deliveries`] for the consume runtime: a core
//! NATS subscription, or a JetStream pull consumer. How each delivery settles is in
//! [`crate::settle`].

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use futures_util::StreamExt;
use kumi_core::bus::TopicCache;
use kumi_core::delivery::Deliveries;

use crate::connection::Connection;
use crate::settle::{CoreDelivery, PullDelivery};

/// A core NATS subscription. On stop it is drained: what the client already buffered is still
/// delivered, then the stream ends.
pub(crate) struct CoreDeliveries {
    sub: async_nats::Subscriber,
    conn: Arc<Connection>,
    topics: TopicCache,
    topic: String,
    ended: bool,
}

impl CoreDeliveries {
    pub(crate) fn new(sub: async_nats::Subscriber, conn: Arc<Connection>, topic: &str) -> Self {
        Self {
            sub,
            conn,
            topics: TopicCache::default(),
            topic: topic.to_owned(),
            ended: false,
        }
    }
}

impl Deliveries for CoreDeliveries {
    type Delivery = CoreDelivery;

    async fn next(&mut self, _room: usize) -> Option<CoreDelivery> {
        if self.ended {
            return None;
        }
        let msg = self.sub.next().await?;
        let topic = self.topics.get(msg.subject.as_str());
        Some(CoreDelivery::new(msg, topic, Arc::clone(&self.conn)))
    }

    async fn stop(&mut self) {
        if let Err(e) = self.sub.drain().await {
            tracing::warn!(topic = %self.topic, "nats: cannot drain subscription: {e}");
            self.ended = true;
        }
    }
}

/// A JetStream pull consumer. On stop, reading ends; messages the client pulled but did not
/// hand out are redelivered by the server after `ack_wait`.
pub(crate) struct PullDeliveries {
    messages: pull::Stream,
    conn: Arc<Connection>,
    ack_wait: Duration,
    topics: TopicCache,
    topic: String,
    stopped: bool,
}

impl PullDeliveries {
    pub(crate) fn new(
        messages: pull::Stream,
        conn: Arc<Connection>,
        ack_wait: Duration,
        topic: &str,
    ) -> Self {
        Self {
            messages,
            conn,
            ack_wait,
            topics: TopicCache::default(),
            topic: topic.to_owned(),
            stopped: false,
        }
    }
}

impl Deliveries for PullDeliveries {
    type Delivery = PullDelivery;

    async fn next(&mut self, _room: usize) -> Option<PullDelivery> {
        loop {
            if self.stopped {
                return None;
            }
            match self.messages.next().await? {
                Ok(msg) => {
                    let topic = self.topics.get(msg.subject.as_str());
                    return Some(PullDelivery::new(
                        msg,
                        topic,
                        Arc::clone(&self.conn),
                        self.ack_wait,
                    ));
                }
                Err(e) => tracing::warn!(topic = %self.topic, "nats: JetStream consumer: {e}"),
            }
        }
    }

    async fn stop(&mut self) {
        self.stopped = true;
    }
}
