//! Schedules running on real timers: cron with seconds, intervals, the overlap policy, failures
//! and panics, the run at start, one-shots, timeouts, publishing from a run, and shutdown.
//!
//! Waits are bounded polls (`eventually`) wherever a test waits for something to happen; fixed
//! sleeps are only used to check that something does *not* happen, or to count occurrences in a
//! window with bounds that hold on a loaded machine.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use kumi_core::extract::{CorrelationId, Data, Rejection};
use kumi_core::{Client, Context, HandlerError};
use kumi_schedule::{
    Every, FromTick, ScheduleExt, ScheduleStats, ScheduledTime, Tick, TickParts, Trigger,
};
use support::{bounded, eventually, start, TestService};

const WAIT: Duration = Duration::from_secs(5);

/// What the handlers of one test saw.
#[derive(Default)]
struct Probe {
    /// Each run's tick and when it started.
    ticks: Mutex<Vec<(Tick, DateTime<Utc>)>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    finished: AtomicUsize,
}

/// Marks a run as going on while alive.
struct Running(Arc<Probe>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Probe {
    fn enter(self: &Arc<Self>, tick: Tick) -> Running {
        self.ticks.lock().unwrap().push((tick, Utc::now()));
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        Running(Arc::clone(self))
    }

    fn ticks(&self) -> Vec<(Tick, DateTime<Utc>)> {
        self.ticks.lock().unwrap().clone()
    }

    fn runs(&self) -> usize {
        self.ticks.lock().unwrap().len()
    }
}

/// A handler that records its tick, then works for `work`.
fn working(
    probe: &Arc<Probe>,
    work: Duration,
) -> impl Fn(Tick) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    let probe = Arc::clone(probe);
    move |tick: Tick| {
        let probe = Arc::clone(&probe);
        Box::pin(async move {
            let _running = probe.enter(tick);
            tokio::time::sleep(work).await;
            probe.finished.fetch_add(1, Ordering::SeqCst);
        })
    }
}

#[tokio::test]
async fn cron_with_seconds_fires_on_each_second() {
    let probe = Arc::new(Probe::default());
    let handler = working(&probe, Duration::ZERO);
    let (app, schedules) = bounded(start(TestService::new("clock", move |r| {
        r.schedule("*/1 * * * * *", handler.clone()).name("second");
    })))
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ticks = probe.ticks();
    assert!(
        (2..=3).contains(&ticks.len()),
        "{} runs in 2.5 s",
        ticks.len()
    );
    for (tick, started) in &ticks {
        assert_eq!(tick.route(), "clock.second");
        assert_eq!(tick.scheduled(), tick.scheduled().trunc_subsecs(0));
        assert!(*started >= tick.scheduled(), "started before it was due");
        assert!(
            *started - tick.scheduled() < chrono::Duration::seconds(1),
            "started more than a second late"
        );
    }
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1].0.scheduled() - pair[0].0.scheduled(),
            chrono::Duration::seconds(1)
        );
    }
    let stats = schedules.stats("clock.second").expect("stats by route");
    assert!(stats.runs() >= 2);
    bounded(app.shutdown(WAIT)).await.unwrap();
}

#[tokio::test]
async fn intervals_run_on_a_grid_counted_from_start() {
    let probe = Arc::new(Probe::default());
    let handler = working(&probe, Duration::ZERO);
    let before = Utc::now();
    let (app, _) = bounded(start(TestService::new("grid", move |r| {
        r.schedule(Every::millis(100), handler.clone()).name("tick");
    })))
    .await;
    tokio::time::sleep(Duration::from_millis(550)).await;
    let ticks = probe.ticks();
    assert!(
        (3..=6).contains(&ticks.len()),
        "{} runs in 550 ms",
        ticks.len()
    );
    assert!(ticks[0].0.scheduled() >= before + chrono::Duration::milliseconds(100));
    for pair in ticks.windows(2) {
        let step = pair[1].0.scheduled() - pair[0].0.scheduled();
        assert!(
            step >= chrono::Duration::milliseconds(100),
            "runs {step} apart"
        );
    }
    bounded(app.shutdown(WAIT)).await.unwrap();
}

#[tokio::test]
async fn an_occurrence_due_while_the_previous_run_goes_on_is_skipped() {
    let probe = Arc::new(Probe::default());
    let handler = working(&probe, Duration::from_millis(250));
    let (app, schedules) = bounded(start(TestService::new("slow", move |r| {
        r.schedule(Every::millis(40), handler.clone()).name("job");
    })))
    .await;
    let stats = schedules.stats("slow.job").unwrap();
    assert!(bounded(eventually(WAIT, || stats.skipped() >= 8 && probe.runs() >= 2)).await);
    assert_eq!(
        probe.max_running.load(Ordering::SeqCst),
        1,
        "two runs at once"
    );
    assert!(stats.running() <= 1);
    bounded(app.shutdown(WAIT)).await.unwrap();
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 1);
    let s = stats.snapshot();
    assert_eq!(s.runs, s.successes, "{s:?}");
    assert_eq!(s.running, 0);
}

#[tokio::test]
async fn concurrency_allows_n_runs_at_once_and_no_more() {
    let probe = Arc::new(Probe::default());
    let handler = working(&probe, Duration::from_millis(300));
    let (app, schedules) = bounded(start(TestService::new("wide", move |r| {
        r.schedule(Every::millis(40), handler.clone())
            .name("job")
            .concurrency(3);
    })))
    .await;
    let stats = schedules.stats("wide.job").unwrap();
    assert!(bounded(eventually(WAIT, || stats.skipped() >= 5)).await);
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 3);
    bounded(app.shutdown(WAIT)).await.unwrap();
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 3);
}

/// Fails the run before the handler is called.
struct Unavailable;

impl<S> FromTick<S> for Unavailable {
    fn from_tick(_: &TickParts<'_, S>) -> Result<Self, Rejection> {
        Err(Rejection::new("the database pool is not ready"))
    }
}

#[tokio::test]
async fn errors_and_panics_are_counted_and_the_schedule_goes_on() {
    let calls = Arc::new(AtomicUsize::new(0));
    let never = Arc::new(AtomicUsize::new(0));
    let handles: Arc<Mutex<Vec<ScheduleStats>>> = Arc::default();
    let (c, n, h) = (calls.clone(), never.clone(), handles.clone());
    let (app, schedules) = bounded(start(TestService::new("flaky", move |r| {
        let c = c.clone();
        let flaky = r
            .schedule(Every::millis(30), move || {
                let call = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    match call % 3 {
                        0 => Err("the upstream said no".to_owned()),
                        1 => panic!("the handler panicked on call {call}"),
                        _ => Ok(()),
                    }
                }
            })
            .name("job")
            .stats();
        let n = n.clone();
        let rejected = r
            .schedule(Every::millis(30), move |_: Unavailable| {
                n.fetch_add(1, Ordering::SeqCst);
                async {}
            })
            .name("rejected")
            .stats();
        h.lock().unwrap().extend([flaky, rejected]);
    })))
    .await;
    let (flaky, rejected) = {
        let h = handles.lock().unwrap();
        (h[0].clone(), h[1].clone())
    };
    assert_eq!(flaky.route(), Some("flaky.job"));
    assert!(
        bounded(eventually(WAIT, || {
            flaky.successes() + flaky.failures() + flaky.panics() >= 9 && rejected.failures() >= 3
        }))
        .await
    );
    let s = flaky.snapshot();
    assert!(
        s.failures >= 3 && s.panics >= 3 && s.successes >= 3,
        "{s:?}"
    );
    // The transport's handle is the same counters.
    assert_eq!(
        schedules.stats("flaky.job").unwrap().route(),
        Some("flaky.job")
    );
    assert!(schedules.stats("flaky.job").unwrap().runs() >= s.runs);
    assert_eq!(
        never.load(Ordering::SeqCst),
        0,
        "the handler ran despite its extractor failing"
    );
    assert_eq!(rejected.successes(), 0);
    bounded(app.shutdown(WAIT)).await.unwrap();
    let s = flaky.snapshot();
    assert_eq!(s.runs, s.successes + s.failures + s.panics, "{s:?}");
}

#[tokio::test]
async fn a_run_over_its_timeout_is_cancelled_and_counted_as_failed() {
    let probe = Arc::new(Probe::default());
    let handler = working(&probe, Duration::from_secs(30));
    let (app, schedules) = bounded(start(TestService::new("late", move |r| {
        r.schedule(Every::millis(50), handler.clone())
            .name("job")
            .timeout(Duration::from_millis(100));
    })))
    .await;
    let stats = schedules.stats("late.job").unwrap();
    assert!(bounded(eventually(WAIT, || stats.failures() >= 2)).await);
    assert_eq!(probe.finished.load(Ordering::SeqCst), 0);
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 1);
    let report = bounded(app.shutdown(WAIT)).await.unwrap();
    // A run still going at shutdown is cut by its own 100 ms timeout, well within the drain.
    assert_eq!(report.abandoned, 0);
}

#[tokio::test]
async fn immediately_runs_once_at_start_then_on_schedule() {
    let probe = Arc::new(Probe::default());
    let quiet = Arc::new(Probe::default());
    let (handler, quiet_handler) = (
        working(&probe, Duration::ZERO),
        working(&quiet, Duration::ZERO),
    );
    let before = Utc::now();
    let (app, _) = bounded(start(TestService::new("eager", move |r| {
        r.schedule(Every::hours(1), handler.clone())
            .name("now")
            .immediately();
        r.schedule(Every::hours(1), quiet_handler.clone())
            .name("later");
    })))
    .await;
    assert!(bounded(eventually(WAIT, || probe.runs() == 1)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ticks = probe.ticks();
    assert_eq!(ticks.len(), 1);
    let tick = &ticks[0].0;
    assert!(tick.is_immediate());
    // Scheduled once the app finished starting (which ends inside `start`, or just after it).
    assert!(tick.scheduled() >= before && tick.scheduled() <= Utc::now());
    assert_eq!(
        quiet.runs(),
        0,
        "a schedule without `immediately` ran at start"
    );
    bounded(app.shutdown(WAIT)).await.unwrap();
}

#[tokio::test]
async fn a_one_shot_runs_once_at_its_time() {
    let probe = Arc::new(Probe::default());
    let past = Arc::new(Probe::default());
    let (handler, past_handler) = (
        working(&probe, Duration::ZERO),
        working(&past, Duration::ZERO),
    );
    let at = Utc::now() + chrono::Duration::milliseconds(300);
    let (app, schedules) = bounded(start(TestService::new("launch", move |r| {
        r.schedule(Trigger::at(at), handler.clone()).name("go");
        r.schedule(
            Trigger::timestamp("2020-01-01T00:00:00Z"),
            past_handler.clone(),
        )
        .name("missed");
    })))
    .await;
    assert!(bounded(eventually(WAIT, || probe.runs() == 1)).await);
    let (tick, started) = probe.ticks()[0].clone();
    assert_eq!(tick.scheduled(), at);
    assert!(started >= at);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(probe.runs(), 1);
    assert_eq!(past.runs(), 0);
    assert_eq!(schedules.stats("launch.go").unwrap().runs(), 1);
    bounded(app.shutdown(WAIT)).await.unwrap();
}

#[tokio::test]
async fn runs_publish_as_the_service_with_the_run_id_as_correlation_id() {
    // (payload, correlation id) of each `shop.ticked` event.
    type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;
    let seen: Seen = Arc::default();
    let runs: Arc<Mutex<Vec<Tick>>> = Arc::default();
    let (s, t) = (seen.clone(), runs.clone());
    let (app, _) = bounded(start(TestService::new("shop", move |r| {
        let t = t.clone();
        r.schedule(
            Every::hours(1),
            move |svc: Arc<TestService>,
                  ctx: Context,
                  client: Client,
                  tick: Tick,
                  ScheduledTime(at): ScheduledTime| {
                let t = t.clone();
                async move {
                    assert_eq!(tick.scheduled(), at);
                    assert_eq!(client.identity().name, "shop");
                    let _ = svc;
                    t.lock().unwrap().push(tick);
                    ctx.publish("shop.ticked", &at.to_rfc3339()).await?;
                    Ok::<_, HandlerError>(())
                }
            },
        )
        .name("tick")
        .immediately();
        let s = s.clone();
        r.subscribe(
            "shop.ticked",
            move |Data(at): Data<String>, CorrelationId(id): CorrelationId| {
                s.lock().unwrap().push((at, id));
                async {}
            },
        );
    })))
    .await;
    assert!(bounded(eventually(WAIT, || seen.lock().unwrap().len() == 1)).await);
    let tick = runs.lock().unwrap()[0].clone();
    let (at, id) = seen.lock().unwrap()[0].clone();
    assert_eq!(at, tick.scheduled().to_rfc3339());
    assert_eq!(id.as_deref(), Some(tick.run_id()));
    bounded(app.shutdown(WAIT)).await.unwrap();
}

#[tokio::test]
async fn shutdown_starts_no_new_runs_and_waits_for_running_ones() {
    let probe = Arc::new(Probe::default());
    let handler = working(&probe, Duration::from_millis(300));
    let (app, schedules) = bounded(start(TestService::new("drain", move |r| {
        r.schedule(Every::millis(50), handler.clone()).name("job");
    })))
    .await;
    assert!(bounded(eventually(WAIT, || probe.running.load(Ordering::SeqCst) == 1)).await);
    let stopping = Instant::now();
    let report = bounded(app.shutdown(Duration::from_secs(3))).await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "the drain waited for the deadline"
    );
    assert_eq!((report.settled, report.abandoned), (1, 0));
    let runs = probe.runs();
    assert_eq!(
        probe.finished.load(Ordering::SeqCst),
        runs,
        "a run did not finish"
    );
    assert_eq!(probe.running.load(Ordering::SeqCst), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(probe.runs(), runs, "a run started after shutdown");
    let s = schedules.stats("drain.job").unwrap().snapshot();
    assert_eq!(
        (s.runs, s.successes, s.running),
        (runs as u64, runs as u64, 0)
    );
}

#[tokio::test]
async fn runs_still_going_at_the_drain_deadline_are_abandoned() {
    let probe = Arc::new(Probe::default());
    let handler = working(&probe, Duration::from_secs(30));
    let (app, schedules) = bounded(start(TestService::new("stuck", move |r| {
        r.schedule(Every::millis(50), handler.clone()).name("job");
    })))
    .await;
    assert!(bounded(eventually(WAIT, || probe.running.load(Ordering::SeqCst) == 1)).await);
    let stopping = Instant::now();
    let report = bounded(app.shutdown(Duration::from_millis(200)))
        .await
        .unwrap();
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!((report.settled, report.abandoned), (0, 1));
    // The abandoned run was cancelled, not left running.
    assert!(bounded(eventually(WAIT, || probe.running.load(Ordering::SeqCst) == 0)).await);
    assert_eq!(probe.finished.load(Ordering::SeqCst), 0);
    let s = schedules.stats("stuck.job").unwrap().snapshot();
    assert_eq!((s.runs, s.running, s.successes), (1, 0, 0), "{s:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_stalled_schedule_resumes_without_a_burst_of_missed_runs() {
    let probe = Arc::new(Probe::default());
    let p = probe.clone();
    let (app, _) = bounded(start(TestService::new("stall", move |r| {
        let p = p.clone();
        r.schedule(Every::millis(100), move |tick: Tick| {
            let p = p.clone();
            async move {
                let _running = p.enter(tick);
                // Blocks the test's only runtime thread, so the timer loop wakes up late, with
                // several occurrences already past, as in a paused process.
                std::thread::sleep(Duration::from_millis(350));
            }
        })
        .name("job")
        .concurrency(10);
    })))
    .await;
    assert!(bounded(eventually(WAIT, || probe.runs() >= 5)).await);
    let ticks = probe.ticks();
    // After the first stall the schedule restarts from "now": consecutive runs are a stall
    // apart, never the 100 ms of a catch-up burst.
    for pair in ticks[1..].windows(2) {
        let gap = pair[1].0.scheduled() - pair[0].0.scheduled();
        assert!(
            gap >= chrono::Duration::milliseconds(300),
            "runs {gap} apart: a burst"
        );
    }
    bounded(app.shutdown(WAIT)).await.unwrap();
}
