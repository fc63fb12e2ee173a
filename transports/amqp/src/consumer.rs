//! A route's RabbitMQ consumer as [`Deliveries`] for the consume runtime: its own channel with
//! `basic.qos` prefetch = the route's concurrency, its queue (re-)declared, and consuming resumed
//! across lost channels and connections. How each delivery settles is in [`crate::settle`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kumi_core::bus::{Subscription, TopicCache};
use kumi_core::delivery::Deliveries;
use kumi_core::settlement::RouteKind;
use kumi_core::{ErrorKind, Result};
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::connection::{lapin_error, Connection, Link};
use crate::headers;
use crate::settle::{AmqpDelivery, RouteQueue};
use crate::topology::{self, QueuePlan};

/// A route's consumer on one channel.
pub(crate) struct Open {
    channel: Channel,
    consumer: Consumer,
    tag: String,
}

/// Opens the route's channel, declares its queue and starts consuming.
pub(crate) async fn open(
    conn: &Connection,
    link: &Link,
    sub: &Subscription,
    plan: &QueuePlan,
) -> Result<Open> {
    let fail = |what: &str, e: lapin::Error| {
        lapin_error(
            ErrorKind::Connect,
            format!(
                "cannot {what} for '{}' (queue '{}') on RabbitMQ at {}",
                sub.topic, plan.name, conn.url.redacted
            ),
            e,
        )
    };
    let channel = link
        .connection
        .create_channel()
        .await
        .map_err(|e| fail("open a channel", e))?;
    conn.add_channel(channel.clone());
    let prefetch = u16::try_from(sub.concurrency.max(1)).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| fail("set the prefetch", e))?;
    topology::declare(&channel, &conn.url, plan)
        .await
        .map_err(|e| fail("declare the queue and binding", e))?;
    let tag = format!("kumi-{}", uuid::Uuid::new_v4().simple());
    let consumer = channel
        .basic_consume(
            headers::short("queue name", &plan.name)?,
            tag.as_str().into(),
            BasicConsumeOptions {
                exclusive: plan.exclusive,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| fail("start consuming", e))?;
    Ok(Open {
        channel,
        consumer,
        tag,
    })
}

type Reopening = Pin<Box<dyn Future<Output = Option<Open>> + Send>>;

/// A route's deliveries, consumed until the route stops. On stop the consumer is cancelled and
/// the stream ends; messages RabbitMQ had already sent (within the prefetch) and nobody took are
/// redelivered when the channel closes.
pub(crate) struct AmqpDeliveries {
    conn: Arc<Connection>,
    sub: Subscription,
    plan: QueuePlan,
    queue: Arc<RouteQueue>,
    open: Option<Open>,
    /// A reopen in progress, kept across calls (so `next` stays cancel-safe).
    reopening: Option<Reopening>,
    backoff: Duration,
    opened_at: Instant,
    topics: TopicCache,
    stopped: bool,
    /// Stops the renewal of the retry and dead-letter queues when the route stops.
    renewal: Option<DropGuard>,
}

impl AmqpDeliveries {
    pub(crate) fn new(
        conn: Arc<Connection>,
        sub: Subscription,
        plan: QueuePlan,
        first: Open,
    ) -> Self {
        let queue = Arc::new(RouteQueue {
            retry: (sub.kind == RouteKind::Event)
                .then(|| plan.retry_queue.clone())
                .flatten(),
            dead_letter_queue: plan.dead_letter_queue.is_some(),
            kind: sub.kind,
        });
        let expiring = plan.durable
            && !plan.exclusive
            && (plan.retry_queue.is_some() || plan.dead_letter_queue.is_some());
        let renewal = expiring.then(|| {
            let stop = CancellationToken::new();
            tokio::spawn(renew(Arc::clone(&conn), plan.clone(), stop.clone()));
            stop.drop_guard()
        });
        Self {
            conn,
            sub,
            plan,
            queue,
            open: Some(first),
            reopening: None,
            backoff: Duration::from_millis(100),
            opened_at: Instant::now(),
            topics: TopicCache::default(),
            stopped: false,
            renewal,
        }
    }

    /// The channel or the connection went away: reopen after a pause, on the same connection if
    /// it is still healthy (a channel-level error, a deleted queue), else on the one the
    /// supervisor brings back.
    fn lost(&mut self) -> Reopening {
        self.open = None;
        if self.opened_at.elapsed() > Duration::from_secs(30) {
            self.backoff = Duration::from_millis(100);
        }
        tracing::warn!(topic = %self.sub.topic, queue = %self.plan.name, "amqp: consumer lost its channel; resuming");
        let (conn, sub, plan) = (Arc::clone(&self.conn), self.sub.clone(), self.plan.clone());
        let mut backoff = self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
        Box::pin(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = conn.stopped.cancelled() => return None,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                let link = tokio::select! {
                    l = conn.current(Duration::from_secs(3600), &sub.topic) => l,
                    () = conn.stopped.cancelled() => return None,
                };
                let Ok(link) = link else { continue };
                match open(&conn, &link, &sub, &plan).await {
                    Ok(o) => {
                        tracing::info!(topic = %sub.topic, queue = %plan.name, "amqp: consumer resumed");
                        return Some(o);
                    }
                    Err(e) => {
                        tracing::warn!(topic = %sub.topic, "amqp: cannot resume consumer: {e}");
                    }
                }
            }
        })
    }
}

impl Deliveries for AmqpDeliveries {
    type Delivery = AmqpDelivery;

    async fn next(&mut self, _room: usize) -> Option<AmqpDelivery> {
        loop {
            if self.stopped {
                return None;
            }
            if let Some(reopening) = self.reopening.as_mut() {
                let opened = reopening.await;
                self.reopening = None;
                self.open = Some(opened?);
                self.opened_at = Instant::now();
            }
            let open = self.open.as_mut()?;
            match open.consumer.next().await {
                Some(Ok(delivery)) => {
                    let channel = open.channel.clone();
                    return Some(AmqpDelivery::new(
                        delivery,
                        channel,
                        Arc::clone(&self.conn),
                        Arc::clone(&self.queue),
                        &mut self.topics,
                    ));
                }
                Some(Err(e)) => {
                    tracing::warn!(topic = %self.sub.topic, "amqp: consumer error: {e}");
                }
                None => {}
            }
            if self.stopped || self.conn.stopped.is_cancelled() {
                return None;
            }
            if !self.conn.url.reconnect {
                tracing::error!(topic = %self.sub.topic, queue = %self.plan.name, "amqp: consumer lost its channel and reconnect=false; the route stops consuming");
                return None;
            }
            self.reopening = Some(self.lost());
        }
    }

    async fn stop(&mut self) {
        self.stopped = true;
        self.reopening = None;
        self.renewal = None;
        if let Some(open) = &self.open {
            if let Err(e) = open
                .channel
                .basic_cancel(open.tag.as_str().into(), BasicCancelOptions::default())
                .await
            {
                tracing::debug!(topic = %self.sub.topic, "amqp: cancel consumer: {e}");
            }
        }
    }
}

/// Declares the route's retry and dead-letter queues again every
/// [`renew_every`](topology::renew_every) until `stop`: neither ever has a consumer, so without
/// this RabbitMQ would delete them (and the messages in them) once `queue_expires` passed, and
/// retries and dead letters published there would be dropped as unroutable.
async fn renew(conn: Arc<Connection>, plan: QueuePlan, stop: CancellationToken) {
    let every = topology::renew_every(&conn.url);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
            () = conn.stopped.cancelled() => return,
        }
        // While disconnected the consumer declares them anyway when it resumes.
        let Ok(link) = conn.current(Duration::from_secs(1), &plan.name).await else {
            continue;
        };
        // A channel of its own: a failed declare closes the channel it ran on.
        let renewed = async {
            let channel = link.connection.create_channel().await?;
            let declared = topology::declare_companions(&channel, &conn.url, &plan).await;
            let _ = channel.close(200, "renewed".into()).await;
            declared
        };
        if let Err(e) = renewed.await {
            tracing::warn!(queue = %plan.name, "amqp: cannot declare the retry and dead-letter queues again (they may expire): {e}");
        }
    }
}
