//! [`SnsSqsBus`]: kumi's `Bus` over SNS topics and SQS queues.
//!
//! - Publishing is an SNS `Publish` to the topic's ARN (see [`crate::connection`]).
//! - Each event route gets a queue subscribed to its topic ([`crate::topology`]); its deliveries
//!   ([`crate::consumer`]) go to the consume runtime, and [`crate::settle`] says how each
//!   settles.
//! - Not offered: request/reply (use NATS or AMQP) and wildcard subscriptions (SNS has none); both
//!   are startup errors naming the route.
//! - Shutdown: the runtime drains the routes (polling stops, in-flight handlers finish and delete
//!   their messages until the deadline; messages not finished are not deleted and become visible
//!   again); then what is being handed back reaches SQS, and broadcast routes' per-instance queues
//!   are removed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kumi_core::bus::{Bus, Capabilities, Subscribed, Subscription};
use kumi_core::consume::Consumer;
use kumi_core::settlement::{DrainReport, Reply, RouteKind};
use kumi_core::{Error, ErrorKind, Health, Outgoing, Result};

use crate::connection::Connection;
use crate::consumer::SqsDeliveries;
use crate::naming;
use crate::settle::RouteQueue;
use crate::topology::provision;
use crate::url::SnsSqsUrl;

/// An SNS+SQS connection serving kumi routes. Cheap to clone.
#[derive(Clone)]
pub struct SnsSqsBus {
    conn: Arc<Connection>,
}

impl std::fmt::Debug for SnsSqsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsSqsBus")
            .field("url", &self.conn.topology.url.redacted)
            .finish()
    }
}

impl SnsSqsBus {
    /// Builds the SNS and SQS clients from `url` and checks the endpoint answers (an SQS
    /// `ListQueues` of one; an access-denied answer counts as reachable). Fails naming the URL
    /// (credentials removed) when it cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        let url = SnsSqsUrl::parse(url)?;
        Ok(Self {
            conn: Arc::new(Connection::open(url).await?),
        })
    }

    /// The SNS client (for SNS features kumi does not wrap).
    pub fn sns_client(&self) -> &aws_sdk_sns::Client {
        &self.conn.topology.sns
    }

    /// The SQS client (for SQS features kumi does not wrap).
    pub fn sqs_client(&self) -> &aws_sdk_sqs::Client {
        &self.conn.topology.sqs
    }

    /// The SNS topic name kumi uses for `topic` (prefix, encoding, `.fifo` when `fifo`).
    pub fn topic_name(&self, topic: &str, fifo: bool) -> String {
        naming::topic_name(&self.conn.topology.url.topic_prefix, topic, fifo)
    }
}

/// True when `topic` has a wildcard token.
fn has_wildcard(topic: &str) -> bool {
    topic.split('.').any(|t| matches!(t, "*" | ">" | "#"))
}

#[async_trait]
impl Bus for SnsSqsBus {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::default();
        c.persistent = true;
        c.durable = true;
        c.consumer_groups = true;
        c.redelivery = true;
        c.dead_letter = true;
        c.duplicates_possible = true;
        c.ordered = self.conn.topology.url.fifo;
        c.reconnect = true;
        c
    }

    fn url(&self) -> &str {
        &self.conn.topology.url.redacted
    }

    async fn subscribe(&self, sub: Subscription) -> Result<Subscribed> {
        let route = &sub.route;
        self.conn.check_open(&sub.topic)?;
        if sub.kind == RouteKind::Request {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "route '{route}' answers requests on '{}', but SNS+SQS has no request/reply; serve it over NATS or AMQP (or make it an event route)",
                    sub.topic
                ),
            ));
        }
        if has_wildcard(&sub.topic) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "route '{route}' subscribes to the pattern '{}', but SNS topics have no wildcards; subscribe to each concrete topic",
                    sub.topic
                ),
            ));
        }
        let provisioned = provision(&self.conn.topology, &sub).await?;
        if let Some(ephemeral) = provisioned.ephemeral {
            self.conn
                .ephemeral
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ephemeral);
        }
        let queue = Arc::new(RouteQueue {
            fifo: provisioned.queue.name.ends_with(naming::FIFO_SUFFIX),
            url: provisioned.queue.url,
            name: provisioned.queue.name,
            topic: sub.topic.as_str().into(),
            visibility: provisioned.visibility,
        });
        Ok(Subscribed {
            listens: provisioned.listens,
            consumer: Consumer::new(SqsDeliveries::new(Arc::clone(&self.conn), queue)),
        })
    }

    async fn publish(&self, message: Outgoing) -> Result<()> {
        self.conn.check_open(&message.topic)?;
        self.conn.publish(&message).await
    }

    async fn request(&self, message: Outgoing, _timeout: Duration) -> Result<Reply> {
        self.conn.check_open(&message.topic)?;
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "cannot send a request on '{}': SNS+SQS has no request/reply; use a NATS or AMQP bus for requests",
                message.topic
            ),
        ))
    }

    fn attach_health(&self, health: Health) {
        let _ = self.conn.health.set(health);
    }

    async fn shutdown(&self, deadline: Instant) -> Result<DrainReport> {
        let conn = &self.conn;
        conn.close();
        conn.give_back.close();
        let deadline = tokio::time::Instant::from_std(deadline);
        let _ = tokio::time::timeout_at(deadline, conn.give_back.wait()).await;
        let ephemeral =
            std::mem::take(&mut *conn.ephemeral.lock().unwrap_or_else(|e| e.into_inner()));
        for (sub_arn, queue_url) in ephemeral {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                conn.topology.remove(&sub_arn, &queue_url),
            )
            .await;
        }
        Ok(DrainReport::default())
    }
}
