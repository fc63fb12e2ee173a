//! Parsing `nats://` bus URLs.
//!
//! ```text
//! nats://[user:password@]host[:port][,host2[:port]...][?option=value&...]
//! tls://host:4222                      (TLS required)
//! ```
//!
//! Options: `name` (connection name), `token`, `nkey` (seed), `creds` (path to a `.creds` file),
//! `tls` (`true` to require TLS), `tls_ca`, `tls_cert`, `tls_key` (paths), `connect_timeout`
//! (e.g. `5s`), `jetstream` (`true`: event routes use durable JetStream consumers by default),
//! `dead_letters` (`stream`, the default: keep dead letters in the `KUMI_DEAD_LETTERS` stream when
//! the server has JetStream, else warn at startup; `required`: refuse to start without it; `off`:
//! publish them on core NATS only).

use std::path::PathBuf;
use std::time::Duration;

use kumi_core::bus::redact;
use kumi_core::bus::url_options::{parse_bool, percent_decode};
use kumi_core::Error;

/// Where a NATS bus keeps dead letters (URL option `dead_letters=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeadLetters {
    /// In the `KUMI_DEAD_LETTERS` stream (capturing `dlq.>`), provisioned at connect when the
    /// server has JetStream; without it, a startup warning says dead letters nobody subscribes to
    /// are lost.
    #[default]
    Stream,
    /// As `Stream`, but connecting fails when the stream cannot be provisioned.
    Required,
    /// Published on core NATS only: a dead letter nobody subscribes to is lost.
    Off,
}

/// A parsed `nats://` URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsUrl {
    /// `host:port` of each server, as `nats://host:port` (or `tls://`).
    pub servers: Vec<String>,
    /// User and password.
    pub user_password: Option<(String, String)>,
    /// Token.
    pub token: Option<String>,
    /// NKey seed.
    pub nkey: Option<String>,
    /// Credentials file.
    pub creds: Option<PathBuf>,
    /// Require TLS.
    pub tls: bool,
    /// CA certificate file.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key files.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Connection name.
    pub name: Option<String>,
    /// Connect timeout.
    pub connect_timeout: Option<Duration>,
    /// Event routes use JetStream durable consumers unless told otherwise.
    pub jetstream: bool,
    /// Where dead letters are kept.
    pub dead_letters: DeadLetters,
    /// The URL with secrets removed.
    pub redacted: String,
}

impl NatsUrl {
    /// Parses a `nats://` or `tls://` URL. Errors name the URL (credentials removed) and the part
    /// at fault.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let shown = redact(url);
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::config(format!("bus URL '{shown}' is not a nats:// URL")))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "nats" && scheme != "tls" {
            return Err(Error::config(format!(
                "bus URL '{shown}' is not a nats:// or tls:// URL"
            )));
        }
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hosts.trim_end_matches('/');
        let mut parsed = NatsUrl {
            tls: scheme == "tls",
            redacted: shown.clone(),
            ..Self::default()
        };
        for host in hosts.split(',') {
            let host = host
                .strip_prefix("nats://")
                .or_else(|| host.strip_prefix("tls://"))
                .unwrap_or(host);
            let (userinfo, hostport) = match host.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, host),
            };
            if let Some(userinfo) = userinfo {
                match userinfo.split_once(':') {
                    Some((u, p)) => {
                        parsed.user_password = Some((percent_decode(u), percent_decode(p)))
                    }
                    None => parsed.token = Some(percent_decode(userinfo)),
                }
            }
            if hostport.is_empty() {
                return Err(Error::config(format!("bus URL '{shown}' names no server")));
            }
            let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
                hostport.to_owned()
            } else {
                format!("{hostport}:4222")
            };
            let port_ok = hostport
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
            if !port_ok {
                return Err(Error::config(format!(
                    "bus URL '{shown}': '{hostport}' has no valid port"
                )));
            }
            parsed.servers.push(format!("{scheme}://{hostport}"));
        }
        let mut cert = None;
        let mut key = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "name" => parsed.name = Some(v),
                "token" => parsed.token = Some(v),
                "user" => {
                    let pass = parsed.user_password.take().map(|(_, p)| p).unwrap_or_default();
                    parsed.user_password = Some((v, pass));
                }
                "password" => {
                    let user = parsed.user_password.take().map(|(u, _)| u).unwrap_or_default();
                    parsed.user_password = Some((user, v));
                }
                "nkey" => parsed.nkey = Some(v),
                "creds" => parsed.creds = Some(PathBuf::from(v)),
                "tls" => parsed.tls = parse_bool(&shown, k, &v)?,
                "tls_ca" => parsed.tls_ca = Some(PathBuf::from(v)),
                "tls_cert" => cert = Some(PathBuf::from(v)),
                "tls_key" => key = Some(PathBuf::from(v)),
                "jetstream" => parsed.jetstream = parse_bool(&shown, k, &v)?,
                "dead_letters" => {
                    parsed.dead_letters = match v.as_str() {
                        "stream" => DeadLetters::Stream,
                        "required" => DeadLetters::Required,
                        "off" => DeadLetters::Off,
                        other => {
                            return Err(Error::config(format!(
                                "bus URL '{shown}': dead_letters '{other}' is not one of stream, required, off"
                            )))
                        }
                    }
                }
                "connect_timeout" => {
                    parsed.connect_timeout = Some(humantime_like(&v).ok_or_else(|| {
                        Error::config(format!(
                            "bus URL '{shown}': connect_timeout '{v}' is not a duration like 5s or 500ms"
                        ))
                    })?)
                }
                other => {
                    return Err(Error::config(format!(
                        "bus URL '{shown}': unknown option '{other}' (known: name, token, user, password, nkey, creds, tls, tls_ca, tls_cert, tls_key, connect_timeout, jetstream, dead_letters)"
                    )))
                }
            }
        }
        parsed.tls_client = kumi_core::bus::client_certificate(&shown, cert, key)?;
        Ok(parsed)
    }
}

fn humantime_like(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_servers_auth_and_options() {
        let u = NatsUrl::parse(
            "nats://alice:s%3Acret@a:4222,b?name=orders&jetstream=true&connect_timeout=2s",
        )
        .unwrap();
        assert_eq!(u.servers, vec!["nats://a:4222", "nats://b:4222"]);
        assert_eq!(u.user_password, Some(("alice".into(), "s:cret".into())));
        assert_eq!(u.name.as_deref(), Some("orders"));
        assert!(u.jetstream);
        assert_eq!(u.connect_timeout, Some(Duration::from_secs(2)));
        assert!(!u.redacted.contains("s%3Acret"));
        let u = NatsUrl::parse("tls://tok@h:1?tls_ca=/ca.pem").unwrap();
        assert!(u.tls);
        assert_eq!(u.token.as_deref(), Some("tok"));
        assert_eq!(u.servers, vec!["tls://h:1"]);
    }

    #[test]
    fn bad_urls_name_the_fault() {
        for (url, needle) in [
            ("nats://h:x", "no valid port"),
            ("nats://h?bogus=1", "unknown option 'bogus'"),
            ("nats://h?jetstream=maybe", "true or false"),
            ("nats://h?tls_cert=/c", "together"),
            ("nats://?name=x", "names no server"),
            ("amqp://h", "not a nats://"),
        ] {
            let e = NatsUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(needle), "{url}: {e}");
        }
    }
}
