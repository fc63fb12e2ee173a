//! [`SpecError`]: a schedule specification (interval, cron expression, time of day, timestamp,
//! timezone) that does not parse.
//!
//! Specs given as strings are checked when the service starts, not when the route is
//! registered: the transport turns a `SpecError` into a startup configuration error that names
//! the route, e.g. `invalid configuration: schedule route 'shop.tick': invalid cron expression
//! '61 * * * *': ...`.

use std::fmt;

/// Which part of a schedule a [`SpecError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpecKind {
    /// A fixed interval such as `10s` or `1h30m`.
    Interval,
    /// A cron expression or `@nickname`.
    Cron,
    /// A daily time of day such as `08:30`.
    TimeOfDay,
    /// A one-shot timestamp.
    Timestamp,
    /// A timezone name or offset.
    Timezone,
    /// A string that is none of the trigger forms.
    Trigger,
}

impl SpecKind {
    fn as_str(self) -> &'static str {
        match self {
            SpecKind::Interval => "interval",
            SpecKind::Cron => "cron expression",
            SpecKind::TimeOfDay => "time of day",
            SpecKind::Timestamp => "timestamp",
            SpecKind::Timezone => "timezone",
            SpecKind::Trigger => "schedule",
        }
    }
}

impl fmt::Display for SpecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An invalid schedule specification: what kind of value, the value itself, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    kind: SpecKind,
    value: String,
    reason: String,
}

impl SpecError {
    pub(crate) fn new(kind: SpecKind, value: &str, reason: impl Into<String>) -> Self {
        Self {
            kind,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    /// What kind of value was invalid.
    pub fn kind(&self) -> SpecKind {
        self.kind
    }

    /// The invalid value, as given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why it is invalid, with the accepted forms where that helps.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} '{}': {}", self.kind, self.value, self.reason)
    }
}

impl std::error::Error for SpecError {}
