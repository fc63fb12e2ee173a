//! A kumi service on NATS: events, a JetStream durable consumer and request endpoints that any
//! NATS client can discover and call.
//!
//! ```text
//! nats-server -js &                      # or: docker compose up -d nats
//! cargo run --example nats --features nats -- --bus nats://127.0.0.1:4222
//! ```
//!
//! Then, with the `nats` CLI:
//!
//! ```text
//! nats micro ls                                   # the service, its version and instance
//! nats micro info inventory                       # endpoints, subjects, queue group "q"
//! nats micro stats inventory                      # requests, errors, processing time
//! nats req inventory.stock.get '{"sku": "tea"}'   # bare JSON in, bare JSON out
//! nats req inventory.stock.get '{"sku": ""}'      # error reply: Nats-Service-Error(-Code) headers
//! nats pub inventory.restocked '{"sku": "tea", "qty": 5}'   # a raw-envelope event
//! ```
//!
//! `orders.placed` events (tomodachi JsonBase envelope) go through a JetStream durable consumer
//! (its stream, `KUMI_orders_placed`, is created on the first run): stop the example, publish some,
//! start it again — none are lost. The smallest envelope the decoder accepts:
//!
//! ```text
//! nats pub orders.placed '{"metadata": {"protocol_version": "tomodachi-json-base--1.0.0"}, "data": {"sku": "tea", "qty": 2}}'
//! nats stream info KUMI_orders_placed             # what waits for the durable consumer
//! ```
//!
//! Bare JSON on `orders.placed` cannot be decoded as an envelope: it is dead-lettered (published
//! on `dlq.orders.placed` with the reason in its headers), never retried forever.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use kumi::envelope::Raw;
use kumi::nats::{Endpoint, JetStream};
use kumi::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
struct StockQuery {
    sku: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Stock {
    sku: String,
    qty: i64,
}

#[derive(Debug, Deserialize)]
struct OrderPlaced {
    sku: String,
    qty: i64,
}

#[derive(Default)]
struct Inventory {
    stock: Mutex<HashMap<String, i64>>,
}

impl Inventory {
    /// Durable: survives restarts of this service and of the NATS server.
    async fn on_order_placed(self: Arc<Self>, Data(order): Data<OrderPlaced>) {
        let mut stock = self.stock.lock().unwrap_or_else(|e| e.into_inner());
        *stock.entry(order.sku.clone()).or_default() -= order.qty;
        tracing::info!(sku = %order.sku, qty = order.qty, "inventory: order placed");
    }

    /// Bare JSON from any NATS client.
    async fn on_restocked(self: Arc<Self>, Data(s): Data<Stock>) {
        let mut stock = self.stock.lock().unwrap_or_else(|e| e.into_inner());
        *stock.entry(s.sku.clone()).or_default() += s.qty;
        tracing::info!(sku = %s.sku, qty = s.qty, "inventory: restocked");
    }

    /// An ADR-32 endpoint.
    async fn get_stock(self: Arc<Self>, Data(q): Data<StockQuery>) -> Result<Stock, HandlerError> {
        if q.sku.is_empty() {
            return Err(HandlerError::reject("sku must not be empty"));
        }
        let qty = *self
            .stock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&q.sku)
            .unwrap_or(&0);
        Ok(Stock { sku: q.sku, qty })
    }
}

impl Service for Inventory {
    fn name(&self) -> &str {
        "inventory"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    fn description(&self) -> &str {
        "Stock levels, kept up to date from order events"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router
            .subscribe("orders.placed", Self::on_order_placed)
            .option(JetStream::durable());
        router
            .subscribe("inventory.restocked", Self::on_restocked)
            .envelope(Raw);
        router
            .request("inventory.stock.get", Self::get_stock)
            .name("get_stock")
            .option(Endpoint::new().metadata("unit", "pieces"));
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    kumi::run(Inventory::default()).await
}
