
struct Chat;

#[kumi::service]
impl Chat {
    #[websocket("/ws")]
    async fn chat(&self) {}
}

fn main() {}
