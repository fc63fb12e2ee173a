//! [`Trigger`]: when a scheduled handler runs — a fixed interval, a cron expression, an alias
//! such as `hourly`, a daily time of day, or a one-shot timestamp.
//!
//! | form | examples | runs |
//! |---|---|---|
//! | interval | `Every::seconds(10)`, `Duration`, `"10s"`, `"5m"`, `"1h30m"`, `"every 250ms"` | every period, counted from the start of the service |
//! | cron | `"*/5 * * * *"`, `"*/10 * * * * *"`, `"0 30 8 * * MON-FRI"` | when the fields match (see [`crate::cron`] for the syntax) |
//! | cron nickname | `"@hourly"`, `"@daily"`, `"@midnight"`, `"@weekly"`, `"@monthly"`, `"@yearly"`, `"@annually"` | as in cron (`@weekly` is Sunday 00:00) |
//! | alias | `"every second"`, `"minutely"`, `"hourly"`, `"daily"`, `"weekly"`, `"monthly"`, `"yearly"`, `"weekdays"`, `"weekends"`, `"monday"`… | at the start of each period; `weekly` is Monday 00:00, `weekdays` Monday–Friday 00:00 (as tomodachi) |
//! | daily time | `"08:30"`, `"08:30:15"` | every day at that wall-clock time |
//! | one-shot | `"2026-11-27T10:00:00Z"`, `"2026-11-27 10:00"`, a `DateTime` | once; a timestamp without offset is read in the schedule's timezone |
//!
//! Calendar triggers (cron, aliases, daily times, local timestamps) are read on the wall clock of
//! the schedule's [`Timezone`] (UTC unless set). Across daylight saving changes they follow
//! croner's rules (the Open Cron Pattern Specification and Vixie cron):
//!
//! - **spring forward**: a fixed time that does not exist that day (02:30 when clocks jump from
//!   02:00 to 03:00) runs at the first instant after the gap (03:00); wildcard and step fields
//!   simply have no occurrences inside the gap;
//! - **fall back**: a fixed time that happens twice (02:30 when clocks go back from 03:00 to
//!   02:00) runs once, at its first occurrence; wildcard and step fields run in both passes.
//!
//! Intervals are measured on the monotonic clock and ignore timezones and wall-clock changes.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, NaiveTime, Timelike, Utc};

use crate::cron::CronExpr;
use crate::error::{SpecError, SpecKind};
use crate::timezone::Timezone;

/// When a one-shot trigger fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnceAt {
    /// An instant.
    Instant(DateTime<Utc>),
    /// A wall-clock time in the schedule's timezone.
    Local(NaiveDateTime),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Interval(Duration),
    Cron(Box<CronExpr>),
    Once(OnceAt),
}

/// When a scheduled handler runs. See the [module docs](crate::trigger) for every form.
///
/// ```
/// use std::time::Duration;
/// use kumi_schedule::{Every, Trigger};
///
/// let a = Every::seconds(10);
/// let b = Trigger::interval(Duration::from_secs(10));
/// let c: Trigger = "10s".parse()?;
/// assert_eq!(a, b);
/// assert_eq!(b, c);
/// assert_eq!(a.to_string(), "every 10s");
///
/// assert_eq!(Trigger::cron("*/5 * * * * *")?.to_string(), "cron \"*/5 * * * * *\"");
/// assert_eq!(Trigger::daily_at("08:30")?.to_string(), "daily at 08:30");
/// assert_eq!(Trigger::parse("weekdays")?.to_string(), "weekdays");
/// assert!(Trigger::cron("61 * * * *").is_err());
/// # Ok::<(), kumi_schedule::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    kind: Kind,
    label: String,
}

/// Fixed intervals, counted from the start of the service: `Every::seconds(10)`.
///
/// An interval trigger runs at start + 1 period, start + 2 periods, and so on (and also at
/// start with [`immediately`](crate::ScheduleBuilder::immediately)). For runs aligned to the
/// clock (at :00 of every minute, say) use an alias or cron: `"minutely"`, `"*/5 * * * *"`.
#[derive(Debug)]
pub enum Every {}

impl Every {
    /// Every `n` milliseconds.
    pub fn millis(n: u64) -> Trigger {
        Trigger::interval(Duration::from_millis(n))
    }

    /// Every `n` seconds.
    pub fn seconds(n: u64) -> Trigger {
        Trigger::interval(Duration::from_secs(n))
    }

    /// Every `n` minutes.
    pub fn minutes(n: u64) -> Trigger {
        Trigger::interval(Duration::from_secs(n.saturating_mul(60)))
    }

    /// Every `n` hours.
    pub fn hours(n: u64) -> Trigger {
        Trigger::interval(Duration::from_secs(n.saturating_mul(3600)))
    }
}

/// `(names, label, six-field cron)` of the word aliases.
const ALIASES: &[(&[&str], &str, &str)] = &[
    (&["every second", "secondly"], "every second", "* * * * * *"),
    (&["every minute", "minutely"], "minutely", "0 * * * * *"),
    (&["every hour", "hourly"], "hourly", "0 0 * * * *"),
    (
        &["every day", "daily", "nightly", "midnight"],
        "daily",
        "0 0 0 * * *",
    ),
    (&["every week", "weekly"], "weekly", "0 0 0 * * MON"),
    (&["every month", "monthly"], "monthly", "0 0 0 1 * *"),
    (
        &["every year", "yearly", "annually"],
        "yearly",
        "0 0 0 1 1 *",
    ),
    (
        &["weekdays", "weekday", "every weekday"],
        "weekdays",
        "0 0 0 * * MON-FRI",
    ),
    (
        &["weekends", "weekend", "every weekend"],
        "weekends",
        "0 0 0 * * SAT,SUN",
    ),
    (
        &["monday", "mondays", "every monday"],
        "mondays",
        "0 0 0 * * MON",
    ),
    (
        &["tuesday", "tuesdays", "every tuesday"],
        "tuesdays",
        "0 0 0 * * TUE",
    ),
    (
        &["wednesday", "wednesdays", "every wednesday"],
        "wednesdays",
        "0 0 0 * * WED",
    ),
    (
        &["thursday", "thursdays", "every thursday"],
        "thursdays",
        "0 0 0 * * THU",
    ),
    (
        &["friday", "fridays", "every friday"],
        "fridays",
        "0 0 0 * * FRI",
    ),
    (
        &["saturday", "saturdays", "every saturday"],
        "saturdays",
        "0 0 0 * * SAT",
    ),
    (
        &["sunday", "sundays", "every sunday"],
        "sundays",
        "0 0 0 * * SUN",
    ),
];

const FORMS: &str = "expected an interval ('10s', '1h30m'), a cron expression ('*/5 * * * *', \
                     with seconds '*/5 * * * * *'), a nickname ('@hourly'), an alias ('hourly', \
                     'weekdays'), a time of day ('08:30') or a timestamp ('2026-11-27T10:00:00Z')";

impl Trigger {
    fn from_alias(label: &str, cron: &str) -> Self {
        let cron = CronExpr::parse(cron).unwrap_or_else(|e| {
            // Only called with the constant alias table (covered by a unit test) and with
            // fields taken from a `NaiveTime`, which are always in range.
            unreachable!("alias '{label}' has an invalid cron expression: {e}")
        });
        Self {
            kind: Kind::Cron(Box::new(cron)),
            label: label.to_owned(),
        }
    }

    fn alias(name: &str) -> Option<Self> {
        let words: Vec<&str> = name.split_whitespace().collect();
        let normalized = words.join(" ").to_ascii_lowercase();
        ALIASES
            .iter()
            .find(|(names, _, _)| names.contains(&normalized.as_str()))
            .map(|(_, label, cron)| Self::from_alias(label, cron))
    }

    /// A fixed interval, counted from the start of the service. A zero interval is a startup
    /// error.
    pub fn interval(period: Duration) -> Self {
        Self {
            kind: Kind::Interval(period),
            label: format!("every {}", humantime::format_duration(period)),
        }
    }

    /// Parses an interval such as `10s`, `5m`, `1h30m`, `1h 30m`, `250ms` or `every 10s`.
    pub fn parse_interval(spec: &str) -> Result<Self, SpecError> {
        let trimmed = spec.trim();
        let text = trimmed
            .get(..6)
            .filter(|head| head.eq_ignore_ascii_case("every "))
            .map_or(trimmed, |_| trimmed[6..].trim_start());
        let error = |reason: String| SpecError::new(SpecKind::Interval, spec, reason);
        let period = humantime::parse_duration(text).map_err(|e| {
            let hint = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                format!("; did you mean '{text}s'?")
            } else {
                String::new()
            };
            error(format!(
                "{e}{hint} (an interval is a number with a unit: '10s', '5m', '1h30m', '250ms')"
            ))
        })?;
        if period.is_zero() {
            return Err(error("an interval must be longer than zero".to_owned()));
        }
        Ok(Self::interval(period))
    }

    /// Parses a cron expression (5 fields, or 6 with seconds first) or an `@nickname`
    /// (`@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`).
    /// See [`crate::cron`].
    pub fn cron(expr: &str) -> Result<Self, SpecError> {
        let cron = CronExpr::parse(expr)?;
        let label = if cron.source().starts_with('@') {
            cron.source().to_ascii_lowercase()
        } else {
            format!("cron \"{}\"", cron.source())
        };
        Ok(Self {
            kind: Kind::Cron(Box::new(cron)),
            label,
        })
    }

    /// Every day at a wall-clock time: `"08:30"` or `"08:30:15"` (24-hour clock).
    pub fn daily_at(time: &str) -> Result<Self, SpecError> {
        let trimmed = time.trim();
        let parsed = NaiveTime::parse_from_str(trimmed, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(trimmed, "%H:%M"))
            .ok()
            .filter(|t| t.nanosecond() < 1_000_000_000)
            .ok_or_else(|| {
                SpecError::new(
                    SpecKind::TimeOfDay,
                    time,
                    "a time of day is HH:MM or HH:MM:SS on a 24-hour clock, from 00:00 to 23:59:59",
                )
            })?;
        Ok(Self::daily_at_time(parsed))
    }

    /// Every day at a wall-clock time (whole seconds; a fraction is dropped).
    pub fn daily_at_time(time: NaiveTime) -> Self {
        let (h, m, s) = (time.hour(), time.minute(), time.second().min(59));
        let label = if s == 0 {
            format!("daily at {h:02}:{m:02}")
        } else {
            format!("daily at {h:02}:{m:02}:{s:02}")
        };
        let mut trigger = Self::from_alias(&label, &format!("{s} {m} {h} * * *"));
        trigger.label = label;
        trigger
    }

    /// Once, at `at`.
    pub fn at<Tz: chrono::TimeZone>(at: DateTime<Tz>) -> Self {
        let at = at.with_timezone(&Utc);
        Self {
            kind: Kind::Once(OnceAt::Instant(at)),
            label: format!("once at {}", Timezone::UTC.format(at)),
        }
    }

    /// Once, at a timestamp: RFC 3339 with an offset (`2026-11-27T10:00:00Z`,
    /// `2026-11-27 11:00:00+01:00`), or without one (`2026-11-27T10:00`, `2026-11-27 10:00:00`),
    /// which is read in the schedule's timezone.
    pub fn timestamp(spec: &str) -> Result<Self, SpecError> {
        let trimmed = spec.trim();
        // Accept a space between date and time, as RFC 3339 allows.
        let mut text = trimmed.to_owned();
        if text.len() > 10 && text.as_bytes()[10] == b' ' {
            text.replace_range(10..11, "T");
        }
        if text.ends_with(['z', 'Z']) {
            text.pop();
            text.push_str("+00:00");
        }
        let with_offset = ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M%:z"]
            .iter()
            .find_map(|f| DateTime::parse_from_str(&text, f).ok());
        if let Some(at) = with_offset {
            return Ok(Self::at(at));
        }
        let local = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(&text, f).ok());
        match local {
            Some(local) => Ok(Self {
                kind: Kind::Once(OnceAt::Local(local)),
                label: format!("once at {}", local.format("%Y-%m-%d %H:%M:%S%.f")),
            }),
            None => Err(SpecError::new(
                SpecKind::Timestamp,
                spec,
                "a timestamp is YYYY-MM-DDTHH:MM[:SS] with an optional offset ('Z', '+01:00'); \
                 without one it is read in the schedule's timezone",
            )),
        }
    }

    /// Parses any form: an alias, a cron nickname, a time of day, a timestamp, an interval or a
    /// cron expression (tried in that order).
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(SpecError::new(SpecKind::Trigger, spec, FORMS));
        }
        if let Some(alias) = Self::alias(trimmed) {
            return Ok(alias);
        }
        if trimmed.starts_with('@') {
            return Self::cron(trimmed);
        }
        let bytes = trimmed.as_bytes();
        let looks_like_time = bytes.len() <= 8
            && bytes.contains(&b':')
            && bytes.iter().all(|b| b.is_ascii_digit() || *b == b':');
        if looks_like_time {
            return Self::daily_at(trimmed);
        }
        let looks_like_date = bytes.len() >= 10
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[4] == b'-'
            && bytes[7] == b'-';
        if looks_like_date {
            return Self::timestamp(trimmed);
        }
        if let Ok(interval) = Self::parse_interval(trimmed) {
            return Ok(interval);
        }
        if trimmed.split_whitespace().count() >= 3 {
            return Self::cron(trimmed);
        }
        Err(SpecError::new(SpecKind::Trigger, spec, FORMS))
    }

    /// Every second, at the start of each second.
    pub fn every_second() -> Self {
        Self::from_alias("every second", "* * * * * *")
    }

    /// At the start of every minute.
    pub fn minutely() -> Self {
        Self::from_alias("minutely", "0 * * * * *")
    }

    /// At the start of every hour.
    pub fn hourly() -> Self {
        Self::from_alias("hourly", "0 0 * * * *")
    }

    /// Every day at 00:00.
    pub fn daily() -> Self {
        Self::from_alias("daily", "0 0 0 * * *")
    }

    /// Every Monday at 00:00 (cron's `@weekly` is Sunday).
    pub fn weekly() -> Self {
        Self::from_alias("weekly", "0 0 0 * * MON")
    }

    /// On the first day of every month at 00:00.
    pub fn monthly() -> Self {
        Self::from_alias("monthly", "0 0 0 1 * *")
    }

    /// On January 1st at 00:00.
    pub fn yearly() -> Self {
        Self::from_alias("yearly", "0 0 0 1 1 *")
    }

    /// Monday to Friday at 00:00.
    pub fn weekdays() -> Self {
        Self::from_alias("weekdays", "0 0 0 * * MON-FRI")
    }

    /// The first time this trigger fires strictly after `after`, with calendar fields read in
    /// `tz`. `None` when it never fires again (a one-shot time that passed, a cron expression
    /// with no further match).
    ///
    /// For an interval this is `after + period`: the runner calls it with the previous
    /// scheduled time, so runs stay on the grid that starts when the service starts.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use kumi_schedule::{Timezone, Trigger};
    ///
    /// let stockholm = Timezone::parse("Europe/Stockholm")?;
    /// let daily = Trigger::daily_at("08:30")?;
    /// let after = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
    /// // 08:30 in Stockholm in winter is 07:30 UTC.
    /// assert_eq!(
    ///     daily.next_after(after, &stockholm),
    ///     Some(Utc.with_ymd_and_hms(2026, 1, 16, 7, 30, 0).unwrap())
    /// );
    /// # Ok::<(), kumi_schedule::SpecError>(())
    /// ```
    pub fn next_after(&self, after: DateTime<Utc>, tz: &Timezone) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Interval(period) => {
                let period = chrono::Duration::from_std(*period).ok()?;
                after.checked_add_signed(period)
            }
            Kind::Cron(cron) => tz.next_cron(cron, after),
            Kind::Once(at) => self.once_at(*at, tz).filter(|t| *t > after),
        }
    }

    fn once_at(&self, at: OnceAt, tz: &Timezone) -> Option<DateTime<Utc>> {
        match at {
            OnceAt::Instant(t) => Some(t),
            OnceAt::Local(local) => tz.resolve_local(local),
        }
    }

    /// The period of an interval trigger.
    pub fn period(&self) -> Option<Duration> {
        match self.kind {
            Kind::Interval(p) => Some(p),
            _ => None,
        }
    }

    /// True for a one-shot trigger.
    pub fn is_once(&self) -> bool {
        matches!(self.kind, Kind::Once(_))
    }

    /// The instant a one-shot trigger fires in `tz` (`None` for other triggers, or for a local
    /// timestamp that does not exist in `tz` because clocks skip it).
    pub fn once_instant(&self, tz: &Timezone) -> Option<DateTime<Utc>> {
        match self.kind {
            Kind::Once(at) => self.once_at(at, tz),
            _ => None,
        }
    }

    /// Checks what can only be checked with the schedule's timezone and the current time;
    /// `Err` holds the reason for a startup error.
    pub(crate) fn validate(&self, tz: &Timezone, now: DateTime<Utc>) -> Result<(), String> {
        match &self.kind {
            Kind::Interval(period) if period.is_zero() => {
                Err("the interval must be longer than zero".to_owned())
            }
            Kind::Interval(period) if chrono::Duration::from_std(*period).is_err() => {
                Err(format!("the interval {period:?} is too long"))
            }
            Kind::Interval(_) => Ok(()),
            Kind::Cron(cron) => match tz.next_cron(cron, now) {
                Some(_) => Ok(()),
                None => Err(format!(
                    "cron expression '{}' never matches after {}",
                    cron.source(),
                    tz.format(now)
                )),
            },
            Kind::Once(OnceAt::Local(local)) => match tz.resolve_local(*local) {
                Some(_) => Ok(()),
                None => Err(format!(
                    "{} does not exist in {tz} (clocks skip it for daylight saving time)",
                    local.format("%Y-%m-%d %H:%M:%S")
                )),
            },
            Kind::Once(OnceAt::Instant(_)) => Ok(()),
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl FromStr for Trigger {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Something [`ScheduleExt::schedule`](crate::ScheduleExt::schedule) accepts as a trigger: a
/// [`Trigger`], a [`Duration`] (interval), a `DateTime` or [`SystemTime`] (one-shot), a string
/// (any form, see [`Trigger::parse`]), or the `Result` of a fallible constructor such as
/// [`Trigger::cron`]. Invalid values become startup errors naming the route.
pub trait IntoTrigger {
    /// The trigger, or why the value is not one.
    fn into_trigger(self) -> Result<Trigger, SpecError>;
}

impl IntoTrigger for Trigger {
    fn into_trigger(self) -> Result<Trigger, SpecError> {
        Ok(self)
    }
}

impl IntoTrigger for Result<Trigger, SpecError> {
    fn into_trigger(self) -> Result<Trigger, SpecError> {
        self
    }
}

impl IntoTrigger for Duration {
    fn into_trigger(self) -> Result<Trigger, SpecError> {
        Ok(Trigger::interval(self))
    }
}

impl IntoTrigger for SystemTime {
    fn into_trigger(self) -> Result<Trigger, SpecError> {
        Ok(Trigger::at(DateTime::<Utc>::from(self)))
    }
}

impl<Tz: chrono::TimeZone> IntoTrigger for DateTime<Tz> {
    fn into_trigger(self) -> Result<Trigger, SpecError> {
        Ok(Trigger::at(self))
    }
}

impl IntoTrigger for &str {
    fn into_trigger(self) -> Result<Trigger, SpecError> {
        Trigger::parse(self)
    }
}

impl IntoTrigger for String {
    fn into_trigger(self) -> Result<Trigger, SpecError> {
        Trigger::parse(&self)
    }
}

impl IntoTrigger for &String {
    fn into_trigger(self) -> Result<Trigger, SpecError> {
        Trigger::parse(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_parses() {
        for (names, label, _) in ALIASES {
            for name in *names {
                let t = Trigger::parse(&name.to_uppercase()).unwrap();
                assert_eq!(t.to_string(), *label);
            }
        }
        for t in [
            Trigger::every_second(),
            Trigger::minutely(),
            Trigger::hourly(),
            Trigger::daily(),
            Trigger::weekly(),
            Trigger::monthly(),
            Trigger::yearly(),
            Trigger::weekdays(),
        ] {
            assert!(t.period().is_none() && !t.is_once());
        }
    }
}
