//! Cron expressions: parsing and next-occurrence search, on [croner].
//!
//! - 5 fields: `minute hour day-of-month month day-of-week` (runs at second 0);
//! - 6 fields: `second minute hour day-of-month month day-of-week`;
//! - 7 fields: the 6 above and a year;
//! - nicknames: `@yearly` / `@annually`, `@monthly`, `@weekly` (Sunday 00:00, as in cron),
//!   `@daily` / `@midnight`, `@hourly`.
//!
//! Fields take `*`, lists `1,2`, ranges `1-5`, steps `*/5`, `1-30/5` and the legacy `0/5`
//! (accepted as tokio-cron-scheduler did), names (`MON-FRI`, `JAN`), `?` as `*`, and croner's
//! `L` (last), `W` (nearest weekday), `#` (nth weekday) and `+` (day-of-month AND
//! day-of-week). Day-of-week 0 and 7 are Sunday.

use chrono::{DateTime, SubsecRound, TimeZone};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

use crate::error::{SpecError, SpecKind};

const NICKNAMES: &[(&str, &str)] = &[
    ("@yearly", "@yearly"),
    ("@annually", "@yearly"),
    ("@monthly", "@monthly"),
    ("@weekly", "@weekly"),
    ("@daily", "@daily"),
    ("@midnight", "@daily"),
    ("@hourly", "@hourly"),
];

/// A parsed cron expression, with the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CronExpr {
    source: String,
    cron: Cron,
}

impl CronExpr {
    /// Parses a 5-, 6- or 7-field expression or an `@nickname`.
    pub(crate) fn parse(expr: &str) -> Result<Self, SpecError> {
        let trimmed = expr.trim();
        let error = |reason: String| SpecError::new(SpecKind::Cron, expr, reason);
        let text = if trimmed.starts_with('@') {
            NICKNAMES
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(trimmed))
                .map(|(_, canonical)| *canonical)
                .ok_or_else(|| {
                    let known: Vec<&str> = NICKNAMES.iter().map(|(n, _)| *n).collect();
                    error(format!("unknown nickname; use one of {}", known.join(", ")))
                })?
        } else {
            let fields = trimmed.split_whitespace().count();
            if !(5..=7).contains(&fields) {
                return Err(error(format!(
                    "has {fields} field{}; a cron expression has 5 fields (minute hour \
                     day-of-month month day-of-week) or 6 with seconds first",
                    if fields == 1 { "" } else { "s" }
                )));
            }
            trimmed
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .sloppy_ranges(true)
            .build()
            .parse(text)
            .map_err(|e| {
                error(format!(
                    "{e} (fields: [second] minute hour day-of-month month day-of-week)"
                ))
            })?;
        let parsed = Self {
            source: trimmed.to_owned(),
            cron,
        };
        Ok(parsed)
    }

    /// The expression as written (trimmed).
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The first occurrence strictly after `after` (which may carry fractions of a second), with
    /// the fields read on `after`'s wall clock. `None` if the expression never matches again.
    pub(crate) fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        // Croner searches from the next whole second when not inclusive.
        self.cron
            .find_next_occurrence(&after.clone().trunc_subsecs(0), false)
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn field_counts_and_nicknames() {
        assert!(CronExpr::parse("*/5 * * * *").is_ok());
        assert!(CronExpr::parse("*/5 * * * * *").is_ok());
        assert!(CronExpr::parse("@Midnight").is_ok());
        let e = CronExpr::parse("* * *").unwrap_err();
        assert!(e.reason().contains("has 3 fields"), "{e}");
        let e = CronExpr::parse("@sometimes").unwrap_err();
        assert!(e.reason().contains("@hourly"), "{e}");
    }

    #[test]
    fn next_is_strictly_after_a_fractional_time() {
        let c = CronExpr::parse("* * * * * *").unwrap();
        let t = Utc::now().trunc_subsecs(0);
        assert_eq!(c.next_after(&t), Some(t + chrono::Duration::seconds(1)));
        let half = t + chrono::Duration::milliseconds(500);
        assert_eq!(c.next_after(&half), Some(t + chrono::Duration::seconds(1)));
    }
}
