//! Scheduled handlers: async functions whose arguments are tick extractors.
//!
//! Like kumi's message handlers, a scheduled handler is any `async fn` (or closure) whose
//! arguments implement [`FromTick<S>`] and whose return type implements [`IntoOutcome`]: `()`,
//! or `Result<T, E>` with `E: Into<HandlerError>` (any std error, `String`, `&str`,
//! `HandlerError`...). Up to 12 arguments.
//!
//! | extractor | gives |
//! |---|---|
//! | `Arc<S>` | the service itself (this is how `self: Arc<Self>` methods work) |
//! | [`Context`] | publish and request as the service; every publish of one run carries the run's id as correlation id |
//! | [`Client`] | publish and request as the service, without the correlation id |
//! | [`ScheduledTime`] | when this run was due (UTC) |
//! | [`Tick`] | the route, scheduled time, timezone, run id, and whether it is the run-at-start run |
//! | `Option<T>` | any extractor, `None` instead of a rejection |
//!
//! A run is not retried when it fails: the next occurrence is the retry.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use kumi_core::extract::Rejection;
use kumi_core::handler::BoxFuture;
use kumi_core::{Client, Context, IntoOutcome, Outcome};

use crate::timezone::Timezone;

/// One run of a schedule, as its handler sees it. Also an extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    route: Arc<str>,
    scheduled: DateTime<Utc>,
    timezone: Timezone,
    run_id: Arc<str>,
    immediate: bool,
}

impl Tick {
    /// A tick of `route` due at `scheduled`, in UTC, with a fresh run id — for calling handlers
    /// directly in tests.
    pub fn new(route: impl Into<Arc<str>>, scheduled: DateTime<Utc>) -> Self {
        Self {
            route: route.into(),
            scheduled,
            timezone: Timezone::UTC,
            run_id: kumi_core::identity::new_instance_id().into(),
            immediate: false,
        }
    }

    /// The same tick in `timezone`.
    pub fn with_timezone(mut self, timezone: Timezone) -> Self {
        self.timezone = timezone;
        self
    }

    pub(crate) fn immediate(mut self) -> Self {
        self.immediate = true;
        self
    }

    /// The route, `service.handler`.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// When this run was due. It starts at that time or a few milliseconds later; the run at
    /// start ([`immediately`](crate::ScheduleBuilder::immediately)) is due when the service
    /// starts.
    pub fn scheduled(&self) -> DateTime<Utc> {
        self.scheduled
    }

    /// When this run was due, on the schedule's wall clock.
    pub fn scheduled_local(&self) -> DateTime<FixedOffset> {
        self.timezone.to_local(self.scheduled)
    }

    /// The schedule's timezone.
    pub fn timezone(&self) -> Timezone {
        self.timezone
    }

    /// A unique id of this run: logged with it, and the correlation id of what the [`Context`]
    /// extractor publishes.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// True for the run at start of a schedule with
    /// [`immediately`](crate::ScheduleBuilder::immediately).
    pub fn is_immediate(&self) -> bool {
        self.immediate
    }
}

/// When this run was due (UTC). See [`Tick::scheduled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScheduledTime(pub DateTime<Utc>);

/// What a tick extractor sees: the tick, the service and a client publishing as the service.
#[derive(Debug)]
pub struct TickParts<'a, S> {
    /// The run.
    pub tick: &'a Tick,
    /// The service the schedule belongs to.
    pub service: &'a Arc<S>,
    /// A client publishing as that service.
    pub client: &'a Client,
}

/// An argument of a scheduled handler.
///
/// A failing extractor fails the run (logged and counted in
/// [`ScheduleStats::failures`](crate::ScheduleStats::failures)); the handler is not called.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as an argument of a scheduled handler",
    label = "not a tick extractor",
    note = "scheduled handler arguments must implement `FromTick<S>`: `Arc<YourService>`, `Context`, `Client`, `ScheduledTime`, `Tick`, or `Option<..>` of one"
)]
pub trait FromTick<S>: Sized {
    /// Extracts the value, or says why it cannot.
    fn from_tick(parts: &TickParts<'_, S>) -> Result<Self, Rejection>;
}

impl<S> FromTick<S> for Arc<S> {
    fn from_tick(parts: &TickParts<'_, S>) -> Result<Self, Rejection> {
        Ok(Arc::clone(parts.service))
    }
}

impl<S> FromTick<S> for Client {
    fn from_tick(parts: &TickParts<'_, S>) -> Result<Self, Rejection> {
        Ok(parts.client.clone())
    }
}

impl<S> FromTick<S> for Context {
    fn from_tick(parts: &TickParts<'_, S>) -> Result<Self, Rejection> {
        // The run id is the correlation id, so everything the run publishes can be traced back
        // to it.
        Ok(parts.client.context(Some(parts.tick.run_id().to_owned())))
    }
}

impl<S> FromTick<S> for Tick {
    fn from_tick(parts: &TickParts<'_, S>) -> Result<Self, Rejection> {
        Ok(parts.tick.clone())
    }
}

impl<S> FromTick<S> for ScheduledTime {
    fn from_tick(parts: &TickParts<'_, S>) -> Result<Self, Rejection> {
        Ok(ScheduledTime(parts.tick.scheduled()))
    }
}

impl<S, T: FromTick<S>> FromTick<S> for Option<T> {
    fn from_tick(parts: &TickParts<'_, S>) -> Result<Self, Rejection> {
        Ok(T::from_tick(parts).ok())
    }
}

/// An async function usable as a scheduled handler for service `S`. `T` is the tuple of its
/// argument types; it only exists to let the impls for each arity coexist.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a kumi scheduled handler",
    label = "not a scheduled handler",
    note = "a scheduled handler is an `async fn` whose arguments all implement `FromTick<S>` (`Arc<Self>`, `Context`, `Client`, `ScheduledTime`, `Tick`) and whose return type implements `IntoOutcome` (`()`, or `Result<T, E: Into<HandlerError>>`)"
)]
pub trait TickHandler<T, S>: Clone + Send + Sync + 'static {
    /// Runs the extractors, then starts the handler. A rejection means the handler never ran.
    fn call(&self, parts: &TickParts<'_, S>) -> Result<BoxFuture<Outcome>, Rejection>;
}

macro_rules! impl_tick_handler {
    ($($ty:ident),*) => {
        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, R, S, $($ty,)*> TickHandler<($($ty,)*), S> for F
        where
            F: Fn($($ty),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoOutcome + 'static,
            S: Send + Sync + 'static,
            $($ty: FromTick<S> + Send + 'static,)*
        {
            fn call(&self, parts: &TickParts<'_, S>) -> Result<BoxFuture<Outcome>, Rejection> {
                $(let $ty = $ty::from_tick(parts)?;)*
                let fut = (self)($($ty),*);
                Ok(Box::pin(async move { fut.await.into_outcome(None) }))
            }
        }
    };
}

impl_tick_handler!();
impl_tick_handler!(T1);
impl_tick_handler!(T1, T2);
impl_tick_handler!(T1, T2, T3);
impl_tick_handler!(T1, T2, T3, T4);
impl_tick_handler!(T1, T2, T3, T4, T5);
impl_tick_handler!(T1, T2, T3, T4, T5, T6);
impl_tick_handler!(T1, T2, T3, T4, T5, T6, T7);
impl_tick_handler!(T1, T2, T3, T4, T5, T6, T7, T8);
impl_tick_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9);
impl_tick_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
impl_tick_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
impl_tick_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);
