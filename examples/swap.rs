//! The bus swap: one service — an event handler, a request handler and a publisher — whose demo
//! flow runs to completion and exits, unchanged, on whichever bus the configuration names.
//!
//! ```text
//! cargo run --example swap                                   # memory://
//! KUMI_BUS=nats://127.0.0.1:4222 cargo run --example swap --features nats
//! cargo run --example swap --features amqp -- --bus amqp://guest:guest@127.0.0.1:5672/%2f
//! KUMI_BUS='sns+sqs://?region=us-east-1&endpoint=http://127.0.0.1:5000&access_key_id=x&secret_access_key=x' \
//!     cargo run --example swap --features sns-sqs
//! ```
//!
//! On SNS+SQS, which has no request/reply, the request part of the flow is skipped (and reported
//! as such).
//!
//! The flow: publish three `orders.created` events (the event handler records each and publishes
//! an `orders.confirmed` event, which a second handler records), ask `orders.get` for order 2 (the
//! request handler answers), and ask for order 0 (the request handler fails: the caller gets a
//! remote error with code 500). It prints the [`Report`] and exits 0, or exits 1 naming what did
//! not arrive within the timeout. `tests/swap.rs` runs the same flow on every bus and compares.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use kumi::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// An order, as the events carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Order number.
    pub id: u64,
    /// Price in cents.
    pub cents: u64,
}

/// What the flow observed; equal on every bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Ids the event handler saw on `orders.created`.
    pub created: BTreeSet<u64>,
    /// Ids the second handler saw on `orders.confirmed` (published by the first).
    pub confirmed: BTreeSet<u64>,
    /// The reply to `orders.get` for order 2.
    pub reply: Value,
    /// The error code of `orders.get` for order 0.
    pub error_code: Option<u16>,
    /// Whether the bus offers request/reply (SNS+SQS does not: the request part is skipped and
    /// the request route is not registered, since registering it would be a startup error).
    pub request_reply: bool,
}

enum Seen {
    Created(u64),
    Confirmed(u64),
}

/// The service. Its topics carry a per-run suffix, so runs on a shared broker never mix.
struct Shop {
    run: String,
    seen: mpsc::UnboundedSender<Seen>,
    requests: bool,
}

impl Shop {
    fn topic(&self, name: &str) -> String {
        format!("swap.{}.{name}", self.run)
    }

    async fn on_created(
        self: Arc<Self>,
        Data(order): Data<Order>,
        ctx: Context,
    ) -> Result<(), HandlerError> {
        let _ = self.seen.send(Seen::Created(order.id));
        ctx.publish(&self.topic("orders.confirmed"), &order).await?;
        Ok(())
    }

    async fn on_confirmed(self: Arc<Self>, Data(order): Data<Order>) {
        let _ = self.seen.send(Seen::Confirmed(order.id));
    }

    async fn get(self: Arc<Self>, Data(id): Data<u64>) -> Result<Value, HandlerError> {
        if id == 0 {
            return Err("there is no order 0".into());
        }
        Ok(json!({"id": id, "cents": id * 100}))
    }
}

impl Service for Shop {
    fn name(&self) -> &str {
        "swap-shop"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe(&self.topic("orders.created"), Self::on_created);
        router.subscribe(&self.topic("orders.confirmed"), Self::on_confirmed);
        if self.requests {
            router.request(&self.topic("orders.get"), Self::get);
        }
    }
}

/// Runs the demo flow on the bus at `bus_url` and reports what it saw, or says what was missing.
pub async fn run_flow(bus_url: &str) -> Result<Report, String> {
    const WAIT: Duration = Duration::from_secs(15);
    let bus = kumi::connect(bus_url)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let requests = bus.capabilities().request_reply;
    let shop = Arc::new(Shop {
        run: uuid::Uuid::new_v4().simple().to_string(),
        seen: tx,
        requests,
    });
    let app = kumi::App::new()
        .bus(bus)
        .shared_service(Arc::clone(&shop))
        .start()
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    let client = app.client().with_request_timeout(Duration::from_secs(5));
    let result = async {
        for id in 1..=3u64 {
            client
                .publish(&shop.topic("orders.created"), &Order { id, cents: id * 100 })
                .await
                .map_err(|e| format!("publish order {id}: {e}"))?;
        }
        let mut report = Report {
            created: BTreeSet::new(),
            confirmed: BTreeSet::new(),
            reply: Value::Null,
            error_code: None,
            request_reply: requests,
        };
        let want: BTreeSet<u64> = (1..=3).collect();
        let deadline = tokio::time::Instant::now() + WAIT;
        while report.created != want || report.confirmed != want {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Seen::Created(id))) => {
                    report.created.insert(id);
                }
                Ok(Some(Seen::Confirmed(id))) => {
                    report.confirmed.insert(id);
                }
                _ => {
                    return Err(format!(
                        "within {WAIT:?}: orders.created saw {:?}, orders.confirmed saw {:?}, expected {want:?} on both",
                        report.created, report.confirmed
                    ))
                }
            }
        }
        if !requests {
            return Ok(report);
        }
        report.reply = client
            .request(&shop.topic("orders.get"), &2u64)
            .await
            .map_err(|e| format!("orders.get(2): {e}"))?;
        match client
            .request::<_, Value>(&shop.topic("orders.get"), &0u64)
            .await
        {
            Ok(v) => return Err(format!("orders.get(0) should fail, got {v}")),
            Err(e) => report.error_code = e.code(),
        }
        Ok(report)
    }
    .await;
    app.shutdown(Duration::from_secs(10))
        .await
        .map_err(|e| format!("shutdown: {e}"))?;
    result
}

/// The bus URL: `--bus URL`, else `KUMI_BUS`, else `memory://`.
fn bus_url() -> String {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--bus" {
            if let Some(url) = args.next() {
                return url;
            }
        } else if let Some(url) = a.strip_prefix("--bus=") {
            return url.to_owned();
        }
    }
    std::env::var("KUMI_BUS").unwrap_or_else(|_| "memory://".to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    let url = bus_url();
    match run_flow(&url).await {
        Ok(report) => {
            if report.request_reply {
                println!(
                    "swap on {}: created {:?}, confirmed {:?}, orders.get(2) = {}, orders.get(0) failed with code {:?}",
                    kumi::bus::redact(&url),
                    report.created,
                    report.confirmed,
                    report.reply,
                    report.error_code
                );
            } else {
                println!(
                    "swap on {}: created {:?}, confirmed {:?}; request/reply is not offered on this bus",
                    kumi::bus::redact(&url),
                    report.created,
                    report.confirmed,
                );
            }
            ExitCode::SUCCESS
        }
        Err(missing) => {
            eprintln!("swap on {}: {missing}", kumi::bus::redact(&url));
            ExitCode::FAILURE
        }
    }
}
