//! The task that owns one websocket connection: writes queued frames, reads frames into the
//! session, pings on an interval and drops peers that stop answering, enforces the message size
//! limit, and closes with `1001 Going Away` when the server drains.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt;
use kumi_http::Drain;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;

use crate::frame::{close_code, close_reason, CloseInfo, ClosedBy, Frame};
use crate::session::Outbound;

/// Per-endpoint connection settings.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) ping_interval: Duration,
    pub(crate) pong_timeout: Duration,
    pub(crate) close_timeout: Duration,
}

/// The channels between the connection task and the session.
pub(crate) struct Wiring {
    pub(crate) inbound: mpsc::Sender<Frame>,
    pub(crate) outbound: mpsc::Receiver<Outbound>,
    pub(crate) force_close: watch::Receiver<Option<(u16, String)>>,
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

fn is_too_big(error: axum::Error) -> Result<(), String> {
    let inner = error.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Ok(()),
        _ => Err(inner.to_string()),
    }
}

/// Runs the connection until it closes; says how it closed.
pub(crate) async fn drive(
    mut ws: WebSocket,
    mut wiring: Wiring,
    drain: &Drain,
    limits: &Limits,
) -> CloseInfo {
    let mut ping =
        tokio::time::interval_at(Instant::now() + limits.ping_interval, limits.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set while a ping is unanswered: the peer must show life (any frame) before then.
    let mut pong_deadline: Option<Instant> = None;
    // A frame the handler has no room for yet: reading pauses until it does.
    let mut pending: Option<Frame> = None;
    let draining = drain.draining();
    tokio::pin!(draining);
    // Until every sender is gone (then only the queue can close the session).
    let mut force_close_open = true;

    loop {
        let deadline = pong_deadline.unwrap_or_else(far_future);
        tokio::select! {
            biased;
            () = &mut draining => {
                return close(ws, close_code::GOING_AWAY, "server shutting down", drain, limits).await;
            }
            changed = wiring.force_close.changed(), if force_close_open => {
                if changed.is_err() {
                    force_close_open = false;
                } else {
                    let forced = wiring.force_close.borrow_and_update().clone();
                    if let Some((code, reason)) = forced {
                        return close(ws, code, &reason, drain, limits).await;
                    }
                }
            }
            outbound = wiring.outbound.recv() => match outbound {
                Some(Outbound::Frame(frame)) => {
                    if let Err(e) = ws.send(frame.into_message()).await {
                        return CloseInfo::new(None, format!("send failed: {e}"), ClosedBy::Peer);
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    return close(ws, code, &reason, drain, limits).await;
                }
                None => return close(ws, close_code::NORMAL, "", drain, limits).await,
            },
            permit = wiring.inbound.reserve(), if pending.is_some() => {
                if let (Ok(permit), Some(frame)) = (permit, pending.take()) {
                    permit.send(frame);
                }
                // A handler that stopped receiving just does not get the frame.
            }
            received = ws.recv(), if pending.is_none() => {
                pong_deadline = None;
                match received {
                    None => {
                        return CloseInfo::new(None, "connection dropped", ClosedBy::Peer);
                    }
                    Some(Err(e)) => match is_too_big(e) {
                        Ok(()) => {
                            return close(ws, close_code::TOO_BIG, "message too big", drain, limits).await;
                        }
                        Err(e) => return CloseInfo::new(None, e, ClosedBy::Peer),
                    },
                    Some(Ok(Message::Text(text))) => {
                        pending = deliver(&wiring.inbound, Frame::Text(text));
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        pending = deliver(&wiring.inbound, Frame::Binary(bytes));
                    }
                    Some(Ok(Message::Ping(_))) => {
                        // tungstenite queued the pong; send it now.
                        let _ = ws.flush().await;
                    }
                    Some(Ok(Message::Pong(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame
                            .map_or((None, String::new()), |f| (Some(f.code), f.reason.to_string()));
                        // Reading on sends tungstenite's close reply and ends the stream.
                        let _ = tokio::time::timeout(limits.close_timeout, async {
                            while ws.recv().await.is_some() {}
                        })
                        .await;
                        return CloseInfo::new(code, reason, ClosedBy::Peer);
                    }
                }
            }
            () = tokio::time::sleep_until(deadline), if pong_deadline.is_some() && pending.is_none() => {
                let reason = format!("no pong within {:?}", limits.pong_timeout);
                let _ = tokio::time::timeout(
                    limits.close_timeout,
                    ws.send(Message::Close(Some(CloseFrame {
                        code: close_code::INTERNAL,
                        reason: close_reason(&reason),
                    }))),
                )
                .await;
                return CloseInfo::new(Some(close_code::INTERNAL), reason, ClosedBy::Local);
            }
            _ = ping.tick(), if pending.is_none() && pong_deadline.is_none() => {
                if let Err(e) = ws.send(Message::Ping(Bytes::new())).await {
                    return CloseInfo::new(None, format!("ping failed: {e}"), ClosedBy::Peer);
                }
                pong_deadline = Some(Instant::now() + limits.pong_timeout);
            }
        }
    }
}

/// Hands a frame to the handler; the frame back if it has no room yet.
fn deliver(inbound: &mpsc::Sender<Frame>, frame: Frame) -> Option<Frame> {
    match inbound.try_send(frame) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
        Err(mpsc::error::TrySendError::Full(frame)) => Some(frame),
    }
}

/// Sends a close frame and waits (briefly, and no later than the drain deadline) for the peer's.
async fn close(
    mut ws: WebSocket,
    code: u16,
    reason: &str,
    drain: &Drain,
    limits: &Limits,
) -> CloseInfo {
    let info = CloseInfo::new(Some(code), reason, ClosedBy::Local);
    let mut until = Instant::now() + limits.close_timeout;
    if let Some(deadline) = drain.deadline() {
        until = until.min(Instant::from_std(deadline));
    }
    let _ = tokio::time::timeout_at(until, async {
        let frame = CloseFrame {
            code,
            reason: close_reason(reason),
        };
        if ws.send(Message::Close(Some(frame))).await.is_ok() {
            // Whatever the peer still sends is dropped; its close frame ends the stream.
            while let Some(Ok(_)) = ws.recv().await {}
        }
    })
    .await;
    info
}
