//! A route's message path as the runtime runs it: one [`Slot`] per worker, reused for every
//! message the worker handles, so that a message's call costs no allocation (a boxed service
//! would box every call's future).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

use crate::message::Message;
use crate::settlement::Settlement;

/// A route's whole message path: envelope, middleware, extractors and handler in, a
/// [`Settlement`] out (built by the router around a [`Dispatch`](crate::dispatch::Dispatch); see
/// [`crate::dispatch`]). Cheap to clone; each worker takes a [`Slot`] of its own from it.
#[derive(Clone)]
pub struct DispatchService {
    make: Arc<dyn MakeSlot>,
}

impl fmt::Debug for DispatchService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatchService").finish_non_exhaustive()
    }
}

impl DispatchService {
    /// A message path from a tower service that never fails (failures are settlements).
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Message, Response = Settlement, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self {
            make: Arc::new(service),
        }
    }

    /// A slot of a worker's own.
    pub(crate) fn slot(&self) -> Pin<Box<dyn Slot>> {
        self.make.slot()
    }
}

trait MakeSlot: Send + Sync {
    fn slot(&self) -> Pin<Box<dyn Slot>>;
}

impl<S> MakeSlot for S
where
    S: Service<Message, Response = Settlement, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    fn slot(&self) -> Pin<Box<dyn Slot>> {
        Box::pin(SlotOf {
            service: self.clone(),
            message: None,
            future: None,
        })
    }
}

/// Where a worker runs one message after another.
pub(crate) trait Slot: Send {
    /// Starts on `message` (dropping what was running, if anything).
    fn start(self: Pin<&mut Self>, message: Message);

    /// Drives the current message to its settlement.
    fn poll_settlement(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Settlement>;
}

pin_project_lite::pin_project! {
    struct SlotOf<S: Service<Message>> {
        service: S,
        // Waiting for the service to be ready.
        message: Option<Message>,
        #[pin]
        future: Option<S::Future>,
    }
}

impl<S> Slot for SlotOf<S>
where
    S: Service<Message, Response = Settlement, Error = Infallible> + Send,
    S::Future: Send,
{
    fn start(self: Pin<&mut Self>, message: Message) {
        let mut this = self.project();
        this.future.set(None);
        *this.message = Some(message);
    }

    fn poll_settlement(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Settlement> {
        let mut this = self.project();
        if this.message.is_some() {
            match this.service.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(never)) => match never {},
                Poll::Ready(Ok(())) => {
                    let message = this.message.take().expect("checked above");
                    this.future.set(Some(this.service.call(message)));
                }
            }
        }
        match this.future.as_mut().as_pin_mut() {
            Some(future) => match future.poll(cx) {
                Poll::Ready(Ok(settlement)) => {
                    this.future.set(None);
                    Poll::Ready(settlement)
                }
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => Poll::Pending,
            },
            None => panic!("a slot is polled only after it was started"),
        }
    }
}
