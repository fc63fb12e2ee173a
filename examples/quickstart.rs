//! kumi quickstart: two services on the in-memory bus, no broker needed.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! - `shop` (the `Service` trait written by hand) produces: every 2 s it publishes an
//!   `orders.created` event and asks `orders.get` for the order; once it sends a payment that
//!   always fails.
//! - `orders` (written with `#[kumi::service]`) consumes: it handles the events, answers the
//!   requests, and fails the bad payment, which is retried with backoff and then dead-lettered to
//!   `dlq.payments.charge`, where an audit route reports it.
//!
//! Stop it with Ctrl-C (or SIGTERM): in-flight work drains and the process exits 0. Try
//! `KUMI_LOG=debug`, `KUMI_LOG_FORMAT=json`, or `--help`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use kumi::envelope::Raw;
use kumi::prelude::*;
use kumi::{async_trait, BoxError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

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
        ctx.publish("orders.confirmed", &order.id).await?;
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

/// The producer, with the `Service` trait written by hand.
struct Shop {
    stop: watch::Sender<bool>,
}

impl Shop {
    async fn on_confirmed(
        self: Arc<Self>,
        Data(id): Data<u64>,
        CorrelationId(corr): CorrelationId,
    ) {
        tracing::info!(
            id,
            correlation_id = corr.as_deref().unwrap_or(""),
            "shop: order confirmed"
        );
    }

    async fn produce(client: Client, mut stop: watch::Receiver<bool>) {
        let bad = Charge {
            order_id: 0,
            card: "declined".into(),
        };
        if let Err(e) = client.publish("payments.charge", &bad).await {
            tracing::error!("shop: cannot publish: {e}");
        }
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        for id in 1.. {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let order = Order {
                id,
                item: "green tea".into(),
                cents: 450,
            };
            if let Err(e) = client.publish("orders.created", &order).await {
                tracing::error!("shop: cannot publish: {e}");
            }
            match client.request::<_, Order>("orders.get", &id).await {
                Ok(o) => tracing::info!(o.id, item = %o.item, o.cents, "shop: got reply"),
                Err(e) => tracing::error!("shop: request failed: {e}"),
            }
        }
    }
}

#[async_trait]
impl Service for Shop {
    fn name(&self) -> &str {
        "shop"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe("orders.confirmed", Self::on_confirmed);
    }

    async fn started(&self, client: &Client) -> Result<(), BoxError> {
        tokio::spawn(Self::produce(client.clone(), self.stop.subscribe()));
        Ok(())
    }

    async fn stopping(&self, _client: &Client) -> Result<(), BoxError> {
        let _ = self.stop.send(true);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let (stop, _) = watch::channel(false);
    kumi::runner()
        .service(Orders)
        .service(Shop { stop })
        .run()
        .await
}
