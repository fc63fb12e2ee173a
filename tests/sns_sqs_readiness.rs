//! SNS+SQS readiness follows the routes' receives: while SQS cannot be reached, `/health/ready`
//! says which queue cannot receive and why; once it can again, the process is ready. A TCP proxy
//! the test owns stands between kumi and the emulator (the emulator itself is never stopped).

#![cfg(feature = "sns-sqs")]

#[path = "support/proxy.rs"]
mod proxy;

use std::sync::Arc;
use std::time::Duration;

use kumi::prelude::*;
use kumi::App;
use serde_json::Value;

fn endpoint() -> String {
    std::env::var("KUMI_TEST_SNS_SQS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned())
}

struct Idle {
    topic: String,
}

impl Idle {
    async fn on(self: Arc<Self>, Data(_v): Data<Value>) {}
}

impl Service for Idle {
    fn name(&self) -> &str {
        "idle"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe(&self.topic, Self::on);
    }
}

async fn wait_readiness(
    app: &kumi::RunningApp,
    what: &str,
    ready: impl Fn(&Result<(), Vec<String>>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = app.health().readiness();
        if ready(&now) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: readiness is {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_receives() {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let upstream = endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = proxy::Proxy::start(upstream).await;
    let url = format!(
        "sns+sqs://?region=us-east-1&endpoint=http://{}&access_key_id=testing&secret_access_key=s3cr3t-key&wait_time=1",
        proxy.addr
    );
    let r = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("t-ready-{}", &r[..12]);
    let app = App::new()
        .bus(kumi::sns_sqs::connect(&url).await.expect("connect"))
        .service(Idle { topic })
        .start()
        .await
        .expect("start");
    wait_readiness(&app, "after start", Result::is_ok).await;
    proxy.set_down(true);
    wait_readiness(&app, "while SQS is unreachable", |r| {
        r.as_ref().is_err_and(|why| {
            why.iter().any(|w| {
                w.starts_with("sqs queue ")
                    && w.contains("cannot receive")
                    && !w.contains("s3cr3t-key")
            })
        })
    })
    .await;
    proxy.set_down(false);
    wait_readiness(&app, "once SQS answers again", Result::is_ok).await;
    app.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}
