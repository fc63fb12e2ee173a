//! # kumi-websocket
//!
//! Websocket endpoints on kumi services, served by the kumi HTTP server (the same listener as
//! the HTTP routes), fan-out [`Hub`]s to push to many sessions (bus events to browsers, say), and
//! a [`WsClient`] on tokio-tungstenite. Users reach it as `kumi::websocket`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kumi_core::extract::Data;
//! use kumi_core::{HandlerError, Router, Service};
//! use kumi_websocket::{Hub, Session, WebSocketRouterExt};
//!
//! struct Live {
//!     hub: Hub,
//! }
//!
//! impl Live {
//!     /// Each browser: joins the hub, and may say things.
//!     async fn session(self: Arc<Self>, mut session: Session) {
//!         self.hub.join(&session);
//!         while let Some(frame) = session.recv().await {
//!             tracing::info!(text = frame.as_text(), "from the browser");
//!         }
//!     }
//!
//!     /// Every `prices.updated` event goes to every browser.
//!     async fn on_price(self: Arc<Self>, Data(price): Data<serde_json::Value>) -> Result<(), HandlerError> {
//!         self.hub.broadcast_json(&price)?;
//!         Ok(())
//!     }
//! }
//!
//! impl Service for Live {
//!     fn name(&self) -> &str { "live" }
//!     fn routes(&self, router: &mut Router<Self>) {
//!         router.websocket("/ws", Self::session);
//!         router.subscribe("prices.updated", Self::on_price);
//!     }
//! }
//! ```
//!
//! ## Behaviour
//!
//! - A session's handler receives text and binary [`Frame`]s ([`Session::recv`],
//!   [`Session::recv_json`]) and sends them ([`Session::send`], [`Session::send_json`], or from
//!   anywhere through a [`SessionSender`]). When the handler returns, the connection closes with
//!   `1000` (`1011` if it failed or panicked).
//! - Keepalive: the server pings every 20 s; a peer that sends nothing (not even a pong) within
//!   20 s after a ping is closed with `1011` ([`WebSocketRoute::ping_interval`],
//!   [`WebSocketRoute::pong_timeout`]).
//! - Messages over 1 MiB close the connection with `1009`
//!   ([`WebSocketRoute::max_message_size`]).
//! - Shutdown: when the HTTP server drains, every session is closed with `1001 Going Away`;
//!   the drain waits for sessions and their handlers up to the drain deadline.
//! - Hooks: [`WebSocketRoute::on_connect`] (can refuse with `1008`) and
//!   [`WebSocketRoute::on_close`].

mod client;
mod connection;
mod endpoint;
mod frame;
mod hub;
mod session;

pub use client::{ClientOptions, ClientStream, WsClient};
pub use endpoint::{
    SessionClosed, SessionOutcome, WebSocketRoute, WebSocketRouterExt, DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_PING_INTERVAL, DEFAULT_PONG_TIMEOUT, DEFAULT_RECV_QUEUE,
    DEFAULT_SEND_QUEUE,
};
pub use frame::{close_code, CloseInfo, ClosedBy, Frame, Utf8Bytes};
pub use hub::Hub;
pub use session::{Session, SessionId, SessionInfo, SessionSender};
