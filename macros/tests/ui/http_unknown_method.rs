struct Shop;

#[kumi::service]
impl Shop {
    #[http(FETCH, "/orders")]
    async fn orders(&self) -> String {
        String::new()
    }
}

fn main() {}
