//! [`Timezone`]: the zone a schedule's calendar fields (cron, daily time, local timestamps) are
//! read in — UTC (the default), a fixed offset, or an IANA zone from chrono-tz.
//!
//! # Why UTC is the default
//!
//! UTC has no daylight saving time, so a UTC schedule never skips a run (spring forward) or sees
//! an hour twice (fall back); it means the same thing on a developer's laptop and in a container
//! whose local zone is unset; and it matches the timestamps in kumi's logs. The process's local
//! zone is never used implicitly. Give a schedule an IANA zone (`.timezone("Europe/Stockholm")`)
//! when it follows people's wall clocks — "08:30 on weekdays, Stockholm time" — and the zone's
//! DST rules then apply as described in [`crate::trigger`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone as _, Utc};

use crate::cron::CronExpr;
use crate::error::{SpecError, SpecKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Zone {
    Utc,
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

/// A schedule's timezone: UTC, a fixed UTC offset, or an IANA zone.
///
/// Parse one from a string with [`Timezone::parse`] (or `str::parse`):
///
/// | string | zone |
/// |---|---|
/// | `UTC`, `Z` (any case) | UTC |
/// | `+05:30`, `-08:00`, `+0530`, `+05`, `UTC+05:30`, `GMT-3` | a fixed offset (no DST) |
/// | `Europe/Stockholm`, `America/New_York`, `Etc/GMT+5`... | an IANA zone, with its DST rules |
///
/// ```
/// use kumi_schedule::Timezone;
///
/// assert_eq!(Timezone::parse("Europe/Stockholm")?.to_string(), "Europe/Stockholm");
/// assert_eq!(Timezone::parse("+5:30")?.to_string(), "+05:30");
/// assert_eq!(Timezone::default(), Timezone::UTC);
/// let err = Timezone::parse("europe/stockholm").unwrap_err();
/// assert!(err.to_string().contains("did you mean 'Europe/Stockholm'"));
/// # Ok::<(), kumi_schedule::SpecError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timezone(Zone);

impl Default for Timezone {
    fn default() -> Self {
        Self::UTC
    }
}

impl Timezone {
    /// Coordinated Universal Time, the default.
    pub const UTC: Timezone = Timezone(Zone::Utc);

    /// A fixed offset from UTC (no daylight saving time).
    pub fn fixed(offset: FixedOffset) -> Self {
        if offset.local_minus_utc() == 0 {
            Self::UTC
        } else {
            Self(Zone::Fixed(offset))
        }
    }

    /// An IANA zone.
    pub fn named(zone: chrono_tz::Tz) -> Self {
        Self(Zone::Named(zone))
    }

    /// Parses `UTC`, an offset such as `+05:30`, or an IANA name such as `Europe/Stockholm`.
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(SpecError::new(
                SpecKind::Timezone,
                s,
                "empty; use an IANA name like 'Europe/Stockholm', 'UTC', or an offset like '+05:30'",
            ));
        }
        if trimmed.eq_ignore_ascii_case("utc") || trimmed.eq_ignore_ascii_case("z") {
            return Ok(Self::UTC);
        }
        if let Some(offset) = parse_offset(trimmed) {
            return offset
                .map(Self::fixed)
                .map_err(|reason| SpecError::new(SpecKind::Timezone, s, reason));
        }
        if let Ok(zone) = trimmed.parse::<chrono_tz::Tz>() {
            return Ok(Self::named(zone));
        }
        let suggestion = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|z| z.name().eq_ignore_ascii_case(trimmed))
            .map(|z| format!("; did you mean '{}'?", z.name()))
            .unwrap_or_default();
        Err(SpecError::new(
            SpecKind::Timezone,
            s,
            format!(
                "not a known IANA timezone{suggestion} (use a name like 'Europe/Stockholm' or \
                 'America/New_York', 'UTC', or an offset like '+05:30')"
            ),
        ))
    }

    /// True for UTC.
    pub fn is_utc(&self) -> bool {
        self.0 == Zone::Utc
    }

    /// The zone's offset from UTC at instant `at`.
    pub fn offset_at(&self, at: DateTime<Utc>) -> FixedOffset {
        match self.0 {
            Zone::Utc => Utc.fix(),
            Zone::Fixed(offset) => offset,
            Zone::Named(zone) => zone.offset_from_utc_datetime(&at.naive_utc()).fix(),
        }
    }

    /// Instant `at` on this zone's wall clock.
    pub fn to_local(&self, at: DateTime<Utc>) -> DateTime<FixedOffset> {
        at.with_timezone(&self.offset_at(at))
    }

    /// `at` as RFC 3339 in this zone, with `Z` for UTC: `2026-11-27T10:00:10Z`,
    /// `2026-11-27T08:30:00+01:00`.
    pub fn format(&self, at: DateTime<Utc>) -> String {
        if self.is_utc() {
            at.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
        } else {
            self.to_local(at)
                .format("%Y-%m-%dT%H:%M:%S%.f%:z")
                .to_string()
        }
    }

    /// The first occurrence of `cron` strictly after `after`, with the cron fields read on this
    /// zone's wall clock. `None` if the expression never matches again.
    pub(crate) fn next_cron(&self, cron: &CronExpr, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.0 {
            Zone::Utc => cron.next_after(&after),
            Zone::Fixed(offset) => cron
                .next_after(&after.with_timezone(&offset))
                .map(|t| t.with_timezone(&Utc)),
            Zone::Named(zone) => cron
                .next_after(&after.with_timezone(&zone))
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// The instant a wall-clock time in this zone stands for: the earlier one when the clock
    /// shows it twice (fall back); `None` when the clock skips it (spring forward).
    pub(crate) fn resolve_local(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let earliest = |r: LocalResult<DateTime<Utc>>| match r {
            LocalResult::Single(t) => Some(t),
            LocalResult::Ambiguous(a, b) => Some(a.min(b)),
            LocalResult::None => None,
        };
        match self.0 {
            Zone::Utc => Some(Utc.from_utc_datetime(&local)),
            Zone::Fixed(offset) => earliest(
                offset
                    .from_local_datetime(&local)
                    .map(|t| t.with_timezone(&Utc)),
            ),
            Zone::Named(zone) => earliest(
                zone.from_local_datetime(&local)
                    .map(|t| t.with_timezone(&Utc)),
            ),
        }
    }
}

/// `Some(result)` if `s` looks like an offset (`+05:30`, `UTC-8`...), `None` if it does not.
fn parse_offset(s: &str) -> Option<Result<FixedOffset, String>> {
    let rest = ["utc", "gmt"]
        .iter()
        .find_map(|prefix| {
            let head = s.get(..prefix.len())?;
            let tail = &s[prefix.len()..];
            (head.eq_ignore_ascii_case(prefix) && tail.starts_with(['+', '-'])).then_some(tail)
        })
        .unwrap_or(s);
    let (sign, digits) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let usage = "an offset is +HH:MM, +HHMM or +HH (or with -), at most 23:59";
    let (hours, minutes) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "0"),
    };
    let all_digits =
        |t: &str| !t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hours) || !all_digits(minutes) {
        return Some(Err(usage.to_owned()));
    }
    let (Ok(hours), Ok(minutes)) = (hours.parse::<i32>(), minutes.parse::<i32>()) else {
        return Some(Err(usage.to_owned()));
    };
    if hours > 23 || minutes > 59 {
        return Some(Err(usage.to_owned()));
    }
    Some(
        FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or_else(|| usage.to_owned()),
    )
}

impl FromStr for Timezone {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Zone::Utc => f.write_str("UTC"),
            Zone::Fixed(offset) => {
                let secs = offset.local_minus_utc();
                let sign = if secs < 0 { '-' } else { '+' };
                let secs = secs.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", secs / 3600, secs % 3600 / 60)
            }
            Zone::Named(zone) => f.write_str(zone.name()),
        }
    }
}

impl From<chrono_tz::Tz> for Timezone {
    fn from(zone: chrono_tz::Tz) -> Self {
        Self::named(zone)
    }
}

impl From<FixedOffset> for Timezone {
    fn from(offset: FixedOffset) -> Self {
        Self::fixed(offset)
    }
}

impl From<Utc> for Timezone {
    fn from(_: Utc) -> Self {
        Self::UTC
    }
}

/// Something [`ScheduleBuilder::timezone`](crate::ScheduleBuilder::timezone) accepts: a
/// [`Timezone`], a chrono-tz [`Tz`](chrono_tz::Tz), a [`FixedOffset`], [`Utc`], or a string
/// (checked at startup; an unknown name is a startup error naming the route).
pub trait IntoTimezone {
    /// The timezone, or why the value is not one.
    fn into_timezone(self) -> Result<Timezone, SpecError>;
}

macro_rules! into_timezone_infallible {
    ($($ty:ty),*) => {$(
        impl IntoTimezone for $ty {
            fn into_timezone(self) -> Result<Timezone, SpecError> {
                Ok(self.into())
            }
        }
    )*};
}

into_timezone_infallible!(Timezone, chrono_tz::Tz, FixedOffset, Utc);

impl IntoTimezone for &str {
    fn into_timezone(self) -> Result<Timezone, SpecError> {
        Timezone::parse(self)
    }
}

impl IntoTimezone for String {
    fn into_timezone(self) -> Result<Timezone, SpecError> {
        Timezone::parse(&self)
    }
}

impl IntoTimezone for &String {
    fn into_timezone(self) -> Result<Timezone, SpecError> {
        Timezone::parse(self)
    }
}

impl IntoTimezone for Result<Timezone, SpecError> {
    fn into_timezone(self) -> Result<Timezone, SpecError> {
        self
    }
}
