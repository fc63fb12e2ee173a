use kumi::websocket::{Session, SessionSender};

struct Chat;

#[kumi::service]
impl Chat {
    #[websocket("/ws", on_connect = joind)]
    async fn chat(&self, session: Session) {
        let _ = session;
    }

    async fn joined(&self, sender: SessionSender) {
        let _ = sender;
    }
}

fn main() {}
