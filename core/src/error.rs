//! The one error type of kumi: opaque, with a [`ErrorKind`] to match on and a source chain.
//!
//! Messages always name what was at fault: the bus URL, the topic, the route or the setting.

use std::fmt;

/// The text of a panic's payload (a handler's, a hook's): its message when it has one.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// A boxed error, as handlers and middleware produce them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with kumi's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is. New kinds may be added in minor releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration value (env var, flag, bus URL, route option) is invalid.
    Config,
    /// The broker could not be reached or the connection was lost.
    Connect,
    /// Publishing a message failed.
    Publish,
    /// A request found nobody serving its topic.
    NoResponders,
    /// A request got no reply in time.
    TimedOut,
    /// The remote handler of a request failed; the error text and code come from it.
    Remote,
    /// A payload or envelope could not be decoded or encoded.
    Codec,
    /// The bus or client was stopped; nothing more can be sent.
    Closed,
    /// The bus does not offer what was asked (e.g. request/reply on SNS+SQS).
    Unsupported,
    /// A service lifecycle hook failed.
    Lifecycle,
    /// Anything else, with the cause in the source chain.
    Other,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "invalid configuration",
            ErrorKind::Connect => "connection failed",
            ErrorKind::Publish => "publish failed",
            ErrorKind::NoResponders => "no responders",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Remote => "remote handler failed",
            ErrorKind::Codec => "codec error",
            ErrorKind::Closed => "closed",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Lifecycle => "lifecycle hook failed",
            ErrorKind::Other => "error",
        }
    }
}

/// kumi's error: a kind, a message naming what failed, and an optional source.
pub struct Error {
    kind: ErrorKind,
    message: String,
    code: Option<u16>,
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a message that names what failed.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: None,
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Attaches a numeric code (for [`ErrorKind::Remote`], the code the handler replied with).
    pub fn with_code(mut self, code: u16) -> Self {
        self.code = Some(code);
        self
    }

    /// Shorthand for an [`ErrorKind::Config`] error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// Shorthand for an [`ErrorKind::Codec`] error.
    pub fn codec(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Codec, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind prefix and source chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The code a remote handler replied with, if any.
    pub fn code(&self) -> Option<u16> {
        self.code
    }

    /// True for [`ErrorKind::TimedOut`].
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::TimedOut
    }

    /// True for [`ErrorKind::NoResponders`].
    pub fn is_no_responders(&self) -> bool {
        self.kind == ErrorKind::NoResponders
    }

    /// True for [`ErrorKind::Closed`].
    pub fn is_closed(&self) -> bool {
        self.kind == ErrorKind::Closed
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(code) = self.code {
            d.field("code", &code);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)?;
        if let Some(code) = self.code {
            write!(f, " (code {code})")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_message_code_and_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::new(ErrorKind::Connect, "cannot reach nats://127.0.0.1:1")
            .with_source(io)
            .with_code(7);
        assert_eq!(
            e.to_string(),
            "connection failed: cannot reach nats://127.0.0.1:1 (code 7): refused"
        );
        assert_eq!(e.kind(), ErrorKind::Connect);
        assert!(std::error::Error::source(&e).is_some());
    }
}
