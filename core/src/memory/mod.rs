//! The in-memory bus (`memory://`): the embedded default, for single-process systems, development
//! and tests. It keeps every semantic of the broker buses that can exist within one process, and
//! runs the same conformance cases.
//!
//! - Topics with wildcards (`*`, `>`, `#`); competing consumer groups (one queue per topic pattern
//!   and group, shared by the group's members) and broadcast (a queue per subscriber).
//! - Each queue is bounded (`memory://?capacity=N`, default 1024): publishers wait when a queue is
//!   full, so a slow consumer pushes back on its producers instead of growing memory.
//! - Consuming ([`consumer`]) is the consume runtime's, as on every bus: the route's concurrency
//!   bound, retries (in process: the bus cannot delay a redelivery), drain.
//! - Dead letters are kept in a bounded store the app reads ([`MemoryBus::dead_letters`],
//!   [`MemoryBus::take_dead_letters`]) and replays ([`MemoryBus::replay_dead_letters`]); default
//!   10,000, `memory://?dead_letters=N`; when full the oldest goes, counted and logged. They are
//!   also offered to the routes subscribed to the dead-letter topic, without waiting: a full
//!   queue there (a failing catch-all route dead-lettering into its own queue) never blocks.
//! - Request/reply with "no responders" detection and timeouts.
//! - Shutdown: new publishes are accepted while the routes drain (so in-flight handlers can finish
//!   their work); a route's intake ends once nothing is queued, running or waiting for a retry
//!   anywhere on the bus. Messages still pending at the deadline are reported and lost — the bus
//!   is not persistent, so it declares `persistent: false` and `durable: false`.
//!
//! Files: this one (queues and routing), [`consumer`] (deliveries and how they settle), `bus.rs`
//! (the `Bus` impl).

mod bus;
mod consumer;
mod queue;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

use crate::bus::topic::matches;
use crate::bus::Sharing;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Headers, Message, Outgoing};
use crate::settlement::{Reply, RouteKind, ORIGINAL_MESSAGE_ID, ORIGINAL_TOPIC};

const DEFAULT_CAPACITY: usize = 1024;
/// Dead letters the store keeps unless told otherwise.
pub const DEFAULT_DEAD_LETTERS: usize = 10_000;

/// A message sitting in a queue.
struct Item {
    topic: String,
    body: Bytes,
    headers: Headers,
    message_id: String,
    correlation_id: Option<String>,
    timestamp: SystemTime,
    reply: Option<oneshot::Sender<Reply>>,
}

impl Item {
    fn new(message: Outgoing, reply: Option<oneshot::Sender<Reply>>) -> Self {
        Item {
            topic: message.topic,
            body: message.body,
            headers: message.headers,
            message_id: message.message_id,
            correlation_id: message.correlation_id,
            timestamp: SystemTime::now(),
            reply,
        }
    }

    /// The message a route dispatches, its topic shared (`topic` is `self.topic`).
    fn message(&self, topic: &Arc<str>) -> Message {
        let mut m = Message::new(Arc::clone(topic), self.body.clone());
        m.headers = self.headers.clone();
        m.message_id = Some(self.message_id.clone());
        m.correlation_id.clone_from(&self.correlation_id);
        m.timestamp = Some(self.timestamp);
        m
    }

    /// A copy for another queue (no reply channel: only one route answers a request).
    fn copy(&self) -> Self {
        Item {
            topic: self.topic.clone(),
            body: self.body.clone(),
            headers: self.headers.clone(),
            message_id: self.message_id.clone(),
            correlation_id: self.correlation_id.clone(),
            timestamp: self.timestamp,
            reply: None,
        }
    }
}

struct Queue {
    pattern: String,
    sharing: Sharing,
    kind: RouteKind,
    items: queue::Queue<Item>,
}

struct Inner {
    capacity: usize,
    queues: RwLock<Arc<Vec<Arc<Queue>>>>,
    closed: AtomicBool,
    /// Messages queued, or delivered and not settled yet, on any queue.
    pending: AtomicUsize,
    /// Notified when `pending` drops to 0.
    idle: Notify,
    /// The dead letters, oldest first, at most `dead_letter_capacity`.
    dead_letters: Mutex<VecDeque<Outgoing>>,
    dead_letter_capacity: usize,
    /// Dead letters the full store let go.
    dead_letters_dropped: AtomicU64,
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
            .field("dead_letters", &self.dead_letter_count())
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
        Self::with_limits(capacity, DEFAULT_DEAD_LETTERS)
    }

    /// A bus whose queues hold up to `capacity` messages each and whose dead-letter store keeps
    /// the last `dead_letters` (each at least 1).
    pub fn with_limits(capacity: usize, dead_letters: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity: capacity.max(1),
                queues: RwLock::new(Arc::new(Vec::new())),
                closed: AtomicBool::new(false),
                pending: AtomicUsize::new(0),
                idle: Notify::new(),
                dead_letters: Mutex::new(VecDeque::new()),
                dead_letter_capacity: dead_letters.max(1),
                dead_letters_dropped: AtomicU64::new(0),
            }),
        }
    }

    /// The dead letters kept, oldest first: each the original body with its headers, the
    /// `kumi-*` dead-letter headers among them (reason, kind, original topic, attempts).
    pub fn dead_letters(&self) -> Vec<Outgoing> {
        self.store().iter().cloned().collect()
    }

    /// Takes the dead letters kept out of the store, oldest first.
    pub fn take_dead_letters(&self) -> Vec<Outgoing> {
        self.store().drain(..).collect()
    }

    /// How many dead letters the store keeps now.
    pub fn dead_letter_count(&self) -> usize {
        self.store().len()
    }

    /// How many dead letters the full store let go since the bus was made.
    pub fn dead_letters_dropped(&self) -> u64 {
        self.inner.dead_letters_dropped.load(Ordering::Relaxed)
    }

    /// Publishes every dead letter kept back on the topic it was consumed from, with its original
    /// message id, and removes it from the store; returns how many. One that fails again is
    /// dead-lettered again. A dead letter that cannot be published (the bus stopped) stays in the
    /// store, and the error is returned.
    pub async fn replay_dead_letters(&self) -> Result<usize> {
        let mut replayed = 0;
        loop {
            let Some(letter) = self.store().pop_front() else {
                return Ok(replayed);
            };
            let Some(topic) = letter.headers.get(ORIGINAL_TOPIC).map(str::to_owned) else {
                tracing::warn!(topic = %letter.topic, "memory:// bus: a dead letter without kumi-original-topic cannot be replayed; dropped");
                continue;
            };
            let mut message = letter.clone();
            message.topic = topic;
            if let Some(id) = letter.headers.get(ORIGINAL_MESSAGE_ID) {
                message.message_id = id.to_owned();
            }
            if let Err(e) = crate::bus::Bus::publish(self, message).await {
                self.store().push_front(letter);
                return Err(e);
            }
            replayed += 1;
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, VecDeque<Outgoing>> {
        self.inner
            .dead_letters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a dead letter (letting the oldest go when full) and offers it to the routes on its
    /// topic without waiting for room.
    fn keep_dead_letter(&self, letter: Outgoing) {
        let dropped = {
            let mut store = self.store();
            let dropped =
                (store.len() >= self.inner.dead_letter_capacity).then(|| store.pop_front());
            store.push_back(letter.clone());
            dropped.flatten()
        };
        if let Some(old) = dropped {
            let n = self
                .inner
                .dead_letters_dropped
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            tracing::warn!(
                dead_letter_topic = %old.topic,
                dropped = n,
                capacity = self.inner.dead_letter_capacity,
                "memory:// bus: the dead-letter store is full; the oldest dead letter is dropped (take or replay them, or raise memory://?dead_letters=N)"
            );
        }
        let topic = letter.topic.clone();
        let full = self.offer(Item::new(letter, None));
        if full > 0 {
            tracing::warn!(
                dead_letter_topic = %topic,
                queues = full,
                "memory:// bus: a route's queue on the dead-letter topic is full; the dead letter is only in the store"
            );
        }
    }

    /// Puts `item` on every event queue whose pattern matches its topic that has room, without
    /// waiting. Returns how many were full.
    fn offer(&self, item: Item) -> usize {
        let queues = self.snapshot();
        let mut full = 0;
        for q in queues
            .iter()
            .filter(|q| q.kind == RouteKind::Event && matches(&q.pattern, &item.topic))
        {
            self.inner.pending.fetch_add(1, Ordering::AcqRel);
            match q.items.try_push(item.copy()) {
                Ok(()) => {}
                Err(queue::TryPushError::Full(_)) => {
                    self.settle_one();
                    full += 1;
                }
                Err(queue::TryPushError::Closed(_)) => self.settle_one(),
            }
        }
        full
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
        let mut dead_letters = DEFAULT_DEAD_LETTERS;
        let positive = |name: &str, v: &str| {
            v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::config(format!(
                    "bus URL '{url}': {name} must be a positive integer, got '{v}'"
                ))
            })
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("capacity", v)) => capacity = positive("capacity", v)?,
                Some(("dead_letters", v)) => dead_letters = positive("dead_letters", v)?,
                _ => {
                    return Err(Error::config(format!(
                        "bus URL '{url}': unknown option '{pair}' (known: capacity, dead_letters)"
                    )))
                }
            }
        }
        Ok(Self::with_limits(capacity, dead_letters))
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

    /// The queue of `sharing`'s group for `pattern`, or a new one.
    fn queue(
        &self,
        pattern: &str,
        sharing: &Sharing,
        kind: RouteKind,
        concurrency: usize,
    ) -> Arc<Queue> {
        let mut guard = self.inner.queues.write().unwrap_or_else(|e| e.into_inner());
        if let Sharing::Group(_) = sharing {
            let existing = guard
                .iter()
                .find(|q| q.pattern == pattern && q.sharing == *sharing && q.kind == kind);
            if let Some(q) = existing {
                return Arc::clone(q);
            }
        }
        let q = Arc::new(Queue {
            pattern: pattern.to_owned(),
            sharing: sharing.clone(),
            kind,
            items: queue::Queue::new(self.inner.capacity.max(concurrency)),
        });
        let mut next: Vec<Arc<Queue>> = guard.as_ref().clone();
        next.push(Arc::clone(&q));
        *guard = Arc::new(next);
        q
    }

    /// Puts `item` on every event queue whose pattern matches its topic. Returns how many took it.
    async fn route(&self, item: Item) -> usize {
        let queues = self.snapshot();
        let wants = |q: &Arc<Queue>| q.kind == RouteKind::Event && matches(&q.pattern, &item.topic);
        let Some(last) = queues.iter().rposition(wants) else {
            return 0;
        };
        let mut delivered = 0;
        for q in queues[..last].iter().filter(|q| wants(q)) {
            delivered += usize::from(self.enqueue(q, item.copy()).await);
        }
        // The last target takes the original: no copy in the common single-queue case.
        delivered + usize::from(self.enqueue(&queues[last], item).await)
    }

    /// Puts `item` on `queue`, waiting while the queue is full (backpressure). The waiting is
    /// boxed apart: publish futures stay small on the usual path, where the queue has room.
    async fn enqueue(&self, queue: &Queue, item: Item) -> bool {
        self.inner.pending.fetch_add(1, Ordering::AcqRel);
        match queue.items.try_push(item) {
            Ok(()) => true,
            Err(queue::TryPushError::Full(item)) => {
                Box::pin(self.enqueue_when_room(queue, item)).await
            }
            Err(queue::TryPushError::Closed(_)) => {
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
        guard.1 = queue.items.push(item).await.is_ok();
        guard.1
    }

    /// One pending message is settled (or lost).
    fn settle_one(&self) {
        if self.inner.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}
