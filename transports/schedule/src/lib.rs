//! kumi-schedule: scheduled handlers for kumi services — fixed intervals, cron expressions
//! (with or without seconds), aliases such as `hourly` or `weekdays`, daily times of day,
//! one-shot timestamps — in any timezone, with an overlap policy, counters and a graceful drain.
//!
//! Users reach it as `kumi::schedule` (Cargo feature `schedule`, on by default); `kumi::runner()`
//! adds the [`ScheduleTransport`] for you.
//!
//! ```
//! use std::sync::Arc;
//! use kumi_core::{Context, HandlerError, Router, Service};
//! use kumi_schedule::{Every, ScheduleExt, ScheduledTime, Trigger};
//!
//! struct Shop;
//!
//! impl Shop {
//!     async fn tick(self: Arc<Self>, ctx: Context, ScheduledTime(at): ScheduledTime) -> Result<(), HandlerError> {
//!         ctx.publish("shop.ticked", &at.to_rfc3339()).await?;
//!         Ok(())
//!     }
//!     async fn report(self: Arc<Self>) {}
//!     async fn open(self: Arc<Self>) {}
//!     async fn sale(self: Arc<Self>) {}
//! }
//!
//! impl Service for Shop {
//!     fn name(&self) -> &str { "shop" }
//!     fn routes(&self, router: &mut Router<Self>) {
//!         // Every 10 s from start, and once right away.
//!         router.schedule(Every::seconds(10), Self::tick).immediately();
//!         // At second 0 and 30 of every minute, at most two runs at once.
//!         router.schedule("0,30 * * * * *", Self::report).concurrency(2);
//!         // Weekdays at 08:30, Stockholm time (DST handled).
//!         router.schedule("30 8 * * MON-FRI", Self::open).timezone("Europe/Stockholm");
//!         // Once.
//!         router.schedule(Trigger::timestamp("2030-11-27T10:00:00Z"), Self::sale);
//!     }
//! }
//! ```
//!
//! # Handlers
//!
//! A scheduled handler is an async fn like a kumi message handler: its arguments are
//! extractors ([`FromTick`]): the service (`self: Arc<Self>`), a [`Context`](kumi_core::Context)
//! or [`Client`](kumi_core::Client) to publish and request, the [`ScheduledTime`] or the whole
//! [`Tick`]. It returns `()` or `Result<_, E>` with `E: Into<HandlerError>`. See [`handler`].
//!
//! # Triggers and timezones
//!
//! See [`trigger`] for every form (and what happens across daylight saving changes),
//! [`cron`] for the cron syntax and [`Timezone`] for timezones. The default timezone is UTC.
//!
//! # Overlap, failures, shutdown
//!
//! - **Overlap**: by default at most one run of a schedule goes on at a time; an occurrence due
//!   while the previous run is still going is *skipped*, logged at warn with the trigger and the
//!   scheduled time, and counted. [`ScheduleBuilder::concurrency`] allows `n` at once.
//! - **Failures**: an `Err`, a timeout ([`ScheduleBuilder::timeout`]) or a panic is logged at
//!   error with the route name and counted ([`ScheduleStats`]); the schedule goes on. Runs are
//!   not retried — the next occurrence is the retry.
//! - **Falling behind**: if the process was paused or the wall clock jumped past several
//!   occurrences, the schedule runs once, late, and resumes at the next occurrence (no burst).
//! - **Shutdown**: no new runs start; runs still going finish until the drain deadline and are
//!   then cancelled and reported as abandoned.
//! - **Invalid specs** (a bad cron expression, interval, time, timestamp or timezone, a zero
//!   concurrency) are startup errors naming the route and the value, never panics.
//!
//! # Why not tokio-cron-scheduler's job runner
//!
//! kumi-schedule runs one tokio task per schedule that sleeps until the next occurrence
//! (`sleep_until`), and computes occurrences with [croner], the cron engine tokio-cron-scheduler
//! 0.15 itself is built on (version 4.0.3 here, which fixes a daily job running twice on a
//! spring-forward day). tokio-cron-scheduler's job runner wakes every 500 ms to poll a job store
//! (so runs start up to half a second late), requires 6-field expressions, runs every job
//! without an overlap policy, and cannot let in-flight runs finish until a deadline and report
//! what it abandoned — all of which a kumi transport needs. A loop per schedule gives those
//! directly: the loop owns its runs (a `JoinSet`), checks the overlap policy before starting
//! one, counts their outcomes, and drains them on shutdown. Intervals sleep on the monotonic
//! clock; calendar triggers re-check the wall clock at least every 30 s, so a clock change
//! delays them by no more than that.

pub mod cron;
mod error;
pub mod handler;
mod route;
mod scheduler;
mod stats;
mod timezone;
mod transport;
pub mod trigger;

pub use error::{SpecError, SpecKind};
pub use handler::{FromTick, ScheduledTime, Tick, TickHandler, TickParts};
pub use route::{ScheduleBuilder, ScheduleExt, DEFAULT_CONCURRENCY};
pub use stats::{ScheduleStats, StatsSnapshot};
pub use timezone::{IntoTimezone, Timezone};
pub use transport::ScheduleTransport;
pub use trigger::{Every, IntoTrigger, Trigger};

/// The chrono version used in this crate's API ([`ScheduledTime`], [`Trigger::at`]...).
pub use chrono;
/// The chrono-tz version used for IANA timezones ([`Timezone::named`]).
pub use chrono_tz;

use std::sync::Arc;

use kumi_core::runner::Config;
use kumi_core::transport::SharedTransport;

/// Builds the transport from the runner configuration (`kumi::runner()` calls it). The schedule
/// transport has no settings of its own; with no schedules registered it does nothing.
pub fn transport_from_config(_config: &Config) -> kumi_core::Result<SharedTransport> {
    Ok(Arc::new(ScheduleTransport::new()))
}
