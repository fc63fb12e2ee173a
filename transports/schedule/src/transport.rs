//! [`ScheduleTransport`]: the kumi transport that runs every service's schedules.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{SubsecRound, Utc};
use kumi_core::message::Extensions;
use kumi_core::settlement::DrainReport;
use kumi_core::transport::{ServiceHandle, Transport};
use kumi_core::Health;
use kumi_core::{Error, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::route::Registry;
use crate::scheduler::{Cursor, Job};
use crate::stats::ScheduleStats;

#[derive(Default)]
struct State {
    /// Schedules of attached services, started by `start`.
    pending: Vec<Job>,
    /// One task per started schedule.
    loops: Vec<JoinHandle<DrainReport>>,
    /// Counters by route.
    stats: BTreeMap<String, ScheduleStats>,
}

/// Runs the schedules that services register with [`ScheduleExt`](crate::ScheduleExt).
///
/// [`kumi::runner()`](https://docs.rs/kumi) adds one when the `schedule` feature is on. With
/// [`App`](kumi_core::App), add it yourself and keep a handle for the counters:
///
/// ```no_run
/// # use std::sync::Arc;
/// # use kumi_core::{App, Router, Service};
/// # use kumi_schedule::{Every, ScheduleExt, ScheduleTransport};
/// # struct Shop;
/// # impl Shop { async fn tick(self: Arc<Self>) {} }
/// # impl Service for Shop {
/// #     fn name(&self) -> &str { "shop" }
/// #     fn routes(&self, router: &mut Router<Self>) { router.schedule(Every::seconds(1), Self::tick); }
/// # }
/// # async fn demo() -> kumi_core::Result<()> {
/// let schedules = Arc::new(ScheduleTransport::new());
/// let app = App::new().transport(schedules.clone()).service(Shop).start().await?;
/// let ticks = schedules.stats("shop.tick").expect("registered");
/// println!("{} runs", ticks.runs());
/// app.shutdown(std::time::Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
pub struct ScheduleTransport {
    state: Mutex<State>,
    stop: watch::Sender<Option<Instant>>,
}

impl fmt::Debug for ScheduleTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("ScheduleTransport")
            .field("routes", &state.stats.keys().collect::<Vec<_>>())
            .field("pending", &state.pending.len())
            .field("running", &state.loops.len())
            .finish()
    }
}

impl Default for ScheduleTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl ScheduleTransport {
    /// A transport with no schedules yet; services' schedules are attached when they start.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            stop: watch::Sender::new(None),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters of the schedule named `route` (`service.handler`), once its service started.
    pub fn stats(&self, route: &str) -> Option<ScheduleStats> {
        self.state().stats.get(route).cloned()
    }

    /// The names (`service.handler`) of every attached schedule, sorted.
    pub fn routes(&self) -> Vec<String> {
        self.state().stats.keys().cloned().collect()
    }
}

#[async_trait]
impl Transport for ScheduleTransport {
    fn name(&self) -> &'static str {
        "schedule"
    }

    fn attach(&self, service: &ServiceHandle, extensions: &mut Extensions) -> Result<()> {
        let registry = Registry::take(extensions);
        if registry.routes.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let mut names = HashSet::new();
        let mut jobs = Vec::with_capacity(registry.routes.len());
        for spec in registry.routes {
            let route = format!("{}.{}", service.identity.name, spec.name);
            let fail = |reason: &dyn fmt::Display| {
                Error::config(format!("schedule route '{route}': {reason}"))
            };
            let trigger = spec.trigger.map_err(|e| fail(&e))?;
            if let Some(problem) = spec.problems.first() {
                return Err(fail(problem));
            }
            let timezone = spec.timezone.map_err(|e| fail(&e))?;
            if spec.concurrency == 0 {
                return Err(fail(&"concurrency must be at least 1"));
            }
            if spec.timeout.is_some_and(|t| t.is_zero()) {
                return Err(fail(&"the timeout must be longer than zero"));
            }
            trigger.validate(&timezone, now).map_err(|e| fail(&e))?;
            if !names.insert(route.clone()) {
                return Err(fail(
                    &"registered twice; name one of them with .name(\"...\") (or `name = \"...\"` in the attribute)",
                ));
            }
            let invoke = (spec.bind)(service)
                .ok_or_else(|| fail(&"the handler was registered for another service type"))?;
            spec.stats.set_route(&route);
            jobs.push(Job {
                route: route.into(),
                trigger,
                timezone,
                immediately: spec.immediately,
                concurrency: spec.concurrency,
                timeout: spec.timeout,
                stats: spec.stats,
                invoke,
            });
        }
        let mut state = self.state();
        if let Some(job) = jobs.iter().find(|j| state.stats.contains_key(&*j.route)) {
            return Err(Error::config(format!(
                "schedule route '{}': attached twice to the schedule transport",
                job.route
            )));
        }
        for job in &jobs {
            state.stats.insert(job.route.to_string(), job.stats.clone());
        }
        state.pending.extend(jobs);
        Ok(())
    }

    async fn start(&self, health: Health) -> Result<Vec<String>> {
        let mut state = self.state();
        let jobs = std::mem::take(&mut state.pending);
        let start = Cursor::now();
        let mut lines = Vec::with_capacity(jobs.len());
        for job in jobs {
            let next = job.first_due(start);
            let next_text = match next {
                Some(t) => format!("next {}", job.timezone.format(t.trunc_subsecs(0))),
                None if job.trigger.is_once() => {
                    if !job.immediately {
                        tracing::warn!(
                            route = %job.route,
                            trigger = %job.trigger,
                            "one-shot schedule time has passed; it will not run"
                        );
                    }
                    "time has passed".to_owned()
                }
                None => "no further occurrence".to_owned(),
            };
            let mut options = String::new();
            if job.immediately {
                options.push_str(", immediately");
            }
            if job.concurrency != 1 {
                options.push_str(&format!(", concurrency {}", job.concurrency));
            }
            if let Some(t) = job.timeout {
                options.push_str(&format!(", timeout {}", humantime::format_duration(t)));
            }
            lines.push(format!(
                "schedule  {} ({}) -> {}, {next_text}{options}",
                job.trigger, job.timezone, job.route
            ));
            let stop = self.stop.subscribe();
            state
                .loops
                .push(tokio::spawn(job.run(stop, health.clone())));
        }
        Ok(lines)
    }

    async fn shutdown(&self, deadline: Instant) -> Result<DrainReport> {
        self.stop.send_replace(Some(deadline));
        let loops = std::mem::take(&mut self.state().loops);
        let mut report = DrainReport::default();
        for handle in loops {
            match handle.await {
                Ok(r) => {
                    report.settled += r.settled;
                    report.abandoned += r.abandoned;
                }
                Err(e) => tracing::error!(error = %e, "a schedule's timer task failed"),
            }
        }
        Ok(report)
    }
}

/// A shared handle, for [`App::transport`](kumi_core::App::transport).
impl From<ScheduleTransport> for kumi_core::transport::SharedTransport {
    fn from(transport: ScheduleTransport) -> Self {
        Arc::new(transport)
    }
}
