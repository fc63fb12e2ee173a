//! Where a message enters kumi: what a bus hands the consume runtime.
//!
//! A bus turns what its broker delivers into [`Deliveries`]: a stream of [`Delivery`] values,
//! each one received message together with what it takes to settle it (ack, redeliver after a
//! delay, dead-letter, reply, extend its lease, give it back). That is all a bus writes for
//! consuming: the worker pool, the concurrency bound, in-process retries, the lease heartbeat,
//! the counters and the drain are the runtime's ([`crate::consume`]), the same on every bus.
//! `docs/architecture.md` follows one message through both sides, file by file, for every bus.
//!
//! The methods return futures (`impl Future + Send`), so the runtime, which is generic over the
//! bus's types, settles each message without boxing or dynamic dispatch.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::error::Error;
use crate::message::{Message, Outgoing};
use crate::settlement::Reply;

/// One received message and how to settle it. Dropping a delivery without settling it leaves
/// it to the broker (redelivered after the broker's own timeout where the broker keeps it).
pub trait Delivery: Send + Sync + 'static {
    /// The message a route dispatches: topic, body, headers, ids, and the delivery attempt as
    /// the broker counts it (`1` on buses that do not count). Called for every attempt, and
    /// again to build a dead letter, so it rebuilds the message from what was received.
    fn message(&self) -> Message;

    /// The handler succeeded: acknowledge (or delete) the message.
    fn ack(self) -> impl Future<Output = Result<(), Error>> + Send
    where
        Self: Sized;

    /// Answers a request with `reply`, then acknowledges it. Only request routes reply; the
    /// default acknowledges (a bus without request/reply never serves request routes).
    fn reply(self, reply: Reply) -> impl Future<Output = Result<(), Error>> + Send
    where
        Self: Sized,
    {
        let _ = reply;
        self.ack()
    }

    /// Redelivers the message after `delay`. A bus that can delay redelivery (a NAK with a delay,
    /// a retry queue, a visibility timeout) does so and answers [`Retry::Scheduled`]; one that
    /// cannot answers [`Retry::InProcess`] (the default), and the runtime waits out the delay and
    /// runs the handler again itself. [`Retry::Failed`] (the broker refused) also makes the
    /// runtime retry in process.
    fn retry(self, delay: Duration) -> impl Future<Output = Retry<Self>> + Send
    where
        Self: Sized,
    {
        let _ = delay;
        std::future::ready(Retry::InProcess(self))
    }

    /// Publishes `letter` (the dead letter core built from this message: see
    /// [`DeadLetter::to_outgoing`](crate::settlement::DeadLetter::to_outgoing)) and, once the
    /// broker has it, settles the original (ack, terminate, delete). When the publish fails the
    /// delivery comes back unsettled with the error, and the runtime tries again later.
    fn dead_letter(
        self,
        letter: Outgoing,
    ) -> impl Future<Output = Result<(), Refused<Self>>> + Send
    where
        Self: Sized;

    /// How often the runtime extends this delivery's lease while its handler runs (JetStream's
    /// `ack_wait`, SQS's visibility timeout, halved); `None` (the default) when the broker waits
    /// as long as it takes.
    fn lease(&self) -> Option<Duration> {
        None
    }

    /// Extends the lease by another term.
    fn extend(&self) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(Ok(()))
    }

    /// Gives the message back unsettled (a drain deadline passed before it was handled): the
    /// broker redelivers it as soon as it can. The default drops it, which leaves it to the
    /// broker's own timeout (or loses it on a bus that keeps nothing).
    fn release(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized,
    {
        drop(self);
        std::future::ready(())
    }
}

/// What became of a retry asked of the bus ([`Delivery::retry`]).
#[derive(Debug)]
pub enum Retry<D> {
    /// The broker redelivers the message after the delay; this delivery is settled.
    Scheduled,
    /// The bus cannot delay a redelivery: the runtime keeps the delivery and retries in process.
    InProcess(D),
    /// The broker refused the retry; the runtime keeps the delivery and retries in process.
    Failed(D, Error),
}

/// A settlement the broker refused: the delivery, unsettled, with why.
pub struct Refused<D> {
    /// The delivery, still to be settled.
    pub delivery: D,
    /// Why the broker refused.
    pub error: Error,
}

impl<D> Refused<D> {
    /// `delivery` refused with `error`.
    pub fn new(delivery: D, error: Error) -> Self {
        Self { delivery, error }
    }
}

impl<D> fmt::Debug for Refused<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// A route's stream of deliveries, as a bus produces it for the consume runtime.
pub trait Deliveries: Send + 'static {
    /// The bus's delivery type.
    type Delivery: Delivery;

    /// The next delivery, or `None` once the stream has ended (after [`Deliveries::stop`], when
    /// what it had already received is out; or when it cannot go on, which it logs). `room` is
    /// how many deliveries the route could start on now (at least 1): a hint for buses that
    /// receive in batches, so they take no more than the route can run.
    ///
    /// Must be cancel-safe: the runtime may drop the future (to run a retry first) and call
    /// again, and nothing received may be lost in between.
    fn next(&mut self, room: usize) -> impl Future<Output = Option<Self::Delivery>> + Send;

    /// Stops taking new messages from the broker (unsubscribe, cancel the consumer, stop
    /// polling). Deliveries already received are still returned by [`Deliveries::next`], then
    /// it returns `None`.
    fn stop(&mut self) -> impl Future<Output = ()> + Send;
}
