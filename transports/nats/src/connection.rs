//! The NATS connection a bus works on: connecting (auth, TLS, connection events into the process
//! health), publishing (confirmed by the stream in JetStream mode) and requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_nats::{ConnectOptions, Event, HeaderMap};
use futures_util::StreamExt;
use kumi_core::bus::validate_topic;
use kumi_core::settlement::Reply;
use kumi_core::{BoxError, Error, ErrorKind, Health, Outgoing, Result};

use crate::headers::{self, SERVICE_ERROR, SERVICE_ERROR_CODE};
use crate::url::NatsUrl;

/// A connected NATS client and what the bus keeps about it.
pub(crate) struct Connection {
    pub(crate) client: async_nats::Client,
    pub(crate) url: NatsUrl,
    /// Subjects' streams, for confirmed publishes in JetStream mode and JetStream dead letters.
    pub(crate) streams: StreamLookups,
    closed: AtomicBool,
    /// A stream keeps dead letters (provisioned or found at connect): a dead letter published on
    /// core NATS instead (the stream unreachable for a moment) is refused, not lost.
    pub(crate) keeps_dead_letters: AtomicBool,
    /// The process health, once an app attached it (read by the connection event callback).
    pub(crate) health: Arc<OnceLock<Health>>,
}

/// Gives rustls a process-wide crypto provider (ring, the one async-nats is built with) unless the
/// application installed one. With more than one provider compiled in — the AWS SDK and lapin bring
/// aws-lc-rs — rustls cannot choose by itself, and a TLS connection would panic.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may install one meanwhile: either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Logs connection events and reports them to the process health once attached.
fn on_event(shown: &str, health: Option<&Health>, event: Event) {
    match event {
        Event::Connected => {
            tracing::info!(bus = %shown, "nats: connected");
            if let Some(h) = health {
                h.set_not_ready("nats", None);
            }
        }
        Event::Disconnected => {
            tracing::warn!(bus = %shown, "nats: disconnected; reconnecting");
            if let Some(h) = health {
                h.set_not_ready(
                    "nats",
                    Some(format!("disconnected from {shown}; reconnecting")),
                );
            }
        }
        Event::LameDuckMode => {
            tracing::warn!(
                bus = %shown,
                "nats: server entered lame duck mode; draining this process"
            );
            if let Some(h) = health {
                h.request_stop(format!("NATS server of {shown} entered lame duck mode"));
            }
        }
        Event::SlowConsumer(sid) => tracing::warn!(
            bus = %shown, sid,
            "nats: slow consumer, messages dropped by the client (raise the route's concurrency or use JetStream)"
        ),
        other => tracing::info!(bus = %shown, "nats: {other}"),
    }
}

impl Connection {
    /// Connects to the servers `url` names, naming the connection `connection_name` unless the
    /// URL names it. Fails (naming the URL) if none can be reached; once connected, the client
    /// reconnects by itself.
    pub(crate) async fn open(url: NatsUrl, connection_name: String) -> Result<Self> {
        ensure_crypto_provider();
        let shown = url.redacted.clone();
        let health: Arc<OnceLock<Health>> = Arc::new(OnceLock::new());
        let events_health = Arc::clone(&health);
        let mut options = ConnectOptions::new()
            .name(url.name.clone().unwrap_or(connection_name))
            .connection_timeout(url.connect_timeout.unwrap_or(Duration::from_secs(5)))
            .event_callback(move |event| {
                let shown = shown.clone();
                let health = events_health.get().cloned();
                async move { on_event(&shown, health.as_ref(), event) }
            });
        if let Some((user, password)) = &url.user_password {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &url.token {
            options = options.token(token.clone());
        }
        if let Some(seed) = &url.nkey {
            options = options.nkey(seed.clone());
        }
        if let Some(creds) = &url.creds {
            options = options.credentials_file(creds).await.map_err(|e| {
                Error::config(format!(
                    "bus URL '{}': cannot read credentials file {}",
                    url.redacted,
                    creds.display()
                ))
                .with_source(e)
            })?;
        }
        if url.tls {
            options = options.require_tls(true);
        }
        if let Some(ca) = &url.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &url.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let client = options.connect(url.servers.clone()).await.map_err(|e| {
            Error::new(
                ErrorKind::Connect,
                format!("cannot connect to NATS at {}", url.redacted),
            )
            .with_source(e)
        })?;
        Ok(Self {
            client,
            url,
            streams: StreamLookups::default(),
            closed: AtomicBool::new(false),
            keeps_dead_letters: AtomicBool::new(false),
            health,
        })
    }

    pub(crate) fn check_open(&self, topic: &str) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!(
                    "NATS bus {} is stopped; cannot send on '{topic}'",
                    self.url.redacted
                ),
            ));
        }
        Ok(())
    }

    /// Publishing fails from now on; what is buffered is sent, then the connection closes.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let flush = async {
            let _ = self.client.flush().await;
            let _ = self.client.drain().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), flush).await;
    }

    /// Waits until the server has processed everything this connection sent so far: a message to
    /// a private inbox comes back only after the server handled the commands before it
    /// (`flush` alone only empties the socket buffer).
    pub(crate) async fn sync_with_server(&self) -> std::result::Result<(), BoxError> {
        let client = &self.client;
        let inbox = client.new_inbox();
        let mut echo = client.subscribe(inbox.clone()).await?;
        client.publish(inbox, bytes::Bytes::new()).await?;
        client.flush().await?;
        let got = tokio::time::timeout(Duration::from_secs(10), echo.next()).await;
        let _ = echo.unsubscribe().await;
        match got {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("the connection closed while subscribing".into()),
            Err(_) => Err("the server did not confirm the subscription within 10 s".into()),
        }
    }

    fn publish_error(&self, topic: &str, e: impl Into<BoxError>) -> Error {
        Error::new(
            ErrorKind::Publish,
            format!("cannot publish on '{topic}' to {}", self.url.redacted),
        )
        .with_source(e)
    }

    /// Publishes an event: on core NATS, or in JetStream mode confirmed by the stream.
    pub(crate) async fn publish(&self, message: &Outgoing) -> Result<()> {
        self.check_open(&message.topic)?;
        validate_topic(&message.topic)?;
        let map = headers::to_nats(message);
        if self.url.jetstream {
            return self.publish_confirmed(message, map).await.map(|_| ());
        }
        self.client
            .publish_with_headers(message.topic.clone(), map, message.body.clone())
            .await
            .map_err(|e| self.publish_error(&message.topic, e))
    }

    /// Publishes into the stream that captures the subject and waits for its ack (a returned
    /// [`Stored::InStream`] means stored). A subject no stream captures is published on core
    /// NATS instead ([`Stored::CoreOnly`]): a JetStream publish there would reach the subject's
    /// core subscribers and then wait in vain for an ack.
    pub(crate) async fn publish_confirmed(
        &self,
        message: &Outgoing,
        map: HeaderMap,
    ) -> Result<Stored> {
        let js = async_nats::jetstream::new(self.client.clone());
        if self.streams.captures(&js, &message.topic).await {
            let ack = js
                .publish_with_headers(message.topic.clone(), map.clone(), message.body.clone())
                .await
                .map_err(|e| self.publish_error(&message.topic, e))?;
            match ack.await {
                Ok(ack) => {
                    return Ok(Stored::InStream {
                        duplicate: ack.duplicate,
                    })
                }
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::context::PublishErrorKind::StreamNotFound =>
                {
                    // The stream is gone: publish on core NATS, and look again next time.
                    self.streams.forget(&message.topic);
                }
                Err(e) => {
                    // No ack (the stream may be gone while core subscribers took the message):
                    // look the subject up again next time.
                    self.streams.forget(&message.topic);
                    return Err(self.publish_error(&message.topic, e));
                }
            }
        }
        self.client
            .publish_with_headers(message.topic.clone(), map, message.body.clone())
            .await
            .map_err(|e| self.publish_error(&message.topic, e))?;
        Ok(Stored::CoreOnly)
    }

    /// Sends a request and waits for its reply: "no responders" and "timed out" are distinct
    /// errors; an ADR-32 error reply comes back as the reply's error.
    pub(crate) async fn request(&self, message: Outgoing, timeout: Duration) -> Result<Reply> {
        self.check_open(&message.topic)?;
        validate_topic(&message.topic)?;
        let topic = message.topic.clone();
        let map = headers::request_headers(&message);
        let mut request = async_nats::Request::new()
            .payload(message.body.clone())
            .timeout(Some(timeout));
        if !map.is_empty() {
            request = request.headers(map);
        }
        match self.client.send_request(topic.clone(), request).await {
            Ok(reply) => {
                let error = reply.headers.as_ref().and_then(|h| {
                    let code = h.get(SERVICE_ERROR_CODE)?.as_str().parse().unwrap_or(500);
                    let text = h
                        .get(SERVICE_ERROR)
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default();
                    Some((code, text))
                });
                let mut out = Reply::ok(reply.payload);
                out.error = error;
                Ok(out)
            }
            Err(e) => Err(match e.kind() {
                async_nats::RequestErrorKind::NoResponders => Error::new(
                    ErrorKind::NoResponders,
                    format!("no service answers requests on '{topic}'"),
                ),
                async_nats::RequestErrorKind::TimedOut => Error::new(
                    ErrorKind::TimedOut,
                    format!("no reply on '{topic}' within {timeout:?}"),
                ),
                _ => Error::new(
                    ErrorKind::Publish,
                    format!("request on '{topic}' failed on {}", self.url.redacted),
                )
                .with_source(e),
            }),
        }
    }
}

/// Where [`Connection::publish_confirmed`] put a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// In the stream that captures its subject, acknowledged; `duplicate`: the stream already
    /// held a message with its `Nats-Msg-Id` (within its duplicate window) and kept that one.
    InStream { duplicate: bool },
    /// On core NATS: no stream captures its subject.
    CoreOnly,
}

/// Which subjects a JetStream stream captures, as looked up for confirmed publishes and JetStream
/// dead letters. An answer is used for [`StreamLookups::RECHECK`], or until a publish finds the
/// stream gone (a stream created meanwhile still stores what is published on core NATS; only the
/// confirmation waits).
#[derive(Default)]
pub(crate) struct StreamLookups(Mutex<HashMap<String, Lookup>>);

#[derive(Clone, Copy)]
struct Lookup {
    captured: bool,
    at: Instant,
}

impl StreamLookups {
    const RECHECK: Duration = Duration::from_secs(10);
    /// Most remembered subjects (the map is cleared when full).
    const LIMIT: usize = 10_000;

    fn cached(&self, subject: &str) -> Option<bool> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let hit = map.get(subject)?;
        (hit.at.elapsed() < Self::RECHECK).then_some(hit.captured)
    }

    fn remember(&self, subject: &str, captured: bool) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::LIMIT {
            map.clear();
        }
        map.insert(
            subject.to_owned(),
            Lookup {
                captured,
                at: Instant::now(),
            },
        );
    }

    pub(crate) fn forget(&self, subject: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(subject);
    }

    /// Whether a stream captures `subject`. When the lookup itself fails (a timeout, JetStream
    /// unavailable), the answer is "yes", uncached: the publish then asks the stream directly.
    pub(crate) async fn captures(
        &self,
        js: &async_nats::jetstream::Context,
        subject: &str,
    ) -> bool {
        if let Some(captured) = self.cached(subject) {
            return captured;
        }
        match js.stream_by_subject(subject).await {
            Ok(_) => {
                self.remember(subject, true);
                true
            }
            Err(e)
                if e.kind()
                    == async_nats::jetstream::context::GetStreamByNameErrorKind::NotFound =>
            {
                self.remember(subject, false);
                false
            }
            Err(e) => {
                tracing::debug!(subject, "nats: cannot look up the stream of a subject: {e}");
                true
            }
        }
    }
}
