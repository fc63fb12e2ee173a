//! Runner configuration from flags and environment variables.

use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::error::{Error, Result};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable, coloured when stderr is a terminal.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Settings of a kumi process. Every flag has an environment variable; flags win.
#[derive(Debug, Clone, Parser)]
#[command(about = "A kumi service", long_about = None)]
pub struct Config {
    /// Bus URL: memory://, nats://host:4222, amqp://user:pass@host:5672/vhost, sns+sqs://?region=..
    #[arg(long = "bus", env = "KUMI_BUS", default_value = "memory://")]
    pub bus: String,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives
    /// (e.g. "info,kumi=debug").
    #[arg(long = "log-level", env = "KUMI_LOG", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long = "log-format", env = "KUMI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// HTTP listen address (port 0 picks a free port; the banner shows the actual URL). Unset,
    /// the HTTP server listens on 127.0.0.1:8080 when some service has HTTP routes; set, it
    /// always listens (serving at least the health endpoints).
    #[arg(long = "http", env = "KUMI_HTTP_ADDR")]
    pub http: Option<String>,

    /// PEM file of the HTTP server's certificate chain: with `http_tls_key`, the server speaks
    /// HTTPS (and WSS). Needs kumi's `http-tls` feature.
    #[arg(
        long = "http-tls-cert",
        env = "KUMI_HTTP_TLS_CERT",
        requires = "http_tls_key"
    )]
    pub http_tls_cert: Option<std::path::PathBuf>,

    /// PEM file of the private key of `http_tls_cert`.
    #[arg(
        long = "http-tls-key",
        env = "KUMI_HTTP_TLS_KEY",
        requires = "http_tls_cert"
    )]
    pub http_tls_key: Option<std::path::PathBuf>,

    /// How long shutdown waits for in-flight work (e.g. "30s", "2m").
    #[arg(long = "drain-timeout", env = "KUMI_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bus: "memory://".to_owned(),
            log_level: "info".to_owned(),
            log_format: LogFormat::Pretty,
            http: None,
            http_tls_cert: None,
            http_tls_key: None,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("'{s}' is not a duration like 30s or 2m: {e}"))
}

impl Config {
    /// Reads flags from the process arguments and the `KUMI_*` environment variables.
    pub fn from_env_and_args() -> std::result::Result<Self, clap::Error> {
        Self::try_parse()
    }

    /// Reads flags from `args` (the first item is the program name) and the environment.
    pub fn from_args<I, T>(args: I) -> std::result::Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::try_parse_from(args)
    }

    /// Checks values clap cannot: the log filter.
    pub fn validate(&self) -> Result<()> {
        tracing_subscriber::EnvFilter::try_new(&self.log_level).map_err(|e| {
            Error::config(format!(
                "KUMI_LOG / --log-level: '{}' is not a log level or filter: {e}",
                self.log_level
            ))
        })?;
        crate::bus::connect::scheme_of(&self.bus)
            .map_err(|e| Error::config(format!("KUMI_BUS / --bus: {}", e.message())))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_values_name_the_setting() {
        let c = Config::from_args([
            "svc",
            "--bus",
            "memory://",
            "--log-format",
            "json",
            "--drain-timeout",
            "5s",
        ])
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.drain_timeout, Duration::from_secs(5));
        let e = Config::from_args(["svc", "--log-format", "xml"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--log-format"), "{e}");
        let e = Config::from_args(["svc", "--drain-timeout", "soon"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--drain-timeout") && e.contains("soon"), "{e}");
        let c = Config {
            log_level: "loud=???".into(),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("KUMI_LOG"), "{e}");
        let c = Config {
            bus: "localhost".into(),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("KUMI_BUS"), "{e}");
    }
}
