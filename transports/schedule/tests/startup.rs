//! Startup: invalid specs and options are configuration errors naming the route and the value;
//! valid schedules show a banner line each.

mod support;

use std::sync::Arc;
use std::time::Duration;

use kumi_core::ErrorKind;
use kumi_schedule::{Every, ScheduleExt, Trigger};
use support::{bounded, start, start_error, TestService};

/// Registers a test's schedules.
type Register = Box<dyn Fn(&mut kumi_core::Router<TestService>) + Send + Sync>;

async fn tick(_: Arc<TestService>) {}

async fn other(_: Arc<TestService>) {}

/// Starts a service with one schedule registered by `register` and returns the error text.
async fn error_of(
    register: impl Fn(&mut kumi_core::Router<TestService>) + Send + Sync + 'static,
) -> String {
    let e = bounded(start_error(TestService::new("shop", register))).await;
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    e.to_string()
}

#[tokio::test]
async fn invalid_specs_are_startup_errors_naming_route_and_value() {
    let cases: Vec<(Register, &[&str])> = vec![
        (
            Box::new(|r| {
                r.schedule("61 * * * *", tick);
            }),
            &["'shop.tick'", "cron expression", "'61 * * * *'"],
        ),
        (
            Box::new(|r| {
                r.schedule(Trigger::cron("*/5 * *"), tick);
            }),
            &["'shop.tick'", "'*/5 * *'", "has 3 fields"],
        ),
        (
            Box::new(|r| {
                r.schedule(Trigger::parse_interval("10 parsecs"), tick);
            }),
            &["'shop.tick'", "interval", "'10 parsecs'"],
        ),
        (
            Box::new(|r| {
                r.schedule(Duration::ZERO, tick);
            }),
            &["'shop.tick'", "longer than zero"],
        ),
        (
            Box::new(|r| {
                r.schedule("25:61", tick);
            }),
            &["'shop.tick'", "time of day", "'25:61'"],
        ),
        (
            Box::new(|r| {
                r.schedule("hourly", tick).timezone("Europe/Stokholm");
            }),
            &["'shop.tick'", "timezone", "'Europe/Stokholm'"],
        ),
        (
            Box::new(|r| {
                r.schedule("hourly", tick).timezone("+24:00");
            }),
            &["'shop.tick'", "timezone", "'+24:00'"],
        ),
        (
            Box::new(|r| {
                r.schedule("0 0 30 2 *", tick);
            }),
            &["'shop.tick'", "'0 0 30 2 *' never matches"],
        ),
        (
            Box::new(|r| {
                r.schedule("2026-03-29 02:30", tick)
                    .timezone("Europe/Stockholm");
            }),
            &["'shop.tick'", "does not exist in Europe/Stockholm"],
        ),
        (
            Box::new(|r| {
                r.schedule(Every::seconds(1), tick).concurrency(0);
            }),
            &["'shop.tick'", "concurrency must be at least 1"],
        ),
        (
            Box::new(|r| {
                r.schedule(Every::seconds(1), tick).timeout(Duration::ZERO);
            }),
            &["'shop.tick'", "timeout"],
        ),
        (
            Box::new(|r| {
                r.schedule(Every::seconds(1), tick).timeout("30 parsecs");
            }),
            &["'shop.tick'", "timeout '30 parsecs' is not a duration"],
        ),
        (
            Box::new(|r| {
                r.schedule(Every::seconds(1), tick).timeout("0s");
            }),
            &["'shop.tick'", "the timeout must be longer than zero"],
        ),
        (
            Box::new(|r| {
                r.schedule("hourly", tick).tz("Mars/Olympus");
            }),
            &["'shop.tick'", "timezone", "'Mars/Olympus'"],
        ),
        (
            Box::new(|r| {
                r.schedule(Every::seconds(1), tick);
                r.schedule("hourly", tick);
            }),
            &["'shop.tick'", "registered twice", ".name("],
        ),
        (
            Box::new(|r| {
                r.schedule(Every::seconds(1), tick);
                r.schedule("nonsense", other).name("cleanup");
            }),
            &["'shop.cleanup'", "'nonsense'"],
        ),
    ];
    for (register, expected) in cases {
        let text = error_of(register).await;
        for part in expected {
            assert!(text.contains(part), "{text:?} should contain {part:?}");
        }
    }
}

#[tokio::test]
async fn banner_lines_show_trigger_zone_route_next_and_options() {
    let (app, schedules) = bounded(start(TestService::new("shop", |r| {
        r.schedule(Every::seconds(3600), tick);
        r.schedule("*/5 * * * * *", other)
            .name("report")
            .timezone("Europe/Stockholm")
            .concurrency(2);
        r.schedule("08:30", other)
            .name("open")
            .timezone("+05:30")
            .immediately()
            .timeout("90s");
        r.schedule("2020-01-01T00:00:00Z", other).name("launch");
    })))
    .await;
    let lines = app.transport_lines().to_vec();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let line = |route: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!("-> {route},")))
            .cloned()
            .unwrap_or_else(|| panic!("no banner line for {route}: {lines:#?}"))
    };
    let tick_line = line("shop.tick");
    assert!(
        tick_line.starts_with("schedule  every 1h (UTC) -> shop.tick, next 20"),
        "{tick_line}"
    );
    assert!(tick_line.ends_with('Z'), "{tick_line}");
    let report = line("shop.report");
    assert!(
        report.starts_with(
            "schedule  cron \"*/5 * * * * *\" (Europe/Stockholm) -> shop.report, next 20"
        ),
        "{report}"
    );
    assert!(report.ends_with(", concurrency 2"), "{report}");
    assert!(
        report.contains("+01:00") || report.contains("+02:00"),
        "{report}"
    );
    let open = line("shop.open");
    assert!(
        open.starts_with("schedule  daily at 08:30 (+05:30) -> shop.open, next 20"),
        "{open}"
    );
    assert!(open.contains("T08:30:00+05:30"), "{open}");
    assert!(open.ends_with(", immediately, timeout 1m 30s"), "{open}");
    let launch = line("shop.launch");
    assert!(
        launch.ends_with("-> shop.launch, time has passed"),
        "{launch}"
    );
    assert_eq!(
        schedules.routes(),
        ["shop.launch", "shop.open", "shop.report", "shop.tick"]
    );
    let report = bounded(app.shutdown(Duration::from_secs(5))).await.unwrap();
    // `open` ran at start; it finished or is drained, nothing is abandoned.
    assert_eq!(report.abandoned, 0);
}

#[tokio::test]
async fn a_service_without_schedules_starts_with_no_banner_lines() {
    let (app, schedules) = bounded(start(TestService::new("quiet", |_| {}))).await;
    assert!(app.transport_lines().is_empty());
    assert!(schedules.routes().is_empty());
    let report = bounded(app.shutdown(Duration::from_secs(1))).await.unwrap();
    assert_eq!((report.settled, report.abandoned), (0, 0));
}

#[tokio::test]
async fn services_share_one_transport_with_routes_named_by_service() {
    let schedules = Arc::new(kumi_schedule::ScheduleTransport::new());
    let app = bounded(
        kumi_core::App::new()
            .transport(schedules.clone())
            .service(TestService::new("a", |r| {
                r.schedule(Every::hours(1), tick).immediately();
            }))
            .service(TestService::new("b", |r| {
                r.schedule("hourly", tick).immediately();
            }))
            .start(),
    )
    .await
    .unwrap();
    assert_eq!(schedules.routes(), ["a.tick", "b.tick"]);
    let (a, b) = (
        schedules.stats("a.tick").unwrap(),
        schedules.stats("b.tick").unwrap(),
    );
    assert!(
        bounded(support::eventually(Duration::from_secs(5), || a
            .successes()
            == 1
            && b.successes() == 1))
        .await
    );
    bounded(app.shutdown(Duration::from_secs(1))).await.unwrap();
}

#[test]
fn the_runner_factory_builds_the_schedule_transport() {
    let transport =
        kumi_schedule::transport_from_config(&kumi_core::runner::Config::default()).unwrap();
    assert_eq!(transport.name(), "schedule");
}
