//! [`AmqpBus`]: kumi's `Bus` over RabbitMQ (AMQP 0-9-1, lapin).
//!
//! - Topology as [`crate::topology`] describes (`docs/wire.md`, "AMQP").
//! - Each route consumes on its own channel with `basic.qos` prefetch = the route's concurrency
//!   ([`crate::consumer`]); the consume runtime runs its handlers within that bound, and a
//!   message is acked only after its handler succeeded, or after its retry or dead letter was
//!   confirmed by the broker ([`crate::settle`]).
//! - Publishing is persistent (`delivery_mode` 2) with publisher confirms: `publish` returns once
//!   the broker confirmed. Events are published without `mandatory`: as in tomodachi, an event on a
//!   topic nobody is bound to is dropped by RabbitMQ and is not an error. A broker nack, a closed
//!   channel or a lost connection is an error.
//! - Requests use RabbitMQ direct reply-to with `mandatory` ([`crate::rpc`]), so a request nobody
//!   is bound to comes back (`basic.return`) and fails fast with "no responders".
//! - A supervisor ([`crate::connection`]) reconnects with backoff after a lost connection;
//!   consumers re-declare their queues and resume.
//! - Shutdown: the runtime drains the routes (consumers cancelled, in-flight handlers finish and
//!   settle until the deadline), then the connection closes; what RabbitMQ sent and nobody
//!   settled is redelivered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kumi_core::bus::{validate_topic, Bus, Capabilities, ConnectOptions, Subscribed, Subscription};
use kumi_core::consume::Consumer;
use kumi_core::settlement::{DrainReport, Reply};
use kumi_core::{Health, Outgoing, Result};

use crate::connection::Connection;
use crate::consumer::{open, AmqpDeliveries};
use crate::headers;
use crate::topology::{self, routing_key};
use crate::url::AmqpUrl;

/// A RabbitMQ connection serving kumi routes. Cheap to clone.
#[derive(Clone)]
pub struct AmqpBus {
    conn: Arc<Connection>,
}

impl std::fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBus")
            .field("url", &self.conn.url.redacted)
            .finish()
    }
}

impl AmqpBus {
    /// Connects to the broker `url` names. Fails (naming the URL, credentials removed) if it cannot
    /// be reached; once connected, reconnects by itself (unless `reconnect=false`).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(ConnectOptions::new(url)).await
    }

    /// [`AmqpBus::connect`] with a connection name (the URL's `name=` wins).
    pub async fn connect_with(options: ConnectOptions) -> Result<Self> {
        let url = AmqpUrl::parse(&options.url)?;
        let conn = Connection::open(url, options.name_or_default()).await?;
        Ok(Self { conn })
    }
}

#[async_trait]
impl Bus for AmqpBus {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::default();
        c.persistent = true;
        c.request_reply = true;
        c.no_responders = true;
        c.wildcards = true;
        c.consumer_groups = true;
        c.redelivery = true;
        c.dead_letter = true;
        c.ordered = true;
        c.duplicates_possible = true;
        c.durable = true;
        c.reconnect = self.conn.url.reconnect;
        c
    }

    fn url(&self) -> &str {
        &self.conn.url.redacted
    }

    async fn subscribe(&self, sub: Subscription) -> Result<Subscribed> {
        self.conn.check_open(&sub.topic)?;
        let plan = topology::plan(&self.conn.url, &sub)?;
        let link = self
            .conn
            .current(Duration::from_secs(5), &sub.topic)
            .await?;
        let first = open(&self.conn, &link, &sub, &plan).await?;
        let listens = format!(
            "queue {} bound to {} with '{}' (prefetch {})",
            plan.name, self.conn.url.exchange, plan.binding, sub.concurrency
        );
        Ok(Subscribed {
            listens,
            consumer: Consumer::new(AmqpDeliveries::new(
                Arc::clone(&self.conn),
                sub,
                plan,
                first,
            )),
        })
    }

    async fn publish(&self, message: Outgoing) -> Result<()> {
        let conn = &self.conn;
        conn.check_open(&message.topic)?;
        validate_topic(&message.topic)?;
        let link = conn.current(Duration::from_secs(5), &message.topic).await?;
        let props = headers::properties(&message)?;
        conn.publish_confirmed(
            &link.publisher,
            &conn.url.exchange,
            &routing_key(&conn.url, &message.topic),
            &message.body,
            props,
            false,
        )
        .await
        .map(|_| ())
    }

    async fn request(&self, message: Outgoing, timeout: Duration) -> Result<Reply> {
        crate::rpc::request(&self.conn, message, timeout).await
    }

    fn attach_health(&self, health: Health) {
        let _ = self.conn.health.set(health);
    }

    async fn shutdown(&self, _deadline: Instant) -> Result<DrainReport> {
        self.conn.close().await;
        Ok(DrainReport::default())
    }
}
