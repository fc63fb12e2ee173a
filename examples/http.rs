//! kumi HTTP example: an `orders` service with a JSON API, an endpoint that publishes an event
//! on the bus, a request/reply from an HTTP handler, a custom 404 handler, a service-wide tower
//! layer, and static files. No broker needed (the in-memory bus).
//!
//! ```text
//! cargo run --example http                      # listens on 127.0.0.1:8080
//! cargo run --example http -- --http 127.0.0.1:0   # a free port; the banner shows it
//! ```
//!
//! Then, in another terminal:
//!
//! ```text
//! curl -s localhost:8080/orders
//! curl -s localhost:8080/orders/1
//! curl -si localhost:8080/orders -H 'content-type: application/json' -d '{"item":"sencha","cents":900}'
//! curl -s localhost:8080/orders/1/quote              # an HTTP handler asking the bus
//! curl -si localhost:8080/orders -H 'content-type: application/json' -d '{"item":'   # 400, JSON error
//! curl -s localhost:8080/nowhere                     # the custom 404 handler
//! curl -si -X DELETE localhost:8080/orders           # 405 with Allow
//! curl -s localhost:8080/health/ready
//! open http://localhost:8080/static/                 # static files from examples/static
//! ```
//!
//! Every request is logged (target `kumi_http::access`); `orders.created` events are logged by
//! the bus handler that receives them.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kumi::http::axum::http::HeaderValue;
use kumi::http::axum::response::Response;
use kumi::http::{BusContext, ErrorInfo, HttpError, HttpRouterExt, Json, Method, Path, StatusCode};
use kumi::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
    cents: u64,
}

#[derive(Debug, Deserialize)]
struct NewOrder {
    item: String,
    cents: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Quote {
    order_id: u64,
    cents_with_tax: u64,
}

struct Orders {
    orders: Mutex<BTreeMap<u64, Order>>,
    next_id: AtomicU64,
}

impl Orders {
    fn new() -> Self {
        let mut orders = BTreeMap::new();
        orders.insert(
            1,
            Order {
                id: 1,
                item: "green tea".into(),
                cents: 450,
            },
        );
        Self {
            orders: Mutex::new(orders),
            next_id: AtomicU64::new(2),
        }
    }

    fn find(&self, id: u64) -> Option<Order> {
        let orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        orders.get(&id).cloned()
    }

    /// `GET /orders`
    async fn list(self: Arc<Self>) -> Json<Vec<Order>> {
        let orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        Json(orders.values().cloned().collect())
    }

    /// `GET /orders/{id}`: a 404 `HttpError` goes through the custom 404 handler.
    async fn get_order(self: Arc<Self>, Path(id): Path<u64>) -> Result<Json<Order>, HttpError> {
        self.find(id)
            .map(Json)
            .ok_or_else(|| HttpError::not_found(format!("no order {id}")))
    }

    /// `POST /orders`: stores the order and publishes `orders.created` on the bus (with the
    /// request's `X-Correlation-Id`, if any).
    async fn create(
        self: Arc<Self>,
        ctx: BusContext,
        Json(new): Json<NewOrder>,
    ) -> Result<(StatusCode, Json<Order>), HttpError> {
        let order = Order {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            item: new.item,
            cents: new.cents,
        };
        self.orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(order.id, order.clone());
        ctx.publish("orders.created", &order)
            .await
            .map_err(|e| HttpError::unavailable(format!("cannot publish the order: {e}")))?;
        Ok((StatusCode::CREATED, Json(order)))
    }

    /// `GET /orders/{id}/quote`: asks the `pricing.quote` request handler over the bus.
    async fn quote(
        self: Arc<Self>,
        ctx: BusContext,
        Path(id): Path<u64>,
    ) -> Result<Json<Quote>, HttpError> {
        let order = self
            .find(id)
            .ok_or_else(|| HttpError::not_found(format!("no order {id}")))?;
        let quote = ctx
            .request("pricing.quote", &order)
            .await
            .map_err(|e| HttpError::unavailable(format!("pricing failed: {e}")))?;
        Ok(Json(quote))
    }

    /// Every 404 of the server: unknown routes, missing files, `HttpError::not_found`.
    async fn not_found(self: Arc<Self>, info: ErrorInfo) -> Json<serde_json::Value> {
        Json(serde_json::json!({
            "error": "not-found",
            "path": info.uri().path(),
            "detail": info.message(),
        }))
    }

    /// Bus side: receives what `create` published.
    async fn on_created(self: Arc<Self>, Data(order): Data<Order>, ctx: Context) {
        tracing::info!(
            order.id,
            item = %order.item,
            correlation_id = ctx.correlation_id().unwrap_or(""),
            "orders: order created (event from the HTTP handler)"
        );
    }

    /// Bus side: answers `pricing.quote` requests.
    async fn price(self: Arc<Self>, Data(order): Data<Order>) -> Result<Quote, HandlerError> {
        Ok(Quote {
            order_id: order.id,
            cents_with_tax: order.cents * 110 / 100,
        })
    }
}

/// A response-mapping tower layer for every route of the service.
async fn served_by(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("x-served-by", HeaderValue::from_static("kumi orders"));
    response
}

impl Service for Orders {
    fn name(&self) -> &str {
        "orders"
    }

    fn version(&self) -> &str {
        "1.0.0"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.get("/orders", Self::list);
        router.http(Method::GET, "/orders/{id}", Self::get_order);
        router.post("/orders", Self::create);
        router.get("/orders/{id}/quote", Self::quote);
        router.http_static(
            "/static",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/static"),
        );
        router.http_error(StatusCode::NOT_FOUND, Self::not_found);
        router.http_layer(kumi::http::axum::middleware::map_response(served_by));

        router.subscribe("orders.created", Self::on_created);
        router.request("pricing.quote", Self::price);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    kumi::runner().service(Orders::new()).run().await
}
