//! [`NatsBus`]: kumi's `Bus` over NATS.
//!
//! - Event and request routes on core NATS subscribe with a queue group (see
//!   [`crate::topology`]); JetStream routes consume through a durable pull consumer. Either way
//!   the route's deliveries ([`crate::consumer`]) go to the consume runtime, which runs the
//!   handlers within the route's concurrency bound, retries and drains; [`crate::settle`] says
//!   how each settles.
//! - Core NATS delivers at most once: a retry waits in process, and one still waiting when the
//!   process stops is lost; a route paused long enough for the client's buffer to fill loses
//!   messages as a slow consumer. Use JetStream routes for at-least-once delivery across
//!   restarts.
//! - Requests use NATS request/reply: "no responders" (the server's 503 status) and "timed out" are
//!   distinct errors; failed handlers reply with the ADR-32 error headers. Every service on the
//!   bus is an ADR-32 service ([`crate::service_api`]).
//! - Shutdown: the runtime drains the routes (subscriptions are drained, so what the client
//!   already buffered is still handled); then the discovery responders stop, what is buffered
//!   (replies, dead letters, last publishes) is flushed and the connection closes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kumi_core::bus::{Bus, Capabilities, Subscribed, Subscription};
use kumi_core::consume::Consumer;
use kumi_core::settlement::{DrainReport, Reply};
use kumi_core::{Error, ErrorKind, Health, Outgoing, Result};

use crate::connection::Connection;
use crate::consumer::{CoreDeliveries, PullDeliveries};
use crate::service_api::Registry;
use crate::topology::{core_plan, jetstream_of, pull_consumer};
use crate::url::NatsUrl;

/// A NATS connection serving kumi routes. Cheap to clone.
#[derive(Clone)]
pub struct NatsBus {
    conn: Arc<Connection>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("url", &self.conn.url.redacted)
            .finish()
    }
}

impl NatsBus {
    /// Connects to the servers `url` names. Fails (naming the URL) if none can be reached; once
    /// connected, the client reconnects by itself and logs connection events.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(kumi_core::bus::ConnectOptions::new(url)).await
    }

    /// [`NatsBus::connect`] with a connection name (the URL's `name=` wins).
    pub async fn connect_with(options: kumi_core::bus::ConnectOptions) -> Result<Self> {
        let url = NatsUrl::parse(&options.url)?;
        let conn = Connection::open(url, options.name_or_default()).await?;
        let kept = crate::topology::provision_dead_letters(&conn.client, &conn.url).await?;
        conn.keeps_dead_letters
            .store(kept, std::sync::atomic::Ordering::Release);
        Ok(Self {
            registry: Arc::new(Registry::new(conn.client.clone())),
            conn: Arc::new(conn),
        })
    }

    /// Resets the ADR-32 STATS counters of every instance of service `name` on this connection;
    /// returns how many endpoints were reset.
    pub fn reset_stats(&self, name: &str) -> usize {
        self.registry.reset(name)
    }

    /// The underlying async-nats client (for NATS features kumi does not wrap).
    pub fn client(&self) -> &async_nats::Client {
        &self.conn.client
    }

    fn subscribe_error(&self, subject: &str, e: impl Into<kumi_core::BoxError>) -> Error {
        Error::new(
            ErrorKind::Connect,
            format!(
                "cannot subscribe to '{subject}' on {}",
                self.conn.url.redacted
            ),
        )
        .with_source(e)
    }
}

#[async_trait]
impl Bus for NatsBus {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::default();
        c.request_reply = true;
        c.no_responders = true;
        c.wildcards = true;
        c.consumer_groups = true;
        c.redelivery = true;
        c.dead_letter = true;
        c.ordered = true;
        c.reconnect = true;
        if self.conn.url.jetstream {
            c.persistent = true;
            c.durable = true;
            c.duplicates_possible = true;
            c.retry_holds_slot = true;
        }
        c
    }

    fn url(&self) -> &str {
        &self.conn.url.redacted
    }

    fn attach_health(&self, health: Health) {
        let _ = self.conn.health.set(health);
    }

    async fn subscribe(&self, sub: Subscription) -> Result<Subscribed> {
        self.conn.check_open(&sub.topic)?;
        let jetstream = jetstream_of(&sub, self.conn.url.jetstream)?;
        let service = self.registry.service(&sub.service).await?;
        if let Some(js) = jetstream {
            let (messages, listens) = pull_consumer(&self.conn.client, &sub, &js).await?;
            let deliveries =
                PullDeliveries::new(messages, Arc::clone(&self.conn), js.ack_wait, &sub.topic);
            return Ok(Subscribed {
                listens,
                consumer: Consumer::new(deliveries),
            });
        }
        let plan = core_plan(&sub)?;
        let endpoint = match &plan.endpoint {
            Some(options) => Some(Registry::new_endpoint(
                &service,
                &sub.name,
                &plan.subject,
                plan.queue_group.clone(),
                options,
                Arc::clone(&sub.stats),
            )?),
            None => None,
        };
        let client = &self.conn.client;
        let subject = plan.subject.clone();
        let nats_sub = match plan.queue_group.clone() {
            Some(group) => client.queue_subscribe(subject.clone(), group).await,
            None => client.subscribe(subject.clone()).await,
        }
        .map_err(|e| self.subscribe_error(&subject, e))?;
        // Make sure the server has the subscription before the service reports started.
        self.conn
            .sync_with_server()
            .await
            .map_err(|e| self.subscribe_error(&subject, e))?;
        if let Some(endpoint) = &endpoint {
            Registry::list_endpoint(&service, endpoint);
        }
        Ok(Subscribed {
            listens: plan.listens(),
            consumer: Consumer::new(CoreDeliveries::new(
                nats_sub,
                Arc::clone(&self.conn),
                &sub.topic,
            )),
        })
    }

    async fn publish(&self, message: Outgoing) -> Result<()> {
        self.conn.publish(&message).await
    }

    async fn request(&self, message: Outgoing, timeout: Duration) -> Result<Reply> {
        self.conn.request(message, timeout).await
    }

    async fn shutdown(&self, deadline: Instant) -> Result<DrainReport> {
        self.registry
            .stop(tokio::time::Instant::from_std(deadline))
            .await;
        self.conn.close().await;
        Ok(DrainReport::default())
    }
}
