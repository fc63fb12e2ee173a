use kumi::prelude::*;

#[derive(serde::Deserialize)]
struct Greeting {
    name: String,
}

struct Greeter;

#[kumi::service]
impl Greeter {
    #[subscribe("greetings")]
    async fn greet(&self, g: Greeting, ctx: Context) {
        let _ = (g.name, ctx);
    }
}

fn main() {}
