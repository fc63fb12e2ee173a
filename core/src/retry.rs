//! Retry policy: how many attempts a message gets and how long to wait between them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Exponential backoff with jitter, bounded by a number of attempts.
///
/// The delay before attempt `n + 1` is `initial_backoff * multiplier^(n - 1)`, capped at
/// `max_backoff`; with jitter on, a uniformly random value between half of that and all of it (so
/// retries of many messages that failed together spread out).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first delivery included. `1` means no retry.
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_backoff: Duration,
    /// Upper bound of any delay.
    pub max_backoff: Duration,
    /// Growth factor per attempt.
    pub multiplier: f64,
    /// Randomize each delay within `[delay / 2, delay]`.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// 5 attempts, 100 ms doubling up to 30 s, with jitter.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// No retries: the first failure dead-letters.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// True when a message that failed on `attempt` may be tried again.
    pub fn should_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The delay before retrying a message that failed on `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(63) as i32;
        let base = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let capped = base.min(self.max_backoff.as_secs_f64()).max(0.0);
        let secs = if self.jitter {
            capped * (0.5 + fastrand::f64() * 0.5)
        } else {
            capped
        };
        Duration::from_secs_f64(secs)
    }
}

/// Bounds how many messages of one route wait in process for a retry (or for another try at
/// publishing their dead letter). A route gets one slot per unit of concurrency; a waiting
/// message holds one, and when all are taken the next one waits for a slot, which pauses the
/// route instead of piling up waiting messages.
#[derive(Debug, Clone)]
pub struct RetrySlots(Arc<Semaphore>);

impl RetrySlots {
    /// `n` slots.
    pub fn new(n: usize) -> Self {
        Self(Arc::new(Semaphore::new(n)))
    }

    /// Waits for a free slot and takes it until the [`RetrySlot`] is dropped.
    pub async fn acquire(&self) -> RetrySlot {
        let permit = Arc::clone(&self.0)
            .acquire_owned()
            .await
            .expect("retry slots are never closed");
        RetrySlot(permit)
    }

    /// Free slots now.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }
}

/// One taken slot of a route's [`RetrySlots`], freed when dropped.
#[derive(Debug)]
pub struct RetrySlot(#[allow(dead_code)] OwnedSemaphorePermit);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retry_slots_bound_waiting_messages() {
        let slots = RetrySlots::new(1);
        let first = slots.acquire().await;
        assert_eq!(slots.available(), 0);
        // The only slot is held: a second waiter waits until the first is dropped.
        let second = tokio::spawn({
            let slots = slots.clone();
            async move { drop(slots.acquire().await) }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        drop(first);
        second.await.unwrap();
        assert_eq!(slots.available(), 1);
    }

    #[test]
    fn backoff_grows_caps_and_jitters_within_bounds() {
        let p = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(40), Duration::from_secs(30));
        let j = RetryPolicy::default();
        for _ in 0..200 {
            let d = j.backoff(3);
            assert!(
                d >= Duration::from_millis(200) && d <= Duration::from_millis(400),
                "{d:?}"
            );
        }
        assert!(p.should_retry(4));
        assert!(!p.should_retry(5));
        assert!(!RetryPolicy::none().should_retry(1));
    }
}
