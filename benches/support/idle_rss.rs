//! The idle-memory line of the benchmarks: the resident set of a process running a service with
//! one event route, one request route (where the bus has request/reply) and one HTTP route,
//! idle on the bus. Measured in a child process (this benchmark binary, started again), so that
//! nothing the benchmark itself allocated counts.
//!
//! Included by each benchmark with `#[path]`; call [`child`] first thing in `main`, then
//! [`line`] to measure.

use std::sync::Arc;
use std::time::Duration;

use kumi_core::bus::SharedBus;
use kumi_core::extract::Data;
use kumi_core::{App, HandlerError, Router, Service};
use kumi_http::{HttpRouterExt, HttpTransport};

const CHILD: &str = "KUMI_BENCH_IDLE_RSS_URL";
const IDLE: Duration = Duration::from_secs(3);

struct Idle {
    requests: bool,
}

impl Idle {
    async fn on_event(self: Arc<Self>, Data(_value): Data<serde_json::Value>) {}

    async fn on_request(
        self: Arc<Self>,
        Data(value): Data<serde_json::Value>,
    ) -> Result<serde_json::Value, HandlerError> {
        Ok(value)
    }

    async fn hello(self: Arc<Self>) -> &'static str {
        "hello"
    }
}

impl Service for Idle {
    fn name(&self) -> &str {
        "idle"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe("bench.idle.event", Self::on_event);
        if self.requests {
            router.request("bench.idle.request", Self::on_request);
        }
        router.get("/hello", Self::hello);
    }
}

fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// In the child (the environment names a bus URL): connects with `connect`, runs the idle
/// service for a few seconds, prints its resident set and exits. Otherwise returns.
pub(crate) fn child<F, Fut>(connect: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = kumi_core::Result<SharedBus>>,
{
    let Ok(url) = std::env::var(CHILD) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let kib = rt.block_on(async {
        let bus = connect(url.clone()).await.expect("connect");
        let requests = bus.capabilities().request_reply;
        let app = App::new()
            .bus(bus)
            .transport(Arc::new(HttpTransport::bind("127.0.0.1:0")))
            .service(Idle { requests })
            .start()
            .await
            .expect("start");
        tokio::time::sleep(IDLE).await;
        let kib = resident_kib();
        let _ = app.shutdown(Duration::from_secs(5)).await;
        kib
    });
    println!("idle-rss-kib {}", kib.unwrap_or(0));
    std::process::exit(0);
}

/// The resident set, in MiB, of this benchmark started again as a child idling on `url`.
pub(crate) fn measure(url: &str) -> Option<f64> {
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .env(CHILD, url)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("idle-rss-kib "))?
        .trim()
        .parse()
        .ok()?;
    (kib > 0.0).then_some(kib / 1024.0)
}

/// Prints the idle-memory line for `url` (`shown`: the URL without secrets).
pub(crate) fn line(url: &str, shown: &str) {
    match measure(url) {
        Some(mib) => println!(
            "\nidle RSS on {shown}: {mib:.1} MiB (a service with an event route, a request route where the bus has request/reply, and an HTTP route; measured in a child process after {} s idle)",
            IDLE.as_secs()
        ),
        None => println!("\nidle RSS on {shown}: could not be measured"),
    }
}
