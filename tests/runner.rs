//! The runner as a process: configuration errors, start failures, exit codes, signals and drain.
//!
//! Signal cases re-run this test binary as a child process (`KUMI_RUNNER_CHILD` selects what the
//! child does), send it real SIGTERMs and check its exit status and output.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kumi::prelude::*;
use kumi::runner::{Config, Runner};
use kumi::{async_trait, BoxError};

#[derive(Default)]
struct Hooks {
    calls: AtomicUsize,
    fail_start: bool,
    slow_ms: u64,
}

struct Svc(Arc<Hooks>);

impl Svc {
    async fn on_work(self: Arc<Self>, Data(ms): Data<u64>) {
        tracing::info!(ms, "work started");
        tokio::time::sleep(Duration::from_millis(ms)).await;
        eprintln!("work finished after {ms} ms");
    }
}

#[async_trait]
impl Service for Svc {
    fn name(&self) -> &str {
        "runner-test"
    }
    fn routes(&self, router: &mut Router<Self>) {
        router.subscribe("work", Self::on_work);
    }
    async fn starting(&self, _client: &Client) -> Result<(), BoxError> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        if self.0.fail_start {
            return Err("database unreachable".into());
        }
        Ok(())
    }
    async fn started(&self, client: &Client) -> Result<(), BoxError> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        if self.0.slow_ms > 0 {
            client.publish("work", &self.0.slow_ms).await?;
        }
        Ok(())
    }
    async fn stopping(&self, _client: &Client) -> Result<(), BoxError> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn stopped(&self) -> Result<(), BoxError> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn config() -> Config {
    Config {
        log_level: "warn".into(),
        drain_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

fn code(c: ExitCode) -> String {
    format!("{c:?}")
}

#[tokio::test]
async fn clean_run_calls_every_hook_and_exits_zero() {
    let hooks = Arc::new(Hooks::default());
    let exit = Runner::new()
        .config(config())
        .service(Svc(Arc::clone(&hooks)))
        .run_until(tokio::time::sleep(Duration::from_millis(100)))
        .await;
    assert_eq!(code(exit), code(ExitCode::SUCCESS));
    assert_eq!(
        hooks.calls.load(Ordering::SeqCst),
        4,
        "starting, started, stopping, stopped"
    );
}

#[tokio::test]
async fn invalid_settings_exit_2() {
    for cfg in [
        Config {
            log_level: "very=loud=please".into(),
            ..config()
        },
        Config {
            bus: "kafka://localhost:9092".into(),
            ..config()
        },
        Config {
            bus: "not a url".into(),
            ..config()
        },
    ] {
        let exit = Runner::new()
            .config(cfg)
            .service(Svc(Arc::default()))
            .run_until(std::future::pending())
            .await;
        assert_eq!(code(exit), code(ExitCode::from(2)));
    }
}

#[tokio::test]
async fn failing_start_hook_exits_1_without_running() {
    let hooks = Arc::new(Hooks {
        fail_start: true,
        ..Hooks::default()
    });
    let exit = Runner::new()
        .config(config())
        .service(Svc(Arc::clone(&hooks)))
        .run_until(std::future::pending())
        .await;
    assert_eq!(code(exit), code(ExitCode::FAILURE));
    assert_eq!(
        hooks.calls.load(Ordering::SeqCst),
        1,
        "only the starting hook ran"
    );
}

#[tokio::test]
async fn lifecycle_errors_name_the_service() {
    let err = kumi::App::new()
        .service(Svc(Arc::new(Hooks {
            fail_start: true,
            ..Hooks::default()
        })))
        .start()
        .await
        .expect_err("start fails");
    assert_eq!(err.kind(), kumi::ErrorKind::Lifecycle);
    let text = err.to_string();
    assert!(
        text.contains("runner-test") && text.contains("database unreachable"),
        "{text}"
    );
}

/// Not a check of its own: the entry point of the child process the signal tests start (it does
/// nothing unless `KUMI_RUNNER_CHILD` is set). Runs a real `Runner::run()`, signals and all.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var("KUMI_RUNNER_CHILD") else {
        return;
    };
    let slow_ms = if mode == "slow" { 20_000 } else { 300 };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let exit = rt.block_on(async {
        Runner::new()
            .config(Config {
                log_level: "info".into(),
                log_format: if mode == "json" {
                    kumi::runner::LogFormat::Json
                } else {
                    kumi::runner::LogFormat::Pretty
                },
                drain_timeout: Duration::from_secs(10),
                ..Config::default()
            })
            .service(Svc(Arc::new(Hooks {
                slow_ms,
                ..Hooks::default()
            })))
            .run()
            .await
    });
    eprintln!("child exit {exit:?}");
    // Report the runner's exit code as the process's.
    std::process::exit(if code(exit) == code(ExitCode::SUCCESS) {
        0
    } else if code(exit) == code(ExitCode::from(130)) {
        130
    } else {
        1
    });
}

struct Child {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Child {
    fn spawn(mode: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("KUMI_RUNNER_CHILD", mode)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let hit = line.contains(needle);
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        let _ = self.child.kill();
        panic!(
            "child never printed {needle:?}; output:\n{}",
            self.seen.join("\n")
        );
    }

    fn term(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("child did not exit; output:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn sigterm_drains_in_flight_work_then_exits_0() {
    let mut child = Child::spawn("normal");
    child.wait_for("kumi is running");
    child.wait_for("subscribe");
    child.term();
    let code = child.exit_code();
    let out = child.seen.join("\n");
    assert_eq!(code, 0, "output:\n{out}");
    assert!(out.contains("shutting down"), "{out}");
    assert!(
        out.contains("work finished after 300 ms"),
        "in-flight work finished:\n{out}"
    );
    assert!(out.contains("stopped cleanly"), "{out}");
}

#[test]
fn second_sigterm_forces_exit_130() {
    let mut child = Child::spawn("slow");
    child.wait_for("kumi is running");
    child.wait_for("subscribe");
    child.term();
    child.wait_for("shutting down");
    child.term();
    let code = child.exit_code();
    let out = child.seen.join("\n");
    assert_eq!(code, 130, "output:\n{out}");
    assert!(out.contains("forcing exit"), "{out}");
    assert!(!out.contains("work finished"), "{out}");
}

#[test]
fn a_handler_s_log_lines_carry_its_message() {
    let mut child = Child::spawn("normal");
    child.wait_for("work started");
    let line = child.seen.last().cloned().unwrap_or_default();
    child.term();
    assert_eq!(child.exit_code(), 0);
    assert!(
        line.contains(
            "work started ms=300 route=runner-test.on_work topic=work attempt=1 message_id=\""
        ),
        "{line}"
    );
    // The per-message span is off by default: its fields are not formatted for every message.
    assert!(!line.contains("message{"), "{line}");

    let mut child = Child::spawn("json");
    child.wait_for("work started");
    let line = child.seen.last().cloned().unwrap_or_default();
    child.term();
    assert_eq!(child.exit_code(), 0);
    let v: serde_json::Value = serde_json::from_str(&line).expect(&line);
    assert_eq!(v["message"], "work started");
    assert_eq!(v["ms"], 300);
    assert_eq!(v["route"], "runner-test.on_work");
    assert_eq!(v["topic"], "work");
    assert_eq!(v["attempt"], 1);
    assert!(
        v["message_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{line}"
    );
}
