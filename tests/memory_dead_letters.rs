//! The in-memory bus keeps its dead letters in a bounded store the app reads and replays, whether
//! or not a route subscribes to the dead-letter topic; dead-lettering never waits for room in a
//! queue, so a failing catch-all route cannot block itself.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kumi::memory::MemoryBus;
use kumi::prelude::*;
use kumi::settlement::{ATTEMPTS, DEAD_LETTER_REASON, ORIGINAL_MESSAGE_ID, ORIGINAL_TOPIC};
use kumi::App;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// Rejects messages while `refuse` is set; counts what it handled.
struct Gate {
    pattern: &'static str,
    refuse: AtomicBool,
    handled: AtomicUsize,
}

impl Gate {
    fn new(pattern: &'static str) -> Arc<Self> {
        Arc::new(Self {
            pattern,
            refuse: AtomicBool::new(true),
            handled: AtomicUsize::new(0),
        })
    }

    async fn on(self: Arc<Self>, Data(_v): Data<Value>) -> Result<(), HandlerError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(HandlerError::reject("refused as asked"));
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl Service for Gate {
    fn name(&self) -> &str {
        "gate"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe(self.pattern, Self::on).concurrency(1);
    }
}

async fn until(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} did not happen"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_kept_read_and_replayed() {
    let bus = MemoryBus::new();
    let gate = Gate::new("orders.created");
    let app = App::new()
        .bus(Arc::new(bus.clone()))
        .shared_service(Arc::clone(&gate))
        .start()
        .await
        .expect("start");
    for n in 0..3u64 {
        app.client()
            .publish("orders.created", &json!({"n": n}))
            .await
            .expect("publish");
    }
    until("three dead letters", || bus.dead_letter_count() == 3).await;
    let kept = bus.dead_letters();
    for letter in &kept {
        assert_eq!(letter.topic, "dlq.orders.created");
        assert_eq!(
            letter.headers.get(DEAD_LETTER_REASON),
            Some("refused as asked")
        );
        assert_eq!(letter.headers.get(ORIGINAL_TOPIC), Some("orders.created"));
        assert_eq!(letter.headers.get(ATTEMPTS), Some("1"));
        let original = letter
            .headers
            .get(ORIGINAL_MESSAGE_ID)
            .expect("original id");
        assert_eq!(letter.message_id, format!("{original}.dlq1"));
        let body: Value = serde_json::from_slice(&letter.body).expect("the original body");
        assert!(body["data"]["n"].is_u64());
    }
    // Replayed while the handler still refuses: dead-lettered again, not acknowledged away.
    assert_eq!(bus.replay_dead_letters().await.expect("replay"), 3);
    until("the replayed failures dead-lettered again", || {
        bus.dead_letter_count() == 3
    })
    .await;
    // Replayed once the handler accepts them: handled, and the store is empty.
    gate.refuse.store(false, Ordering::SeqCst);
    assert_eq!(bus.replay_dead_letters().await.expect("replay"), 3);
    until("the replayed messages handled", || {
        gate.handled.load(Ordering::SeqCst) == 3
    })
    .await;
    assert_eq!(bus.dead_letter_count(), 0);
    assert!(bus.take_dead_letters().is_empty());
    app.shutdown(WAIT).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_bounded() {
    let bus = MemoryBus::from_url("memory://?dead_letters=2").expect("url");
    let gate = Gate::new("a");
    let app = App::new()
        .bus(Arc::new(bus.clone()))
        .shared_service(Arc::clone(&gate))
        .start()
        .await
        .expect("start");
    for n in 0..5u64 {
        app.client()
            .publish("a", &json!({"n": n}))
            .await
            .expect("publish");
    }
    until("five dead letters", || bus.dead_letters_dropped() == 3).await;
    let kept: Vec<u64> = bus
        .take_dead_letters()
        .iter()
        .map(|l| {
            serde_json::from_slice::<Value>(&l.body).unwrap()["data"]["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(kept, vec![3, 4], "the newest two are kept");
    assert!(MemoryBus::from_url("memory://?dead_letters=0").is_err());
    app.shutdown(WAIT).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_catch_all_route_does_not_block_itself() {
    // Queues of one message: the catch-all route's own queue is full whenever a publisher waits.
    let bus = MemoryBus::with_capacity(1);
    let gate = Gate::new(">");
    let app = App::new()
        .bus(Arc::new(bus.clone()))
        .shared_service(Arc::clone(&gate))
        .start()
        .await
        .expect("start");
    let client = app.client();
    tokio::time::timeout(WAIT, async {
        for n in 0..20u64 {
            client
                .publish(&format!("t.{n}"), &json!({"n": n}))
                .await
                .expect("publish");
        }
    })
    .await
    .expect("every publish went through: the route is not stuck");
    // Each failure is kept; its dead letter failing on dlq.t.<n> is not dead-lettered again.
    until("twenty dead letters", || bus.dead_letter_count() == 20).await;
    assert!(bus
        .dead_letters()
        .iter()
        .all(|l| l.topic.starts_with("dlq.t.")));
    app.shutdown(WAIT).await.expect("shutdown");
}
