//! [`Hub`]: fan-out to many websocket sessions, all of them or a subset (rooms, a filter).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kumi_core::Result;
use serde::Serialize;

use crate::frame::{close_code, Frame};
use crate::session::{SessionId, SessionInfo, SessionSender, TrySendError};

struct Member {
    sender: SessionSender,
    rooms: BTreeSet<String>,
}

/// A set of websocket sessions to send to at once: everyone, a room, or those a filter picks.
///
/// Keep one in the service struct and use it from websocket handlers (to join) and from bus
/// handlers (to forward events to browsers). Cheap to clone; clones share the members.
///
/// Sending never waits for a session: a frame is queued for every member at once. A member
/// whose send queue is full is too slow to keep up and is closed with `1013 Try Again Later`
/// (it can reconnect and catch up) rather than holding everyone else back. Closed sessions
/// leave the hub by themselves.
///
/// ```
/// use kumi_websocket::{Hub, Session};
///
/// struct Live { hub: Hub }
///
/// impl Live {
///     async fn session(&self, session: Session) {
///         self.hub.join_room(&session, "prices");
///         session.closed().await;
///     }
///
///     async fn on_price(&self, price: f64) -> kumi_core::Result<()> {
///         self.hub.send_json_to_room("prices", &price)?;
///         Ok(())
///     }
/// }
/// ```
#[derive(Clone, Default)]
pub struct Hub {
    members: Arc<RwLock<HashMap<SessionId, Member>>>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub").field("members", &self.len()).finish()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<SessionId, Member>> {
        self.members.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<SessionId, Member>> {
        self.members.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a session (a `&Session` or a `SessionSender`); returns its id.
    pub fn join(&self, session: impl Into<SessionSender>) -> SessionId {
        let sender = session.into();
        let id = sender.id();
        self.write().entry(id).or_insert_with(|| Member {
            sender,
            rooms: BTreeSet::new(),
        });
        id
    }

    /// Adds a session to `room` (and to the hub, if it was not a member).
    pub fn join_room(
        &self,
        session: impl Into<SessionSender>,
        room: impl Into<String>,
    ) -> SessionId {
        let sender = session.into();
        let id = sender.id();
        self.write()
            .entry(id)
            .or_insert_with(|| Member {
                sender,
                rooms: BTreeSet::new(),
            })
            .rooms
            .insert(room.into());
        id
    }

    /// Takes a session out of `room` (it stays in the hub).
    pub fn leave_room(&self, id: SessionId, room: &str) {
        if let Some(member) = self.write().get_mut(&id) {
            member.rooms.remove(room);
        }
    }

    /// Takes a session out of the hub; `false` if it was not a member.
    pub fn leave(&self, id: SessionId) -> bool {
        self.write().remove(&id).is_some()
    }

    /// Open sessions in the hub.
    pub fn len(&self) -> usize {
        self.prune();
        self.read().len()
    }

    /// True when no open session is in the hub.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rooms a member is in.
    pub fn rooms_of(&self, id: SessionId) -> Vec<String> {
        self.read()
            .get(&id)
            .map(|m| m.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn prune(&self) {
        let closed: Vec<SessionId> = self
            .read()
            .iter()
            .filter(|(_, m)| m.sender.is_closed())
            .map(|(id, _)| *id)
            .collect();
        if !closed.is_empty() {
            let mut members = self.write();
            for id in closed {
                members.remove(&id);
            }
        }
    }

    /// Queues `frame` for every member `pick` selects; returns how many got it.
    fn fan_out(
        &self,
        frame: &Frame,
        pick: impl Fn(&SessionInfo, &BTreeSet<String>) -> bool,
    ) -> usize {
        let mut sent = 0;
        let mut gone = Vec::new();
        for (id, member) in self.read().iter() {
            if !pick(member.sender.info(), &member.rooms) {
                continue;
            }
            match member.sender.try_send(frame.clone()) {
                Ok(()) => sent += 1,
                Err(TrySendError::Closed) => gone.push(*id),
                Err(TrySendError::Full) => {
                    tracing::warn!(
                        session = %id,
                        "websocket session cannot keep up with the hub; closing it with 1013"
                    );
                    member
                        .sender
                        .force_close(close_code::TRY_AGAIN_LATER, "too slow to keep up");
                    gone.push(*id);
                }
            }
        }
        if !gone.is_empty() {
            let mut members = self.write();
            for id in gone {
                members.remove(&id);
            }
        }
        sent
    }

    /// Sends `frame` to every member; returns how many got it.
    pub fn broadcast(&self, frame: impl Into<Frame>) -> usize {
        self.fan_out(&frame.into(), |_, _| true)
    }

    /// Sends `value` as JSON (encoded once) to every member.
    pub fn broadcast_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<usize> {
        Ok(self.broadcast(Frame::json(value)?))
    }

    /// Sends `frame` to the members of `room`.
    pub fn send_to_room(&self, room: &str, frame: impl Into<Frame>) -> usize {
        self.fan_out(&frame.into(), |_, rooms| rooms.contains(room))
    }

    /// Sends `value` as JSON to the members of `room`.
    pub fn send_json_to_room<T: Serialize + ?Sized>(&self, room: &str, value: &T) -> Result<usize> {
        Ok(self.send_to_room(room, Frame::json(value)?))
    }

    /// Sends `frame` to the members `filter` picks (by their upgrade request: path parameters,
    /// headers, query; and their rooms).
    pub fn send_where(
        &self,
        filter: impl Fn(&SessionInfo, &BTreeSet<String>) -> bool,
        frame: impl Into<Frame>,
    ) -> usize {
        self.fan_out(&frame.into(), filter)
    }

    /// Sends `frame` to one member; `false` if it is not (or no longer) in the hub.
    pub fn send_to(&self, id: SessionId, frame: impl Into<Frame>) -> bool {
        let Some(sender) = self.read().get(&id).map(|m| m.sender.clone()) else {
            return false;
        };
        match sender.try_send(frame.into()) {
            Ok(()) => true,
            Err(TrySendError::Closed) => {
                self.leave(id);
                false
            }
            Err(TrySendError::Full) => {
                sender.force_close(close_code::TRY_AGAIN_LATER, "too slow to keep up");
                self.leave(id);
                false
            }
        }
    }
}
