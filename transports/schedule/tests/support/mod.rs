//! Shared helpers of the schedule tests: a service whose schedules each test chooses, a way to
//! start it on the in-memory bus with a schedule transport, and bounded waits.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kumi_core::{App, Router, RunningApp, Service};
use kumi_schedule::ScheduleTransport;

type Routes = Box<dyn Fn(&mut Router<TestService>) + Send + Sync>;

/// A service whose routes are given by the test.
pub struct TestService {
    name: &'static str,
    routes: Routes,
}

impl TestService {
    pub fn new(
        name: &'static str,
        routes: impl Fn(&mut Router<TestService>) + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            routes: Box::new(routes),
        }
    }
}

impl Service for TestService {
    fn name(&self) -> &str {
        self.name
    }

    fn routes(&self, router: &mut Router<Self>) {
        (self.routes)(router);
    }
}

/// Starts `service` on a fresh in-memory bus with a schedule transport.
pub async fn start(service: TestService) -> (RunningApp, Arc<ScheduleTransport>) {
    let schedules = Arc::new(ScheduleTransport::new());
    let app = App::new()
        .transport(schedules.clone())
        .service(service)
        .start()
        .await
        .expect("the test service starts");
    (app, schedules)
}

/// Starts `service` and returns the startup error.
pub async fn start_error(service: TestService) -> kumi_core::Error {
    let schedules = Arc::new(ScheduleTransport::new());
    match App::new()
        .transport(schedules)
        .service(service)
        .start()
        .await
    {
        Ok(app) => {
            let _ = app.shutdown(Duration::from_secs(1)).await;
            panic!("the service started, but an error was expected");
        }
        Err(e) => e,
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `future` with a generous bound, so a hang fails the test instead of stalling the run.
pub async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the test finished within 20 s")
}
