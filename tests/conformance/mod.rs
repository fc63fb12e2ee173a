//! The cross-transport conformance suite (`docs/conformance.md` describes every case).
//!
//! Every bus runs the same cases through a [`BusHarness`]; a case that needs a capability the bus
//! does not declare is skipped *visibly* (a `SKIPPED` line on stderr naming the case, the bus and the
//! capability), never passed silently. Each case uses unique topic names, bounded waits and exact
//! sets of message ids.
//!
//! A bus test file instantiates the suite with `conformance_suite!(harness_expr)`.

#![allow(dead_code, unreachable_pub)]

pub mod probe;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kumi::bus::{Capabilities, SharedBus};

pub use probe::Received;

/// How the suite reaches one kind of bus.
#[async_trait]
pub trait BusHarness: Send + Sync + 'static {
    /// Short name for messages (`memory`, `nats`, ...).
    fn name(&self) -> &'static str;
    /// A fresh connection to the bus under test.
    async fn connect(&self) -> SharedBus;
    /// Another connection to the same broker as `bus` (another "instance"); the in-memory bus
    /// returns `bus` itself, since a process has one.
    async fn peer(&self, bus: &SharedBus) -> SharedBus;
    /// A URL of this scheme where no broker listens, for the unreachable-broker case.
    fn unreachable_url(&self) -> Option<String> {
        None
    }
}

/// How long a case waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(15);

/// A topic name unique to this run and case: `conf.<case>.<n>.<random>`.
pub fn unique(case: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let r: u32 = uuid::Uuid::new_v4().as_u128() as u32;
    format!("conf.{case}.{n}.{r:08x}")
}

/// A named capability test, e.g. `("durable", |c| c.durable)`.
pub type Needs<'a> = (&'a str, fn(&Capabilities) -> bool);

/// True (and a visible `SKIPPED` line) when the bus lacks `needed`.
pub fn skip_unless(bus: &str, case: &str, caps: Capabilities, needed: &[Needs<'_>]) -> bool {
    let missing: Vec<&str> = needed
        .iter()
        .filter(|(_, has)| !has(&caps))
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        false
    } else {
        report_skip(&format!(
            "SKIPPED [{bus}] conformance case '{case}': the bus does not declare {}",
            missing.join(", ")
        ));
        true
    }
}

/// Where skipped cases are listed for `scripts/test` to print after the run (test runners hide
/// the output of passing tests).
pub const SKIP_LOG: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/conformance-skipped.txt");

/// Prints a skip line and appends it to [`SKIP_LOG`].
pub fn report_skip(line: &str) {
    eprintln!("{line}");
    use std::io::Write as _;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(SKIP_LOG)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// The set of `"n"` fields of received payloads.
pub fn ids(received: &[Received]) -> BTreeSet<u64> {
    received
        .iter()
        .filter_map(|r| r.payload["n"].as_u64())
        .collect()
}

/// Shared handle to a harness.
pub type Harness = Arc<dyn BusHarness>;

pub mod cases;

/// Generates one `#[tokio::test]` per conformance case for the harness `$make` builds.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@cases $make;
            c01_publish_then_receive_exact,
            c02_concurrent_publishers_competing_consumers,
            c03_many_topics_one_connection,
            c04_retry_then_succeed,
            c05_dead_letter_after_attempts_others_flow,
            c06_undecodable_dead_lettered_at_once,
            c07_panic_is_a_failure,
            c08_order_preserved_single_consumer,
            c09_consumer_groups,
            c10_durable_restart,
            c12_backpressure_concurrency_limit,
            c13_graceful_shutdown_in_flight,
            c14_envelope_round_trip,
            c15_correlation_and_trace_propagate,
            c16_request_reply_concurrent,
            c17_no_responders_vs_timeout,
            c18_request_handler_error,
            c19_unreachable_broker,
            c20_stop_idempotent_publish_after_stop,
            c21_wildcards,
            c22_retry_backoff_does_not_hold_up_a_single_consumer,
            c23_hung_handler_times_out,
            c24_dead_letter_headers_do_not_hide_failures,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness: $crate::conformance::Harness = ::std::sync::Arc::new($make);
                $crate::conformance::cases::$case(harness).await;
            }
        )*
    };
}
