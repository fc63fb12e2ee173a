//! The runtime against a scripted bus: every settlement, lease extension and give-back the
//! runtime asks of a delivery is recorded, so each rule is checked on its own (the real buses run
//! the conformance suite on top).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Consumer, DispatchService, RouteSpec, Runtime};
use crate::delivery::{Deliveries, Delivery, Refused, Retry};
use crate::error::{Error, ErrorKind};
use crate::message::{Message, Outgoing};
use crate::settlement::{DeadLetter, DeadLetterKind, RouteKind, Settlement};
use crate::stats::RouteStats;

/// What the scripted bus can do and what it saw.
#[derive(Default)]
struct Script {
    /// The bus redelivers retries itself (`Retry::Scheduled`) instead of leaving them in process.
    schedules_retries: bool,
    /// How many dead-letter publishes fail before one succeeds.
    dead_letter_failures: AtomicU32,
    /// The lease of every delivery.
    lease: Option<Duration>,
    log: Mutex<Vec<String>>,
    extended: AtomicUsize,
}

impl Script {
    fn record(&self, event: String) {
        self.log.lock().unwrap().push(event);
    }

    fn events(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

struct TestDeliveries {
    rx: mpsc::UnboundedReceiver<u32>,
    script: Arc<Script>,
}

struct TestDelivery {
    n: u32,
    script: Arc<Script>,
}

impl Deliveries for TestDeliveries {
    type Delivery = TestDelivery;

    async fn next(&mut self, _room: usize) -> Option<TestDelivery> {
        let n = self.rx.recv().await?;
        Some(TestDelivery {
            n,
            script: Arc::clone(&self.script),
        })
    }

    async fn stop(&mut self) {
        self.script.record("stop".into());
        self.rx.close();
    }
}

impl Delivery for TestDelivery {
    fn message(&self) -> Message {
        let mut m = Message::new("t", Bytes::from(self.n.to_string()));
        m.payload = m.body.clone();
        m
    }

    async fn ack(self) -> Result<(), Error> {
        self.script.record(format!("ack {}", self.n));
        Ok(())
    }

    async fn retry(self, delay: Duration) -> Retry<Self> {
        if self.script.schedules_retries {
            self.script.record(format!("requeue {} {delay:?}", self.n));
            Retry::Scheduled
        } else {
            Retry::InProcess(self)
        }
    }

    async fn dead_letter(self, letter: Outgoing) -> Result<(), Refused<Self>> {
        let failures = &self.script.dead_letter_failures;
        if failures.load(Ordering::SeqCst) > 0 {
            failures.fetch_sub(1, Ordering::SeqCst);
            self.script
                .record(format!("dead letter refused {}", self.n));
            return Err(Refused::new(
                self,
                Error::new(ErrorKind::Publish, "broker down"),
            ));
        }
        self.script.record(format!(
            "dead letter {} to {} ({})",
            self.n,
            letter.topic,
            letter
                .headers
                .get(crate::settlement::DEAD_LETTER_KIND)
                .unwrap_or("")
        ));
        Ok(())
    }

    fn lease(&self) -> Option<Duration> {
        self.script.lease
    }

    async fn extend(&self) -> Result<(), Error> {
        self.script.extended.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn release(self) {
        self.script.record(format!("released {}", self.n));
    }
}

/// A route whose "handler" decides from the message number and attempt: `fail_until` attempts
/// fail (retry), numbers in `dead` are dead-lettered, `sleep` makes every call that long.
fn route(
    runtime: &Runtime,
    script: &Arc<Script>,
    concurrency: usize,
    decide: impl Fn(u32, u32) -> Settlement + Clone + Send + Sync + 'static,
    sleep: Duration,
) -> (mpsc::UnboundedSender<u32>, Arc<RouteStats>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(RouteStats::new());
    let service: DispatchService = DispatchService::new(tower::service_fn(move |m: Message| {
        let decide = decide.clone();
        async move {
            if !sleep.is_zero() {
                tokio::time::sleep(sleep).await;
            }
            let n: u32 = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
            Ok::<_, Infallible>(decide(n, m.attempt))
        }
    }));
    runtime
        .start(
            Consumer::new(TestDeliveries {
                rx,
                script: Arc::clone(script),
            }),
            RouteSpec {
                name: "svc.route".into(),
                kind: RouteKind::Event,
                concurrency,
                service,
                stats: Arc::clone(&stats),
            },
        )
        .unwrap();
    (tx, stats)
}

fn retry() -> Settlement {
    Settlement::Retry {
        delay: Duration::from_millis(5),
        error: "boom".into(),
    }
}

fn dead(n: u32) -> Settlement {
    Settlement::DeadLetter(DeadLetter {
        topic: "dlq.t".into(),
        original_topic: "t".into(),
        reason: format!("no {n}"),
        kind: DeadLetterKind::Rejected,
        attempts: 1,
    })
}

async fn wait_for(script: &Script, what: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !what(&script.events()) {
        assert!(Instant::now() < deadline, "events: {:?}", script.events());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn in_process_retries_count_attempts_and_others_flow_meanwhile() {
    for concurrency in [1, 4] {
        let runtime = Runtime::new();
        let script = Arc::new(Script::default());
        let (tx, stats) = route(
            &runtime,
            &script,
            concurrency,
            |n, attempt| {
                if n == 1 && attempt < 3 {
                    retry()
                } else {
                    Settlement::Ack
                }
            },
            Duration::ZERO,
        );
        for n in 1..=5 {
            tx.send(n).unwrap();
        }
        wait_for(&script, |e| {
            e.iter().filter(|e| e.starts_with("ack")).count() == 5
        })
        .await;
        let events = script.events();
        // Message 1 waited its retries out in process while 2..5 went by.
        let first_ack = events.iter().position(|e| e == "ack 1").unwrap();
        assert!(first_ack > 0, "{events:?}");
        let s = stats.snapshot();
        assert_eq!((s.received, s.acked, s.retried, s.in_flight), (5, 5, 2, 0));
        drop(tx);
        let report = runtime.drain(Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(report.abandoned, 0);
    }
}

#[tokio::test]
async fn a_bus_that_delays_redelivery_gets_the_retry() {
    let runtime = Runtime::new();
    let script = Arc::new(Script {
        schedules_retries: true,
        ..Script::default()
    });
    let (tx, stats) = route(&runtime, &script, 2, |_, _| retry(), Duration::ZERO);
    tx.send(7).unwrap();
    wait_for(&script, |e| e.iter().any(|e| e == "requeue 7 5ms")).await;
    let s = stats.snapshot();
    assert_eq!((s.retried, s.requeued, s.in_flight), (1, 1, 0));
}

#[tokio::test]
async fn a_refused_dead_letter_is_published_again_later_without_running_the_handler() {
    let runtime = Runtime::new();
    let script = Arc::new(Script::default());
    script.dead_letter_failures.store(2, Ordering::SeqCst);
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let (tx, stats) = route(
        &runtime,
        &script,
        1,
        move |n, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            dead(n)
        },
        Duration::ZERO,
    );
    tokio::time::pause();
    tx.send(3).unwrap();
    tx.send(4).unwrap();
    // Each refused dead letter waits for its next try in a task of its own; the route goes on.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events = script.events();
        let done = |n: u32| {
            let line = format!("dead letter {n} to dlq.t (rejected)");
            events.contains(&line)
        };
        if done(3) && done(4) {
            break;
        }
        assert!(Instant::now() < deadline, "{events:?}");
        tokio::time::advance(Duration::from_millis(500)).await;
        tokio::task::yield_now().await;
    }
    tokio::time::resume();
    let events = script.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("dead letter refused"))
            .count(),
        2,
        "{events:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "each handler ran once");
    assert_eq!(stats.snapshot().dead_lettered, 2);
}

#[tokio::test]
async fn a_slow_handler_has_its_lease_extended() {
    let runtime = Runtime::new();
    let script = Arc::new(Script {
        lease: Some(Duration::from_millis(20)),
        ..Script::default()
    });
    let (tx, _) = route(
        &runtime,
        &script,
        1,
        |_, _| Settlement::Ack,
        Duration::from_millis(110),
    );
    tx.send(1).unwrap();
    wait_for(&script, |e| e.iter().any(|e| e == "ack 1")).await;
    let extended = script.extended.load(Ordering::SeqCst);
    assert!((3..=6).contains(&extended), "extended {extended} times");
    // A fast one is not extended at all.
    let before = script.extended.load(Ordering::SeqCst);
    let fast = Arc::new(Script {
        lease: Some(Duration::from_millis(20)),
        ..Script::default()
    });
    let (tx2, _) = route(&runtime, &fast, 1, |_, _| Settlement::Ack, Duration::ZERO);
    tx2.send(2).unwrap();
    wait_for(&fast, |e| e.iter().any(|e| e == "ack 2")).await;
    assert_eq!(fast.extended.load(Ordering::SeqCst), 0);
    assert_eq!(script.extended.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn drain_stops_intake_finishes_work_then_gives_back_what_is_left_at_the_deadline() {
    for concurrency in [1, 3] {
        let runtime = Runtime::new();
        let script = Arc::new(Script::default());
        let (tx, stats) = route(
            &runtime,
            &script,
            concurrency,
            |_, _| Settlement::Ack,
            Duration::from_millis(300),
        );
        for n in 1..=concurrency as u32 {
            tx.send(n).unwrap();
        }
        // Every message in a handler: the drain lets them finish and settle.
        wait_for(&script, |_| {
            stats.snapshot().in_flight == concurrency as u64
        })
        .await;
        let report = runtime.drain(Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(
            (report.settled, report.abandoned),
            (concurrency, 0),
            "{:?}",
            script.events()
        );
        assert!(script.events().contains(&"stop".to_owned()));

        // Handlers that outlive the deadline are given back, and counted.
        let runtime = Runtime::new();
        let script = Arc::new(Script::default());
        let (tx, stats) = route(
            &runtime,
            &script,
            concurrency,
            |_, _| Settlement::Ack,
            Duration::from_secs(30),
        );
        for n in 1..=concurrency as u32 {
            tx.send(n).unwrap();
        }
        wait_for(&script, |_| {
            stats.snapshot().in_flight == concurrency as u64
        })
        .await;
        let started = Instant::now();
        let report = runtime
            .drain(Instant::now() + Duration::from_millis(200))
            .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            (report.settled, report.abandoned),
            (0, concurrency),
            "{:?}",
            script.events()
        );
        let released = script
            .events()
            .iter()
            .filter(|e| e.starts_with("released"))
            .count();
        assert_eq!(released, concurrency);
        assert_eq!(stats.snapshot().in_flight, 0);
    }
}

#[tokio::test]
async fn never_more_handlers_than_the_concurrency_and_no_route_after_drain() {
    let runtime = Runtime::new();
    let script = Arc::new(Script::default());
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(RouteStats::new());
    let (r, p) = (Arc::clone(&running), Arc::clone(&peak));
    let service: DispatchService = DispatchService::new(tower::service_fn(move |_m: Message| {
        let (r, p) = (Arc::clone(&r), Arc::clone(&p));
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(Settlement::Ack)
        }
    }));
    runtime
        .start(
            Consumer::new(TestDeliveries {
                rx,
                script: Arc::clone(&script),
            }),
            RouteSpec {
                name: "svc.route".into(),
                kind: RouteKind::Event,
                concurrency: 3,
                service,
                stats: Arc::clone(&stats),
            },
        )
        .unwrap();
    for n in 0..60 {
        tx.send(n).unwrap();
    }
    wait_for(&script, |_| stats.snapshot().acked == 60).await;
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    runtime.drain(Instant::now() + Duration::from_secs(1)).await;
    let (_tx, rx) = mpsc::unbounded_channel();
    let again = runtime.start(
        Consumer::new(TestDeliveries { rx, script }),
        RouteSpec {
            name: "svc.late".into(),
            kind: RouteKind::Event,
            concurrency: 1,
            service: DispatchService::new(tower::service_fn(|_m: Message| async {
                Ok::<_, Infallible>(Settlement::Ack)
            })),
            stats: Arc::new(RouteStats::new()),
        },
    );
    assert_eq!(again.unwrap_err().kind(), ErrorKind::Closed);
}

#[tokio::test]
async fn a_retry_due_runs_while_the_reader_waits_for_the_bus() {
    // Concurrency 2: message 1's handler is busy for long, message 2 fails once. Its retry must
    // not wait for message 1 (nor for a new message) while the reader waits for the bus.
    let runtime = Runtime::new();
    let script = Arc::new(Script::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let service = DispatchService::new(tower::service_fn(|m: Message| async move {
        let n: u32 = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
        if n == 1 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Ok::<_, Infallible>(if n == 2 && m.attempt == 1 {
            retry()
        } else {
            Settlement::Ack
        })
    }));
    runtime
        .start(
            Consumer::new(TestDeliveries {
                rx,
                script: Arc::clone(&script),
            }),
            RouteSpec {
                name: "svc.route".into(),
                kind: RouteKind::Event,
                concurrency: 2,
                service,
                stats: Arc::new(RouteStats::new()),
            },
        )
        .unwrap();
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    let started = Instant::now();
    wait_for(&script, |e| e.iter().any(|e| e == "ack 2")).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the retry waited {:?}",
        started.elapsed()
    );
}
