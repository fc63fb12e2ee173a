//! kumi websocket example: a hub that forwards bus events to websocket clients. No broker
//! needed (the in-memory bus).
//!
//! ```text
//! cargo run --example websocket                 # listens on 127.0.0.1:8080
//! ```
//!
//! - `ws://127.0.0.1:8080/ws` — every client gets every `chat.said` event; what a client sends
//!   becomes a `chat.said` event on the bus (so everyone sees it).
//! - `ws://127.0.0.1:8080/rooms/{room}` — only the events for that room; the `clock` room gets a
//!   `clock.ticked` event every 2 seconds.
//! - `POST /say` — an HTTP handler publishing `chat.said`, so plain `curl` reaches the clients.
//!
//! Try it with [websocat](https://github.com/vi/websocat) (`cargo install websocat`):
//!
//! ```text
//! websocat ws://127.0.0.1:8080/ws                 # type a line: every client sees it
//! websocat ws://127.0.0.1:8080/rooms/clock        # a tick every 2 s
//! curl -s localhost:8080/say -H 'content-type: application/json' -d '{"from":"curl","text":"hello"}'
//! ```
//!
//! Stop it with Ctrl-C: every client gets a close frame `1001 Going Away`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use kumi::http::{BusContext, HttpError, HttpRouterExt, Json, StatusCode};
use kumi::prelude::*;
use kumi::websocket::{Hub, Session, SessionClosed, SessionSender, WebSocketRouterExt};
use kumi::{async_trait, BoxError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Said {
    from: String,
    text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tick {
    room: String,
    unix_secs: u64,
}

struct Live {
    hub: Hub,
    stop: watch::Sender<bool>,
}

impl Live {
    /// `/ws`: joins the hub; every text line the client sends becomes a `chat.said` event.
    async fn chat(self: Arc<Self>, mut session: Session) -> Result<(), kumi::Error> {
        self.hub.join(&session);
        let from = format!("{}", session.id());
        session
            .send_json(&Said {
                from: "server".into(),
                text: format!("welcome, you are {from}"),
            })
            .await?;
        while let Some(frame) = session.recv().await {
            let Some(text) = frame.as_text() else {
                continue;
            };
            let said = Said {
                from: from.clone(),
                text: text.trim().to_owned(),
            };
            session.client().publish("chat.said", &said).await?;
        }
        Ok(())
    }

    /// `/rooms/{room}`: joins that room and waits for the connection to end.
    async fn room(self: Arc<Self>, session: Session) {
        let room = session.info().param("room").unwrap_or("lobby").to_owned();
        self.hub.join_room(&session, room);
        session.closed().await;
    }

    async fn connected(self: Arc<Self>, session: SessionSender) {
        tracing::info!(session = %session.id(), path = session.info().uri().path(), "websocket client connected");
    }

    async fn disconnected(self: Arc<Self>, closed: SessionClosed) {
        tracing::info!(session = %closed.id(), close = %closed.close(), "websocket client left");
    }

    /// Bus → browsers: every `chat.said` event goes to every `/ws` client.
    async fn on_said(self: Arc<Self>, Data(said): Data<Said>) -> Result<(), HandlerError> {
        let sent = self.hub.send_where(
            |info, _| info.uri().path() == "/ws",
            kumi::websocket::Frame::json(&said)?,
        );
        tracing::info!(from = %said.from, sent, "chat: forwarded to websocket clients");
        Ok(())
    }

    /// Bus → one room.
    async fn on_tick(self: Arc<Self>, Data(tick): Data<Tick>) -> Result<(), HandlerError> {
        self.hub.send_json_to_room(&tick.room, &tick)?;
        Ok(())
    }

    /// `POST /say`: HTTP → bus → browsers.
    async fn say(
        self: Arc<Self>,
        ctx: BusContext,
        Json(said): Json<Said>,
    ) -> Result<StatusCode, HttpError> {
        ctx.publish("chat.said", &said)
            .await
            .map_err(|e| HttpError::unavailable(e.to_string()))?;
        Ok(StatusCode::ACCEPTED)
    }

    async fn clock(client: Client, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let unix_secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let tick = Tick {
                room: "clock".into(),
                unix_secs,
            };
            if let Err(e) = client.publish("clock.ticked", &tick).await {
                tracing::warn!("clock: cannot publish: {e}");
            }
        }
    }
}

#[async_trait]
impl Service for Live {
    fn name(&self) -> &str {
        "live"
    }

    fn routes(&self, router: &mut Router<Self>) {
        router
            .websocket("/ws", Self::chat)
            .on_connect(Self::connected)
            .on_close(Self::disconnected);
        router
            .websocket("/rooms/{room}", Self::room)
            .on_connect(Self::connected)
            .on_close(Self::disconnected);
        router.post("/say", Self::say);
        router.subscribe("chat.said", Self::on_said).broadcast();
        router.subscribe("clock.ticked", Self::on_tick).broadcast();
    }

    async fn started(&self, client: &Client) -> Result<(), BoxError> {
        tokio::spawn(Self::clock(client.clone(), self.stop.subscribe()));
        Ok(())
    }

    async fn stopping(&self, _client: &Client) -> Result<(), BoxError> {
        let _ = self.stop.send(true);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let (stop, _) = watch::channel(false);
    kumi::runner()
        .service(Live {
            hub: Hub::new(),
            stop,
        })
        .run()
        .await
}
