use kumi::prelude::*;

struct Orders;

#[kumi::service]
impl Orders {
    #[subscribe("orders.created")]
    fn on_created(&self, Data(id): Data<u64>) {
        let _ = id;
    }
}

fn main() {}
