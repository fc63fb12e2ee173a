//! [`AmqpBus`]: kumi's `Bus` over RabbitMQ (AMQP 0-9-1, lapin).
//!
//! - Topology as [`crate::topology`] describes (WIRE.md §5).
//! - Each route consumes on its own channel with `basic.qos` prefetch = the route's concurrency,
//!   and a semaphore bounds the handlers it runs; a message is acked only after its handler
//!   succeeded (or after its retry / dead letter was confirmed by the broker).
//! - Failures retry through the route's retry queue (per-message TTL = the backoff delay, then
//!   dead-lettered back to the route's queue), so a failing message never blocks the others;
//!   exhausted, rejected and undecodable messages are published to the dead-letter topic (`dlq.<topic>`
//!   unless the route names one) with kumi's dead-letter headers, then acked.
//! - Publishing is persistent (`delivery_mode` 2) with publisher confirms: `publish` returns once
//!   the broker confirmed. Events are published without `mandatory`: as in tomodachi, an event on a
//!   topic nobody is bound to is dropped by RabbitMQ and is not an error. A broker nack, a closed
//!   channel or a lost connection is an error.
//! - Requests use RabbitMQ direct reply-to with `mandatory`, so a request nobody is bound to comes
//!   back (`basic.return`) and fails fast with [`ErrorKind::NoResponders`].
//! - A supervisor ([`crate::reconnect`]) reconnects with backoff after a lost connection; consumers
//!   re-declare their queues and resume.
//! - Shutdown cancels the consumers, lets in-flight handlers finish and settle until the deadline,
//!   then closes the connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use kumi_core::bus::{validate_topic, Bus, Capabilities, DrainReport, Reply, Subscription};
use kumi_core::{Error, ErrorKind, Outgoing, Result};
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::headers::{self, short};
use crate::topology::{self, routing_key};
use crate::url::AmqpUrl;

/// The direct reply-to pseudo queue.
pub(crate) const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Pending requests by correlation id.
pub(crate) type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<(BasicProperties, Vec<u8>)>>>>;

/// One live connection with its shared channels.
pub(crate) struct Link {
    pub(crate) connection: Connection,
    /// Confirm-mode channel for events, retries, dead letters and replies.
    pub(crate) publisher: Channel,
    /// Confirm-mode channel consuming direct reply-to, for requests.
    pub(crate) rpc: Channel,
}

pub(crate) struct Inner {
    pub(crate) url: AmqpUrl,
    pub(crate) link: watch::Sender<Option<Arc<Link>>>,
    pub(crate) pending: Pending,
    pub(crate) cancel: CancellationToken,
    pub(crate) stopped: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) consumers: TaskTracker,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) settled: AtomicUsize,
    pub(crate) draining: AtomicBool,
    pub(crate) closed: AtomicBool,
}

/// A RabbitMQ connection serving kumi routes. Cheap to clone.
#[derive(Clone)]
pub struct AmqpBus {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBus")
            .field("url", &self.inner.url.redacted)
            .finish()
    }
}

/// The TLS settings of `url` beyond the defaults (a CA, a client certificate), read from their
/// PEM files; `None` when there are none.
fn tls_config(url: &AmqpUrl) -> Result<Option<lapin::tcp::OwnedTLSConfig>> {
    if url.tls_ca.is_none() && url.tls_client.is_none() {
        return Ok(None);
    }
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            Error::config(format!(
                "bus URL '{}': cannot read {what} {}",
                url.redacted,
                path.display()
            ))
            .with_source(e)
        })
    };
    let cert_chain = match &url.tls_ca {
        Some(path) => {
            let pem = String::from_utf8(read("tls_ca", path)?).ok().filter(|pem| {
                // The client skips what it cannot parse: a file without a certificate would
                // only show later, as an unknown issuer.
                pem.contains("-----BEGIN CERTIFICATE-----")
            });
            Some(pem.ok_or_else(|| {
                Error::config(format!(
                    "bus URL '{}': tls_ca {} holds no PEM certificate",
                    url.redacted,
                    path.display()
                ))
            })?)
        }
        None => None,
    };
    let identity = match &url.tls_client {
        Some((cert, key)) => Some(lapin::tcp::OwnedIdentity::PKCS8 {
            pem: read("tls_cert", cert)?,
            key: read("tls_key", key)?,
        }),
        None => None,
    };
    Ok(Some(lapin::tcp::OwnedTLSConfig {
        identity,
        cert_chain,
    }))
}

fn default_connection_name() -> String {
    kumi_core::identity::connection_name()
}

pub(crate) fn lapin_error(kind: ErrorKind, what: String, e: lapin::Error) -> Error {
    Error::new(kind, what).with_source(e)
}

/// Opens a connection and its shared channels.
pub(crate) async fn open_link(url: &AmqpUrl, pending: &Pending, generation: u64) -> Result<Link> {
    let fail = |what: &str, e: lapin::Error| {
        lapin_error(
            ErrorKind::Connect,
            format!("cannot {what} (RabbitMQ at {})", url.redacted),
            e,
        )
    };
    let name = url.name.clone().unwrap_or_else(default_connection_name);
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let connection = match tls_config(url)? {
        None => Connection::connect(&url.client_url, props).await,
        Some(tls) => {
            lapin::DefaultConnectionBuilder::new()
                .map_err(|e| fail("connect", e))?
                .with_uri_str(url.client_url.clone())
                .with_properties(props)
                .with_tls_config(tls)
                .connect()
                .await
        }
    }
    .map_err(|e| fail("connect", e))?;
    let publisher = connection
        .create_channel()
        .await
        .map_err(|e| fail("open a channel", e))?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| fail("enable publisher confirms", e))?;
    topology::declare_exchange(&publisher, url)
        .await
        .map_err(|e| fail(&format!("declare exchange '{}'", url.exchange), e))?;
    let rpc = connection
        .create_channel()
        .await
        .map_err(|e| fail("open a channel", e))?;
    rpc.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| fail("enable publisher confirms", e))?;
    let mut replies = rpc
        .basic_consume(
            REPLY_TO.into(),
            format!("kumi-replies-{generation}").into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| fail("consume direct replies", e))?;
    let pending = Arc::clone(pending);
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = replies.next().await {
            let Delivery {
                properties, data, ..
            } = delivery;
            let Some(id) = properties.correlation_id().as_ref().map(|c| c.to_string()) else {
                continue;
            };
            let waiter = pending.lock().ok().and_then(|mut p| p.remove(&id));
            if let Some(tx) = waiter {
                let _ = tx.send((properties, data));
            }
        }
    });
    Ok(Link {
        connection,
        publisher,
        rpc,
    })
}

impl AmqpBus {
    /// Connects to the broker `url` names. Fails (naming the URL, credentials removed) if it cannot
    /// be reached; once connected, reconnects by itself (unless `reconnect=false`).
    pub async fn connect(url: &str) -> Result<Self> {
        let url = AmqpUrl::parse(url)?;
        let pending: Pending = Arc::default();
        let link = open_link(&url, &pending, 0).await?;
        let (tx, _) = watch::channel(Some(Arc::new(link)));
        let inner = Arc::new(Inner {
            url,
            link: tx,
            pending,
            cancel: CancellationToken::new(),
            stopped: CancellationToken::new(),
            tracker: TaskTracker::new(),
            consumers: TaskTracker::new(),
            in_flight: AtomicUsize::new(0),
            settled: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        if inner.url.reconnect {
            tokio::spawn(crate::reconnect::supervise(Arc::clone(&inner)));
        }
        Ok(Self { inner })
    }
}

impl Inner {
    pub(crate) fn check_open(&self, topic: &str) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!(
                    "AMQP bus {} is stopped; cannot send on '{topic}'",
                    self.url.redacted
                ),
            ));
        }
        Ok(())
    }

    /// The live link; while reconnecting, waits for it up to `wait`.
    pub(crate) async fn current(&self, wait: Duration, topic: &str) -> Result<Arc<Link>> {
        if let Some(l) = self.link.borrow().as_ref() {
            if l.connection.status().connected() {
                return Ok(Arc::clone(l));
            }
        }
        // Without the supervisor nothing will come back: fail at once.
        let wait = if self.url.reconnect {
            wait
        } else {
            Duration::ZERO
        };
        let mut rx = self.link.subscribe();
        let found = tokio::time::timeout(wait, async {
            loop {
                if let Some(l) = rx.borrow_and_update().as_ref() {
                    if l.connection.status().connected() {
                        return Some(Arc::clone(l));
                    }
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return None },
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    () = self.stopped.cancelled() => return None,
                }
            }
        })
        .await;
        match found {
            Ok(Some(l)) => Ok(l),
            _ => {
                self.check_open(topic)?;
                Err(Error::new(
                    ErrorKind::Publish,
                    format!(
                        "cannot send on '{topic}': not connected to RabbitMQ at {} (reconnecting)",
                        self.url.redacted
                    ),
                ))
            }
        }
    }

    /// Publishes and waits for the broker's confirm.
    pub(crate) async fn publish_confirmed(
        &self,
        channel: &Channel,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<Confirmation> {
        let fail = |e: lapin::Error| {
            lapin_error(
                ErrorKind::Publish,
                format!(
                    "cannot publish to '{routing_key}' on RabbitMQ at {}",
                    self.url.redacted
                ),
                e,
            )
        };
        let confirm = channel
            .basic_publish(
                exchange.into(),
                short("routing key", routing_key)?,
                BasicPublishOptions {
                    mandatory,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await
            .map_err(fail)?
            .await
            .map_err(fail)?;
        if let Confirmation::Nack(_) = confirm {
            return Err(Error::new(
                ErrorKind::Publish,
                format!(
                    "RabbitMQ at {} refused (nacked) the message to '{routing_key}'",
                    self.url.redacted
                ),
            ));
        }
        Ok(confirm)
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
        c.reconnect = self.inner.url.reconnect;
        c
    }

    fn url(&self) -> &str {
        &self.inner.url.redacted
    }

    async fn subscribe(&self, sub: Subscription) -> Result<String> {
        if self.inner.draining.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!("AMQP bus is stopping; cannot subscribe to '{}'", sub.topic),
            ));
        }
        crate::consumer::start(&self.inner, sub).await
    }

    async fn publish(&self, message: Outgoing) -> Result<()> {
        let inner = &self.inner;
        inner.check_open(&message.topic)?;
        validate_topic(&message.topic)?;
        let link = inner
            .current(Duration::from_secs(5), &message.topic)
            .await?;
        let props = headers::properties(&message)?;
        inner
            .publish_confirmed(
                &link.publisher,
                &inner.url.exchange,
                &routing_key(&inner.url, &message.topic),
                &message.body,
                props,
                false,
            )
            .await
            .map(|_| ())
    }

    async fn request(&self, message: Outgoing, timeout: Duration) -> Result<Reply> {
        crate::rpc::request(&self.inner, message, timeout).await
    }

    async fn shutdown(&self, deadline: Instant) -> Result<DrainReport> {
        let inner = &self.inner;
        if inner.draining.swap(true, Ordering::AcqRel) {
            return Ok(DrainReport::default());
        }
        let settled_before = inner.settled.load(Ordering::Relaxed);
        inner.cancel.cancel();
        let deadline = tokio::time::Instant::from_std(deadline);
        inner.consumers.close();
        let _ = tokio::time::timeout_at(deadline, inner.consumers.wait()).await;
        inner.tracker.close();
        let _ = tokio::time::timeout_at(deadline, inner.tracker.wait()).await;
        let abandoned = inner.in_flight.load(Ordering::Acquire);
        inner.closed.store(true, Ordering::Release);
        inner.stopped.cancel();
        let link = inner.link.send_replace(None);
        if let Some(link) = link {
            let close = link.connection.close(200, "kumi bus shutdown".into());
            let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
        }
        if abandoned > 0 {
            tracing::error!(
                abandoned,
                bus = %inner.url.redacted,
                "amqp: drain deadline passed with handlers still running (their messages stay unacked and are redelivered)"
            );
        }
        Ok(DrainReport {
            settled: inner.settled.load(Ordering::Relaxed) - settled_before,
            abandoned,
        })
    }
}

/// Sends a handler's reply to a request's `reply_to`.
pub(crate) async fn send_reply(
    inner: &Inner,
    link: &Link,
    reply_to: &str,
    correlation_id: Option<&str>,
    reply: Reply,
) {
    let mut table = match headers::table(&reply.headers) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("amqp: reply headers: {e}");
            FieldTable::default()
        }
    };
    if let Some((code, text)) = &reply.error {
        table.insert(
            headers::SERVICE_ERROR.into(),
            lapin::types::AMQPValue::LongString(text.as_str().into()),
        );
        table.insert(
            headers::SERVICE_ERROR_CODE.into(),
            lapin::types::AMQPValue::LongString(code.to_string().into()),
        );
    }
    let mut props = BasicProperties::default().with_headers(table);
    if let Some(c) = correlation_id.and_then(|c| short("correlation id", c).ok()) {
        props = props.with_correlation_id(c);
    }
    let body: Bytes = reply.body;
    if let Err(e) = inner
        .publish_confirmed(&link.publisher, "", reply_to, &body, props, false)
        .await
    {
        tracing::error!("amqp: cannot send reply: {e}");
    }
}
