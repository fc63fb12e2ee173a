use kumi::prelude::*;

struct Orders;

#[kumi::service]
impl Orders {
    #[subscibe("orders.created")]
    async fn on_created(&self, Data(id): Data<u64>) {
        let _ = id;
    }
}

fn main() {}
