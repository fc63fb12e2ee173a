use kumi::prelude::*;

struct Orders;

struct Order;

#[kumi::service]
impl Orders {
    #[request("orders.get")]
    async fn get(&self, Data(id): Data<u64>) -> Order {
        let _ = id;
        Order
    }
}

fn main() {}
