//! The timer loop of one schedule: sleep until the next occurrence, start a run unless the
//! overlap policy says skip, account for finished runs, and drain on shutdown.
//!
//! One tokio task per schedule owns a [`JoinSet`] of its runs, so the overlap check
//! (`runs.len() < concurrency`), the counters and the drain all happen in one place without
//! locks. Runs are their own tasks: a slow run never delays the timer, and a panicking run is
//! caught inside its task and counted.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use kumi_core::outcome::FailureKind;
use kumi_core::settlement::DrainReport;
use kumi_core::Health;
use kumi_core::Outcome;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::handler::Tick;
use crate::route::Invoke;
use crate::stats::{RunEnd, ScheduleStats};
use crate::timezone::Timezone;
use crate::trigger::Trigger;

/// Longest single sleep towards a wall-clock occurrence: after it the remaining time is measured
/// again, so a wall-clock change (NTP step, suspended VM) delays a calendar run by at most this.
const MAX_WALL_SLEEP: Duration = Duration::from_secs(30);

/// The shutdown signal: `None` while running, `Some(deadline)` once shutdown began.
pub(crate) type StopSignal = watch::Receiver<Option<std::time::Instant>>;

/// A point in time on both clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor {
    pub(crate) wall: DateTime<Utc>,
    pub(crate) mono: Instant,
}

impl Cursor {
    pub(crate) fn now() -> Self {
        Self {
            wall: Utc::now(),
            mono: Instant::now(),
        }
    }
}

/// The next occurrence: its wall-clock time, and for intervals its monotonic deadline.
#[derive(Debug, Clone, Copy)]
struct Due {
    wall: DateTime<Utc>,
    mono: Option<Instant>,
}

impl Due {
    fn has_passed(&self, now: &Cursor) -> bool {
        match self.mono {
            Some(mono) => mono <= now.mono,
            None => self.wall <= now.wall,
        }
    }

    async fn wait(self) {
        match self.mono {
            Some(mono) => tokio::time::sleep_until(mono).await,
            None => loop {
                let remaining = (self.wall - Utc::now()).to_std().unwrap_or_default();
                if remaining.is_zero() {
                    return;
                }
                tokio::time::sleep(remaining.min(MAX_WALL_SLEEP)).await;
            },
        }
    }
}

/// Waits for `next`, if there is one.
async fn wait_for(next: Option<Due>) -> Option<Due> {
    let due = next?;
    due.wait().await;
    Some(due)
}

/// How a run ended.
enum RunResult {
    Done(Outcome),
    TimedOut(Duration),
    Panicked(String),
}

/// One schedule, ready to run.
pub(crate) struct Job {
    pub(crate) route: Arc<str>,
    pub(crate) trigger: Trigger,
    pub(crate) timezone: Timezone,
    pub(crate) immediately: bool,
    pub(crate) concurrency: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) stats: ScheduleStats,
    pub(crate) invoke: Invoke,
}

impl Job {
    /// The first occurrence after `cursor`.
    fn next_due(&self, cursor: Cursor) -> Option<Due> {
        let wall = self.trigger.next_after(cursor.wall, &self.timezone)?;
        let mono = self.trigger.period().map(|p| cursor.mono + p);
        Some(Due { wall, mono })
    }

    /// When the schedule first runs after `start` (not counting the run at start).
    pub(crate) fn first_due(&self, start: Cursor) -> Option<DateTime<Utc>> {
        self.next_due(start).map(|d| d.wall)
    }

    /// Runs the schedule until shutdown (or until a one-shot ran), then drains its runs.
    pub(crate) async fn run(self, mut stop: StopSignal, health: Health) -> DrainReport {
        let mut runs = JoinSet::new();
        if stop.borrow_and_update().is_some() {
            return DrainReport::default();
        }
        // No run before the app finished starting (banner out, started hooks run); the schedule
        // counts from then.
        tokio::select! {
            biased;
            _ = stop.changed() => return DrainReport::default(),
            () = health.started() => {}
        }
        let start = Cursor::now();
        if self.immediately {
            self.fire(
                &mut runs,
                Tick::new(Arc::clone(&self.route), start.wall)
                    .with_timezone(self.timezone)
                    .immediate(),
            );
        }
        let mut next = self.next_due(start);
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                Some(joined) = runs.join_next(), if !runs.is_empty() => self.settle(joined),
                Some(due) = wait_for(next), if next.is_some() => {
                    self.fire(
                        &mut runs,
                        Tick::new(Arc::clone(&self.route), due.wall).with_timezone(self.timezone),
                    );
                    next = self.after(due);
                }
            }
        }
        let deadline = *stop.borrow();
        self.drain(runs, deadline).await
    }

    /// The occurrence after `due`; if that one has already passed too (the process was paused
    /// or the wall clock jumped), skips to the first one after now instead of running a burst.
    fn after(&self, due: Due) -> Option<Due> {
        let now = Cursor::now();
        let cursor = Cursor {
            wall: due.wall,
            mono: due.mono.unwrap_or(now.mono),
        };
        let following = self.next_due(cursor)?;
        if !following.has_passed(&now) {
            return Some(following);
        }
        tracing::warn!(
            route = %self.route,
            trigger = %self.trigger,
            scheduled = %self.timezone.format(following.wall),
            "schedule fell behind (was the process paused or the clock changed?); occurrences \
             that passed meanwhile are not run"
        );
        self.next_due(now)
    }

    /// Starts a run for `tick`, unless `concurrency` runs are still going.
    fn fire(&self, runs: &mut JoinSet<(Tick, RunResult)>, tick: Tick) {
        while let Some(joined) = runs.try_join_next() {
            self.settle(joined);
        }
        let scheduled = self.timezone.format(tick.scheduled());
        if runs.len() >= self.concurrency {
            self.stats.skipped_one();
            tracing::warn!(
                route = %self.route,
                trigger = %self.trigger,
                scheduled = %scheduled,
                running = runs.len(),
                "scheduled run skipped: the previous run is still going"
            );
            return;
        }
        let span = tracing::info_span!(
            "schedule",
            route = %self.route,
            scheduled = %scheduled,
            run_id = %tick.run_id(),
        );
        self.stats.started();
        // Extractors run here, synchronously; a panicking custom extractor must not end the
        // schedule.
        let invoke = Arc::clone(&self.invoke);
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| invoke(tick.clone())));
        let future = match started {
            Ok(Ok(future)) => future,
            Ok(Err(rejection)) => {
                let outcome = Outcome::Failed(FailureKind::Rejected, Box::new(rejection));
                self.settle(Ok((tick, RunResult::Done(outcome))));
                return;
            }
            Err(panic) => {
                self.settle(Ok((
                    tick,
                    RunResult::Panicked(kumi_core::error::panic_message(&*panic)),
                )));
                return;
            }
        };
        let timeout = self.timeout;
        runs.spawn(
            async move {
                tracing::debug!("scheduled run started");
                let run = AssertUnwindSafe(future).catch_unwind();
                let result = match timeout {
                    Some(limit) => match tokio::time::timeout(limit, run).await {
                        Ok(done) => done,
                        Err(_) => return (tick, RunResult::TimedOut(limit)),
                    },
                    None => run.await,
                };
                match result {
                    Ok(outcome) => (tick, RunResult::Done(outcome)),
                    Err(panic) => (
                        tick,
                        RunResult::Panicked(kumi_core::error::panic_message(&*panic)),
                    ),
                }
            }
            .instrument(span),
        );
    }

    /// Counts and logs a finished run.
    fn settle(&self, joined: Result<(Tick, RunResult), JoinError>) {
        let (tick, result) = match joined {
            Ok(done) => done,
            Err(e) => {
                // Runs are only cancelled by the drain, which counts them itself.
                tracing::error!(route = %self.route, error = %e, "scheduled run ended abnormally");
                self.stats.finished(RunEnd::Failure);
                return;
            }
        };
        let scheduled = self.timezone.format(tick.scheduled());
        let run_id = tick.run_id();
        match result {
            RunResult::Done(Outcome::Ok(_)) => {
                self.stats.finished(RunEnd::Success);
                tracing::debug!(route = %self.route, scheduled = %scheduled, run_id, "scheduled run finished");
            }
            RunResult::Done(Outcome::Failed(_, error)) => {
                self.stats.finished(RunEnd::Failure);
                tracing::error!(route = %self.route, scheduled = %scheduled, run_id, error = %error, "scheduled run failed");
            }
            RunResult::TimedOut(limit) => {
                self.stats.finished(RunEnd::Failure);
                tracing::error!(
                    route = %self.route,
                    scheduled = %scheduled,
                    run_id,
                    timeout = ?limit,
                    "scheduled run failed: timed out and was cancelled"
                );
            }
            RunResult::Panicked(text) => {
                self.stats.finished(RunEnd::Panic);
                tracing::error!(route = %self.route, scheduled = %scheduled, run_id, panic = %text, "scheduled run panicked");
            }
        }
    }

    /// Lets the runs still going finish until `deadline`, then cancels the rest.
    async fn drain(
        &self,
        mut runs: JoinSet<(Tick, RunResult)>,
        deadline: Option<std::time::Instant>,
    ) -> DrainReport {
        let mut report = DrainReport::default();
        let deadline = Instant::from_std(deadline.unwrap_or_else(std::time::Instant::now));
        loop {
            match tokio::time::timeout_at(deadline, runs.join_next()).await {
                Ok(Some(joined)) => {
                    self.settle(joined);
                    report.settled += 1;
                }
                Ok(None) => return report,
                Err(_) => break,
            }
        }
        runs.abort_all();
        while let Some(joined) = runs.join_next().await {
            match joined {
                // Finished just before it could be cancelled.
                Ok(done) => {
                    self.settle(Ok(done));
                    report.settled += 1;
                }
                Err(_) => {
                    self.stats.finished(RunEnd::Abandoned);
                    report.abandoned += 1;
                }
            }
        }
        if report.abandoned > 0 {
            tracing::warn!(
                route = %self.route,
                abandoned = report.abandoned,
                "drain deadline passed: scheduled runs still going were cancelled"
            );
        }
        report
    }
}
