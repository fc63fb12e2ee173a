//! Registering schedules on a service's router: [`ScheduleExt::schedule`] and the options of
//! [`ScheduleBuilder`].
//!
//! Routes are stored in the router's extensions and taken out by the
//! [`ScheduleTransport`](crate::ScheduleTransport) when the service starts; that is when string
//! specs and options are checked, so a bad value is a startup error naming the route.

use std::sync::Arc;
use std::time::Duration;

use kumi_core::extract::Rejection;
use kumi_core::handler::BoxFuture;
use kumi_core::message::Extensions;
use kumi_core::setting::IntoDuration;
use kumi_core::{Outcome, Router, ServiceHandle};

use crate::error::SpecError;
use crate::handler::{Tick, TickHandler, TickParts};
use crate::stats::ScheduleStats;
use crate::timezone::{IntoTimezone, Timezone};
use crate::trigger::{IntoTrigger, Trigger};

/// Default number of runs of one schedule at once: 1, so a run due while the previous one is
/// still going is skipped.
pub const DEFAULT_CONCURRENCY: usize = 1;

/// Starts one run of a bound handler.
pub(crate) type Invoke =
    Arc<dyn Fn(Tick) -> Result<BoxFuture<Outcome>, Rejection> + Send + Sync + 'static>;

/// Binds a registered handler to the running service (`None` if the service is another type).
type Bind = Box<dyn Fn(&ServiceHandle) -> Option<Invoke> + Send + Sync + 'static>;

/// One registered schedule, before the service starts.
pub(crate) struct RouteSpec {
    pub(crate) name: String,
    pub(crate) trigger: Result<Trigger, SpecError>,
    pub(crate) timezone: Result<Timezone, SpecError>,
    pub(crate) immediately: bool,
    pub(crate) concurrency: usize,
    pub(crate) timeout: Option<Duration>,
    /// Invalid options (a timeout that is not a duration, say): the service fails to start.
    pub(crate) problems: Vec<String>,
    pub(crate) stats: ScheduleStats,
    pub(crate) bind: Bind,
}

/// The schedules of one service, kept in its router's extensions.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) routes: Vec<RouteSpec>,
}

impl Registry {
    /// Takes the registry out of `extensions`.
    pub(crate) fn take(extensions: &mut Extensions) -> Self {
        extensions.remove::<Registry>().unwrap_or_default()
    }

    /// Runs `change` on the registry stored in `extensions`.
    fn update<R>(extensions: &mut Extensions, change: impl FnOnce(&mut Registry) -> R) -> R {
        change(extensions.get_or_default::<Registry>())
    }
}

/// Adds scheduled routes to a kumi [`Router`].
///
/// ```
/// use std::sync::Arc;
/// use kumi_core::{Context, HandlerError, Router, Service};
/// use kumi_schedule::{Every, ScheduleExt, ScheduledTime};
///
/// struct Shop;
///
/// impl Shop {
///     async fn tick(self: Arc<Self>, ctx: Context, ScheduledTime(at): ScheduledTime) -> Result<(), HandlerError> {
///         ctx.publish("shop.tick", &at.to_rfc3339()).await?;
///         Ok(())
///     }
///     async fn report(self: Arc<Self>) {}
///     async fn cleanup(self: Arc<Self>) {}
/// }
///
/// impl Service for Shop {
///     fn name(&self) -> &str { "shop" }
///     fn routes(&self, router: &mut Router<Self>) {
///         router.schedule(Every::seconds(10), Self::tick).immediately();
///         router.schedule("*/5 * * * * *", Self::report).concurrency(2);
///         router.schedule("08:30", Self::cleanup).timezone("Europe/Stockholm");
///     }
/// }
/// ```
pub trait ScheduleExt<S> {
    /// Runs `handler` whenever `trigger` fires: a [`Trigger`], an
    /// [`Every`](crate::Every) interval, a `Duration`, a `DateTime` (one-shot) or a string in any
    /// form of [`Trigger::parse`] (`"10s"`, `"*/5 * * * *"`, `"@hourly"`, `"weekdays"`,
    /// `"08:30"`, `"2026-11-27T10:00:00Z"`).
    ///
    /// By default: UTC, no run at start, at most one run at a time (an occurrence due while the
    /// previous run is still going is skipped and logged), no timeout, and the handler's
    /// function name as route name (`service.handler` in logs and stats).
    fn schedule<G, H, T>(&mut self, trigger: G, handler: H) -> ScheduleBuilder<'_>
    where
        G: IntoTrigger,
        H: TickHandler<T, S>,
        T: 'static;
}

impl<S: Send + Sync + 'static> ScheduleExt<S> for Router<S> {
    fn schedule<G, H, T>(&mut self, trigger: G, handler: H) -> ScheduleBuilder<'_>
    where
        G: IntoTrigger,
        H: TickHandler<T, S>,
        T: 'static,
    {
        let bind: Bind = Box::new(move |service: &ServiceHandle| {
            let this = service.downcast::<S>()?;
            let client = service.client.clone();
            let handler = handler.clone();
            let invoke: Invoke = Arc::new(move |tick: Tick| {
                handler.call(&TickParts {
                    tick: &tick,
                    service: &this,
                    client: &client,
                })
            });
            Some(invoke)
        });
        let spec = RouteSpec {
            name: kumi_core::handler::handler_name::<H>(),
            trigger: trigger.into_trigger(),
            timezone: Ok(Timezone::UTC),
            immediately: false,
            concurrency: DEFAULT_CONCURRENCY,
            timeout: None,
            problems: Vec::new(),
            stats: ScheduleStats::default(),
            bind,
        };
        let extensions = self.extensions_mut();
        let index = Registry::update(extensions, |r| {
            r.routes.push(spec);
            r.routes.len() - 1
        });
        ScheduleBuilder { extensions, index }
    }
}

/// Options of one schedule, returned by [`ScheduleExt::schedule`].
#[derive(Debug)]
pub struct ScheduleBuilder<'a> {
    extensions: &'a mut Extensions,
    index: usize,
}

impl ScheduleBuilder<'_> {
    fn with(self, change: impl FnOnce(&mut RouteSpec)) -> Self {
        let index = self.index;
        Registry::update(self.extensions, |r| {
            if let Some(spec) = r.routes.get_mut(index) {
                change(spec);
            }
        });
        self
    }

    /// Names the route (default: the handler function's name); logs, stats and the banner show
    /// it as `service.name`.
    pub fn name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|s| s.name = name)
    }

    /// Reads the trigger's calendar fields in this timezone: an IANA name
    /// (`"Europe/Stockholm"`), `"UTC"`, an offset (`"+05:30"`), or a
    /// [`Timezone`]/[`chrono_tz::Tz`]/[`chrono::FixedOffset`]. Default: UTC (see
    /// [`Timezone`] for why). An unknown name is a startup error naming the route.
    pub fn timezone(self, timezone: impl IntoTimezone) -> Self {
        let timezone = timezone.into_timezone();
        self.with(|s| s.timezone = timezone)
    }

    /// Short for [`timezone`](Self::timezone) (`#[schedule(.., tz = "Europe/Stockholm")]`).
    pub fn tz(self, timezone: impl IntoTimezone) -> Self {
        self.timezone(timezone)
    }

    /// Also runs once as soon as the service has started, before the first occurrence.
    pub fn immediately(self) -> Self {
        self.with(|s| s.immediately = true)
    }

    /// Allows up to `n` runs at once (default 1). An occurrence due while `n` runs are still
    /// going is skipped: logged at warn and counted in
    /// [`ScheduleStats::skipped`](crate::ScheduleStats::skipped). Zero is a startup error.
    pub fn concurrency(self, n: usize) -> Self {
        self.with(|s| s.concurrency = n)
    }

    /// Cancels a run that takes longer than `timeout`; it counts as a failure. A `Duration` or
    /// a string such as `"30s"` ([`IntoDuration`]); an invalid or zero one is a startup error
    /// naming the route.
    pub fn timeout(self, timeout: impl IntoDuration) -> Self {
        match timeout.into_duration() {
            Ok(timeout) => self.with(|s| s.timeout = Some(timeout)),
            Err(e) => self.with(|s| s.problems.push(format!("timeout {e}"))),
        }
    }

    /// The schedule's counters (ends the chain).
    pub fn stats(self) -> ScheduleStats {
        let mut stats = ScheduleStats::default();
        let _ = self.with(|s| stats = s.stats.clone());
        stats
    }
}
