//! A test service with every kind of endpoint, and bounded waits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kumi_core::extract::Data;
use kumi_core::{App, HandlerError, Router, RunningApp, Service};
use kumi_http::HttpTransport;
use kumi_websocket::{CloseInfo, Hub, Session, SessionId, WebSocketRouterExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Fails the test instead of hanging.
pub(crate) async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(10), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after 10 s: {what}"),
    }
}

/// What the service saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seen {
    Connected(SessionId, String),
    Joined(SessionId),
    Closed(SessionId, CloseInfo),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomMessage {
    pub(crate) room: String,
    pub(crate) text: String,
}

pub(crate) struct Live {
    pub(crate) hub: Hub,
    seen: mpsc::UnboundedSender<Seen>,
}

impl Live {
    /// Echoes; "bye" ends the session, "fail" fails it, "panic" panics.
    async fn echo(self: Arc<Self>, mut session: Session) -> Result<(), String> {
        while let Some(frame) = session.recv().await {
            match frame.as_text() {
                Some("bye") => return Ok(()),
                Some("fail") => return Err("asked to fail".to_owned()),
                Some("panic") => panic!("asked to panic"),
                Some("whoami") => {
                    let info = session.info();
                    let reply = serde_json::json!({
                        "name": info.param("name"),
                        "query": info.uri().query(),
                        "agent": info.headers().get("x-agent").and_then(|v| v.to_str().ok()),
                    });
                    session.send_json(&reply).await.map_err(|e| e.to_string())?;
                }
                _ => session.send(frame).await.map_err(|e| e.to_string())?,
            }
        }
        Ok(())
    }

    /// Joins the hub (in the room of the path) and waits for the end.
    async fn feed(self: Arc<Self>, session: Session) {
        let room = session.info().param("room").unwrap_or("none").to_owned();
        let id = self.hub.join_room(&session, room);
        let _ = self.seen.send(Seen::Joined(id));
        session.closed().await;
    }

    /// Ignores everything, forever.
    async fn stubborn(self: Arc<Self>, _session: Session) {
        std::future::pending::<()>().await;
    }

    async fn on_price(
        self: Arc<Self>,
        Data(price): Data<serde_json::Value>,
    ) -> Result<(), HandlerError> {
        self.hub.broadcast_json(&price)?;
        Ok(())
    }

    async fn on_room(
        self: Arc<Self>,
        Data(message): Data<RoomMessage>,
    ) -> Result<(), HandlerError> {
        self.hub.send_json_to_room(&message.room, &message.text)?;
        Ok(())
    }
}

impl Service for Live {
    fn name(&self) -> &str {
        "live"
    }

    fn routes(&self, router: &mut Router<Self>) {
        let seen_close = |svc: Arc<Self>, closed: kumi_websocket::SessionClosed| async move {
            let _ = svc
                .seen
                .send(Seen::Closed(closed.id(), closed.close().clone()));
        };
        router
            .websocket("/echo/{name}", Self::echo)
            .on_connect(|svc: Arc<Self>, sender| async move {
                let name = sender.info().param("name").unwrap_or_default().to_owned();
                let _ = svc.seen.send(Seen::Connected(sender.id(), name.clone()));
                if name == "intruder" {
                    return Err("intruders are not welcome");
                }
                Ok(())
            })
            .on_close(seen_close);
        router
            .websocket("/small", Self::echo)
            .max_message_size(1024)
            .on_close(seen_close);
        router
            .websocket("/quick", Self::echo)
            .ping_interval("50ms")
            .pong_timeout("250ms")
            .on_close(seen_close);
        router
            .websocket("/feed/{room}", Self::feed)
            .on_close(seen_close);
        router
            .websocket("/tiny-queue/{room}", Self::feed)
            .send_queue(1)
            .on_close(seen_close);
        router.websocket("/stubborn", Self::stubborn);
        router.subscribe("prices", Self::on_price);
        router.subscribe("rooms", Self::on_room);
    }
}

pub(crate) struct Running {
    pub(crate) app: RunningApp,
    pub(crate) base: String,
    pub(crate) http: HttpTransport,
    pub(crate) hub: Hub,
    pub(crate) seen: mpsc::UnboundedReceiver<Seen>,
}

impl Running {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn next_seen(&mut self) -> Seen {
        within("the service to see something", self.seen.recv())
            .await
            .expect("service gone")
    }

    /// Waits for the close hook of `id`, skipping other events.
    pub(crate) async fn closed(&mut self, id: SessionId) -> CloseInfo {
        loop {
            if let Seen::Closed(closed, info) = self.next_seen().await {
                if closed == id {
                    return info;
                }
            }
        }
    }

    /// Waits until `n` sessions joined the hub; their ids.
    pub(crate) async fn joined(&mut self, n: usize) -> Vec<SessionId> {
        let mut ids = Vec::new();
        while ids.len() < n {
            if let Seen::Joined(id) = self.next_seen().await {
                ids.push(id);
            }
        }
        ids
    }
}

pub(crate) async fn start() -> Running {
    let (seen, seen_rx) = mpsc::unbounded_channel();
    let hub = Hub::new();
    let http = HttpTransport::bind("127.0.0.1:0");
    let app = App::new()
        .transport(http.shared())
        .service(Live {
            hub: hub.clone(),
            seen,
        })
        .start()
        .await
        .expect("start");
    let base = format!("ws://{}", http.local_addr().expect("listening"));
    Running {
        app,
        base,
        http,
        hub,
        seen: seen_rx,
    }
}
