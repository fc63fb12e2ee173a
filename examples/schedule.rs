//! Scheduled handlers: an interval, a cron expression with seconds, and a daily time in a
//! timezone, on one service. No broker needed.
//!
//! ```text
//! cargo run --example schedule
//! ```
//!
//! - every 5 s (and once at start) `heartbeat` publishes `shop.heartbeat`, which the same
//!   service consumes; the event carries the run's id as correlation id;
//! - at seconds 0, 15, 30 and 45 of every minute `report` logs how many heartbeats it saw; it
//!   takes 20 s, longer than its period, so the next occurrence is skipped (logged at warn and
//!   counted) unless you raise its concurrency;
//! - every day at 08:30 Stockholm time `open_shop` runs (the banner shows when, with daylight
//!   saving time applied).
//!
//! The startup banner lists each schedule with its next run. Stop it with Ctrl-C: a report
//! still running finishes within the drain timeout (`KUMI_DRAIN_TIMEOUT`, default 30 s).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kumi::prelude::*;
use kumi::schedule::{Every, ScheduleExt, ScheduledTime, Tick};

#[derive(Default)]
struct Shop {
    heartbeats: AtomicU64,
}

impl Shop {
    /// Publishes the time it was due; the run's id travels as correlation id.
    async fn heartbeat(
        self: Arc<Self>,
        ctx: Context,
        ScheduledTime(at): ScheduledTime,
    ) -> Result<(), HandlerError> {
        ctx.publish("shop.heartbeat", &at.to_rfc3339()).await?;
        Ok(())
    }

    /// Consumes the heartbeats.
    async fn on_heartbeat(
        self: Arc<Self>,
        Data(at): Data<String>,
        CorrelationId(run): CorrelationId,
    ) {
        let n = self.heartbeats.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(n, %at, run = run.as_deref().unwrap_or("-"), "heartbeat");
    }

    /// A slow job: overlapping occurrences are skipped.
    async fn report(self: Arc<Self>, tick: Tick) {
        tracing::info!(
            scheduled = %tick.scheduled(),
            heartbeats = self.heartbeats.load(Ordering::Relaxed),
            "report: started"
        );
        tokio::time::sleep(Duration::from_secs(20)).await;
        tracing::info!("report: done");
    }

    /// Runs at 08:30 on the Stockholm wall clock, whatever the server's timezone.
    async fn open_shop(self: Arc<Self>, tick: Tick) {
        tracing::info!(local = %tick.scheduled_local(), "good morning, the shop is open");
    }
}

impl Service for Shop {
    fn name(&self) -> &str {
        "shop"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router
            .schedule(Every::seconds(5), Self::heartbeat)
            .immediately();
        router.schedule("*/15 * * * * *", Self::report);
        router
            .schedule("08:30", Self::open_shop)
            .timezone("Europe/Stockholm");
        router.subscribe("shop.heartbeat", Self::on_heartbeat);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    kumi::runner().service(Shop::default()).run().await
}
