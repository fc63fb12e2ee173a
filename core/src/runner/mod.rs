//! The process runner: configuration, logging, startup banner, signals, graceful drain, exit codes.
//!
//! ```no_run
//! # use kumi_core::{Service, Router};
//! # struct Orders;
//! # impl Service for Orders { fn name(&self) -> &str { "orders" } fn routes(&self, _: &mut Router<Self>) {} }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     kumi_core::runner::Runner::new().service(Orders).run().await
//! }
//! ```
//!
//! Exit codes: `0` clean stop; `1` a start failure, or work abandoned at the drain deadline; `2`
//! invalid configuration; `130` forced stop by a second signal.

mod config;
mod logging;
mod signal;

use std::future::Future;
use std::process::ExitCode;

pub use config::{Config, LogFormat};
pub use logging::init_logging;

use crate::app::{App, RunningApp};
use crate::bus::Connectors;
use crate::error::ErrorKind;
use crate::service::Service;
use crate::settlement::RouteKind;
use crate::transport::SharedTransport;

/// Exit code for a configuration error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code when a second signal forced the stop.
pub const EXIT_FORCED: u8 = 130;

type TransportFactory = Box<dyn Fn(&Config) -> crate::Result<SharedTransport> + Send>;

/// Runs one or more services until SIGINT/SIGTERM.
#[derive(Default)]
pub struct Runner {
    app: App,
    config: Option<Config>,
    connectors: Option<Connectors>,
    transports: Vec<TransportFactory>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("app", &self.app)
            .field("config", &self.config)
            .field("transports", &self.transports.len())
            .finish()
    }
}

impl Runner {
    /// A runner with no services; configuration is read from flags and `KUMI_*` variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service.
    pub fn service<S: Service>(mut self, service: S) -> Self {
        self.app = self.app.service(service);
        self
    }

    /// Uses this configuration instead of flags and environment.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// The transports available for the bus URL.
    pub fn connectors(mut self, connectors: Connectors) -> Self {
        self.connectors = Some(connectors);
        self
    }

    /// Adds a non-bus transport, built from the configuration when the runner starts (so it can
    /// read e.g. the HTTP address).
    pub fn transport_with(
        mut self,
        factory: impl Fn(&Config) -> crate::Result<SharedTransport> + Send + 'static,
    ) -> Self {
        self.transports.push(Box::new(factory));
        self
    }

    /// Runs until SIGINT or SIGTERM, then drains; a second signal forces the exit.
    pub async fn run(self) -> ExitCode {
        self.run_until(std::future::pending()).await
    }

    /// Runs until `stop` completes (or a signal arrives), then drains.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> ExitCode {
        // Before anything starts, so that an early signal is handled, not fatal.
        let mut signals = signal::Signals::install();
        let config = match self.config {
            Some(c) => c,
            None => match Config::from_env_and_args() {
                Ok(c) => c,
                Err(e) => {
                    let code = e.exit_code();
                    let _ = e.print();
                    return ExitCode::from(u8::try_from(code).unwrap_or(EXIT_CONFIG));
                }
            },
        };
        if let Err(e) = config.validate() {
            eprintln!("kumi: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        init_logging(&config);
        // The banner comes before the services' started hooks and first scheduled runs log.
        let mut app = self.app.bus_url(config.bus.clone()).on_listening(banner);
        if let Some(c) = self.connectors {
            app = app.connectors(c);
        }
        for factory in &self.transports {
            match factory(&config) {
                Ok(t) => app = app.transport(t),
                Err(e) => {
                    eprintln!("kumi: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
        }
        let running = match app.start().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("kumi failed to start: {e}");
                return ExitCode::from(if e.kind() == ErrorKind::Config {
                    EXIT_CONFIG
                } else {
                    1
                });
            }
        };
        tokio::select! {
            () = stop => {}
            () = signals.next() => {}
            reason = running.health().stop_requested() => {
                tracing::warn!(%reason, "stop requested");
            }
        }
        tracing::info!(
            drain_timeout = ?config.drain_timeout,
            "shutting down: draining in-flight messages (signal again to force)"
        );
        tokio::select! {
            report = running.shutdown(config.drain_timeout) => match report {
                Ok(r) if r.abandoned == 0 => {
                    tracing::info!(settled_in_drain = r.settled, "stopped cleanly");
                    ExitCode::SUCCESS
                }
                Ok(r) => {
                    tracing::error!(settled_in_drain = r.settled, abandoned = r.abandoned, "drain deadline passed with work in flight");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    tracing::error!("shutdown failed: {e}");
                    ExitCode::FAILURE
                }
            },
            () = signals.next() => {
                tracing::warn!("second signal: forcing exit without finishing the drain");
                ExitCode::from(EXIT_FORCED)
            }
        }
    }
}

fn banner(running: &RunningApp) {
    tracing::info!(bus = running.bus().url(), "kumi is running");
    for r in running.routes() {
        // Requests are answered once (a failure is the reply): only events are retried.
        let attempts = match r.kind {
            RouteKind::Event => format!(", attempts {}", r.max_attempts),
            RouteKind::Request => String::new(),
        };
        tracing::info!(
            "  {:<9} {:<28} -> {:<28} [{}, concurrency {}{attempts}, {}] on {}",
            r.kind.to_string(),
            r.topic,
            r.name,
            r.listens,
            r.concurrency,
            r.envelope,
            running.bus().url()
        );
    }
    for line in running.transport_lines() {
        tracing::info!("  {line}");
    }
}
