//! kumi quickstart: two services in one process on the embedded default — the in-memory bus,
//! HTTP, a websocket and a schedule. No broker needed.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! - `orders` (written with `#[kumi::service]`) consumes: it handles `orders.created` events,
//!   answers `orders.get` requests, and fails declined payments, which are retried with backoff and
//!   then dead-lettered to `dlq.payments.charge`, where an audit route reports them.
//! - `shop` (the `Service` trait written by hand) produces: a schedule places an order every 5
//!   seconds; `POST /orders` places one over HTTP (the handler publishes on the bus);
//!   `GET /orders/{id}` asks `orders.get` over the bus; `ws://…/events` streams every confirmed
//!   order to websocket clients.
//!
//! While it runs (the banner shows the address; `--http 127.0.0.1:0` picks a free port):
//!
//! ```text
//! curl -s localhost:8080/orders -H 'content-type: application/json' -d '{"item":"matcha","cents":600}'
//! curl -s localhost:8080/orders/7
//! curl -s localhost:8080/health/ready
//! websocat ws://127.0.0.1:8080/events        # one JSON line per confirmed order
//! ```
//!
//! Stop it with Ctrl-C (or SIGTERM): in-flight work drains, websocket clients get `1001 Going
//! Away`, and the process exits 0. Try `KUMI_LOG=debug`, `KUMI_LOG_FORMAT=json`, or `--help`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kumi::envelope::Raw;
use kumi::http::{BusContext, HttpError, Json, Path, StatusCode};
use kumi::prelude::*;
use kumi::schedule::{Every, ScheduledTime};
use kumi::websocket::{Hub, Session};
use kumi::{async_trait, BoxError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
    cents: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Charge {
    order_id: u64,
    card: String,
}

/// The consumer, written with the macro.
struct Orders;

#[kumi::service(name = "orders", version = "1.0.0")]
impl Orders {
    /// Every `orders.created` event, JsonBase-enveloped like tomodachi's.
    #[subscribe("orders.created", concurrency = 8)]
    async fn on_created(&self, Data(order): Data<Order>, ctx: Context) -> Result<(), HandlerError> {
        tracing::info!(order.id, item = %order.item, "orders: order created");
        // Publishing from a handler propagates the correlation id and trace context.
        ctx.publish("orders.confirmed", &order).await?;
        Ok(())
    }

    /// Request/reply: the reply is the handler's value.
    #[request("orders.get")]
    async fn get(&self, Data(id): Data<u64>) -> Result<Order, HandlerError> {
        Ok(Order {
            id,
            item: format!("item #{id}"),
            cents: 100 * id,
        })
    }

    /// Fails for declined cards: retried twice with backoff, then dead-lettered.
    #[subscribe("payments.charge", retries = 2)]
    async fn charge(
        &self,
        Data(charge): Data<Charge>,
        Attempt(attempt): Attempt,
    ) -> Result<(), HandlerError> {
        if charge.card == "declined" {
            tracing::warn!(charge.order_id, attempt, "orders: card declined");
            return Err("card declined".into());
        }
        Ok(())
    }

    /// Dead letters arrive with the original bytes and the reason in headers.
    #[subscribe("dlq.>", envelope = Raw)]
    async fn audit(&self, Topic(topic): Topic, headers: Headers) {
        tracing::error!(
            %topic,
            reason = headers.get("kumi-dead-letter-reason").unwrap_or(""),
            attempts = headers.get("kumi-attempts").unwrap_or(""),
            "orders: dead letter received"
        );
    }
}

#[derive(Debug, Deserialize)]
struct NewOrder {
    item: String,
    cents: u64,
}

/// The producer, with the `Service` trait written by hand.
#[derive(Default)]
struct Shop {
    next_id: AtomicU64,
    hub: Hub,
}

impl Shop {
    fn order(&self, item: String, cents: u64) -> Order {
        Order {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            item,
            cents,
        }
    }

    /// Schedule: place an order every 5 seconds (and once at start).
    async fn tick(
        self: Arc<Self>,
        ctx: Context,
        ScheduledTime(at): ScheduledTime,
    ) -> Result<(), HandlerError> {
        let order = self.order("green tea".into(), 450);
        tracing::info!(order.id, scheduled = %at, "shop: placing the scheduled order");
        ctx.publish("orders.created", &order).await?;
        Ok(())
    }

    /// `POST /orders`: HTTP → bus.
    async fn place(
        self: Arc<Self>,
        ctx: BusContext,
        Json(new): Json<NewOrder>,
    ) -> Result<(StatusCode, Json<Order>), HttpError> {
        let order = self.order(new.item, new.cents);
        ctx.publish("orders.created", &order)
            .await
            .map_err(|e| HttpError::unavailable(e.to_string()))?;
        Ok((StatusCode::ACCEPTED, Json(order)))
    }

    /// `GET /orders/{id}`: HTTP → request/reply over the bus.
    async fn lookup(
        self: Arc<Self>,
        ctx: BusContext,
        Path(id): Path<u64>,
    ) -> Result<Json<Order>, HttpError> {
        let order: Order = ctx
            .request("orders.get", &id)
            .await
            .map_err(|e| HttpError::unavailable(e.to_string()))?;
        Ok(Json(order))
    }

    /// `ws://…/events`: join the hub until the client leaves.
    async fn events(self: Arc<Self>, session: Session) {
        self.hub.join(&session);
        session.closed().await;
    }

    /// Bus → websocket clients.
    async fn on_confirmed(
        self: Arc<Self>,
        Data(order): Data<Order>,
        CorrelationId(corr): CorrelationId,
    ) -> Result<(), HandlerError> {
        let sent = self.hub.broadcast_json(&order)?;
        tracing::info!(
            order.id,
            correlation_id = corr.as_deref().unwrap_or(""),
            websocket_clients = sent,
            "shop: order confirmed"
        );
        Ok(())
    }
}

#[async_trait]
impl Service for Shop {
    fn name(&self) -> &str {
        "shop"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe("orders.confirmed", Self::on_confirmed);
        router.schedule(Every::seconds(5), Self::tick).immediately();
        router.post("/orders", Self::place);
        router.get("/orders/{id}", Self::lookup);
        router.websocket("/events", Self::events);
    }

    async fn started(&self, client: &Client) -> Result<(), BoxError> {
        // One payment that always fails, to show retries and dead-lettering.
        client
            .publish(
                "payments.charge",
                &Charge {
                    order_id: 0,
                    card: "declined".into(),
                },
            )
            .await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    kumi::runner()
        .service(Orders)
        .service(Shop::default())
        .run()
        .await
}
