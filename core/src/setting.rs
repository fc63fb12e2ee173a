//! Route settings that builders take in more than one form, checked when the service starts.
//!
//! A route builder cannot fail: it returns itself so that options chain. A value that can be
//! wrong (a duration written as a string, two options that exclude each other) is therefore
//! checked when it is given and, if wrong, remembered with the route; starting the service then
//! fails with a configuration error naming the service, the route and the value, e.g.
//! `invalid configuration: route orders.on_created: timeout '5 parsecs' is not a duration: ...`.
//! `#[kumi::service]` relies on this: its attributes expand to the same builder calls, so the
//! transport that owns an option checks it, once, for hand-written routes and attributes alike.
//!
//! [`IntoDuration`] is the one duration form every kumi builder accepts (route timeouts and
//! backoff here, websocket keepalive, schedule timeouts): a [`Duration`], or a string such as
//! `"5s"`, `"250ms"`, `"2m"`, `"1h30m"` or `"1h 30m"`.

use std::fmt;
use std::time::Duration;

use crate::message::Extensions;

/// A duration as a route builder takes it: a [`Duration`], or a string such as `"5s"`,
/// `"250ms"`, `"2m"`, `"1h30m"` or `"1h 30m"` (humantime's grammar: `ms`, `s`/`sec`,
/// `m`/`min`, `h`, `d` and sums of them).
///
/// ```
/// use std::time::Duration;
/// use kumi_core::setting::IntoDuration;
///
/// assert_eq!("1m30s".into_duration(), Ok(Duration::from_secs(90)));
/// assert_eq!(Duration::from_millis(250).into_duration(), Ok(Duration::from_millis(250)));
/// let error = "5 parsecs".into_duration().unwrap_err();
/// assert!(error.to_string().starts_with("'5 parsecs' is not a duration"));
/// ```
pub trait IntoDuration {
    /// The duration, or why the value is not one.
    fn into_duration(self) -> Result<Duration, DurationError>;
}

impl IntoDuration for Duration {
    fn into_duration(self) -> Result<Duration, DurationError> {
        Ok(self)
    }
}

impl IntoDuration for &str {
    fn into_duration(self) -> Result<Duration, DurationError> {
        parse_duration(self)
    }
}

impl IntoDuration for String {
    fn into_duration(self) -> Result<Duration, DurationError> {
        parse_duration(&self)
    }
}

impl IntoDuration for &String {
    fn into_duration(self) -> Result<Duration, DurationError> {
        parse_duration(self)
    }
}

/// A string that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    value: String,
    reason: String,
}

impl DurationError {
    /// The value, as given.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a duration: {} (write it like 5s, 250ms, 2m or 1h30m)",
            self.value, self.reason
        )
    }
}

impl std::error::Error for DurationError {}

fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = |reason: String| DurationError {
        value: text.to_owned(),
        reason,
    };
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error(format!(
            "the unit is missing; did you mean '{trimmed}s'?"
        )));
    }
    humantime::parse_duration(trimmed).map_err(|e| error(e.to_string()))
}

/// What was wrong with a route's settings, kept with the route until it starts.
#[derive(Debug, Default)]
struct Invalid(Vec<String>);

/// Remembers that a setting of the route whose options are `options` is invalid; the route then
/// fails to start with `message` (see [`check`]).
pub(crate) fn reject(options: &mut Extensions, message: String) {
    options.get_or_default::<Invalid>().0.push(message);
}

/// Every problem [`reject`] remembered for a route, joined, or `Ok` for none. A router turns it
/// into a configuration error naming the service and the route when the service starts.
pub(crate) fn check(options: &Extensions) -> Result<(), String> {
    match options.get::<Invalid>() {
        Some(Invalid(problems)) if !problems.is_empty() => Err(problems.join("; ")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_both_forms() {
        for (text, expected) in [
            ("5s", Duration::from_secs(5)),
            ("250ms", Duration::from_millis(250)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            (" 1m 500ms ", Duration::from_millis(60_500)),
        ] {
            assert_eq!(text.into_duration(), Ok(expected), "{text}");
            assert_eq!(text.to_owned().into_duration(), Ok(expected), "{text}");
        }
        assert_eq!(
            Duration::from_secs(3).into_duration(),
            Ok(Duration::from_secs(3))
        );
    }

    #[test]
    fn bad_durations_say_why() {
        for bad in ["", "s", "5x", "-5s", "1.5.5s", "soon"] {
            let e = bad.into_duration().expect_err(bad);
            assert_eq!(e.value(), bad);
            assert!(
                e.to_string()
                    .starts_with(&format!("'{bad}' is not a duration: ")),
                "{e}"
            );
            assert!(e
                .to_string()
                .ends_with("(write it like 5s, 250ms, 2m or 1h30m)"));
        }
        assert!("20"
            .into_duration()
            .unwrap_err()
            .to_string()
            .contains("did you mean '20s'?"));
    }

    #[test]
    fn rejections_are_kept_and_joined() {
        let mut options = Extensions::default();
        assert_eq!(check(&options), Ok(()));
        reject(&mut options, "a".to_owned());
        reject(&mut options, "b".to_owned());
        assert_eq!(check(&options), Err("a; b".to_owned()));
    }
}
