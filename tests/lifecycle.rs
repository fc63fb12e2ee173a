//! The order of startup: every service's routes listen and the transports start, then
//! `App::on_listening` (where the runner prints its banner), then the services' `started` hooks,
//! then the process is ready and a schedule's run at start happens.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kumi::prelude::*;
use kumi::schedule::{Every, ScheduleTransport};
use kumi::{async_trait, App, BoxError, ErrorKind};

const WAIT: Duration = Duration::from_secs(10);

/// What happened, in order.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn push(&self, what: impl Into<String>) {
        self.0.lock().unwrap().push(what.into());
    }

    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    async fn wait_for(&self, what: &str) {
        tokio::time::timeout(WAIT, async {
            while !self.entries().iter().any(|e| e == what) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("'{what}' did not happen; log: {:?}", self.entries()));
    }
}

/// Publishes from its `started` hook to a topic that only `Receiver` (added after it) consumes,
/// and has a schedule that runs at start.
struct Announcer {
    log: Arc<Log>,
    fail_started: bool,
}

impl Announcer {
    async fn at_start(self: Arc<Self>) {
        self.log.push("scheduled run");
    }
}

#[async_trait]
impl Service for Announcer {
    fn name(&self) -> &str {
        "announcer"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router
            .schedule(Every::hours(1), Self::at_start)
            .immediately();
    }

    async fn started(&self, client: &Client) -> Result<(), BoxError> {
        if self.fail_started {
            return Err("cache warm-up failed".into());
        }
        client.publish("lifecycle.hello", &"hello").await?;
        self.log.push("announcer started");
        Ok(())
    }
}

struct Receiver {
    log: Arc<Log>,
}

impl Receiver {
    async fn on_hello(self: Arc<Self>, Data(text): Data<String>) {
        self.log.push(format!("received {text}"));
    }
}

#[async_trait]
impl Service for Receiver {
    fn name(&self) -> &str {
        "receiver"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe("lifecycle.hello", Self::on_hello);
    }
}

fn app(log: &Arc<Log>, fail_started: bool) -> App {
    let listening = Arc::clone(log);
    App::new()
        .transport(Arc::new(ScheduleTransport::new()))
        .service(Announcer {
            log: Arc::clone(log),
            fail_started,
        })
        .service(Receiver {
            log: Arc::clone(log),
        })
        .on_listening(move |running| {
            let routes: Vec<String> = running.routes().map(|r| r.name.to_string()).collect();
            listening.push(format!("listening {}", routes.join(" ")));
            assert!(
                running.health().readiness().is_err(),
                "not ready before the started hooks ran"
            );
        })
}

#[tokio::test]
async fn started_hooks_run_once_everything_listens_and_before_the_run_at_start() {
    let log = Arc::new(Log::default());
    let running = tokio::time::timeout(WAIT, app(&log, false).start())
        .await
        .expect("start in time")
        .expect("the app starts");
    assert!(running.health().readiness().is_ok());
    // The hook of the first service published to the second one's route: it was listening.
    log.wait_for("received hello").await;
    log.wait_for("scheduled run").await;
    let entries = log.entries();
    let at = |what: &str| {
        entries
            .iter()
            .position(|e| e == what)
            .unwrap_or_else(|| panic!("no '{what}' in {entries:?}"))
    };
    assert_eq!(entries[0], "listening receiver.on_hello", "{entries:?}");
    assert!(
        at("announcer started") < at("scheduled run"),
        "the run at start waits for the started hooks: {entries:?}"
    );
    running.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_failing_started_hook_aborts_startup_and_names_the_service() {
    let log = Arc::new(Log::default());
    let err = tokio::time::timeout(WAIT, app(&log, true).start())
        .await
        .expect("start in time")
        .expect_err("the started hook fails");
    assert_eq!(err.kind(), ErrorKind::Lifecycle);
    let text = err.to_string();
    assert!(
        text.contains("service 'announcer': started hook failed")
            && text.contains("cache warm-up failed"),
        "{text}"
    );
    // The schedule was stopped before its run at start, and nothing else ran.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        log.entries(),
        ["listening receiver.on_hello"],
        "only the listening callback ran"
    );
}
