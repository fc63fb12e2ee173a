use std::rc::Rc;


struct Shop;

async fn elsewhere() {}

#[kumi::service]
impl Shop {
    #[http(GET, "/count")]
    async fn count(&self) -> String {
        let count = Rc::new(1);
        elsewhere().await;
        count.to_string()
    }
}

fn main() {}
