use kumi::http::BusContext;

struct Greeting;

struct Greeter;

#[kumi::service]
impl Greeter {
    #[http(GET, "/greeting")]
    async fn greet(&self, g: Greeting, ctx: BusContext) -> String {
        let _ = (g, ctx);
        String::new()
    }
}

fn main() {}
