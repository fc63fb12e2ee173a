//! How a NATS delivery settles (`docs/wire.md`, "NATS").
//!
//! - **Core NATS** keeps nothing: an ack is a no-op, a retry waits in process (the consume
//!   runtime), a dead letter is published on core NATS, a reply goes to the request's reply
//!   subject with the ADR-32 error headers when it is an error.
//! - **JetStream**: success → `+ACK`; retry → `-NAK` with the backoff delay; while a handler
//!   runs, `+WPI` every half `ack_wait`; dead letter → published into the stream that captures
//!   the dead-letter subject (waiting for its ack), or on core NATS (flushed) with a warning when
//!   none does, then `+TERM`; given back at a drain deadline → `-NAK` (redelivered at once). The
//!   delivery attempt is the server's `delivered` count. Acks are single publishes, never
//!   per-message round trips.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::Acker;
use async_nats::jetstream::AckKind;
use kumi_core::delivery::{Delivery, Refused, Retry};
use kumi_core::settlement::Reply;
use kumi_core::{Error, ErrorKind, Message, Outgoing};

use crate::connection::{Connection, Stored};
use crate::headers::{self, SERVICE_ERROR, SERVICE_ERROR_CODE};

/// A message from a core NATS subscription.
pub(crate) struct CoreDelivery {
    msg: async_nats::Message,
    /// The subject, shared with the route's earlier messages on it.
    topic: Arc<str>,
    conn: Arc<Connection>,
}

impl CoreDelivery {
    pub(crate) fn new(msg: async_nats::Message, topic: Arc<str>, conn: Arc<Connection>) -> Self {
        Self { msg, topic, conn }
    }
}

fn nats_error(kind: ErrorKind, what: String, e: impl Into<kumi_core::BoxError>) -> Error {
    Error::new(kind, what).with_source(e)
}

impl Delivery for CoreDelivery {
    fn message(&self) -> Message {
        let mut message = Message::new(Arc::clone(&self.topic), self.msg.payload.clone());
        headers::from_nats(self.msg.headers.as_ref(), &mut message);
        message
    }

    async fn ack(self) -> Result<(), Error> {
        Ok(())
    }

    async fn reply(self, reply: Reply) -> Result<(), Error> {
        let Some(to) = self.msg.reply.clone() else {
            return Ok(());
        };
        let mut map = headers::headers_to_nats(&reply.headers);
        if let Some((code, text)) = &reply.error {
            headers::set(&mut map, SERVICE_ERROR, text);
            headers::set(&mut map, SERVICE_ERROR_CODE, &code.to_string());
        }
        self.conn
            .client
            .publish_with_headers(to, map, reply.body)
            .await
            .map_err(|e| {
                nats_error(
                    ErrorKind::Publish,
                    format!("cannot reply to a request on '{}'", self.msg.subject),
                    e,
                )
            })
    }

    async fn dead_letter(self, letter: Outgoing) -> Result<(), Refused<Self>> {
        match store_dead_letter(&self.conn, &letter).await {
            Ok(()) => Ok(()),
            Err(e) => Err(Refused::new(self, e)),
        }
    }
}

/// A message from a JetStream pull consumer.
pub(crate) struct PullDelivery {
    msg: async_nats::Message,
    acker: Acker,
    attempt: u32,
    topic: Arc<str>,
    conn: Arc<Connection>,
    ack_wait: Duration,
}

impl PullDelivery {
    pub(crate) fn new(
        msg: async_nats::jetstream::Message,
        topic: Arc<str>,
        conn: Arc<Connection>,
        ack_wait: Duration,
    ) -> Self {
        let attempt = msg
            .info()
            .map(|i| u32::try_from(i.delivered).unwrap_or(u32::MAX))
            .unwrap_or(1)
            .max(1);
        let (msg, acker) = msg.split();
        Self {
            msg,
            acker,
            attempt,
            topic,
            conn,
            ack_wait,
        }
    }

    async fn send(&self, kind: AckKind, what: &str) -> Result<(), Error> {
        self.acker.ack_with(kind).await.map_err(|e| {
            nats_error(
                ErrorKind::Publish,
                format!(
                    "cannot {what} a JetStream message on '{}' (it will be redelivered)",
                    self.msg.subject
                ),
                e,
            )
        })
    }
}

impl Delivery for PullDelivery {
    fn message(&self) -> Message {
        let mut message = Message::new(Arc::clone(&self.topic), self.msg.payload.clone());
        headers::from_nats(self.msg.headers.as_ref(), &mut message);
        message.attempt = self.attempt;
        message
    }

    async fn ack(self) -> Result<(), Error> {
        self.send(AckKind::Ack, "acknowledge").await
    }

    async fn retry(self, delay: Duration) -> Retry<Self> {
        match self.send(AckKind::Nak(Some(delay)), "reject (NAK)").await {
            Ok(()) => Retry::Scheduled,
            Err(e) => Retry::Failed(self, e),
        }
    }

    async fn dead_letter(self, letter: Outgoing) -> Result<(), Refused<Self>> {
        match store_dead_letter(&self.conn, &letter).await {
            Ok(()) => {
                if let Err(e) = self.send(AckKind::Term, "terminate").await {
                    tracing::warn!("nats: {e}");
                }
                Ok(())
            }
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    fn lease(&self) -> Option<Duration> {
        Some(self.ack_wait / 2)
    }

    async fn extend(&self) -> Result<(), Error> {
        self.send(AckKind::Progress, "extend the ack wait of").await
    }

    async fn release(self) {
        if let Err(e) = self.send(AckKind::Nak(None), "give back (NAK)").await {
            tracing::warn!("nats: {e}");
        }
    }
}

/// Publishes a dead letter into the stream that keeps dead letters (confirmed), or, where no
/// stream captures its subject, on core NATS (flushed; a warning says it is not kept). A
/// duplicate in the stream is the same dead letter stored before (its id is its own,
/// `<original id>.dlq<attempts>`): it is kept, and the original may be settled.
async fn store_dead_letter(conn: &Connection, letter: &Outgoing) -> Result<(), Error> {
    match conn
        .publish_confirmed(letter, headers::to_nats(letter))
        .await?
    {
        Stored::InStream { duplicate } => {
            if duplicate {
                tracing::debug!(dead_letter_topic = %letter.topic, message_id = %letter.message_id, "nats: the dead letter was stored before");
            }
            Ok(())
        }
        Stored::CoreOnly
            if conn
                .keeps_dead_letters
                .load(std::sync::atomic::Ordering::Acquire) =>
        {
            // The stream that keeps dead letters is unreachable for now (a server of the cluster
            // restarting): refused, so the runtime keeps the message and tries again.
            Err(Error::new(
                ErrorKind::Publish,
                format!(
                    "the stream keeping dead letters did not take the dead letter on '{}' (published on core NATS only); trying again",
                    letter.topic
                ),
            ))
        }
        Stored::CoreOnly => {
            tracing::warn!(
                dead_letter_topic = %letter.topic,
                "nats: no JetStream stream captures the dead-letter subject; published on core NATS, where it is lost unless a route subscribes to it (see dead_letters= in the bus URL)"
            );
            conn.client.flush().await.map_err(|e| {
                nats_error(
                    ErrorKind::Publish,
                    format!("cannot flush the dead letter on '{}'", letter.topic),
                    e,
                )
            })
        }
    }
}
