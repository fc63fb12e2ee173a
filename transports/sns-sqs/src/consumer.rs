//! A route's SQS queue as [`Deliveries`] for the consume runtime (`docs/wire.md`, "SNS+SQS").
//!
//! - **Polling**: long polls (`WaitTimeSeconds` from the URL, 20 by default) for no more messages
//!   than the route can start on now (the runtime's `room`), at most 10 per receive; a route with
//!   room for more than 10 keeps several receives going at once. A poll starts as soon as a
//!   handler is free: a slow message never holds the next poll.
//! - **FIFO queues**: a message is handed out only when no other message of its group is in hand
//!   ([`Groups`]), so a group's messages run one at a time and in order; when one of them is not
//!   settled for good (retried, given back), what this route holds of its group goes back to the
//!   queue behind it.
//! - **Stop**: polling ends; what was received and not handed out, and what a poll in progress
//!   brings, is made visible again at once (the bus waits for that on shutdown).
//!
//! How each delivery settles is in [`crate::settle`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{Message as SqsMessage, MessageSystemAttributeName};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use kumi_core::delivery::Deliveries;

use crate::connection::Connection;
use crate::settle::{group_of, GroupHold, Groups, RouteQueue, SqsDelivery};

/// Most messages one `ReceiveMessage` returns.
const MAX_BATCH: usize = 10;
/// Most receives in progress at once for one route.
const MAX_RECEIVES: usize = 8;

type Received = std::result::Result<Vec<SqsMessage>, String>;
type Receive = Pin<Box<dyn Future<Output = (usize, Received)> + Send>>;

/// A route's queue, polled until the route stops.
pub(crate) struct SqsDeliveries {
    conn: Arc<Connection>,
    queue: Arc<RouteQueue>,
    /// Received, not handed out yet.
    buffer: VecDeque<SqsMessage>,
    /// Receives in progress, kept across calls (so `next` stays cancel-safe).
    receiving: FuturesUnordered<Receive>,
    /// Messages the receives in progress asked for.
    asked: usize,
    groups: Option<Arc<Groups>>,
    failures: u32,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    stopped: bool,
}

impl SqsDeliveries {
    pub(crate) fn new(conn: Arc<Connection>, queue: Arc<RouteQueue>) -> Self {
        let groups = queue.fifo.then(Arc::default);
        Self {
            conn,
            queue,
            buffer: VecDeque::new(),
            receiving: FuturesUnordered::new(),
            asked: 0,
            groups,
            failures: 0,
            pause: None,
            stopped: false,
        }
    }

    fn receive(&self, n: usize) -> Receive {
        let wait = i32::try_from(self.conn.topology.url.wait_time.as_secs()).unwrap_or(20);
        let request = self
            .conn
            .topology
            .sqs
            .receive_message()
            .queue_url(&self.queue.url)
            .max_number_of_messages(i32::try_from(n).unwrap_or(1))
            .wait_time_seconds(wait)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId);
        Box::pin(async move {
            let out = request
                .send()
                .await
                .map(|out| out.messages.unwrap_or_default())
                .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string());
            (n, out)
        })
    }

    /// The first buffered message that may run now (FIFO: its group has nothing else in hand).
    fn take_ready(&mut self) -> Option<SqsDelivery> {
        loop {
            let index = match &self.groups {
                None => (!self.buffer.is_empty()).then_some(0),
                Some(groups) => self.buffer.iter().position(|m| match group_of(m) {
                    Some(group) => !groups.is_busy(&group),
                    None => true,
                }),
            }?;
            let msg = self.buffer.remove(index)?;
            let Some(receipt) = msg.receipt_handle().map(str::to_owned) else {
                continue;
            };
            let hold = match (&self.groups, group_of(&msg)) {
                (Some(groups), Some(group)) => {
                    groups.take(&group);
                    Some(GroupHold::new(Arc::clone(groups), group))
                }
                _ => None,
            };
            return Some(SqsDelivery::new(
                msg,
                receipt,
                Arc::clone(&self.conn),
                Arc::clone(&self.queue),
                hold,
            ));
        }
    }

    /// Puts back in the queue what this route holds of a FIFO group whose message in hand was not
    /// settled for good, so that they come after it.
    async fn put_back_failed_groups(&mut self) {
        let Some(groups) = &self.groups else { return };
        let failed = groups.take_failed();
        if failed.is_empty() {
            return;
        }
        let (back, keep): (Vec<_>, Vec<_>) = self
            .buffer
            .drain(..)
            .partition(|m| group_of(m).is_some_and(|g| failed.contains(&g)));
        self.buffer = keep.into();
        for msg in back {
            self.queue.release(&self.conn, &msg).await;
        }
    }

    fn received(&mut self, asked: usize, received: Received) {
        self.asked = self.asked.saturating_sub(asked);
        match received {
            Ok(messages) => {
                if self.failures > 0 {
                    self.conn.report_receive(&self.queue.name, None);
                }
                self.failures = 0;
                self.buffer.extend(messages);
            }
            Err(e) => {
                self.conn.report_receive(
                    &self.queue.name,
                    Some(format!("cannot receive (retrying): {e}")),
                );
                self.failures = self.failures.saturating_add(1);
                let delay = Duration::from_millis(100 * 2u64.pow(self.failures.min(7)))
                    .min(Duration::from_secs(10));
                tracing::warn!(
                    queue = %self.queue.name,
                    topic = %self.queue.topic,
                    "sqs: receive failed (retrying in {delay:?}): {e}"
                );
                self.pause = Some(Box::pin(tokio::time::sleep(delay)));
            }
        }
    }
}

impl Deliveries for SqsDeliveries {
    type Delivery = SqsDelivery;

    async fn next(&mut self, room: usize) -> Option<SqsDelivery> {
        loop {
            if self.stopped {
                return None;
            }
            self.put_back_failed_groups().await;
            if let Some(delivery) = self.take_ready() {
                return Some(delivery);
            }
            while self.pause.is_none()
                && self.receiving.len() < MAX_RECEIVES
                && self.asked + self.buffer.len() < room
            {
                let n = (room - self.asked - self.buffer.len()).min(MAX_BATCH);
                self.asked += n;
                let receive = self.receive(n);
                self.receiving.push(receive);
            }
            let blocked = !self.buffer.is_empty();
            let groups = self.groups.clone();
            let receiving = &mut self.receiving;
            let pause = &mut self.pause;
            let woke = tokio::select! {
                Some(got) = receiving.next(), if !receiving.is_empty() => Some(got),
                () = async {
                    match &groups {
                        Some(groups) => groups.freed.notified().await,
                        None => std::future::pending().await,
                    }
                }, if blocked => None,
                () = async {
                    match pause.as_mut() {
                        Some(pause) => pause.await,
                        None => std::future::pending().await,
                    }
                }, if pause.is_some() => {
                    *pause = None;
                    None
                }
            };
            if let Some((asked, received)) = woke {
                self.received(asked, received);
            }
        }
    }

    async fn stop(&mut self) {
        self.stopped = true;
        let buffered: Vec<SqsMessage> = self.buffer.drain(..).collect();
        let receiving = std::mem::take(&mut self.receiving);
        let (conn, queue) = (Arc::clone(&self.conn), Arc::clone(&self.queue));
        let bound = self.conn.topology.url.wait_time + Duration::from_secs(5);
        self.conn.give_back.spawn(async move {
            for msg in &buffered {
                queue.release(&conn, msg).await;
            }
            // What the polls in progress bring was received for nothing: visible again at once.
            let mut receiving = receiving;
            let _ = tokio::time::timeout(bound, async {
                while let Some((_, received)) = receiving.next().await {
                    for msg in received.unwrap_or_default() {
                        queue.release(&conn, &msg).await;
                    }
                }
            })
            .await;
        });
    }
}
