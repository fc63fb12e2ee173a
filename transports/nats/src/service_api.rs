//! The NATS service API (ADR-32, revision 6), implemented on async-nats core.
//!
//! Every kumi service that has routes on a NATS bus is a NATS "micro" service: `nats micro ls`,
//! nats.go/nats.py/nats.js clients and the `$SRV` discovery subjects see it. Its request routes are
//! its endpoints (in registration order); event routes are not endpoints.
//!
//! - Discovery: for each of `PING`, `INFO` and `STATS`, the service answers on `$SRV.<VERB>`,
//!   `$SRV.<VERB>.<name>` and `$SRV.<VERB>.<name>.<id>` (plain subscriptions, no queue group),
//!   from its own task, so it answers while endpoints are busy. Requests without a reply subject
//!   are ignored.
//! - Responses carry `type`, `name`, `id`, `version` and `metadata` (`{}` when empty); INFO adds
//!   `description` and `endpoints` (`name`, `subject`, `queue_group`, `metadata`); STATS adds
//!   `started` (RFC 3339, UTC, 6 fractional digits) and per endpoint `num_requests`,
//!   `num_errors`, `last_error` (`""` or `"<code>:<text>"`), `processing_time` and
//!   `average_processing_time` (nanoseconds) and `data` (from the endpoint's stats handler, else
//!   `null`).
//! - Queue groups: `q` by default; a route's `.group(name)` overrides it, `.broadcast()` disables it
//!   (the endpoint then has no `queue_group`); [`Endpoint`] options do the same per endpoint.
//! - Endpoint subjects: the route's topic, prefixed by the endpoint's group (`group.topic`) if it
//!   has one. Endpoints added after start (`RunningApp::add_routes`) appear in INFO and STATS
//!   from then on.
//! - Errors: failed handlers reply with `Nats-Service-Error` and `Nats-Service-Error-Code` (500,
//!   or 400 for requests that do not decode) and count in `num_errors` / `last_error`.
//! - Stop: the endpoints are drained with the routes (by the consume runtime); the discovery
//!   subscriptions are drained when the bus closes, after them.
//! - The per-endpoint figures are the route's counters, kept by the consume runtime
//!   ([`RouteStats`]): no lock on the request path except for `last_error`, written only when a
//!   request fails.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use kumi_core::identity::Identity;
use kumi_core::stats::RouteStats;
use kumi_core::{Error, Result};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The queue group of the default endpoint, per ADR-32.
pub const DEFAULT_QUEUE_GROUP: &str = "q";

/// Produces an endpoint's `data` in STATS responses.
pub type StatsHandler = Arc<dyn Fn() -> Value + Send + Sync>;

/// Which queue group an endpoint listens in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueueGroup {
    /// The route's `.group(..)`/`.broadcast()` if it set one, else `q`.
    #[default]
    Default,
    /// This queue group.
    Named(String),
    /// No queue group: every instance answers every request.
    Disabled,
}

/// Route option for request routes on NATS: ADR-32 endpoint settings.
#[derive(Clone, Default)]
pub struct Endpoint {
    pub(crate) group: Option<String>,
    pub(crate) queue_group: QueueGroup,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) stats: Option<StatsHandler>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("group", &self.group)
            .field("queue_group", &self.queue_group)
            .field("metadata", &self.metadata)
            .field("stats", &self.stats.is_some())
            .finish()
    }
}

impl Endpoint {
    /// Default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts the endpoint in a group: its subject becomes `<group>.<topic>`.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Listens in this queue group.
    pub fn queue_group(mut self, queue_group: impl Into<String>) -> Self {
        self.queue_group = QueueGroup::Named(queue_group.into());
        self
    }

    /// Listens without a queue group.
    pub fn no_queue_group(mut self) -> Self {
        self.queue_group = QueueGroup::Disabled;
        self
    }

    /// Adds endpoint metadata.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Supplies the endpoint's `data` in STATS responses.
    pub fn stats(mut self, handler: impl Fn() -> Value + Send + Sync + 'static) -> Self {
        self.stats = Some(Arc::new(handler));
        self
    }
}

/// One endpoint: its identity, and the counters of its route.
pub(crate) struct EndpointState {
    name: String,
    subject: String,
    queue_group: Option<String>,
    metadata: BTreeMap<String, String>,
    stats: Option<StatsHandler>,
    counters: Arc<RouteStats>,
}

impl EndpointState {
    fn reset(&self) {
        self.counters.reset_requests();
    }

    fn info_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("subject".into(), json!(self.subject));
        if let Some(q) = &self.queue_group {
            m.insert("queue_group".into(), json!(q));
        }
        m.insert("metadata".into(), json!(self.metadata));
        Value::Object(m)
    }

    fn stats_json(&self) -> Value {
        let counters = self.counters.snapshot();
        let requests = counters.requests;
        let processing = u64::try_from(counters.processing.as_nanos()).unwrap_or(u64::MAX);
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("subject".into(), json!(self.subject));
        if let Some(q) = &self.queue_group {
            m.insert("queue_group".into(), json!(q));
        }
        m.insert("num_requests".into(), json!(requests));
        m.insert("num_errors".into(), json!(counters.errors));
        m.insert("last_error".into(), json!(counters.last_error));
        m.insert("processing_time".into(), json!(processing));
        m.insert(
            "average_processing_time".into(),
            json!(processing.checked_div(requests).unwrap_or(0)),
        );
        m.insert(
            "data".into(),
            self.stats.as_ref().map_or(Value::Null, |f| {
                // A user's stats handler that panics must not take discovery down with it.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f())).unwrap_or_else(|_| {
                    tracing::error!(endpoint = %self.name, "nats: the endpoint's stats handler panicked; STATS reports no data for it");
                    Value::Null
                })
            }),
        );
        Value::Object(m)
    }
}

/// One service instance's discovery state.
pub(crate) struct ServiceState {
    identity: Identity,
    started: SystemTime,
    endpoints: RwLock<Vec<Arc<EndpointState>>>,
}

impl ServiceState {
    fn base(&self, kind: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "type".into(),
            json!(format!("io.nats.micro.v1.{kind}_response")),
        );
        m.insert("name".into(), json!(self.identity.name));
        m.insert("id".into(), json!(self.identity.instance_id));
        m.insert("version".into(), json!(self.identity.version));
        m.insert("metadata".into(), json!(self.identity.metadata));
        m
    }

    fn endpoints(&self) -> Vec<Arc<EndpointState>> {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn response(&self, verb: &str) -> Option<Value> {
        let m = match verb {
            "PING" => self.base("ping"),
            "INFO" => {
                let mut m = self.base("info");
                m.insert("description".into(), json!(self.identity.description));
                let eps: Vec<Value> = self.endpoints().iter().map(|e| e.info_json()).collect();
                m.insert("endpoints".into(), Value::Array(eps));
                m
            }
            "STATS" => {
                let mut m = self.base("stats");
                m.insert("started".into(), json!(rfc3339_micros(self.started)));
                let eps: Vec<Value> = self.endpoints().iter().map(|e| e.stats_json()).collect();
                m.insert("endpoints".into(), Value::Array(eps));
                m
            }
            _ => return None,
        };
        Some(Value::Object(m))
    }
}

/// The ADR-32 services of one NATS connection: their discovery responders run until
/// [`Registry::stop`].
pub(crate) struct Registry {
    client: async_nats::Client,
    stop: CancellationToken,
    tasks: TaskTracker,
    /// By service name and instance id (the services of one app share the instance id).
    services: Mutex<HashMap<(String, String), Arc<ServiceState>>>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn numeric_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// The semver.org grammar, as the ADR-32 schemas check it.
pub(crate) fn valid_semver(v: &str) -> bool {
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| numeric_identifier(p)) {
        return false;
    }
    let ident_ok = |id: &str, numeric_rule: bool| {
        !id.is_empty()
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && (!numeric_rule || !id.chars().all(|c| c.is_ascii_digit()) || numeric_identifier(id))
    };
    if let Some(pre) = pre {
        if !pre.split('.').all(|id| ident_ok(id, true)) {
            return false;
        }
    }
    if let Some(build) = build {
        if !build.split('.').all(|id| ident_ok(id, false)) {
            return false;
        }
    }
    true
}

impl Registry {
    /// A registry answering discovery on `client`.
    pub(crate) fn new(client: async_nats::Client) -> Self {
        Self {
            client,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            services: Mutex::new(HashMap::new()),
        }
    }

    /// Stops answering: drains the discovery subscriptions (answering what already arrived) and
    /// waits for that until `deadline`.
    pub(crate) async fn stop(&self, deadline: tokio::time::Instant) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout_at(deadline, self.tasks.wait()).await;
    }

    /// The state of `identity`'s service, registering it (and starting its discovery responder) on
    /// first use.
    pub(crate) async fn service(&self, identity: &Identity) -> Result<Arc<ServiceState>> {
        if let Some(s) = self
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(identity.name.clone(), identity.instance_id.clone()))
        {
            return Ok(Arc::clone(s));
        }
        if !valid_name(&identity.name) {
            return Err(Error::config(format!(
                "service name '{}' is not a valid NATS service name (use letters, digits, '_' and '-')",
                identity.name
            )));
        }
        if !valid_semver(&identity.version) {
            return Err(Error::config(format!(
                "service '{}': version '{}' is not semantic versioning (e.g. 1.2.3)",
                identity.name, identity.version
            )));
        }
        let state = Arc::new(ServiceState {
            identity: identity.clone(),
            started: SystemTime::now(),
            endpoints: RwLock::new(Vec::new()),
        });
        let mut subs = Vec::with_capacity(9);
        for verb in ["PING", "INFO", "STATS"] {
            for subject in [
                format!("$SRV.{verb}"),
                format!("$SRV.{verb}.{}", identity.name),
                format!("$SRV.{verb}.{}.{}", identity.name, identity.instance_id),
            ] {
                let sub = self.client.subscribe(subject.clone()).await.map_err(|e| {
                    Error::new(
                        kumi_core::ErrorKind::Connect,
                        format!("cannot subscribe to '{subject}'"),
                    )
                    .with_source(e)
                })?;
                subs.push(sub);
            }
        }
        let registered = {
            let mut map = self.services.lock().unwrap_or_else(|e| e.into_inner());
            let key = (identity.name.clone(), identity.instance_id.clone());
            Arc::clone(map.entry(key).or_insert(state))
        };
        self.tasks.spawn(respond(
            self.client.clone(),
            self.stop.clone(),
            Arc::clone(&registered),
            subs,
        ));
        Ok(registered)
    }

    /// An endpoint of a registered service, validated but not listed yet
    /// ([`list_endpoint`](Self::list_endpoint)).
    pub(crate) fn new_endpoint(
        service: &ServiceState,
        name: &str,
        subject: &str,
        queue_group: Option<String>,
        options: &Endpoint,
        counters: Arc<RouteStats>,
    ) -> Result<Arc<EndpointState>> {
        if !valid_name(name) {
            return Err(Error::config(format!(
                "service '{}': endpoint name '{name}' is not valid for NATS (use letters, digits, '_' and '-')",
                service.identity.name
            )));
        }
        let endpoint = Arc::new(EndpointState {
            name: name.to_owned(),
            subject: subject.to_owned(),
            queue_group,
            metadata: options.metadata.clone(),
            stats: options.stats.clone(),
            counters,
        });
        Ok(endpoint)
    }

    /// Lists `endpoint` in the service's INFO and STATS: once its subscription is confirmed, so
    /// that an endpoint whose subscription failed is never shown.
    pub(crate) fn list_endpoint(service: &ServiceState, endpoint: &Arc<EndpointState>) {
        service
            .endpoints
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(endpoint));
    }

    /// Resets the STATS counters of every instance of service `name` on this connection.
    pub(crate) fn reset(&self, name: &str) -> usize {
        let services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for s in services.values().filter(|s| s.identity.name == name) {
            for e in s.endpoints() {
                e.reset();
                n += 1;
            }
        }
        n
    }
}

/// Answers discovery requests until the bus stops; then drains the subscriptions, answering what
/// had already arrived, like the endpoints do.
async fn respond(
    client: async_nats::Client,
    stop: CancellationToken,
    state: Arc<ServiceState>,
    subs: Vec<async_nats::Subscriber>,
) {
    let mut all = futures_util::stream::select_all(subs);
    let stop = stop.cancelled_owned();
    tokio::pin!(stop);
    let mut draining = false;
    loop {
        let msg = if draining {
            all.next().await
        } else {
            tokio::select! {
                m = all.next() => m,
                () = &mut stop => {
                    for sub in all.iter_mut() {
                        if let Err(e) = sub.drain().await {
                            tracing::warn!(service = %state.identity.name, "nats: cannot drain a discovery subscription: {e}");
                            // Ends it anyway, so that the stop does not wait for it.
                            let _ = sub.unsubscribe().await;
                        }
                    }
                    draining = true;
                    continue;
                }
            }
        };
        let Some(msg) = msg else { break };
        let Some(reply) = msg.reply else { continue };
        let verb = msg.subject.split('.').nth(1).unwrap_or("");
        let Some(body) = state.response(verb) else {
            continue;
        };
        match serde_json::to_vec(&body) {
            Ok(bytes) => {
                if let Err(e) = client.publish(reply, bytes.into()).await {
                    tracing::warn!(service = %state.identity.name, "nats: cannot answer {verb}: {e}");
                }
            }
            Err(e) => tracing::warn!("nats: cannot encode {verb} response: {e}"),
        }
    }
}

/// `2026-11-27T09:55:12.123456Z`: RFC 3339, UTC, microseconds (what nats-py and nats.go parse).
pub(crate) fn rfc3339_micros(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn semver_and_names() {
        for v in [
            "0.0.0",
            "1.2.3",
            "10.20.30",
            "1.0.0-alpha.1",
            "1.0.0+build.5",
            "1.0.0-rc.1+b",
        ] {
            assert!(valid_semver(v), "{v}");
        }
        for v in [
            "1.2", "01.2.3", "1.2.3-", "1.2.3-01", "v1.2.3", "1.2.3+", "a.b.c", "",
        ] {
            assert!(!valid_semver(v), "{v}");
        }
        assert!(valid_name("orders-v2_x"));
        assert!(!valid_name("orders.v2"));
        assert!(!valid_name(""));
    }

    #[test]
    fn started_is_rfc3339_with_microseconds() {
        let t = UNIX_EPOCH + Duration::new(1_732_700_112, 123_456_789);
        assert_eq!(rfc3339_micros(t), "2024-11-27T09:35:12.123456Z");
        assert_eq!(rfc3339_micros(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_micros(leap), "2000-02-29T00:00:00.000000Z");
    }
}
