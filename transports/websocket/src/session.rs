//! A websocket [`Session`] as its handler sees it, and [`SessionSender`], the cloneable handle
//! to send to it from anywhere (a hub, a bus handler, another task).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::{HeaderMap, Uri};
use kumi_core::{Client, Error, ErrorKind, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::frame::{CloseInfo, ClosedBy, Frame};

/// A process-unique websocket session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws-{}", self.0)
    }
}

/// What is known about a session from its upgrade request.
#[derive(Debug)]
pub struct SessionInfo {
    pub(crate) id: SessionId,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) params: Vec<(String, String)>,
}

impl SessionInfo {
    /// The session id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The upgrade request's URI (path and query).
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The upgrade request's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A path parameter of the endpoint's route (`/rooms/{room}` → `param("room")`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the connection task takes from the session's queue.
#[derive(Debug)]
pub(crate) enum Outbound {
    Frame(Frame),
    Close(u16, String),
}

/// Why a frame could not be queued without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrySendError {
    Full,
    Closed,
}

/// Sends frames to one session; cheap to clone, usable from any task. Frames are queued (the
/// queue is bounded, see [`WebSocketRoute::send_queue`](crate::WebSocketRoute::send_queue)) and
/// written in order by the session's connection task.
#[derive(Clone)]
pub struct SessionSender {
    info: Arc<SessionInfo>,
    tx: mpsc::Sender<Outbound>,
    force_close: Arc<watch::Sender<Option<(u16, String)>>>,
}

impl fmt::Debug for SessionSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSender")
            .field("id", &self.info.id)
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn closed(id: SessionId) -> Error {
    Error::new(
        ErrorKind::Closed,
        format!("websocket session {id} is closed"),
    )
}

impl SessionSender {
    pub(crate) fn new(
        info: Arc<SessionInfo>,
        tx: mpsc::Sender<Outbound>,
        force_close: Arc<watch::Sender<Option<(u16, String)>>>,
    ) -> Self {
        Self {
            info,
            tx,
            force_close,
        }
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        self.info.id
    }

    /// What the upgrade request said.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// True once the connection is closed (or closing).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.force_close.borrow().is_some()
    }

    /// Queues a frame, waiting while the session's send queue is full. Fails once the session
    /// is closed.
    pub async fn send(&self, frame: impl Into<Frame>) -> Result<()> {
        self.tx
            .send(Outbound::Frame(frame.into()))
            .await
            .map_err(|_| closed(self.info.id))
    }

    /// Queues `text` as a text frame.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<()> {
        self.send(Frame::from(text.into())).await
    }

    /// Queues `value` as a JSON text frame.
    pub async fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send(Frame::json(value)?).await
    }

    /// Closes the session with `code` (see [`close_code`](crate::close_code)) after the frames
    /// already queued.
    pub async fn close(&self, code: u16, reason: impl Into<String>) -> Result<()> {
        self.tx
            .send(Outbound::Close(code, reason.into()))
            .await
            .map_err(|_| closed(self.info.id))
    }

    /// Queues a frame without waiting.
    pub(crate) fn try_send(&self, frame: Frame) -> std::result::Result<(), TrySendError> {
        match self.tx.try_send(Outbound::Frame(frame)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(TrySendError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(TrySendError::Closed),
        }
    }

    /// Closes the session now, skipping whatever is queued.
    pub(crate) fn force_close(&self, code: u16, reason: &str) {
        self.force_close.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some((code, reason.to_owned()));
            true
        });
    }
}

impl From<&SessionSender> for SessionSender {
    fn from(sender: &SessionSender) -> Self {
        sender.clone()
    }
}

impl From<&Session> for SessionSender {
    fn from(session: &Session) -> Self {
        session.sender.clone()
    }
}

/// A websocket connection, as its handler sees it: receive frames, send frames, wait for the
/// end. When the handler returns, the connection is closed (`1000`, or `1011` if it returned
/// an error or panicked); a handler that only forwards (a hub member) awaits
/// [`Session::closed`].
pub struct Session {
    sender: SessionSender,
    inbound: mpsc::Receiver<Frame>,
    closed: watch::Receiver<Option<CloseInfo>>,
    client: Client,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("uri", &self.sender.info.uri)
            .finish()
    }
}

impl Session {
    pub(crate) fn new(
        sender: SessionSender,
        inbound: mpsc::Receiver<Frame>,
        closed: watch::Receiver<Option<CloseInfo>>,
        client: Client,
    ) -> Self {
        Self {
            sender,
            inbound,
            closed,
            client,
        }
    }

    /// A bus client publishing as the service, to turn what the peer says into events or
    /// requests.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        self.sender.id()
    }

    /// What the upgrade request said: URI, headers, path parameters.
    pub fn info(&self) -> &SessionInfo {
        self.sender.info()
    }

    /// A handle to send to this session from elsewhere (e.g. to put in a [`Hub`](crate::Hub)).
    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }

    /// The next text or binary frame from the peer; `None` once the connection closed.
    pub async fn recv(&mut self) -> Option<Frame> {
        self.inbound.recv().await
    }

    /// The next frame decoded as JSON; `None` once the connection closed. A frame that does
    /// not decode is an `Err` (the session stays open).
    pub async fn recv_json<T: DeserializeOwned>(&mut self) -> Option<Result<T>> {
        let frame = self.recv().await?;
        Some(frame.decode_json())
    }

    /// Queues a frame (see [`SessionSender::send`]).
    pub async fn send(&self, frame: impl Into<Frame>) -> Result<()> {
        self.sender.send(frame).await
    }

    /// Queues a text frame.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<()> {
        self.sender.send_text(text).await
    }

    /// Queues a binary frame.
    pub async fn send_binary(&self, bytes: impl Into<bytes::Bytes>) -> Result<()> {
        self.sender.send(Frame::Binary(bytes.into())).await
    }

    /// Queues `value` as a JSON text frame.
    pub async fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.sender.send_json(value).await
    }

    /// Closes the connection with `code` after the queued frames.
    pub async fn close(&self, code: u16, reason: impl Into<String>) -> Result<()> {
        self.sender.close(code, reason).await
    }

    /// Waits until the connection is closed, and says how.
    pub async fn closed(&self) -> CloseInfo {
        let mut closed = self.closed.clone();
        let info = match closed.wait_for(Option::is_some).await {
            Ok(info) => info.clone(),
            Err(_) => None,
        };
        info.unwrap_or_else(unknown_close)
    }

    /// How the connection ended, once it did.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.closed.borrow().clone()
    }
}

fn unknown_close() -> CloseInfo {
    CloseInfo::new(None, "connection task ended", ClosedBy::Local)
}
