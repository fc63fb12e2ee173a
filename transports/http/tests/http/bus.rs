//! HTTP handlers on the bus: publishing an event a bus handler receives, and request/reply.

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use kumi_core::extract::{CorrelationId, Data};
use kumi_core::{App, HandlerError, Router, Service};
use kumi_http::{BusContext, HttpError, HttpRouterExt, HttpTransport, Json, Path};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::support::{build, get, send, within};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
}

/// HTTP in front of the bus.
struct Shop;

impl Shop {
    async fn create(
        self: Arc<Self>,
        ctx: BusContext,
        Json(order): Json<Order>,
    ) -> Result<(StatusCode, Json<String>), HttpError> {
        let id = ctx
            .publish("orders.created", &order)
            .await
            .map_err(|e| HttpError::unavailable(e.to_string()))?;
        Ok((StatusCode::ACCEPTED, Json(id)))
    }

    async fn show(
        self: Arc<Self>,
        ctx: BusContext,
        Path(id): Path<u64>,
    ) -> Result<Json<Order>, HttpError> {
        let order: Order = ctx
            .request("orders.get", &id)
            .await
            .map_err(|e| match e.code() {
                Some(404) => HttpError::not_found(format!("no order {id}")),
                _ => HttpError::unavailable(e.to_string()),
            })?;
        Ok(Json(order))
    }
}

impl Service for Shop {
    fn name(&self) -> &str {
        "shop"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.post("/orders", Self::create);
        router.get("/orders/{id}", Self::show);
    }
}

/// The bus side.
struct Orders {
    created: mpsc::Sender<(Order, Option<String>)>,
}

impl Orders {
    async fn on_created(
        self: Arc<Self>,
        Data(order): Data<Order>,
        CorrelationId(correlation): CorrelationId,
    ) -> Result<(), HandlerError> {
        self.created
            .send((order, correlation))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn get(self: Arc<Self>, Data(id): Data<u64>) -> Result<Order, HandlerError> {
        Ok(Order {
            id,
            item: format!("item #{id}"),
        })
    }
}

impl Service for Orders {
    fn name(&self) -> &str {
        "orders"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe("orders.created", Self::on_created);
        router.request("orders.get", Self::get);
    }
}

#[tokio::test]
async fn an_http_handler_publishes_and_a_bus_handler_receives_it() {
    let (created, mut received) = mpsc::channel(4);
    let http = HttpTransport::bind("127.0.0.1:0");
    let app = App::new()
        .transport(http.shared())
        .service(Shop)
        .service(Orders { created })
        .start()
        .await
        .unwrap();
    let addr = http.local_addr().unwrap();
    let order = Order {
        id: 42,
        item: "green tea".into(),
    };
    let reply = send(
        addr,
        build(
            Method::POST,
            "/orders",
            Some("application/json"),
            serde_json::to_vec(&order).unwrap(),
            &[("x-correlation-id", "corr-42")],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let (got, correlation) = within("the bus handler", received.recv()).await.unwrap();
    assert_eq!(got, order);
    assert_eq!(correlation.as_deref(), Some("corr-42"));

    // Without the header, each HTTP request gets a fresh correlation id.
    let reply = send(
        addr,
        build(
            Method::POST,
            "/orders",
            Some("application/json"),
            serde_json::to_vec(&order).unwrap(),
            &[],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let (_, correlation) = within("the bus handler", received.recv()).await.unwrap();
    assert!(correlation.is_some_and(|c| c.len() >= 32));
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn an_http_handler_makes_a_request_on_the_bus() {
    let (created, _received) = mpsc::channel(4);
    let http = HttpTransport::bind("127.0.0.1:0");
    let app = App::new()
        .transport(http.shared())
        .service(Shop)
        .service(Orders { created })
        .start()
        .await
        .unwrap();
    let reply = get(http.local_addr().unwrap(), "/orders/7").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        serde_json::from_slice::<Order>(&reply.body).unwrap(),
        Order {
            id: 7,
            item: "item #7".into()
        }
    );
    app.shutdown(Duration::from_secs(5)).await.unwrap();
}
