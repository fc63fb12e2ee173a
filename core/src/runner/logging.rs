//! tracing setup from the runner configuration.

use tracing_subscriber::EnvFilter;

use super::{Config, LogFormat};

/// Installs the global tracing subscriber for `config` (level filter and format). Does nothing if
/// one is already installed (e.g. by the application or a test).
pub fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
