//! The message being handled, for log lines: set by the consume runtime around each dispatch,
//! read by the runner's log format, which adds it to every line logged meanwhile (kumi's own
//! warnings and errors, and the handler's own lines).
//!
//! This costs a few reference counts per message instead of a recorded span whose fields are
//! formatted for every message, logged or not. The per-message span ([`crate::middleware::TraceLayer`],
//! target `kumi::message`) is still there for subscribers that want it; the runner's logging
//! turns it off unless `KUMI_LOG` names its target.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::message::Message;

tokio::task_local! {
    static CURRENT: MessageContext;
}

/// What log lines say about the message being handled.
#[derive(Debug, Clone)]
pub struct MessageContext {
    /// `service.handler`.
    pub route: Arc<str>,
    /// The concrete topic.
    pub topic: Arc<str>,
    /// The delivery attempt.
    pub attempt: u32,
    /// The message id, if known before the envelope is decoded.
    pub message_id: Option<String>,
    /// The correlation id, if any.
    pub correlation_id: Option<String>,
}

impl MessageContext {
    /// The context of `message` on `route`, if anything logs at all (no subscriber, or one that
    /// is off: nothing to set up).
    pub(crate) fn of(route: &Arc<str>, message: &Message) -> Option<Self> {
        if tracing::level_filters::LevelFilter::current()
            == tracing::level_filters::LevelFilter::OFF
        {
            return None;
        }
        Some(Self {
            route: Arc::clone(route),
            topic: Arc::clone(&message.topic),
            attempt: message.attempt,
            message_id: message.message_id.clone(),
            correlation_id: message.correlation_id.clone(),
        })
    }

    /// Runs `future` with `context` as the current message (if there is one).
    pub(crate) async fn scope<F: Future>(context: Option<Self>, future: F) -> F::Output {
        match context {
            Some(context) => CURRENT.scope(context, future).await,
            None => future.await,
        }
    }

    /// Calls `f` with the message being handled on this task, if any.
    pub fn with_current<R>(f: impl FnOnce(Option<&MessageContext>) -> R) -> R {
        let mut f = Some(f);
        let hit = CURRENT.try_with(|c| (f.take().expect("called once"))(Some(c)));
        match hit {
            Ok(r) => r,
            Err(_) => (f.take().expect("called once"))(None),
        }
    }

    /// The fields, as `(name, value)` pairs, for a log line.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, Field<'_>)> {
        [
            ("route", Some(Field::Text(&self.route))),
            ("topic", Some(Field::Text(&self.topic))),
            ("attempt", Some(Field::Number(self.attempt))),
            ("message_id", self.message_id.as_deref().map(Field::Quoted)),
            (
                "correlation_id",
                self.correlation_id.as_deref().map(Field::Quoted),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
    }
}

/// One field of a [`MessageContext`].
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    /// Plain text kumi chose (a route, a topic).
    Text(&'a str),
    /// Text from the wire, shown quoted and escaped.
    Quoted(&'a str),
    /// A number.
    Number(u32),
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Text(t) => f.write_str(t),
            Field::Quoted(t) => write!(f, "{t:?}"),
            Field::Number(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_context_is_there_inside_the_scope_only() {
        let context = MessageContext {
            route: "svc.route".into(),
            topic: "t".into(),
            attempt: 2,
            message_id: Some("m\"1".into()),
            correlation_id: None,
        };
        let inside = MessageContext::scope(Some(context), async {
            MessageContext::with_current(|c| {
                c.map(|c| {
                    c.fields()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
            })
        })
        .await;
        assert_eq!(
            inside.as_deref(),
            Some(r#"route=svc.route topic=t attempt=2 message_id="m\"1""#)
        );
        assert!(MessageContext::with_current(|c| c.is_none()));
    }
}
