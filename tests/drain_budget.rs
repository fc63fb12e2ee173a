//! The drain budget is shared: transports (here an HTTP request that outlives the whole budget)
//! get half of it, so the bus routes still have time of their own to stop taking messages and
//! finish the ones in hand. On core NATS a message still in hand at the deadline is lost: the
//! route of this test always has one in hand while messages keep coming, so without its share
//! of the budget the drain abandons it.

#![cfg(all(feature = "http", feature = "nats"))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kumi::http::{HttpRouterExt, HttpTransport};
use kumi::prelude::*;
use kumi::App;
use serde_json::{json, Value};

struct Busy {
    topic: String,
    handled: AtomicUsize,
    requests: AtomicUsize,
}

impl Busy {
    async fn slow_request(self: Arc<Self>) -> &'static str {
        self.requests.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        "late"
    }

    async fn work(self: Arc<Self>, Data(_v): Data<Value>) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.handled.fetch_add(1, Ordering::SeqCst);
    }
}

impl Service for Busy {
    fn name(&self) -> &str {
        "busy"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.get("/slow", Self::slow_request);
        router.subscribe(&self.topic, Self::work).concurrency(1);
    }
}

fn nats_url() -> String {
    std::env::var("KUMI_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_request_leaves_the_bus_routes_their_share_of_the_drain() {
    let http = HttpTransport::builder().addr("127.0.0.1:0").build();
    let topic = format!("drain.jobs.{}", uuid::Uuid::new_v4().simple());
    let busy = Arc::new(Busy {
        topic: topic.clone(),
        handled: AtomicUsize::new(0),
        requests: AtomicUsize::new(0),
    });
    let app = App::new()
        .bus(kumi::nats::connect(&nats_url()).await.expect("connect"))
        .transport(http.shared())
        .shared_service(Arc::clone(&busy))
        .start()
        .await
        .expect("start");
    let base = http.url().expect("listening");
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    // A request that will still be running at the deadline.
    let request = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send the request");
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while busy.requests.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Jobs of 300 ms at concurrency 1, one every 310 ms from another client, until the end: the
    // route nearly always has one in hand.
    let producer = kumi::Client::new(kumi::nats::connect(&nats_url()).await.expect("connect"));
    let publishing = tokio::spawn(async move {
        for n in 0u64.. {
            if producer.publish(&topic, &json!({"n": n})).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(310)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = app
        .shutdown(Duration::from_secs(3))
        .await
        .expect("shutdown");
    publishing.abort();
    assert!(busy.handled.load(Ordering::SeqCst) > 0);
    assert_eq!(
        report.abandoned, 1,
        "only the HTTP request is abandoned, no message in hand ({report:?})"
    );
    request.abort();
}
