//! The in-memory bus's deliveries: a route's queue read as [`Deliveries`], each message a
//! [`Delivery`] that settles by leaving the bus's pending count.
//!
//! The bus keeps nothing a broker would, so it cannot delay a redelivery (retries wait in the
//! consume runtime) and a delivery given back at a drain deadline is lost (and counted so).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Item, MemoryBus, Queue};
use crate::bus::TopicCache;
use crate::delivery::{Deliveries, Delivery, Refused};
use crate::error::Error;
use crate::message::{Message, Outgoing};
use crate::settlement::Reply;

/// A route's queue, read until the route stops and the bus is idle.
pub(super) struct MemoryDeliveries {
    pub(super) bus: MemoryBus,
    pub(super) queue: Arc<Queue>,
    pub(super) stopping: bool,
    pub(super) topics: TopicCache,
}

impl MemoryDeliveries {
    fn delivery(&mut self, item: Item) -> MemoryDelivery {
        MemoryDelivery {
            bus: self.bus.clone(),
            topic: self.topics.get(&item.topic),
            item,
        }
    }
}

impl Deliveries for MemoryDeliveries {
    type Delivery = MemoryDelivery;

    async fn next(&mut self, _room: usize) -> Option<MemoryDelivery> {
        if !self.stopping {
            let item = self.queue.items.pop().await?;
            return Some(self.delivery(item));
        }
        // Stopping: what is queued, until nothing is queued, running or waiting for a retry
        // anywhere on the bus (a handler still running may publish to this queue).
        let bus = self.bus.clone();
        loop {
            match self.queue.items.try_pop() {
                Ok(item) => return Some(self.delivery(item)),
                Err(true) => return None,
                Err(false) => {}
            }
            let idle = bus.inner.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so that a notification in between is not missed.
            idle.as_mut().enable();
            if bus.inner.pending.load(Ordering::Acquire) == 0 {
                return None;
            }
            let queue = Arc::clone(&self.queue);
            tokio::select! {
                item = queue.items.pop() => return Some(self.delivery(item?)),
                () = idle => {}
            }
        }
    }

    async fn stop(&mut self) {
        self.stopping = true;
    }
}

/// One message taken from a queue: pending on the bus until it is settled (or dropped).
pub(super) struct MemoryDelivery {
    bus: MemoryBus,
    /// The item's topic, shared with the route's earlier messages on it.
    topic: Arc<str>,
    item: Item,
}

impl Drop for MemoryDelivery {
    fn drop(&mut self) {
        self.bus.settle_one();
    }
}

impl Delivery for MemoryDelivery {
    fn message(&self) -> Message {
        self.item.message(&self.topic)
    }

    async fn ack(self) -> Result<(), Error> {
        Ok(())
    }

    async fn reply(mut self, reply: Reply) -> Result<(), Error> {
        if let Some(tx) = self.item.reply.take() {
            // The requester may have given up (timeout); nothing else to do then.
            let _ = tx.send(reply);
        }
        Ok(())
    }

    async fn dead_letter(self, letter: Outgoing) -> Result<(), Refused<Self>> {
        self.bus.keep_dead_letter(letter);
        Ok(())
    }

    async fn release(self) {
        tracing::error!(
            topic = %self.item.topic,
            "memory:// bus: a message still in hand at the drain deadline is lost"
        );
    }
}
