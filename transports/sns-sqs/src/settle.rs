//! How an SQS delivery settles (`docs/wire.md`, "SNS+SQS"; where kumi does better than
//! tomodachi).
//!
//! - **Success**: `DeleteMessage`.
//! - **Retry**: `ChangeMessageVisibility` to the backoff delay in whole seconds (at least one), so
//!   SQS delivers it again then and its receive count stays the attempt count.
//! - **Dead letter**: published to the dead-letter topic (`dlq.<topic>`, with the kumi
//!   dead-letter headers), then deleted; if that publish fails the message is kept and the
//!   runtime tries again later. Nothing is deleted that did not succeed or was not dead-lettered.
//! - **Long handlers**: the visibility timeout is extended every half of it while the handler runs.
//! - **Given back** at a drain deadline: made visible again at once.
//! - **Attempts**: SQS's `ApproximateReceiveCount`.
//! - **FIFO**: the messages of one message group are handled one at a time, in order ([`Groups`]);
//!   when one is not settled for good, the rest of its group still in hand goes back to the queue
//!   behind it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::{Message as SqsMessage, MessageSystemAttributeName};
use base64::Engine as _;
use bytes::Bytes;
use kumi_core::delivery::{Delivery, Refused, Retry};
use kumi_core::{Error, ErrorKind, Message, Outgoing};
use tokio::sync::Notify;

use crate::attributes::{AttributeValue, Incoming};
use crate::connection::Connection;
use crate::envelope_sns;
use crate::topology::aws_error;

/// Longest visibility timeout SQS accepts.
const MAX_VISIBILITY: u64 = 43_200;

/// The queue a route receives from, as its deliveries need it.
pub(crate) struct RouteQueue {
    pub(crate) url: String,
    pub(crate) name: String,
    /// The route's topic (a message's topic: SNS+SQS routes have no wildcards).
    pub(crate) topic: Arc<str>,
    pub(crate) visibility: Duration,
    pub(crate) fifo: bool,
}

impl RouteQueue {
    /// Changes a message's visibility timeout (0: visible again at once).
    pub(crate) async fn change_visibility(
        &self,
        conn: &Connection,
        receipt: &str,
        secs: u64,
    ) -> Result<(), Error> {
        let secs = i32::try_from(secs.min(MAX_VISIBILITY)).unwrap_or(0);
        conn.topology
            .sqs
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                aws_error(
                    ErrorKind::Publish,
                    format!(
                        "cannot change the visibility of a message in SQS queue {} to {secs}s",
                        self.name
                    ),
                    e,
                )
            })
    }

    /// Makes a message visible again at once (received, but not to be handled here).
    pub(crate) async fn release(&self, conn: &Connection, msg: &SqsMessage) {
        if let Some(receipt) = msg.receipt_handle() {
            if let Err(e) = self.change_visibility(conn, receipt, 0).await {
                tracing::warn!("sqs: {e}");
            }
        }
    }
}

/// The FIFO message groups a route has a message of in hand: busy until it is settled; failed
/// when it was not settled for good (the rest of the group in hand must then go back).
#[derive(Default)]
pub(crate) struct Groups {
    busy: Mutex<HashSet<String>>,
    failed: Mutex<HashSet<String>>,
    /// Woken when a group is free again.
    pub(crate) freed: Notify,
}

impl Groups {
    /// True while a message of `group` is in hand.
    pub(crate) fn is_busy(&self, group: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(group)
    }

    /// Takes `group` if it is free.
    pub(crate) fn take(&self, group: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(group.to_owned())
    }

    /// The groups that failed since the last call.
    pub(crate) fn take_failed(&self) -> HashSet<String> {
        std::mem::take(&mut *self.failed.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn settled(&self, group: &str, for_good: bool) {
        if !for_good {
            self.failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(group.to_owned());
        }
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(group);
        self.freed.notify_one();
    }
}

/// A FIFO delivery's hold on its message group, released when the delivery is settled or
/// dropped.
pub(crate) struct GroupHold {
    groups: Arc<Groups>,
    group: String,
    for_good: bool,
}

impl GroupHold {
    pub(crate) fn new(groups: Arc<Groups>, group: String) -> Self {
        Self {
            groups,
            group,
            for_good: false,
        }
    }
}

impl Drop for GroupHold {
    fn drop(&mut self) {
        self.groups.settled(&self.group, self.for_good);
    }
}

/// The FIFO message group of a message.
pub(crate) fn group_of(msg: &SqsMessage) -> Option<String> {
    msg.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned()
}

fn sqs_attribute(v: &aws_sdk_sqs::types::MessageAttributeValue) -> AttributeValue {
    match (v.string_value(), v.binary_value()) {
        (Some(s), _) => AttributeValue::Text {
            data_type: v.data_type().to_owned(),
            value: s.to_owned(),
        },
        (None, Some(b)) => AttributeValue::Binary(b.as_ref().to_vec()),
        (None, None) => AttributeValue::Text {
            data_type: v.data_type().to_owned(),
            value: String::new(),
        },
    }
}

/// The kumi message for an SQS message: body unwrapped, attributes merged (SQS-level win).
pub(crate) fn to_message(topic: &Arc<str>, msg: &SqsMessage) -> Message {
    let unwrapped = envelope_sns::unwrap(msg.body().unwrap_or_default());
    let mut incoming = Incoming::default();
    for (k, v) in unwrapped.attributes {
        incoming.set(k, v);
    }
    if let Some(attrs) = msg.message_attributes() {
        for (k, v) in attrs {
            incoming.set(k.clone(), sqs_attribute(v));
        }
    }
    let body = if incoming.body_is_base64() {
        base64::engine::general_purpose::STANDARD
            .decode(unwrapped.message.as_bytes())
            .unwrap_or_else(|_| unwrapped.message.clone().into_bytes())
    } else {
        unwrapped.message.into_bytes()
    };
    let mut message = Message::new(Arc::clone(topic), Bytes::from(body));
    incoming.apply(&mut message);
    message.attempt = msg
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    message
}

/// One message received from a route's queue.
pub(crate) struct SqsDelivery {
    msg: SqsMessage,
    receipt: String,
    conn: Arc<Connection>,
    queue: Arc<RouteQueue>,
    group: Option<GroupHold>,
}

impl SqsDelivery {
    pub(crate) fn new(
        msg: SqsMessage,
        receipt: String,
        conn: Arc<Connection>,
        queue: Arc<RouteQueue>,
        group: Option<GroupHold>,
    ) -> Self {
        Self {
            msg,
            receipt,
            conn,
            queue,
            group,
        }
    }

    async fn delete(mut self) -> Result<(), Error> {
        let deleted = self
            .conn
            .topology
            .sqs
            .delete_message()
            .queue_url(&self.queue.url)
            .receipt_handle(&self.receipt)
            .send()
            .await;
        if let Some(group) = &mut self.group {
            group.for_good = true;
        }
        deleted.map(|_| ()).map_err(|e| {
            aws_error(
                ErrorKind::Publish,
                format!(
                    "cannot delete a handled message from SQS queue {} (it will be redelivered)",
                    self.queue.name
                ),
                e,
            )
        })
    }
}

impl Delivery for SqsDelivery {
    fn message(&self) -> Message {
        to_message(&self.queue.topic, &self.msg)
    }

    async fn ack(self) -> Result<(), Error> {
        self.delete().await
    }

    async fn retry(self, delay: Duration) -> Retry<Self> {
        let secs = (delay.as_secs() + u64::from(delay.subsec_nanos() > 0)).max(1);
        match self
            .queue
            .change_visibility(&self.conn, &self.receipt, secs)
            .await
        {
            Ok(()) => Retry::Scheduled,
            Err(e) => Retry::Failed(self, e),
        }
    }

    async fn dead_letter(self, letter: Outgoing) -> Result<(), Refused<Self>> {
        match self.conn.publish(&letter).await {
            Ok(()) => {
                if let Err(e) = self.delete().await {
                    tracing::warn!("sqs: {e}");
                }
                Ok(())
            }
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    fn lease(&self) -> Option<Duration> {
        Some(Duration::from_millis(
            self.queue.visibility.as_secs().max(1) * 500,
        ))
    }

    async fn extend(&self) -> Result<(), Error> {
        let secs = self.queue.visibility.as_secs().max(1);
        self.queue
            .change_visibility(&self.conn, &self.receipt, secs)
            .await
    }

    async fn release(self) {
        if let Err(e) = self
            .queue
            .change_visibility(&self.conn, &self.receipt, 0)
            .await
        {
            tracing::warn!("sqs: {e}");
        }
    }
}
