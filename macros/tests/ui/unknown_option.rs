use kumi::prelude::*;

struct Orders;

#[kumi::service]
impl Orders {
    #[subscribe("orders.created", concurency = 8)]
    async fn on_created(&self, Data(id): Data<u64>) {
        let _ = id;
    }
}

fn main() {}
