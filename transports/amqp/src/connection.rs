//! The connection a bus works on: connecting (TLS, a named connection with a confirm-mode
//! publisher channel and a direct reply-to channel), confirmed publishing, and the reconnect
//! supervisor — lapin does not reconnect by itself.
//!
//! The supervisor watches the connection; when it is lost it clears the link (publishers wait
//! for a new one, up to a few seconds), reconnects with exponential backoff (100 ms doubling to
//! 5 s, with jitter) until it succeeds or the bus closes, and publishes the new link; each
//! route's consumer sees it, re-declares its queue and binding, and resumes consuming. Messages
//! that were unacked on the lost connection are redelivered by RabbitMQ (at-least-once: a handler
//! may see a message again).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use kumi_core::settlement::Reply;
use kumi_core::{Error, ErrorKind, Health, Result};
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection as LapinConnection, ConnectionProperties,
};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::headers::{self, short};
use crate::topology;
use crate::url::AmqpUrl;

/// The direct reply-to pseudo queue.
pub(crate) const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Pending requests by correlation id.
pub(crate) type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<(BasicProperties, Vec<u8>)>>>>;

/// One live connection with its shared channels.
pub(crate) struct Link {
    pub(crate) connection: LapinConnection,
    /// Confirm-mode channel for events, retries, dead letters and replies.
    pub(crate) publisher: Channel,
    /// Confirm-mode channel consuming direct reply-to, for requests.
    pub(crate) rpc: Channel,
}

/// The bus's connection to RabbitMQ: the live [`Link`] (replaced by the supervisor after a
/// loss), the requests waiting for replies, and whether the bus is closed.
pub(crate) struct Connection {
    pub(crate) url: AmqpUrl,
    pub(crate) link: watch::Sender<Option<Arc<Link>>>,
    pub(crate) pending: Pending,
    /// Cancelled when the bus closes: the supervisor and the consumers stop.
    pub(crate) stopped: CancellationToken,
    closed: AtomicBool,
    /// The routes' consumer channels, closed one by one before the connection on shutdown (a
    /// channel the client library closes on its own after the connection reports an error).
    channels: Mutex<Vec<Channel>>,
    /// The process health, once an app attached it: not ready while the connection is lost.
    pub(crate) health: OnceLock<Health>,
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

pub(crate) fn lapin_error(kind: ErrorKind, what: String, e: lapin::Error) -> Error {
    Error::new(kind, what).with_source(e)
}

/// Opens a connection and its shared channels.
async fn open_link(url: &AmqpUrl, name: &str, pending: &Pending, generation: u64) -> Result<Link> {
    let fail = |what: &str, e: lapin::Error| {
        lapin_error(
            ErrorKind::Connect,
            format!("cannot {what} (RabbitMQ at {})", url.redacted),
            e,
        )
    };
    let name = url.name.clone().unwrap_or_else(|| name.to_owned());
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let connection = match tls_config(url)? {
        None => LapinConnection::connect(&url.client_url, props).await,
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

impl Connection {
    /// Connects to the broker `url` names, naming the connection `name` unless the URL names it.
    /// Fails (naming the URL, credentials removed) if it cannot be reached; once connected, a
    /// supervisor reconnects (unless `reconnect=false`).
    pub(crate) async fn open(url: AmqpUrl, name: String) -> Result<Arc<Self>> {
        let pending: Pending = Arc::default();
        let link = open_link(&url, &name, &pending, 0).await?;
        let (tx, _) = watch::channel(Some(Arc::new(link)));
        let conn = Arc::new(Connection {
            url,
            link: tx,
            pending,
            stopped: CancellationToken::new(),
            closed: AtomicBool::new(false),
            channels: Mutex::new(Vec::new()),
            health: OnceLock::new(),
        });
        tokio::spawn(supervise(Arc::clone(&conn), name));
        Ok(conn)
    }

    /// Reports the connection to the process health (`None`: ready), once an app attached it.
    fn not_ready(&self, reason: Option<String>) {
        if let Some(health) = self.health.get() {
            health.set_not_ready("amqp", reason);
        }
    }

    /// Remembers a route's consumer channel, to close it on shutdown (forgetting closed ones).
    pub(crate) fn add_channel(&self, channel: Channel) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.retain(|c| c.status().connected());
        channels.push(channel);
    }

    /// Publishing fails from now on; the supervisor stops and the connection closes: every
    /// channel first, each confirmed by the broker, then the connection. (Left to the client
    /// library, a channel closing after its connection is reported as a connection error.)
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stopped.cancel();
        let consumers =
            std::mem::take(&mut *self.channels.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(link) = self.link.send_replace(None) {
            let channels = consumers
                .iter()
                .chain([&link.publisher, &link.rpc])
                .filter(|c| c.status().connected());
            for channel in channels {
                let close = channel.close(200, "kumi bus shutdown".into());
                if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), close).await {
                    tracing::debug!("amqp: closing a channel on shutdown: {e}");
                }
            }
            let close = link.connection.close(200, "kumi bus shutdown".into());
            let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
        }
    }

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

async fn supervise(inner: Arc<Connection>, name: String) {
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
        if !inner.url.reconnect {
            tracing::error!(bus = %inner.url.redacted, "amqp: connection lost and reconnect=false; the bus stays down");
            inner.not_ready(Some(format!(
                "connection to RabbitMQ at {} lost (reconnect=false)",
                inner.url.redacted
            )));
            return;
        }
        tracing::warn!(bus = %inner.url.redacted, "amqp: connection lost; reconnecting");
        inner.not_ready(Some(format!(
            "connection to RabbitMQ at {} lost; reconnecting",
            inner.url.redacted
        )));
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
            match open_link(&inner.url, &name, &inner.pending, generation).await {
                Ok(link) => {
                    tracing::info!(bus = %inner.url.redacted, generation, "amqp: reconnected");
                    inner.link.send_replace(Some(Arc::new(link)));
                    inner.not_ready(None);
                    break;
                }
                Err(e) => {
                    tracing::warn!(bus = %inner.url.redacted, "amqp: reconnect failed: {e}");
                    let jitter = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
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

/// Sends a handler's reply to a request's `reply_to`, with the ADR-32 error headers when it is an
/// error.
pub(crate) async fn send_reply(
    conn: &Connection,
    link: &Link,
    reply_to: &str,
    correlation_id: Option<&str>,
    reply: Reply,
) -> Result<()> {
    let mut table = headers::table(&reply.headers)?;
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
    conn.publish_confirmed(&link.publisher, "", reply_to, &body, props, false)
        .await
        .map(|_| ())
}
