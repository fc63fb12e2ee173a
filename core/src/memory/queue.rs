//! The in-memory bus's bounded queue: many publishers, one or more competing readers.
//!
//! Waking a task on another thread costs more than handling a small message, so the queue wakes
//! as little as it can: a reader only when one is waiting, and publishers waiting for room only
//! once the queue has drained to half its capacity (not at every message taken), after which
//! they fill it again in one go while the reader keeps reading. A full queue therefore costs one
//! wake per half queue instead of one per message.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// A bounded queue. See the [module docs](self).
pub(super) struct Queue<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// Readers waiting for an item.
    readers_waiting: AtomicUsize,
    /// Publishers waiting for room.
    writers_waiting: AtomicUsize,
    has_items: Notify,
    has_room: Notify,
}

/// Why an item could not be queued at once.
pub(super) enum TryPushError<T> {
    /// The queue is full.
    Full(T),
    /// The queue is closed.
    Closed(T),
}

impl<T> Queue<T> {
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity.min(1024)),
                closed: false,
            }),
            capacity,
            readers_waiting: AtomicUsize::new(0),
            writers_waiting: AtomicUsize::new(0),
            has_items: Notify::new(),
            has_room: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` if there is room now.
    pub(super) fn try_push(&self, item: T) -> Result<(), TryPushError<T>> {
        {
            let mut state = self.lock();
            if state.closed {
                return Err(TryPushError::Closed(item));
            }
            if state.items.len() >= self.capacity {
                return Err(TryPushError::Full(item));
            }
            state.items.push_back(item);
        }
        if self.readers_waiting.load(Ordering::Acquire) > 0 {
            self.has_items.notify_one();
        }
        Ok(())
    }

    /// Queues `item`, waiting while the queue is full. `Err` when the queue is closed.
    pub(super) async fn push(&self, mut item: T) -> Result<(), T> {
        loop {
            let room = self.has_room.notified();
            let mut room = pin!(room);
            self.writers_waiting.fetch_add(1, Ordering::AcqRel);
            // Registered before the attempt: room made in between is not missed.
            room.as_mut().enable();
            let attempt = self.try_push(item);
            match attempt {
                Ok(()) => {
                    self.writers_waiting.fetch_sub(1, Ordering::AcqRel);
                    return Ok(());
                }
                Err(TryPushError::Closed(back)) => {
                    self.writers_waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(back);
                }
                Err(TryPushError::Full(back)) => item = back,
            }
            /// Undoes the count if the wait is cancelled.
            struct Waiting<'a>(&'a AtomicUsize);
            impl Drop for Waiting<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::AcqRel);
                }
            }
            let _waiting = Waiting(&self.writers_waiting);
            room.await;
        }
    }

    /// Takes the next item if there is one; `Err(true)` when the queue is closed and empty.
    pub(super) fn try_pop(&self) -> Result<T, bool> {
        let (item, left) = {
            let mut state = self.lock();
            match state.items.pop_front() {
                Some(item) => (item, state.items.len()),
                None => return Err(state.closed),
            }
        };
        if left <= self.capacity / 2 && self.writers_waiting.load(Ordering::Acquire) > 0 {
            self.has_room.notify_waiters();
        }
        Ok(item)
    }

    /// The next item, waiting for one; `None` once the queue is closed and empty. Cancel-safe.
    pub(super) async fn pop(&self) -> Option<T> {
        loop {
            match self.try_pop() {
                Ok(item) => return Some(item),
                Err(true) => return None,
                Err(false) => {}
            }
            let ready = self.has_items.notified();
            let mut ready = pin!(ready);
            self.readers_waiting.fetch_add(1, Ordering::AcqRel);
            ready.as_mut().enable();
            // Checked again once registered: an item queued in between is not missed.
            let again = self.try_pop();
            if !matches!(again, Err(false)) {
                self.readers_waiting.fetch_sub(1, Ordering::AcqRel);
                return again.ok();
            }
            struct Waiting<'a>(&'a AtomicUsize);
            impl Drop for Waiting<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::AcqRel);
                }
            }
            let _waiting = Waiting(&self.readers_waiting);
            ready.await;
        }
    }

    /// Closes the queue: publishing fails from now on; readers get what is left, then `None`.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.has_items.notify_waiters();
        self.has_room.notify_waiters();
    }

    /// Takes out what is left.
    pub(super) fn drain(&self) -> Vec<T> {
        let left = self.lock().items.drain(..).collect();
        self.has_room.notify_waiters();
        left
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_item_arrives_once_in_order_per_publisher_with_backpressure() {
        let q = Arc::new(Queue::new(8));
        let mut writers = Vec::new();
        for w in 0..4u64 {
            let q = Arc::clone(&q);
            writers.push(tokio::spawn(async move {
                for i in 0..2_000u64 {
                    q.push((w, i)).await.unwrap();
                }
            }));
        }
        let mut readers = Vec::new();
        for _ in 0..2 {
            let q = Arc::clone(&q);
            readers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(x) = q.pop().await {
                    got.push(x);
                }
                got
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        // Let the readers empty it, then close.
        while !q.lock().items.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        q.close();
        assert!(q.drain().is_empty());
        let mut all = Vec::new();
        for r in readers {
            let got = r.await.unwrap();
            // Per publisher, each reader sees items in order.
            for w in 0..4u64 {
                let mine: Vec<u64> = got.iter().filter(|x| x.0 == w).map(|x| x.1).collect();
                assert!(mine.windows(2).all(|p| p[0] < p[1]));
            }
            all.extend(got);
        }
        all.sort_unstable();
        assert_eq!(all.len(), 8_000);
        all.dedup();
        assert_eq!(all.len(), 8_000);
    }

    #[tokio::test]
    async fn full_queue_waits_closed_queue_refuses_and_hands_back_what_is_left() {
        let q = Arc::new(Queue::new(2));
        q.push(1).await.unwrap();
        q.push(2).await.unwrap();
        assert!(matches!(q.try_push(3), Err(TryPushError::Full(3))));
        let waiting = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.push(3).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // One taken leaves the queue at half: the waiting publisher gets its room.
        assert_eq!(q.try_pop().ok(), Some(1));
        waiting.await.unwrap().unwrap();
        q.close();
        assert!(matches!(q.try_push(4), Err(TryPushError::Closed(4))));
        // Readers get what is left, then the end.
        assert_eq!(q.pop().await, Some(2));
        assert_eq!(q.drain(), vec![3]);
        assert_eq!(q.pop().await, None);
        // A cancelled wait leaves no count behind.
        let q = Queue::new(1);
        q.try_push(0).ok();
        let _ = tokio::time::timeout(Duration::from_millis(5), q.push(1)).await;
        assert_eq!(q.writers_waiting.load(Ordering::Relaxed), 0);
        let q: Queue<u8> = Queue::new(1);
        let _ = tokio::time::timeout(Duration::from_millis(5), q.pop()).await;
        assert_eq!(q.readers_waiting.load(Ordering::Relaxed), 0);
    }
}
