//! The SQS consumer of one route (WIRE.md §4, and where kumi does better than tomodachi).
//!
//! - **Polling**: long polls (`WaitTimeSeconds` from the URL, 20 by default) for as many messages
//!   as the route has free handler slots, at most 10. A poll starts as soon as one slot is free:
//!   a slow message never holds the next poll, and never more than `concurrency` handlers run.
//!   Routes with more than 10 slots run one poller per 10 slots, sharing the slots.
//! - **Attempts**: the delivery attempt is SQS's `ApproximateReceiveCount`.
//! - **Outcomes**: success → `DeleteMessage`; retryable failure → `ChangeMessageVisibility` to the
//!   backoff delay (whole seconds; delays under a second wait in process, then make the message
//!   visible at once); exhausted, rejected or undecodable → published to the kumi dead-letter topic
//!   (`dlq.<topic>`, with the kumi dead-letter headers), then deleted — if that publish fails the
//!   message is kept and comes back later. Nothing is deleted that did not succeed or was not
//!   dead-lettered.
//! - **Long handlers**: the visibility timeout is extended every half of it while the handler runs.
//! - **Drain**: on shutdown the consumer stops polling (a poll in progress is awaited until the
//!   drain deadline and what it returns is made visible again at once); in-flight handlers finish
//!   and settle until the deadline.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{Message as SqsMessage, MessageSystemAttributeName};
use base64::Engine as _;
use bytes::Bytes;
use kumi_core::bus::{Settlement, Subscription};
use kumi_core::{Message, Outgoing};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::attributes::{AttributeValue, Incoming};
use crate::bus::Inner;
use crate::envelope_sns;
use crate::topology::Queue;

/// Messages handled one after another (a FIFO message group's share of a batch), with their
/// handler slots.
type Chain = Vec<(SqsMessage, OwnedSemaphorePermit)>;

/// Most messages one `ReceiveMessage` returns.
const MAX_BATCH: usize = 10;
/// Longest visibility timeout SQS accepts.
const MAX_VISIBILITY: u64 = 43_200;

pub(crate) struct Consumer {
    inner: Arc<Inner>,
    sub: Subscription,
    queue: Queue,
    visibility: Duration,
    fifo: bool,
}

fn sqs_attribute(v: &aws_sdk_sqs::types::MessageAttributeValue) -> AttributeValue {
    match (v.string_value(), v.binary_value()) {
        (Some(s), _) => AttributeValue::Text {
            data_type: v.data_type().to_owned(),
            value: s.to_owned(),
        },
        (None, Some(b)) => AttributeValue::Binary(b.as_ref().to_vec()),
        (None, None) => AttributeValue::Text {
            data_type: v.data_type().to_owned(),
            value: String::new(),
        },
    }
}

/// The kumi message for an SQS message: body unwrapped, attributes merged (SQS-level win).
pub(crate) fn to_message(topic: &str, msg: &SqsMessage) -> Message {
    let unwrapped = envelope_sns::unwrap(msg.body().unwrap_or_default());
    let mut incoming = Incoming::default();
    for (k, v) in unwrapped.attributes {
        incoming.set(k, v);
    }
    if let Some(attrs) = msg.message_attributes() {
        for (k, v) in attrs {
            incoming.set(k.clone(), sqs_attribute(v));
        }
    }
    let body = if incoming.body_is_base64() {
        base64::engine::general_purpose::STANDARD
            .decode(unwrapped.message.as_bytes())
            .unwrap_or_else(|_| unwrapped.message.clone().into_bytes())
    } else {
        unwrapped.message.into_bytes()
    };
    let mut message = Message::new(topic, Bytes::from(body));
    incoming.apply(&mut message);
    message.attempt = msg
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    message
}

impl Consumer {
    pub(crate) fn new(
        inner: Arc<Inner>,
        sub: Subscription,
        queue: Queue,
        visibility: Duration,
    ) -> Self {
        Self {
            fifo: queue.name.ends_with(crate::naming::FIFO_SUFFIX),
            inner,
            sub,
            queue,
            visibility,
        }
    }

    /// Starts the route's pollers: one per 10 handler slots, sharing the slots.
    pub(crate) fn start(self) {
        let this = Arc::new(self);
        let concurrency = this.sub.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        for _ in 0..concurrency.div_ceil(MAX_BATCH) {
            let tracker = this.inner.tracker.clone();
            tracker.spawn(Arc::clone(&this).poll(Arc::clone(&permits)));
        }
    }

    async fn poll(self: Arc<Self>, permits: Arc<Semaphore>) {
        let this = self;
        let cancel = this.inner.cancel.clone();
        let wait = i32::try_from(this.inner.topology.url.wait_time.as_secs()).unwrap_or(20);
        let mut failures: u32 = 0;
        loop {
            let first = tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => p,
                () = cancel.cancelled() => break,
            };
            let Ok(first) = first else { break };
            let mut held = vec![first];
            while held.len() < MAX_BATCH {
                match Arc::clone(&permits).try_acquire_owned() {
                    Ok(p) => held.push(p),
                    Err(_) => break,
                }
            }
            if cancel.is_cancelled() {
                break;
            }
            let receive = this
                .inner
                .topology
                .sqs
                .receive_message()
                .queue_url(&this.queue.url)
                .max_number_of_messages(i32::try_from(held.len()).unwrap_or(1))
                .wait_time_seconds(wait)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send();
            tokio::pin!(receive);
            let result = tokio::select! {
                r = &mut receive => r,
                () = cancel.cancelled() => {
                    // Let the poll in progress finish (so it takes nothing published later into
                    // the void), then hand back what it got.
                    let deadline = this.inner.deadline.lock().ok().and_then(|d| *d);
                    let deadline = deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1));
                    if let Ok(Ok(out)) = tokio::time::timeout_at(deadline, receive).await {
                        for m in out.messages() {
                            this.release(m).await;
                        }
                    }
                    break;
                }
            };
            match result {
                Ok(out) => {
                    failures = 0;
                    // One chain per FIFO message group (in order, one at a time); every message
                    // of a standard queue is a chain of its own.
                    let mut chains: Vec<(Option<String>, Chain)> = Vec::new();
                    for msg in out.messages() {
                        let Some(permit) = held.pop() else {
                            this.release(msg).await;
                            continue;
                        };
                        let group = if this.fifo {
                            msg.attributes()
                                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                                .cloned()
                        } else {
                            None
                        };
                        match chains
                            .iter_mut()
                            .find(|(g, _)| group.is_some() && *g == group)
                        {
                            Some((_, chain)) => chain.push((msg.clone(), permit)),
                            None => chains.push((group, vec![(msg.clone(), permit)])),
                        }
                    }
                    for (_, chain) in chains {
                        this.inner
                            .in_flight
                            .fetch_add(chain.len(), Ordering::AcqRel);
                        let consumer = Arc::clone(&this);
                        this.inner.tracker.spawn(async move {
                            let mut chain = chain.into_iter();
                            while let Some((msg, permit)) = chain.next() {
                                let done = consumer.handle(msg, permit).await;
                                consumer.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
                                consumer.inner.settled.fetch_add(1, Ordering::Relaxed);
                                if !done {
                                    // Keep the group's order: what follows a failed message
                                    // goes back to the queue behind it.
                                    for (msg, permit) in chain.by_ref() {
                                        consumer.release(&msg).await;
                                        drop(permit);
                                        consumer.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
                                    }
                                }
                            }
                        });
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = Duration::from_millis(100 * 2u64.pow(failures.min(7)))
                        .min(Duration::from_secs(10));
                    tracing::warn!(
                        queue = %this.queue.name,
                        topic = %this.sub.topic,
                        "sqs: receive failed (retrying in {delay:?}): {}",
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    );
                    drop(held);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = cancel.cancelled() => break,
                    }
                }
            }
        }
    }

    /// Makes a message visible again at once (it was received but will not be handled here).
    async fn release(&self, msg: &SqsMessage) {
        if let Some(receipt) = msg.receipt_handle() {
            self.change_visibility(receipt, 0).await;
        }
    }

    async fn change_visibility(&self, receipt: &str, secs: u64) {
        let secs = i32::try_from(secs.min(MAX_VISIBILITY)).unwrap_or(0);
        if let Err(e) = self
            .inner
            .topology
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
        {
            tracing::warn!(
                queue = %self.queue.name,
                "sqs: cannot change message visibility to {secs}s: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            );
        }
    }

    async fn delete(&self, receipt: &str) {
        if let Err(e) = self
            .inner
            .topology
            .sqs
            .delete_message()
            .queue_url(&self.queue.url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            tracing::warn!(
                queue = %self.queue.name,
                "sqs: cannot delete a handled message (it will be redelivered): {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            );
        }
    }

    /// Handles and settles one message; false when it was left for redelivery.
    async fn handle(&self, msg: SqsMessage, permit: OwnedSemaphorePermit) -> bool {
        let Some(receipt) = msg.receipt_handle().map(str::to_owned) else {
            return false;
        };
        let message = to_message(&self.sub.topic, &msg);
        let original_headers = message.headers.clone();
        let message_id = message.message_id.clone();
        let correlation_id = message.correlation_id.clone();
        let body = message.body.clone();

        let mut service = self.sub.dispatcher.service();
        let dispatch = self.sub.dispatcher.dispatch_with(&mut service, message);
        tokio::pin!(dispatch);
        let visibility = self.visibility.as_secs().max(1);
        let mut extend = tokio::time::interval(Duration::from_millis(visibility * 500));
        extend.tick().await;
        let settlement = loop {
            tokio::select! {
                s = &mut dispatch => break s,
                _ = extend.tick() => {
                    if !self.inner.closed.load(Ordering::Acquire) {
                        self.change_visibility(&receipt, visibility).await;
                    }
                }
            }
        };
        match settlement {
            Settlement::Ack | Settlement::Reply(_) => {
                self.delete(&receipt).await;
                true
            }
            Settlement::Retry { delay, error } => {
                tracing::debug!(topic = %self.sub.topic, "sqs: handler failed, redelivering after {delay:?}: {error}");
                if delay < Duration::from_secs(1) {
                    drop(permit);
                    tokio::time::sleep(delay).await;
                    self.change_visibility(&receipt, 0).await;
                } else {
                    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
                    self.change_visibility(&receipt, secs).await;
                }
                false
            }
            Settlement::DeadLetter(dead) => {
                let mut out = Outgoing::new(dead.topic.clone(), body);
                out.headers = dead.headers(&original_headers);
                if let Some(id) = message_id {
                    out.message_id = id;
                }
                out.correlation_id = correlation_id;
                match self.inner.publish(&out).await {
                    Ok(()) => {
                        self.delete(&receipt).await;
                        true
                    }
                    Err(e) => {
                        tracing::error!(
                            dead_letter_topic = %dead.topic,
                            "sqs: cannot publish dead letter, keeping the message for redelivery: {e}"
                        );
                        self.change_visibility(&receipt, 5).await;
                        false
                    }
                }
            }
        }
    }
}
