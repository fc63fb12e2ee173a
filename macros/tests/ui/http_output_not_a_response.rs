
struct Order;

struct Shop;

#[kumi::service]
impl Shop {
    #[http(GET, "/order")]
    async fn order(&self) -> Order {
        Order
    }
}

fn main() {}
