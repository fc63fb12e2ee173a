//! Next-occurrence arithmetic, without timers: cron with and without seconds, aliases and
//! nicknames, daily times, one-shots, intervals, fixed offsets, and daylight saving transitions
//! in Europe/Stockholm and America/New_York.
//!
//! 2026 transitions: Stockholm springs forward on 29 March at 01:00 UTC (02:00 CET -> 03:00
//! CEST) and falls back on 25 October at 01:00 UTC (03:00 CEST -> 02:00 CET); New York springs
//! forward on 8 March at 07:00 UTC (02:00 EST -> 03:00 EDT) and falls back on 1 November at
//! 06:00 UTC (02:00 EDT -> 01:00 EST).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use kumi_schedule::{Every, SpecKind, Timezone, Trigger};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn tz(name: &str) -> Timezone {
    Timezone::parse(name).unwrap()
}

/// The next `n` occurrences after `after`.
fn next_n(
    trigger: &Trigger,
    zone: &Timezone,
    after: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut cursor = after;
    for _ in 0..n {
        let next = trigger.next_after(cursor, zone).expect("an occurrence");
        assert!(next > cursor, "{trigger}: {next} is not after {cursor}");
        out.push(next);
        cursor = next;
    }
    out
}

#[test]
fn cron_with_and_without_seconds() {
    let every_15s = Trigger::cron("*/15 * * * * *").unwrap();
    assert_eq!(
        next_n(&every_15s, &Timezone::UTC, utc(2026, 11, 27, 10, 0, 7), 3),
        [
            utc(2026, 11, 27, 10, 0, 15),
            utc(2026, 11, 27, 10, 0, 30),
            utc(2026, 11, 27, 10, 0, 45)
        ]
    );
    let every_5m = Trigger::cron("*/5 * * * *").unwrap();
    assert_eq!(
        next_n(&every_5m, &Timezone::UTC, utc(2026, 11, 27, 10, 2, 0), 2),
        [utc(2026, 11, 27, 10, 5, 0), utc(2026, 11, 27, 10, 10, 0)]
    );
    // Fractions of a second: the next occurrence is still strictly later.
    let every_s = Trigger::cron("* * * * * *").unwrap();
    let half = utc(2026, 11, 27, 10, 0, 0) + chrono::Duration::milliseconds(500);
    assert_eq!(
        every_s.next_after(half, &Timezone::UTC),
        Some(utc(2026, 11, 27, 10, 0, 1))
    );
    // The legacy `0/10` step form that tokio-cron-scheduler accepted.
    let legacy = Trigger::cron("1/10 * * * * *").unwrap();
    assert_eq!(
        legacy.next_after(utc(2026, 11, 27, 10, 0, 2), &Timezone::UTC),
        Some(utc(2026, 11, 27, 10, 0, 11))
    );
}

#[test]
fn aliases_and_nicknames() {
    // Friday 27 November 2026, noon.
    let friday = utc(2026, 11, 27, 12, 0, 0);
    let next = |spec: &str| {
        Trigger::parse(spec)
            .unwrap()
            .next_after(friday, &Timezone::UTC)
    };
    assert_eq!(next("every second"), Some(utc(2026, 11, 27, 12, 0, 1)));
    assert_eq!(next("minutely"), Some(utc(2026, 11, 27, 12, 1, 0)));
    assert_eq!(next("hourly"), Some(utc(2026, 11, 27, 13, 0, 0)));
    assert_eq!(next("@hourly"), Some(utc(2026, 11, 27, 13, 0, 0)));
    assert_eq!(next("daily"), Some(utc(2026, 11, 28, 0, 0, 0)));
    assert_eq!(next("@daily"), Some(utc(2026, 11, 28, 0, 0, 0)));
    assert_eq!(next("@midnight"), Some(utc(2026, 11, 28, 0, 0, 0)));
    // `weekly` is Monday (as tomodachi), cron's `@weekly` is Sunday.
    assert_eq!(next("weekly"), Some(utc(2026, 11, 30, 0, 0, 0)));
    assert_eq!(next("@weekly"), Some(utc(2026, 11, 29, 0, 0, 0)));
    assert_eq!(next("weekdays"), Some(utc(2026, 11, 30, 0, 0, 0)));
    assert_eq!(next("weekends"), Some(utc(2026, 11, 28, 0, 0, 0)));
    assert_eq!(next("monthly"), Some(utc(2026, 12, 1, 0, 0, 0)));
    assert_eq!(next("@monthly"), Some(utc(2026, 12, 1, 0, 0, 0)));
    assert_eq!(next("yearly"), Some(utc(2027, 1, 1, 0, 0, 0)));
    assert_eq!(next("@yearly"), Some(utc(2027, 1, 1, 0, 0, 0)));
    assert_eq!(next("@annually"), Some(utc(2027, 1, 1, 0, 0, 0)));
    assert_eq!(next("Every Monday"), Some(utc(2026, 11, 30, 0, 0, 0)));
    // The named constructors are the same triggers.
    assert_eq!(Trigger::weekdays(), Trigger::parse("weekdays").unwrap());
    assert_eq!(Trigger::hourly(), Trigger::parse("every hour").unwrap());
    assert_eq!(Trigger::every_second().to_string(), "every second");
}

#[test]
fn intervals_count_from_the_previous_occurrence() {
    let t = Trigger::parse("1h30m").unwrap();
    assert_eq!(t.period(), Some(Duration::from_secs(5400)));
    assert_eq!(t.to_string(), "every 1h 30m");
    let start = utc(2026, 11, 27, 10, 0, 0);
    assert_eq!(
        next_n(&t, &tz("Europe/Stockholm"), start, 2),
        [utc(2026, 11, 27, 11, 30, 0), utc(2026, 11, 27, 13, 0, 0)]
    );
    assert_eq!(Trigger::parse("every 250ms").unwrap(), Every::millis(250));
    assert_eq!(Trigger::parse("5m").unwrap(), Every::minutes(5));
    assert_eq!(Trigger::parse("2h").unwrap(), Every::hours(2));
    assert_eq!(Every::seconds(10).to_string(), "every 10s");
}

#[test]
fn daily_time_in_stockholm_follows_dst() {
    let stockholm = tz("Europe/Stockholm");
    let daily = Trigger::daily_at("08:30").unwrap();
    // 08:30 CET is 07:30 UTC; from 29 March, 08:30 CEST is 06:30 UTC.
    assert_eq!(
        next_n(&daily, &stockholm, utc(2026, 3, 27, 12, 0, 0), 3),
        [
            utc(2026, 3, 28, 7, 30, 0),
            utc(2026, 3, 29, 6, 30, 0),
            utc(2026, 3, 30, 6, 30, 0)
        ]
    );
    // And back on 25 October.
    assert_eq!(
        next_n(&daily, &stockholm, utc(2026, 10, 24, 12, 0, 0), 2),
        [utc(2026, 10, 25, 7, 30, 0), utc(2026, 10, 26, 7, 30, 0)]
    );
    let with_seconds = Trigger::daily_at("08:30:15").unwrap();
    assert_eq!(with_seconds.to_string(), "daily at 08:30:15");
    assert_eq!(
        with_seconds.next_after(utc(2026, 1, 15, 0, 0, 0), &stockholm),
        Some(utc(2026, 1, 15, 7, 30, 15))
    );
}

#[test]
fn a_time_skipped_by_spring_forward_runs_right_after_the_gap() {
    let stockholm = tz("Europe/Stockholm");
    let daily = Trigger::daily_at("02:30").unwrap();
    // 29 March: 02:30 does not exist; it runs at 03:00 CEST (01:00 UTC), once.
    assert_eq!(
        next_n(&daily, &stockholm, utc(2026, 3, 27, 12, 0, 0), 3),
        [
            utc(2026, 3, 28, 1, 30, 0),
            utc(2026, 3, 29, 1, 0, 0),
            utc(2026, 3, 30, 0, 30, 0)
        ]
    );
    let new_york = tz("America/New_York");
    let cron = Trigger::cron("30 2 * * *").unwrap();
    // 8 March: 02:30 EST does not exist; it runs at 03:00 EDT (07:00 UTC).
    assert_eq!(
        next_n(&cron, &new_york, utc(2026, 3, 7, 12, 0, 0), 3),
        [
            utc(2026, 3, 8, 7, 0, 0),
            utc(2026, 3, 9, 6, 30, 0),
            utc(2026, 3, 10, 6, 30, 0)
        ]
    );
    // Steps have no occurrences inside the gap (02:00 and 02:30 CET do not exist).
    let half_hourly = Trigger::cron("*/30 * * * *").unwrap();
    assert_eq!(
        next_n(&half_hourly, &stockholm, utc(2026, 3, 29, 0, 15, 0), 3),
        [
            utc(2026, 3, 29, 0, 30, 0), // 01:30 CET
            utc(2026, 3, 29, 1, 0, 0),  // 03:00 CEST
            utc(2026, 3, 29, 1, 30, 0)  // 03:30 CEST
        ]
    );
}

#[test]
fn a_time_repeated_by_fall_back_runs_once_but_wildcards_run_twice() {
    let stockholm = tz("Europe/Stockholm");
    let daily = Trigger::daily_at("02:30").unwrap();
    // 25 October: 02:30 happens at 00:30 UTC (CEST) and 01:30 UTC (CET); it runs once.
    assert_eq!(
        next_n(&daily, &stockholm, utc(2026, 10, 24, 12, 0, 0), 2),
        [utc(2026, 10, 25, 0, 30, 0), utc(2026, 10, 26, 1, 30, 0)]
    );
    let new_york = tz("America/New_York");
    let hourly = Trigger::cron("0 * * * *").unwrap();
    // 1 November: 01:00 happens twice (EDT, then EST); a wildcard hour runs in both.
    assert_eq!(
        next_n(&hourly, &new_york, utc(2026, 11, 1, 3, 30, 0), 4),
        [
            utc(2026, 11, 1, 4, 0, 0), // 00:00 EDT
            utc(2026, 11, 1, 5, 0, 0), // 01:00 EDT
            utc(2026, 11, 1, 6, 0, 0), // 01:00 EST
            utc(2026, 11, 1, 7, 0, 0)  // 02:00 EST
        ]
    );
}

#[test]
fn fixed_offsets_have_no_dst() {
    let india = tz("+05:30");
    let daily = Trigger::daily_at("08:30").unwrap();
    assert_eq!(
        daily.next_after(utc(2026, 1, 15, 0, 0, 0), &india),
        Some(utc(2026, 1, 15, 3, 0, 0))
    );
    assert_eq!(
        daily.next_after(utc(2026, 7, 15, 0, 0, 0), &india),
        Some(utc(2026, 7, 15, 3, 0, 0))
    );
    let pacific = tz("UTC-8");
    let late = Trigger::daily_at("23:00").unwrap();
    assert_eq!(
        late.next_after(utc(2026, 7, 15, 12, 0, 0), &pacific),
        Some(utc(2026, 7, 16, 7, 0, 0))
    );
}

#[test]
fn one_shot_timestamps() {
    let exact = Trigger::timestamp("2026-11-27T10:00:00Z").unwrap();
    assert!(exact.is_once());
    let at = utc(2026, 11, 27, 10, 0, 0);
    assert_eq!(
        exact.next_after(at - chrono::Duration::seconds(1), &Timezone::UTC),
        Some(at)
    );
    assert_eq!(exact.next_after(at, &Timezone::UTC), None);
    // An offset in the string wins over the schedule's timezone.
    let offset = Trigger::timestamp("2026-11-27 11:00:00+01:00").unwrap();
    assert_eq!(offset.once_instant(&tz("America/New_York")), Some(at));
    // Without an offset, the timestamp is read in the schedule's timezone.
    let local = Trigger::timestamp("2026-11-27 10:00").unwrap();
    assert_eq!(local.once_instant(&Timezone::UTC), Some(at));
    assert_eq!(
        local.once_instant(&tz("Europe/Stockholm")),
        Some(utc(2026, 11, 27, 9, 0, 0))
    );
    // Clocks skip 02:30 in Stockholm on 29 March: no such instant.
    let skipped = Trigger::timestamp("2026-03-29T02:30:00").unwrap();
    assert_eq!(skipped.once_instant(&tz("Europe/Stockholm")), None);
    // A repeated time is its first occurrence.
    let repeated = Trigger::timestamp("2026-10-25T02:30:00").unwrap();
    assert_eq!(
        repeated.once_instant(&tz("Europe/Stockholm")),
        Some(utc(2026, 10, 25, 0, 30, 0))
    );
    assert_eq!(Trigger::at(at), exact);
}

#[test]
fn timezones_parse_and_display() {
    for (input, shown) in [
        ("UTC", "UTC"),
        ("utc", "UTC"),
        ("Z", "UTC"),
        ("+00:00", "UTC"),
        ("+05:30", "+05:30"),
        ("+0530", "+05:30"),
        ("+05", "+05:00"),
        ("UTC+05:30", "+05:30"),
        ("GMT-3", "-03:00"),
        ("-08:00", "-08:00"),
        ("Europe/Stockholm", "Europe/Stockholm"),
        ("America/New_York", "America/New_York"),
        ("Etc/GMT+5", "Etc/GMT+5"),
    ] {
        assert_eq!(
            Timezone::parse(input).unwrap().to_string(),
            shown,
            "{input}"
        );
    }
    assert_eq!(Timezone::default(), Timezone::UTC);
    assert_eq!(
        tz("Europe/Stockholm").format(utc(2026, 11, 27, 7, 30, 0)),
        "2026-11-27T08:30:00+01:00"
    );
    assert_eq!(
        Timezone::UTC.format(utc(2026, 11, 27, 10, 0, 10)),
        "2026-11-27T10:00:10Z"
    );
    for bad in [
        "+25:00",
        "+05:61",
        "+5:3:0",
        "Mars/Olympus",
        "",
        "europe/stockholm",
    ] {
        let e = Timezone::parse(bad).unwrap_err();
        assert_eq!(e.kind(), SpecKind::Timezone, "{bad}");
        assert_eq!(e.value(), bad);
    }
    let e = Timezone::parse("america/new_york").unwrap_err();
    assert!(
        e.to_string().contains("did you mean 'America/New_York'"),
        "{e}"
    );
}

#[test]
fn invalid_specs_say_what_and_why() {
    let cases: Vec<(Result<Trigger, kumi_schedule::SpecError>, SpecKind, &str)> = vec![
        (Trigger::cron("61 * * * *"), SpecKind::Cron, "61 * * * *"),
        (Trigger::cron("* * *"), SpecKind::Cron, "* * *"),
        (
            Trigger::cron("@fortnightly"),
            SpecKind::Cron,
            "@fortnightly",
        ),
        (Trigger::parse("*/5 * * *"), SpecKind::Cron, "*/5 * * *"),
        (Trigger::parse_interval("0s"), SpecKind::Interval, "0s"),
        (Trigger::parse_interval("10"), SpecKind::Interval, "10"),
        (Trigger::parse_interval("soon"), SpecKind::Interval, "soon"),
        (Trigger::daily_at("25:00"), SpecKind::TimeOfDay, "25:00"),
        (Trigger::parse("8:61"), SpecKind::TimeOfDay, "8:61"),
        (
            Trigger::timestamp("2026-13-01 10:00"),
            SpecKind::Timestamp,
            "2026-13-01 10:00",
        ),
        (Trigger::parse("whenever"), SpecKind::Trigger, "whenever"),
    ];
    for (result, kind, value) in cases {
        let e = result.unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert_eq!(e.value(), value);
        assert!(e.to_string().contains(&format!("'{value}'")), "{e}");
    }
    let e = Trigger::parse_interval("10").unwrap_err();
    assert!(e.reason().contains("did you mean '10s'"), "{e}");
}
