//! tracing setup from the runner configuration.
//!
//! Every line logged while a message is handled carries that message's route, topic, attempt,
//! message id and correlation id (from [`crate::log_context`]), added to the line as it is
//! written: nothing is formatted for the messages that log nothing. The per-message span
//! (target `kumi::message`) is off unless `KUMI_LOG` names that target
//! (`KUMI_LOG=info,kumi::message=info` shows it, at the cost of formatting its fields for every
//! message).

use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use super::{Config, LogFormat};
use crate::log_context::{Field, MessageContext};
use crate::middleware::MESSAGE_SPAN_TARGET;

/// Installs the global tracing subscriber for `config` (level filter and format). Does nothing if
/// one is already installed (e.g. by the application or a test).
///
/// Pretty logs are coloured only when standard error is a terminal and `NO_COLOR` is unset: escape
/// codes would end up in files and log collectors (and cost time on every span).
pub fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(filter_directives(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new(filter_directives("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Pretty => {
            let plain = Format::default().with_target(false);
            builder
                .event_format(WithMessage {
                    coloured: plain.clone().with_ansi(true),
                    plain: plain.with_ansi(false),
                    json: false,
                })
                .try_init()
        }
        LogFormat::Json => {
            let json = Format::default().json().flatten_event(true);
            builder
                .json()
                .flatten_event(true)
                .event_format(WithMessage {
                    coloured: json.clone(),
                    plain: json,
                    json: true,
                })
                .try_init()
        }
    };
}

/// `filter` with the per-message span turned off, unless it names the span's target itself.
fn filter_directives(filter: &str) -> String {
    if filter.contains(MESSAGE_SPAN_TARGET) {
        filter.to_owned()
    } else {
        format!("{filter},{MESSAGE_SPAN_TARGET}=off")
    }
}

/// An event format that adds the fields of the message being handled to the line.
struct WithMessage<F> {
    plain: F,
    coloured: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithMessage<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let inner = if writer.has_ansi_escapes() {
            &self.coloured
        } else {
            &self.plain
        };
        MessageContext::with_current(|current| {
            let Some(current) = current else {
                return inner.format_event(ctx, writer.by_ref(), event);
            };
            let mut line = String::new();
            inner.format_event(ctx, Writer::new(&mut line), event)?;
            let body = line.trim_end_matches('\n');
            let fields = event.metadata().fields();
            let extra = current
                .fields()
                .filter(|(name, _)| fields.field(name).is_none());
            if self.json {
                let Some(open) = body.strip_suffix('}') else {
                    return writeln!(writer, "{body}");
                };
                writer.write_str(open)?;
                for (name, value) in extra {
                    let value = match value {
                        Field::Text(t) | Field::Quoted(t) => {
                            serde_json::to_string(t).map_err(|_| fmt::Error)?
                        }
                        Field::Number(n) => n.to_string(),
                    };
                    write!(writer, ",\"{name}\":{value}")?;
                }
                writer.write_str("}\n")
            } else {
                writer.write_str(body)?;
                for (name, value) in extra {
                    write!(writer, " {name}={value}")?;
                }
                writer.write_char('\n')
            }
        })
    }
}

/// Whether to colour logs: on a terminal, unless `NO_COLOR` is set to something (no-color.org).
fn colour(terminal: bool, no_color: Option<OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }

    #[test]
    fn the_message_span_is_off_unless_asked_for() {
        assert_eq!(filter_directives("info"), "info,kumi::message=off");
        assert_eq!(
            filter_directives("info,kumi::message=info"),
            "info,kumi::message=info"
        );
    }
}
