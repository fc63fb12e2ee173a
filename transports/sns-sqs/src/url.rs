//! Parsing `sns+sqs://` bus URLs.
//!
//! ```text
//! sns+sqs://[region]?option=value&...
//! sns+sqs://?region=us-east-1&endpoint=http://127.0.0.1:5000&access_key_id=x&secret_access_key=y
//! ```
//!
//! Options:
//!
//! - `region` (or the URL's host part): the AWS region; else the standard chain (`AWS_REGION`...).
//! - `endpoint`: one endpoint for both SNS and SQS (an emulator such as moto or LocalStack).
//! - `access_key_id`, `secret_access_key`, `session_token`: static credentials — meant for
//!   emulators; without them the standard AWS credential chain is used. Never shown: the redacted
//!   URL replaces them with `***`.
//! - `topic_prefix`, `queue_prefix`: prepended to every topic / queue name (as tomodachi does).
//! - `wait_time`: long-poll wait in whole seconds, `0`–`20` (default 20).
//! - `visibility_timeout`: default SQS visibility timeout of queues kumi creates, in seconds
//!   (default 30); handlers running longer get it extended.
//! - `fifo`: `true` to use FIFO topics and queues (`.fifo`) for every route and publish.
//! - `least_privilege`: `true` to create nothing (no topics, queues, subscriptions or policies):
//!   routes bind to existing queues and publishes go to existing topics. Needs `account_id`
//!   unless routes name their topic ARNs and queue URLs.
//! - `account_id`: the AWS account, to build topic ARNs without calling `CreateTopic`.
//! - `partition`: the ARN partition (default `aws`).
//! - `queue_naming`: `kumi` (default) or `tomodachi` (competing routes use tomodachi's
//!   `queue_prefix + sha256_hex(encoded topic)`, to take over a tomodachi service's queues).
//! - `max_receive_margin`: receives beyond the route's attempts before SQS's redrive policy moves
//!   a message to the SQS dead-letter queue (default 3; `0` disables the SQS DLQ).

use std::time::Duration;

use kumi_core::bus::url_options::{parse_bool, percent_decode};
use kumi_core::Error;

/// Query keys whose values are secrets.
const SECRET_KEYS: [&str; 3] = ["access_key_id", "secret_access_key", "session_token"];

/// A parsed `sns+sqs://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SnsSqsUrl {
    /// AWS region.
    pub region: Option<String>,
    /// Endpoint for both services (emulators).
    pub endpoint: Option<String>,
    /// Static credentials `(access key id, secret access key, session token)`.
    pub credentials: Option<(String, String, Option<String>)>,
    /// Prepended to topic names.
    pub topic_prefix: String,
    /// Prepended to queue names.
    pub queue_prefix: String,
    /// Long-poll wait.
    pub wait_time: Duration,
    /// Visibility timeout of created queues.
    pub visibility_timeout: Duration,
    /// FIFO topics and queues everywhere.
    pub fifo: bool,
    /// Create nothing; bind to existing resources.
    pub least_privilege: bool,
    /// AWS account id.
    pub account_id: Option<String>,
    /// ARN partition.
    pub partition: String,
    /// Use tomodachi's queue names for competing routes.
    pub tomodachi_queue_names: bool,
    /// Extra receives before the SQS redrive policy moves a message (0: no SQS DLQ).
    pub max_receive_margin: u32,
    /// The URL with secrets removed.
    pub redacted: String,
}

impl std::fmt::Debug for SnsSqsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsSqsUrl")
            .field("url", &self.redacted)
            .finish_non_exhaustive()
    }
}

/// `url` with the values of credential options replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return kumi_core::bus::redact(url);
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_KEYS.contains(&k) => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{}?{}", kumi_core::bus::redact(head), query.join("&"))
}

fn parse_secs(url: &str, key: &str, v: &str, max: u64) -> Result<Duration, Error> {
    let v = v.strip_suffix('s').unwrap_or(v);
    match v.parse::<u64>() {
        Ok(n) if n <= max => Ok(Duration::from_secs(n)),
        _ => Err(Error::config(format!(
            "bus URL '{url}': option '{key}' must be whole seconds from 0 to {max}, got '{v}'"
        ))),
    }
}

impl SnsSqsUrl {
    /// Parses an `sns+sqs://` URL. Errors name the URL (credentials removed) and the part at fault.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let shown = redact(url);
        let rest = url
            .split_once("://")
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("sns+sqs"))
            .map(|(_, rest)| rest)
            .ok_or_else(|| Error::config(format!("bus URL '{shown}' is not an sns+sqs:// URL")))?;
        let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
        let host = host.trim_end_matches('/');
        let mut parsed = SnsSqsUrl {
            region: (!host.is_empty()).then(|| host.to_owned()),
            endpoint: None,
            credentials: None,
            topic_prefix: String::new(),
            queue_prefix: String::new(),
            wait_time: Duration::from_secs(20),
            visibility_timeout: Duration::from_secs(30),
            fifo: false,
            least_privilege: false,
            account_id: None,
            partition: "aws".to_owned(),
            tomodachi_queue_names: false,
            max_receive_margin: 3,
            redacted: shown.clone(),
        };
        let (mut key_id, mut secret, mut token) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "region" => parsed.region = Some(v),
                "endpoint" => {
                    if !(v.starts_with("http://") || v.starts_with("https://")) {
                        return Err(Error::config(format!(
                            "bus URL '{shown}': endpoint '{v}' must start with http:// or https://"
                        )));
                    }
                    parsed.endpoint = Some(v);
                }
                "access_key_id" => key_id = Some(v),
                "secret_access_key" => secret = Some(v),
                "session_token" => token = Some(v),
                "topic_prefix" => parsed.topic_prefix = v,
                "queue_prefix" => parsed.queue_prefix = v,
                "wait_time" => parsed.wait_time = parse_secs(&shown, k, &v, 20)?,
                "visibility_timeout" => {
                    parsed.visibility_timeout = parse_secs(&shown, k, &v, 43_200)?
                }
                "fifo" => parsed.fifo = parse_bool(&shown, k, &v)?,
                "least_privilege" => parsed.least_privilege = parse_bool(&shown, k, &v)?,
                "account_id" => parsed.account_id = Some(v),
                "partition" => parsed.partition = v,
                "queue_naming" => {
                    parsed.tomodachi_queue_names = match v.as_str() {
                        "kumi" => false,
                        "tomodachi" => true,
                        _ => {
                            return Err(Error::config(format!(
                                "bus URL '{shown}': queue_naming must be 'kumi' or 'tomodachi', got '{v}'"
                            )))
                        }
                    }
                }
                "max_receive_margin" => {
                    parsed.max_receive_margin = v.parse().map_err(|_| {
                        Error::config(format!(
                            "bus URL '{shown}': max_receive_margin must be a whole number, got '{v}'"
                        ))
                    })?
                }
                other => {
                    return Err(Error::config(format!(
                        "bus URL '{shown}': unknown option '{other}' (known: region, endpoint, access_key_id, secret_access_key, session_token, topic_prefix, queue_prefix, wait_time, visibility_timeout, fifo, least_privilege, account_id, partition, queue_naming, max_receive_margin)"
                    )))
                }
            }
        }
        match (key_id, secret) {
            (Some(k), Some(s)) => parsed.credentials = Some((k, s, token)),
            (None, None) if token.is_none() => {}
            _ => {
                return Err(Error::config(format!(
                    "bus URL '{shown}': access_key_id and secret_access_key must be given together"
                )))
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options_and_redacts_credentials() {
        let u = SnsSqsUrl::parse(
            "sns+sqs://?region=eu-west-1&endpoint=http://127.0.0.1:5000&topic_prefix=dev-&queue_prefix=q-&access_key_id=AKID&secret_access_key=s%2Fecret&wait_time=1&fifo=true&queue_naming=tomodachi",
        )
        .unwrap();
        assert_eq!(u.region.as_deref(), Some("eu-west-1"));
        assert_eq!(u.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(u.credentials, Some(("AKID".into(), "s/ecret".into(), None)));
        assert_eq!(u.topic_prefix, "dev-");
        assert_eq!(u.queue_prefix, "q-");
        assert_eq!(u.wait_time, Duration::from_secs(1));
        assert!(u.fifo && u.tomodachi_queue_names);
        assert!(!u.redacted.contains("AKID") && !u.redacted.contains("s%2Fecret"));
        assert!(u.redacted.contains("secret_access_key=***"));
        assert!(!format!("{u:?}").contains("s%2Fecret") && !format!("{u:?}").contains("s/ecret"));
        let u = SnsSqsUrl::parse("sns+sqs://us-east-2").unwrap();
        assert_eq!(u.region.as_deref(), Some("us-east-2"));
        assert_eq!(u.wait_time, Duration::from_secs(20));
    }

    #[test]
    fn bad_urls_name_the_fault() {
        for (url, needle) in [
            ("sns+sqs://?bogus=1", "unknown option 'bogus'"),
            ("sns+sqs://?fifo=maybe", "true or false"),
            ("sns+sqs://?wait_time=21", "0 to 20"),
            ("sns+sqs://?access_key_id=a", "together"),
            ("sns+sqs://?endpoint=localhost:5000", "http://"),
            ("nats://h", "not an sns+sqs://"),
        ] {
            let e = SnsSqsUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(needle), "{url}: {e}");
        }
        let e = SnsSqsUrl::parse("sns+sqs://?secret_access_key=hunter2&x=1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
