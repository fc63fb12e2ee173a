use kumi::http::{BusContext, Json};

#[derive(serde::Deserialize)]
struct Order {
    item: String,
}

struct Shop;

#[kumi::service]
impl Shop {
    #[http(POST, "/orders")]
    async fn create(&self, Json(order): Json<Order>, ctx: BusContext) -> String {
        let _ = ctx;
        order.item
    }
}

fn main() {}
