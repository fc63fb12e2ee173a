//! The reconnect supervisor: lapin does not reconnect by itself.
//!
//! It watches the connection; when it is lost it clears the bus's link (publishers wait for a new
//! one, up to a few seconds), reconnects with exponential backoff (100 ms doubling to 5 s, with
//! jitter) until it succeeds or the bus stops, and publishes the new link; each route's consumer
//! sees the new generation, re-declares its queue and binding, and resumes consuming. Messages that
//! were unacked on the lost connection are redelivered by RabbitMQ (at-least-once: a handler may
//! see a message again).

use std::sync::Arc;
use std::time::Duration;

use crate::bus::{open_link, Inner};

pub(crate) async fn supervise(inner: Arc<Inner>) {
    let mut generation = 0u64;
    loop {
        // Wait for the current link to fail.
        loop {
            let healthy = inner.link.borrow().as_ref().is_some_and(|l| {
                l.connection.status().connected()
                    && l.publisher.status().connected()
                    && l.rpc.status().connected()
            });
            if !healthy {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = inner.stopped.cancelled() => return,
            }
        }
        if inner.stopped.is_cancelled() {
            return;
        }
        tracing::warn!(bus = %inner.url.redacted, "amqp: connection lost; reconnecting");
        if let Some(old) = inner.link.send_replace(None) {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                old.connection.close(320, "kumi: reconnecting".into()),
            )
            .await;
        }
        // Fail the requests waiting on the lost connection.
        if let Ok(mut p) = inner.pending.lock() {
            p.clear();
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            generation += 1;
            match open_link(&inner.url, &inner.pending, generation).await {
                Ok(link) => {
                    tracing::info!(bus = %inner.url.redacted, generation, "amqp: reconnected");
                    inner.link.send_replace(Some(Arc::new(link)));
                    break;
                }
                Err(e) => {
                    tracing::warn!(bus = %inner.url.redacted, "amqp: reconnect failed: {e}");
                    let jitter = backoff.mul_f64(0.5 + fastrand_like() * 0.5);
                    tokio::select! {
                        () = tokio::time::sleep(jitter) => {}
                        () = inner.stopped.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

fn fastrand_like() -> f64 {
    f64::from(uuid::Uuid::new_v4().as_u128() as u32) / f64::from(u32::MAX)
}
