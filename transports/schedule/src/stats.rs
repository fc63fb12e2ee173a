//! [`ScheduleStats`]: live counters of one schedule.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

#[derive(Default)]
struct Counters {
    route: OnceLock<String>,
    runs: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    panics: AtomicU64,
    skipped: AtomicU64,
    running: AtomicU64,
}

/// Live counters of one schedule: a cheap, cloneable handle.
///
/// Get one from [`ScheduleBuilder::stats`](crate::ScheduleBuilder::stats) when registering the
/// route, or from [`ScheduleTransport::stats`](crate::ScheduleTransport::stats) by route name.
/// At any moment `runs == successes + failures + panics + running` (plus runs abandoned at the
/// shutdown deadline).
#[derive(Clone, Default)]
pub struct ScheduleStats(Arc<Counters>);

/// The counters of a schedule at one moment. See [`ScheduleStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Runs started.
    pub runs: u64,
    /// Runs whose handler returned `()` or `Ok`.
    pub successes: u64,
    /// Runs whose handler returned `Err`, timed out, or whose extractors failed.
    pub failures: u64,
    /// Runs whose handler panicked.
    pub panics: u64,
    /// Occurrences not run because the previous runs were still going (overlap policy).
    pub skipped: u64,
    /// Runs going on now.
    pub running: u64,
}

impl ScheduleStats {
    pub(crate) fn set_route(&self, route: &str) {
        let _ = self.0.route.set(route.to_owned());
    }

    /// The route these counters belong to, once the service started.
    pub fn route(&self) -> Option<&str> {
        self.0.route.get().map(String::as_str)
    }

    /// Runs started.
    pub fn runs(&self) -> u64 {
        self.0.runs.load(Ordering::Acquire)
    }

    /// Runs whose handler returned `()` or `Ok`.
    pub fn successes(&self) -> u64 {
        self.0.successes.load(Ordering::Acquire)
    }

    /// Runs whose handler returned `Err`, timed out, or whose extractors failed (panics are
    /// counted apart, in [`panics`](Self::panics)).
    pub fn failures(&self) -> u64 {
        self.0.failures.load(Ordering::Acquire)
    }

    /// Runs whose handler panicked.
    pub fn panics(&self) -> u64 {
        self.0.panics.load(Ordering::Acquire)
    }

    /// Occurrences not run because the previous runs were still going.
    pub fn skipped(&self) -> u64 {
        self.0.skipped.load(Ordering::Acquire)
    }

    /// Runs going on now.
    pub fn running(&self) -> u64 {
        self.0.running.load(Ordering::Acquire)
    }

    /// All counters at once (each read atomically; the set is not one atomic snapshot).
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            runs: self.runs(),
            successes: self.successes(),
            failures: self.failures(),
            panics: self.panics(),
            skipped: self.skipped(),
            running: self.running(),
        }
    }

    pub(crate) fn started(&self) {
        self.0.running.fetch_add(1, Ordering::AcqRel);
        self.0.runs.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn finished(&self, end: RunEnd) {
        let counter = match end {
            RunEnd::Success => Some(&self.0.successes),
            RunEnd::Failure => Some(&self.0.failures),
            RunEnd::Panic => Some(&self.0.panics),
            RunEnd::Abandoned => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::AcqRel);
        }
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn skipped_one(&self) {
        self.0.skipped.fetch_add(1, Ordering::AcqRel);
    }
}

/// How a run ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunEnd {
    Success,
    Failure,
    Panic,
    Abandoned,
}

impl fmt::Debug for ScheduleStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleStats")
            .field("route", &self.route())
            .field("counters", &self.snapshot())
            .finish()
    }
}
