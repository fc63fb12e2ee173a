//! Publishing and requesting: [`Client`] for producers, tests and the runner, and [`Context`] for
//! handlers (a client that propagates the handled message's correlation id and trace context).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bus::{validate_topic, SharedBus};
use crate::envelope::{default_envelope, EncodeContext, Raw, SharedEnvelope};
use crate::error::{Error, ErrorKind, Result};
use crate::identity::Identity;
use crate::message::{Headers, Message, Outgoing, TRACEPARENT, TRACESTATE};

/// Default time a request waits for its reply.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for one publish or request.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    headers: Headers,
    correlation_id: Option<String>,
    envelope: Option<SharedEnvelope>,
    timeout: Option<Duration>,
}

impl PublishOptions {
    /// No options: the client's envelope, no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header (message attribute).
    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key, value);
        self
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Uses this envelope instead of the client's.
    pub fn envelope(mut self, envelope: SharedEnvelope) -> Self {
        self.envelope = Some(envelope);
        self
    }

    /// Request timeout (requests only).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

struct ClientInner {
    bus: SharedBus,
    identity: Identity,
    envelope: SharedEnvelope,
    request_envelope: SharedEnvelope,
    request_timeout: Duration,
}

/// Publishes events and sends requests on a bus, as a named producer.
///
/// Events use the [`JsonBase`](crate::envelope::JsonBase) envelope unless told otherwise; requests
/// and replies use [`Raw`] JSON (what bare NATS clients speak). Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("bus", &self.inner.bus.url())
            .field("identity", &self.inner.identity)
            .field("envelope", &self.inner.envelope.name())
            .finish()
    }
}

impl Client {
    /// A client on `bus`, producing as `kumi-client` with a fresh instance id.
    pub fn new(bus: SharedBus) -> Self {
        Self::with_identity(bus, Identity::new("kumi-client"))
    }

    /// A client on `bus`, producing as `identity`.
    pub fn with_identity(bus: SharedBus, identity: Identity) -> Self {
        Self {
            inner: Arc::new(ClientInner {
                bus,
                identity,
                envelope: default_envelope(),
                request_envelope: Arc::new(Raw),
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
            }),
        }
    }

    /// The same client with another default envelope for events.
    pub fn with_envelope(&self, envelope: SharedEnvelope) -> Self {
        self.rebuild(|inner| inner.envelope = envelope)
    }

    /// The same client with another default request timeout.
    pub fn with_request_timeout(&self, timeout: Duration) -> Self {
        self.rebuild(|inner| inner.request_timeout = timeout)
    }

    fn rebuild(&self, change: impl FnOnce(&mut ClientInner)) -> Self {
        let mut inner = ClientInner {
            bus: Arc::clone(&self.inner.bus),
            identity: self.inner.identity.clone(),
            envelope: Arc::clone(&self.inner.envelope),
            request_envelope: Arc::clone(&self.inner.request_envelope),
            request_timeout: self.inner.request_timeout,
        };
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The bus this client uses.
    pub fn bus(&self) -> &SharedBus {
        &self.inner.bus
    }

    /// Who this client produces as.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// Publishes `value` as JSON on `topic`; returns the message id.
    pub async fn publish<T: Serialize + ?Sized>(&self, topic: &str, value: &T) -> Result<String> {
        self.publish_with(topic, value, PublishOptions::default())
            .await
    }

    /// Publishes `value` with options; returns the message id.
    pub async fn publish_with<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        value: &T,
        options: PublishOptions,
    ) -> Result<String> {
        let envelope = Arc::clone(options.envelope.as_ref().unwrap_or(&self.inner.envelope));
        let style = envelope.json_style();
        // Serialized straight into the envelope's buffer.
        let mut write = |out: &mut Vec<u8>| {
            style.write(out, value).map_err(|e| {
                Error::new(
                    ErrorKind::Codec,
                    format!("cannot publish on topic '{topic}'"),
                )
                .with_source(e)
            })
        };
        let out = self.outgoing(topic, options, &envelope, &mut write)?;
        self.send(out).await
    }

    /// Publishes an already-serialized payload (wrapped by the envelope); returns the message id.
    pub async fn publish_bytes(
        &self,
        topic: &str,
        payload: &[u8],
        options: PublishOptions,
    ) -> Result<String> {
        let envelope = Arc::clone(options.envelope.as_ref().unwrap_or(&self.inner.envelope));
        if envelope.requires_json() {
            serde_json::from_slice::<serde::de::IgnoredAny>(payload).map_err(|e| {
                Error::codec(format!(
                    "payload for topic '{topic}' is not JSON, which the {} envelope requires",
                    envelope.name()
                ))
                .with_source(e)
            })?;
        }
        let out = self.outgoing(topic, options, &envelope, &mut |out: &mut Vec<u8>| {
            out.extend_from_slice(payload);
            Ok(())
        })?;
        self.send(out).await
    }

    /// The message for `topic`, its payload written by `write` into the envelope.
    fn outgoing(
        &self,
        topic: &str,
        options: PublishOptions,
        envelope: &SharedEnvelope,
        write: &mut dyn FnMut(&mut Vec<u8>) -> Result<()>,
    ) -> Result<Outgoing> {
        validate_topic(topic)?;
        let encoded = envelope.encode_with(
            &EncodeContext {
                topic,
                service_name: &self.inner.identity.name,
                instance_id: &self.inner.identity.instance_id,
            },
            write,
        )?;
        Ok(Outgoing {
            topic: topic.to_owned(),
            body: encoded.body,
            headers: options.headers,
            message_id: encoded.message_id,
            correlation_id: options.correlation_id,
        })
    }

    /// Publishes `out`; returns its message id.
    async fn send(&self, out: Outgoing) -> Result<String> {
        let id = out.message_id.clone();
        self.inner.bus.publish(out).await?;
        Ok(id)
    }

    /// Sends `value` as a request on `topic` and decodes the JSON reply.
    pub async fn request<Req, Resp>(&self, topic: &str, value: &Req) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.request_with(topic, value, PublishOptions::default())
            .await
    }

    /// Sends a request with options and decodes the JSON reply.
    pub async fn request_with<Req, Resp>(
        &self,
        topic: &str,
        value: &Req,
        options: PublishOptions,
    ) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let envelope = options
            .envelope
            .clone()
            .unwrap_or_else(|| Arc::clone(&self.inner.request_envelope));
        let timeout = options.timeout.unwrap_or(self.inner.request_timeout);
        let style = envelope.json_style();
        let out = self.outgoing(topic, options, &envelope, &mut |out: &mut Vec<u8>| {
            style.write(out, value)
        })?;
        let reply = self.inner.bus.request(out, timeout).await?;
        if let Some((code, text)) = reply.error {
            return Err(Error::new(
                ErrorKind::Remote,
                format!("request on topic '{topic}' failed: {text}"),
            )
            .with_code(code));
        }
        let mut message = Message::new(topic, reply.body);
        envelope.decode(&mut message)?;
        serde_json::from_slice(&message.payload).map_err(|e| {
            Error::codec(format!(
                "reply on topic '{topic}' does not decode as {}",
                std::any::type_name::<Resp>()
            ))
            .with_source(e)
        })
    }

    /// Sends a raw request payload and returns the raw reply body.
    pub async fn request_bytes(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        options: PublishOptions,
    ) -> Result<Bytes> {
        let timeout = options.timeout.unwrap_or(self.inner.request_timeout);
        let mut out = Outgoing::new(topic, payload);
        validate_topic(topic)?;
        out.headers = options.headers;
        out.correlation_id = options.correlation_id;
        let reply = self.inner.bus.request(out, timeout).await?;
        match reply.error {
            Some((code, text)) => Err(Error::new(
                ErrorKind::Remote,
                format!("request on topic '{topic}' failed: {text}"),
            )
            .with_code(code)),
            None => Ok(reply.body),
        }
    }

    /// A context that is not tied to a handled message (a scheduled run, an HTTP request...):
    /// publishes carry `correlation_id` if given.
    pub fn context(&self, correlation_id: Option<String>) -> Context {
        Context {
            client: self.clone(),
            correlation_id,
            traceparent: None,
            tracestate: None,
        }
    }

    /// A handler context for `message`: publishes from it carry its correlation id (or, if it has
    /// none, its message id) and its trace context.
    pub(crate) fn context_for(&self, message: &Message) -> Context {
        Context {
            client: self.clone(),
            correlation_id: message
                .correlation_id
                .clone()
                .or_else(|| message.message_id.clone()),
            traceparent: message.headers.get(TRACEPARENT).map(str::to_owned),
            tracestate: message.headers.get(TRACESTATE).map(str::to_owned),
        }
    }
}

/// A handler's way to publish and request: a [`Client`] that propagates the correlation id and W3C
/// trace context (`traceparent`, `tracestate`) of the message being handled.
#[derive(Debug, Clone)]
pub struct Context {
    client: Client,
    correlation_id: Option<String>,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Context {
    /// The underlying client (no propagation).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The correlation id that publishes from this context carry.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    fn propagate(&self, mut options: PublishOptions) -> PublishOptions {
        if options.correlation_id.is_none() {
            options.correlation_id.clone_from(&self.correlation_id);
        }
        for (key, value) in [
            (TRACEPARENT, &self.traceparent),
            (TRACESTATE, &self.tracestate),
        ] {
            if let Some(value) = value {
                if options.headers.get(key).is_none() {
                    options.headers.insert(key, value.clone());
                }
            }
        }
        options
    }

    /// Publishes `value` on `topic`, propagating correlation and trace context.
    pub async fn publish<T: Serialize + ?Sized>(&self, topic: &str, value: &T) -> Result<String> {
        self.publish_with(topic, value, PublishOptions::default())
            .await
    }

    /// Publishes with options, propagating correlation and trace context.
    pub async fn publish_with<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        value: &T,
        options: PublishOptions,
    ) -> Result<String> {
        self.client
            .publish_with(topic, value, self.propagate(options))
            .await
    }

    /// Sends a request, propagating correlation and trace context.
    pub async fn request<Req, Resp>(&self, topic: &str, value: &Req) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.request_with(topic, value, PublishOptions::default())
            .await
    }

    /// Sends a request with options, propagating correlation and trace context.
    pub async fn request_with<Req, Resp>(
        &self,
        topic: &str,
        value: &Req,
        options: PublishOptions,
    ) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.client
            .request_with(topic, value, self.propagate(options))
            .await
    }
}
