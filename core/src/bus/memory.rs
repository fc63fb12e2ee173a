//! The in-memory bus (`memory://`): the embedded default, for single-process systems, development
//! and tests. It keeps every semantic of the broker buses that can exist within one process.
//!
//! - Topics with wildcards (`*`, `>`, `#`); competing consumer groups (one queue per topic pattern
//!   and group, shared by the group's members) and broadcast (a queue per subscriber).
//! - Each queue is bounded (`memory://?capacity=N`, default 1024): publishers wait when a queue is
//!   full, so a slow consumer pushes back on its producers instead of growing memory.
//! - A route with concurrency K runs K worker tasks on its queue: never more than K handlers at once.
//! - Failures are retried after the backoff delay without blocking the queue (the message re-enters
//!   it); at most one message per worker waits out a backoff at a time, so a storm of failures
//!   pauses the workers rather than piling up retries. Exhausted, rejected and undecodable messages
//!   are published to the dead-letter topic with the `kumi-*` dead-letter headers.
//! - Request/reply with "no responders" detection and timeouts.
//! - Shutdown drains: new publishes are still accepted while draining (so in-flight handlers can
//!   finish their work) and the bus waits until nothing is queued, running or waiting for a retry,
//!   or the deadline passes; then it closes. Messages still pending at the deadline are reported
//!   and lost — the bus is not persistent, so it declares `persistent: false` and `durable: false`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tokio::task::AbortHandle;

use super::topic::matches;
use super::{
    validate_pattern, validate_topic, Bus, Capabilities, Delivery, DrainReport, Reply, RouteKind,
    Settlement, Subscription,
};
use crate::dispatch::{Dispatcher, RouteService};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Headers, Message, Outgoing};
use crate::retry::RetrySlots;

const DEFAULT_CAPACITY: usize = 1024;

/// A message sitting in a queue.
struct Item {
    topic: Arc<str>,
    body: Bytes,
    headers: Headers,
    message_id: String,
    correlation_id: Option<String>,
    timestamp: SystemTime,
    attempt: u32,
    reply: Option<oneshot::Sender<Reply>>,
}

impl Item {
    fn message(&self) -> Message {
        let mut m = Message::new(Arc::clone(&self.topic), self.body.clone());
        m.headers = self.headers.clone();
        m.message_id = Some(self.message_id.clone());
        m.correlation_id.clone_from(&self.correlation_id);
        m.attempt = self.attempt;
        m.timestamp = Some(self.timestamp);
        m
    }
}

struct Queue {
    pattern: String,
    delivery: Delivery,
    kind: RouteKind,
    tx: async_channel::Sender<Item>,
    rx: async_channel::Receiver<Item>,
    /// One per worker (see [`RetrySlots`]).
    retry_slots: RetrySlots,
}

struct Inner {
    capacity: usize,
    queues: RwLock<Arc<Vec<Arc<Queue>>>>,
    draining: AtomicBool,
    closed: AtomicBool,
    pending: AtomicUsize,
    settled: AtomicUsize,
    idle: Notify,
    workers: Mutex<Vec<AbortHandle>>,
}

/// The in-memory bus. See the [module docs](self).
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus")
            .field("capacity", &self.inner.capacity)
            .field("pending", &self.inner.pending.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MemoryBus {
    /// A bus whose queues hold up to 1024 messages each.
    pub fn new() -> Self {
        Self::default()
    }

    /// A bus whose queues hold up to `capacity` messages each (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity: capacity.max(1),
                queues: RwLock::new(Arc::new(Vec::new())),
                draining: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                pending: AtomicUsize::new(0),
                settled: AtomicUsize::new(0),
                idle: Notify::new(),
                workers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Parses `memory://` with the optional query `capacity=N`.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("memory://")
            .ok_or_else(|| Error::config(format!("'{url}' is not a memory:// URL")))?;
        let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
        if !host.trim_end_matches('/').is_empty() {
            return Err(Error::config(format!(
                "bus URL '{url}': memory:// takes no host (did you mean memory://?capacity=N)"
            )));
        }
        let mut capacity = DEFAULT_CAPACITY;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("capacity", v)) => {
                    capacity = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        Error::config(format!(
                            "bus URL '{url}': capacity must be a positive integer, got '{v}'"
                        ))
                    })?;
                }
                _ => {
                    return Err(Error::config(format!(
                        "bus URL '{url}': unknown option '{pair}' (known: capacity)"
                    )))
                }
            }
        }
        Ok(Self::with_capacity(capacity))
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Queue>>> {
        Arc::clone(&self.inner.queues.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn check_open(&self, topic: &str) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!("memory:// bus is stopped; cannot send on topic '{topic}'"),
            ));
        }
        Ok(())
    }

    /// Puts `item` on every queue that should see it. Returns how many queues took it.
    async fn route(&self, item: Item) -> usize {
        let queues = self.snapshot();
        let wants = |q: &Arc<Queue>| q.kind == RouteKind::Event && matches(&q.pattern, &item.topic);
        let Some(last) = queues.iter().rposition(wants) else {
            return 0;
        };
        let mut delivered = 0;
        for i in 0..last {
            let q = &queues[i];
            if !wants(q) {
                continue;
            }
            let copy = Item {
                topic: item.topic.clone(),
                body: item.body.clone(),
                headers: item.headers.clone(),
                message_id: item.message_id.clone(),
                correlation_id: item.correlation_id.clone(),
                timestamp: item.timestamp,
                attempt: item.attempt,
                reply: None,
            };
            delivered += usize::from(self.enqueue(q, copy).await);
        }
        // The last target takes the original: no copy in the common single-queue case.
        delivered + usize::from(self.enqueue(&queues[last], item).await)
    }

    /// Puts `item` on `queue`, waiting while the queue is full (backpressure). The waiting is
    /// boxed apart: publish futures stay small on the usual path, where the queue has room.
    async fn enqueue(&self, queue: &Queue, item: Item) -> bool {
        self.inner.pending.fetch_add(1, Ordering::AcqRel);
        match queue.tx.try_send(item) {
            Ok(()) => true,
            Err(async_channel::TrySendError::Full(item)) => {
                Box::pin(self.enqueue_when_room(queue, item)).await
            }
            Err(async_channel::TrySendError::Closed(_)) => {
                self.settle_one();
                false
            }
        }
    }

    /// The rest of [`MemoryBus::enqueue`] for a full queue (the pending count is already taken).
    async fn enqueue_when_room(&self, queue: &Queue, item: Item) -> bool {
        /// Undoes the pending count unless the send completed (also when the send is cancelled,
        /// e.g. by a request timeout while the queue is full).
        struct Pending<'a>(&'a MemoryBus, bool);
        impl Drop for Pending<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.settle_one();
                }
            }
        }
        let mut guard = Pending(self, false);
        guard.1 = queue.tx.send(item).await.is_ok();
        guard.1
    }

    fn settle_one(&self) {
        self.inner.settled.fetch_add(1, Ordering::Relaxed);
        if self.inner.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }

    fn spawn_workers(&self, queue: &Arc<Queue>, dispatcher: &Arc<Dispatcher>, n: usize) {
        queue.retry_slots.add(n);
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let bus = self.clone();
            let queue = Arc::clone(queue);
            let dispatcher = Arc::clone(dispatcher);
            let task = tokio::spawn(async move {
                let mut service = dispatcher.service();
                while let Ok(item) = queue.rx.recv().await {
                    bus.handle(&queue, &dispatcher, &mut service, item).await;
                }
            });
            handles.push(task.abort_handle());
        }
        self.inner
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(handles);
    }

    async fn handle(
        &self,
        queue: &Arc<Queue>,
        dispatcher: &Dispatcher,
        service: &mut RouteService,
        mut item: Item,
    ) {
        let settlement = dispatcher.dispatch_with(service, item.message()).await;
        match settlement {
            Settlement::Ack => self.settle_one(),
            Settlement::Reply(reply) => {
                if let Some(tx) = item.reply.take() {
                    // The requester may have given up (timeout); nothing else to do then.
                    let _ = tx.send(reply);
                }
                self.settle_one();
            }
            Settlement::Retry { delay, .. } => {
                // Re-enter the queue after the backoff; the message stays pending meanwhile. This
                // worker waits while every retry slot is taken.
                let backoff = queue.retry_slots.backoff(delay).await;
                let queue = Arc::clone(queue);
                let bus = self.clone();
                tokio::spawn(async move {
                    backoff.wait().await;
                    item.attempt += 1;
                    if queue.tx.send(item).await.is_err() {
                        tracing::error!(
                            topic = %queue.pattern,
                            "memory:// bus closed before a retry was redelivered; message lost"
                        );
                        bus.settle_one();
                    }
                });
            }
            Settlement::DeadLetter(dead) => {
                let headers = dead.headers(&item.headers);
                let letter = Item {
                    topic: dead.topic.as_str().into(),
                    body: item.body,
                    headers,
                    message_id: item.message_id,
                    correlation_id: item.correlation_id,
                    timestamp: SystemTime::now(),
                    attempt: 1,
                    reply: None,
                };
                if self.route(letter).await == 0 {
                    tracing::error!(
                        dead_letter_topic = %dead.topic,
                        "no subscriber on the dead-letter topic; the dead letter is dropped (subscribe to it to keep them)"
                    );
                }
                self.settle_one();
            }
        }
    }
}

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

    async fn subscribe(&self, sub: Subscription) -> Result<String> {
        validate_pattern(&sub.topic)?;
        if self.inner.draining.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!(
                    "memory:// bus is stopping; cannot subscribe to '{}'",
                    sub.topic
                ),
            ));
        }
        let queue = {
            let mut guard = self.inner.queues.write().unwrap_or_else(|e| e.into_inner());
            let existing = match &sub.delivery {
                Delivery::Group(_) => guard
                    .iter()
                    .find(|q| {
                        q.pattern == sub.topic && q.delivery == sub.delivery && q.kind == sub.kind
                    })
                    .cloned(),
                Delivery::Broadcast => None,
            };
            match existing {
                Some(q) => q,
                None => {
                    let (tx, rx) = async_channel::bounded(self.inner.capacity.max(sub.concurrency));
                    let q = Arc::new(Queue {
                        pattern: sub.topic.clone(),
                        delivery: sub.delivery.clone(),
                        kind: sub.kind,
                        tx,
                        rx,
                        retry_slots: RetrySlots::default(),
                    });
                    let mut next: Vec<Arc<Queue>> = guard.as_ref().clone();
                    next.push(Arc::clone(&q));
                    *guard = Arc::new(next);
                    q
                }
            }
        };
        self.spawn_workers(&queue, &sub.dispatcher, sub.concurrency);
        Ok(match &sub.delivery {
            Delivery::Group(g) => format!("group {g}"),
            Delivery::Broadcast => "broadcast".to_owned(),
        })
    }

    async fn publish(&self, message: Outgoing) -> Result<()> {
        self.check_open(&message.topic)?;
        validate_topic(&message.topic)?;
        let item = Item {
            topic: message.topic.into(),
            body: message.body,
            headers: message.headers,
            message_id: message.message_id,
            correlation_id: message.correlation_id,
            timestamp: SystemTime::now(),
            attempt: 1,
            reply: None,
        };
        self.route(item).await;
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
        let item = Item {
            topic: message.topic.into(),
            body: message.body,
            headers: message.headers,
            message_id: message.message_id,
            correlation_id: message.correlation_id,
            timestamp: SystemTime::now(),
            attempt: 1,
            reply: Some(tx),
        };
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

    async fn shutdown(&self, deadline: Instant) -> Result<DrainReport> {
        if self.inner.draining.swap(true, Ordering::AcqRel) {
            return Ok(DrainReport::default());
        }
        let settled_before = self.inner.settled.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            // Register before checking, so a notification in between is not missed.
            idle.as_mut().enable();
            if self.inner.pending.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        self.inner.closed.store(true, Ordering::Release);
        for q in self.snapshot().iter() {
            q.tx.close();
        }
        for w in self
            .inner
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            w.abort();
        }
        let abandoned = self.inner.pending.load(Ordering::Acquire);
        if abandoned > 0 {
            tracing::error!(
                abandoned,
                "memory:// bus stopped with messages still queued, running or awaiting retry; they are lost"
            );
        }
        Ok(DrainReport {
            settled: self.inner.settled.load(Ordering::Relaxed) - settled_before,
            abandoned,
        })
    }
}
