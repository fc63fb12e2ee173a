//! Choosing a bus by URL: each transport registers a connector for its URL schemes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::SharedBus;
use crate::error::{Error, Result};
use crate::memory::MemoryBus;

/// Opens a bus for a URL of the scheme it was registered for.
pub type BusConnector =
    Arc<dyn Fn(ConnectOptions) -> BoxFuture<'static, Result<SharedBus>> + Send + Sync>;

/// What a connector connects with: the bus URL and the name the connection shows the broker.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The bus URL, credentials included.
    pub url: String,
    /// The name of the connection the broker lists (NATS `/connz`, RabbitMQ's connection name):
    /// `<service names>-<instance id>` when an app connects; a URL's own `name=` option wins.
    /// `None`: the bus makes one up (`<program>-<random id>`).
    pub connection_name: Option<String>,
}

impl ConnectOptions {
    /// Options for `url` with no connection name.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connection_name: None,
        }
    }

    /// Names the connection.
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    /// The connection name to use: the given one, else `<program>-<new instance id>`.
    pub fn name_or_default(&self) -> String {
        self.connection_name
            .clone()
            .unwrap_or_else(crate::identity::default_connection_name)
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("url", &redact(&self.url))
            .field("connection_name", &self.connection_name)
            .finish()
    }
}

/// Schemes kumi knows and the Cargo feature that provides each.
const KNOWN: &[(&str, &str)] = &[
    ("nats", "nats"),
    ("tls", "nats"),
    ("amqp", "amqp"),
    ("amqps", "amqp"),
    ("sns+sqs", "sns-sqs"),
];

/// The bus connectors available in this build, by URL scheme. `memory` is always there.
#[derive(Clone)]
pub struct Connectors {
    by_scheme: HashMap<String, BusConnector>,
}

impl Default for Connectors {
    fn default() -> Self {
        let mut c = Self {
            by_scheme: HashMap::new(),
        };
        c.register(
            "memory",
            Arc::new(
                |options: ConnectOptions| -> BoxFuture<'static, Result<SharedBus>> {
                    Box::pin(async move {
                        Ok(Arc::new(MemoryBus::from_url(&options.url)?) as SharedBus)
                    })
                },
            ),
        );
        c
    }
}

impl fmt::Debug for Connectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut schemes: Vec<&String> = self.by_scheme.keys().collect();
        schemes.sort();
        f.debug_struct("Connectors")
            .field("schemes", &schemes)
            .finish()
    }
}

impl Connectors {
    /// Registers (or replaces) the connector for `scheme`.
    pub fn register(&mut self, scheme: &str, connector: BusConnector) {
        self.by_scheme
            .insert(scheme.to_ascii_lowercase(), connector);
    }

    /// Opens the bus `url` names. Errors name the URL (credentials removed) and, for a known
    /// scheme not compiled in, the Cargo feature to enable.
    pub async fn connect(&self, url: &str) -> Result<SharedBus> {
        self.connect_with(ConnectOptions::new(url)).await
    }

    /// [`Connectors::connect`] with options (the connection's name).
    pub async fn connect_with(&self, options: ConnectOptions) -> Result<SharedBus> {
        let url = options.url.as_str();
        let scheme = scheme_of(url)?;
        match self.by_scheme.get(&scheme) {
            Some(connector) => connector(options).await,
            None => {
                let shown = redact(url);
                Err(match KNOWN.iter().find(|(s, _)| *s == scheme) {
                    Some((_, feature)) => Error::config(format!(
                        "bus URL '{shown}' needs the `{feature}` feature of kumi, which this build does not enable"
                    )),
                    None => {
                        let mut known: Vec<&str> =
                            self.by_scheme.keys().map(String::as_str).collect();
                        known.sort_unstable();
                        Error::config(format!(
                            "bus URL '{shown}' has unknown scheme '{scheme}' (available: {})",
                            known.join(", ")
                        ))
                    }
                })
            }
        }
    }
}

/// The scheme of a bus URL, lowercased. Errors name the URL.
pub(crate) fn scheme_of(url: &str) -> Result<String> {
    match url.split_once("://") {
        Some((scheme, _)) if !scheme.is_empty() => Ok(scheme.to_ascii_lowercase()),
        _ => Err(Error::config(format!(
            "bus URL '{}' is not a URL; expected e.g. memory://, nats://127.0.0.1:4222 or amqp://guest:guest@127.0.0.1:5672/%2f",
            redact(url)
        ))),
    }
}

/// Query options whose values are secrets.
const SECRET_OPTIONS: &[&str] = &[
    "password",
    "pass",
    "token",
    "nkey",
    "secret",
    "secret_access_key",
    "session_token",
    "access_key_id",
];

/// The client certificate of a bus URL from its `tls_cert` and `tls_key` options, which go
/// together; `shown` is the URL as errors show it (see [`redact`]).
pub fn client_certificate(
    shown: &str,
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
) -> Result<Option<(std::path::PathBuf, std::path::PathBuf)>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        _ => Err(Error::config(format!(
            "bus URL '{shown}': tls_cert and tls_key must be given together"
        ))),
    }
}

/// `url` with any password (and token-like userinfo) and secret query options replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // Credentials run to the last '@' before the query: a password may contain '/'.
    let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
    let authority_end = match rest[..query_start].rfind('@') {
        Some(at) => rest[at..]
            .find(['/', '?', '#'])
            .map_or(rest.len(), |i| at + i),
        None => rest.find(['/', '?', '#']).unwrap_or(rest.len()),
    };
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if SECRET_OPTIONS.contains(&k.to_ascii_lowercase().as_str()) => {
                        format!("{k}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("nats://token@h:4222"), "nats://***@h:4222");
        assert_eq!(redact("nats://u:pa/ss@h:4222/x"), "nats://u:***@h:4222/x");
        assert_eq!(redact("memory://"), "memory://");
        assert_eq!(
            redact("sns+sqs://?region=eu-west-1&secret_access_key=abc&endpoint=http://h:5000"),
            "sns+sqs://?region=eu-west-1&secret_access_key=***&endpoint=http://h:5000"
        );
        assert_eq!(
            redact("nats://h:4222?token=t0k&name=x"),
            "nats://h:4222?token=***&name=x"
        );
    }

    #[tokio::test]
    async fn unknown_and_missing_schemes_are_clear_errors() {
        let c = Connectors::default();
        let e = c.connect("foo://x").await.err().unwrap();
        assert!(e.to_string().contains("unknown scheme 'foo'"), "{e}");
        let e = c.connect("sns+sqs://?region=x").await.err().unwrap();
        assert!(e.to_string().contains("`sns-sqs` feature"), "{e}");
        let e = c.connect("localhost:4222").await.err().unwrap();
        assert!(e.to_string().contains("is not a URL"), "{e}");
        assert!(c.connect("memory://").await.is_ok());
    }
}
