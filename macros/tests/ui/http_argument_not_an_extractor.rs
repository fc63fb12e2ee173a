
struct Greeting;

struct Greeter;

#[kumi::service]
impl Greeter {
    #[http(GET, "/greeting")]
    async fn greet(&self, g: Greeting) -> String {
        let _ = g;
        String::new()
    }
}

fn main() {}
