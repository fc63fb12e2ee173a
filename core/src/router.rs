//! The router: the routes a service registers, with their options.
//!
//! Core knows only the generic bus triggers, [`Router::subscribe`] and [`Router::request`]. Other
//! triggers (HTTP routes, schedules...) are stored by their transport crates in
//! [`Router::extensions_mut`], so core depends on no transport.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::util::BoxCloneSyncService;
use tower::{Layer, Service};

use crate::bus::{validate_pattern, Sharing, Subscription};
use crate::client::Client;
use crate::consume::{DispatchService, RouteSpec};
use crate::dispatch::{dispatch_service, RoutePolicy};
use crate::envelope::{default_envelope, JsonStyle, Raw, SharedEnvelope};
use crate::error::{BoxError, Error, Result};
use crate::handler::{handler_name, Handler, HandlerService, RouteService};
use crate::message::{Extensions, Message};
use crate::middleware::TraceLayer;
use crate::outcome::Outcome;
use crate::retry::RetryPolicy;
use crate::setting::IntoDuration;
use crate::settlement::RouteKind;
use crate::stats::RouteStats;

/// Default number of messages one route handles at once.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// How long one attempt of a bus route's handler may run unless its route
/// ([`RouteBuilder::timeout`], [`RouteBuilder::no_timeout`]) or service ([`Router::timeout`],
/// [`Router::no_timeout`]) says otherwise: a hung handler fails, is retried and at last
/// dead-lettered, instead of holding its message (and extending its lease) forever.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(60);

/// A timeout, or why it is not one.
fn checked_timeout(timeout: impl IntoDuration) -> std::result::Result<Duration, String> {
    match timeout.into_duration() {
        Ok(timeout) if timeout.is_zero() => Err("the timeout must be longer than zero".to_owned()),
        Ok(timeout) => Ok(timeout),
        Err(e) => Err(format!("timeout {e}")),
    }
}

/// Builds a route's whole message path around its handler: the trace span, then (for routes with
/// middleware) the boxed stack `wrap` builds, then [`Dispatch`](crate::dispatch::Dispatch). A
/// route without middleware is boxed once.
type MakeService<S> = Box<dyn FnOnce(MakeArgs<S>) -> DispatchService + Send>;
pub(crate) type WrapService = Arc<dyn Fn(RouteService) -> RouteService + Send + Sync>;

/// What [`MakeService`] builds with.
struct MakeArgs<S> {
    service: Arc<S>,
    client: Client,
    /// The JSON style of replies (request routes).
    reply: Option<JsonStyle>,
    policy: Arc<RoutePolicy>,
    route: Arc<str>,
    /// The route's middleware, around the handler; `None` for a route without.
    wrap: Option<Box<dyn FnOnce(RouteService) -> RouteService>>,
}

/// One registered route, before the service starts.
pub struct RouteDef<S> {
    kind: RouteKind,
    name: String,
    topic: String,
    sharing: Option<Sharing>,
    concurrency: usize,
    retry: RetryPolicy,
    envelope: Option<SharedEnvelope>,
    dead_letter_topic: Option<String>,
    /// `None`: the service's timeout; `Some(None)`: none.
    timeout: Option<Option<Duration>>,
    layers: Vec<WrapService>,
    options: Extensions,
    make: MakeService<S>,
}

impl<S> fmt::Debug for RouteDef<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteDef")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("topic", &self.topic)
            .field("sharing", &self.sharing)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// Collects a service's routes. Given to [`Service::routes`](crate::Service::routes).
pub struct Router<S> {
    routes: Vec<RouteDef<S>>,
    wide: ServiceWide,
    extensions: Extensions,
}

/// Puts a service-wide option into the service's options (replacing one of the same type).
type OptionDefault = Arc<dyn Fn(&mut Extensions) + Send + Sync>;

/// What a router sets for every bus route of its service: layers and option defaults. A running
/// service keeps it for the routes it adds later.
#[derive(Clone, Default)]
pub(crate) struct ServiceWide {
    layers: Vec<WrapService>,
    options: Vec<OptionDefault>,
    /// The handler timeout of routes that set none (`Some(None)`: no timeout), or why the
    /// value given is invalid.
    timeout: Option<Result<Option<Duration>, String>>,
}

impl<S> fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes)
            .finish()
    }
}

impl<S> Default for Router<S> {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            wide: ServiceWide::default(),
            extensions: Extensions::default(),
        }
    }
}

impl<S: Send + Sync + 'static> Router<S> {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    fn add<H, T>(&mut self, kind: RouteKind, topic: &str, handler: H) -> RouteBuilder<'_, S>
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let make: MakeService<S> = Box::new(move |args: MakeArgs<S>| {
            let handler =
                HandlerService::<H, T, S>::new(handler, args.service, args.client, args.reply);
            let trace = TraceLayer::new(args.route);
            match args.wrap {
                None => dispatch_service(trace.layer(handler), args.policy),
                Some(wrap) => dispatch_service(
                    trace.layer(wrap(BoxCloneSyncService::new(handler))),
                    args.policy,
                ),
            }
        });
        self.routes.push(RouteDef {
            kind,
            name: handler_name::<H>(),
            topic: topic.to_owned(),
            sharing: None,
            concurrency: DEFAULT_CONCURRENCY,
            retry: RetryPolicy::default(),
            envelope: None,
            dead_letter_topic: None,
            timeout: None,
            layers: Vec::new(),
            options: Extensions::default(),
            make,
        });
        let route = self.routes.last_mut().expect("a route was just pushed");
        RouteBuilder { route }
    }

    /// Runs `handler` for every event published on `topic` (a pattern: `*`, `>` and `#` wildcards).
    /// By default instances of the service compete for messages (group = service name), events use
    /// the JsonBase envelope, and failures retry per [`RetryPolicy::default`].
    pub fn subscribe<H, T>(&mut self, topic: &str, handler: H) -> RouteBuilder<'_, S>
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(RouteKind::Event, topic, handler)
    }

    /// Answers requests on `topic` with `handler`'s value. Requests and replies use the raw
    /// envelope (bare JSON) unless told otherwise; a failing handler replies with an error (500,
    /// or 400 for a request that does not decode) instead of retrying.
    pub fn request<H, T>(&mut self, topic: &str, handler: H) -> RouteBuilder<'_, S>
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(RouteKind::Request, topic, handler)
    }

    /// Wraps every route of this service in `layer` (outside the routes' own layers).
    pub fn layer<L>(&mut self, layer: L) -> &mut Self
    where
        L: Layer<RouteService> + Send + Sync + 'static,
        L::Service: Service<Message, Response = Outcome> + Clone + Send + Sync + 'static,
        <L::Service as Service<Message>>::Error: Into<BoxError>,
        <L::Service as Service<Message>>::Future: Send + 'static,
    {
        self.wide.layers.push(wrap(layer));
        self
    }

    /// Fails (and retries) an attempt of any of this service's bus routes that runs longer than
    /// `timeout` (instead of [`DEFAULT_HANDLER_TIMEOUT`]), unless the route sets its own
    /// ([`RouteBuilder::timeout`]). A `Duration` or a string such as `"5m"`; an invalid string
    /// or a zero timeout fails the service's start.
    pub fn timeout(&mut self, timeout: impl IntoDuration) -> &mut Self {
        self.wide.timeout = Some(checked_timeout(timeout).map(Some));
        self
    }

    /// No handler timeout for this service's bus routes, except those that set their own: a
    /// handler may run (and extend its message's lease) for as long as it takes.
    pub fn no_timeout(&mut self) -> &mut Self {
        self.wide.timeout = Some(Ok(None));
        self
    }

    /// Sets a transport-specific option (see [`RouteBuilder::option`]) for every bus route of
    /// this service, including routes added after start, except those that set their own option
    /// of the same type (which replaces this one as a whole). A later call with a value of the
    /// same type replaces an earlier one. A bus ignores a service-wide option that does not
    /// apply to a kind of route (a JetStream durable on request routes, say). For example a NATS
    /// queue group for all of a service's endpoints:
    /// `router.option(Endpoint::new().queue_group("workers"))`.
    pub fn option<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> &mut Self {
        self.wide
            .options
            .push(Arc::new(move |options: &mut Extensions| {
                options.insert(value.clone());
            }));
        self
    }

    /// Transport-specific route lists (HTTP routes, schedules...), keyed by type.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// Transport-specific route lists, keyed by type.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// The registered bus routes.
    pub fn routes(&self) -> impl Iterator<Item = RouteInfo<'_>> {
        self.routes.iter().map(|r| RouteInfo {
            kind: r.kind,
            name: &r.name,
            topic: &r.topic,
        })
    }

    /// The service-wide layers and options set so far (kept by a running service for routes
    /// added later).
    pub(crate) fn service_wide(&self) -> ServiceWide {
        self.wide.clone()
    }

    /// Adds service-wide layers (outside the ones already set) and option defaults (after them).
    pub(crate) fn extend_service_wide(&mut self, wide: &ServiceWide) {
        self.wide.layers.extend(wide.layers.iter().cloned());
        self.wide.options.extend(wide.options.iter().cloned());
        if self.wide.timeout.is_none() {
            self.wide.timeout.clone_from(&wide.timeout);
        }
    }

    /// Turns the routes into bus subscriptions for a running service, each with what the
    /// consume runtime needs to run it and what the banner shows of it.
    pub(crate) fn into_subscriptions(
        self,
        service: &Arc<S>,
        client: &Client,
    ) -> Result<Vec<(Subscription, RouteSpec, RouteSummary)>> {
        let identity = client.identity().clone();
        let ServiceWide {
            layers: service_layers,
            options: option_defaults,
            timeout: service_timeout,
        } = self.wide;
        let service_timeout = match service_timeout {
            None => Some(DEFAULT_HANDLER_TIMEOUT),
            Some(Ok(timeout)) => timeout,
            Some(Err(problem)) => {
                return Err(Error::config(format!(
                    "service {}: {problem}",
                    identity.name
                )))
            }
        };
        let mut service_options = Extensions::default();
        for default in &option_defaults {
            default(&mut service_options);
        }
        let service_options = Arc::new(service_options);
        self.routes
            .into_iter()
            .map(|r| {
                crate::setting::check(&r.options).map_err(|problem| {
                    Error::config(format!("route {}.{}: {problem}", identity.name, r.name))
                })?;
                validate_pattern(&r.topic).map_err(|e| {
                    Error::config(format!(
                        "route {}.{}: {}",
                        identity.name,
                        r.name,
                        e.message()
                    ))
                })?;
                if r.concurrency == 0 {
                    return Err(Error::config(format!(
                        "route {}.{}: concurrency must be at least 1",
                        identity.name, r.name
                    )));
                }
                let route_name: Arc<str> = format!("{}.{}", identity.name, r.name).into();
                let envelope = r.envelope.unwrap_or_else(|| match r.kind {
                    RouteKind::Event => default_envelope(),
                    RouteKind::Request => Arc::new(Raw),
                });
                let reply = (r.kind == RouteKind::Request).then(|| envelope.json_style());
                let policy = Arc::new(RoutePolicy::new(
                    Arc::clone(&route_name),
                    r.kind,
                    Arc::clone(&envelope),
                    r.retry.clone(),
                    r.dead_letter_topic.clone(),
                    identity.clone(),
                    r.timeout.unwrap_or(service_timeout),
                ));
                let bare = r.layers.is_empty() && service_layers.is_empty();
                let wrap: Option<Box<dyn FnOnce(RouteService) -> RouteService>> = if bare {
                    None
                } else {
                    let layers: Vec<WrapService> = r
                        .layers
                        .iter()
                        .chain(service_layers.iter())
                        .cloned()
                        .collect();
                    Some(Box::new(move |mut svc: RouteService| {
                        for wrap in &layers {
                            svc = wrap(svc);
                        }
                        svc
                    }))
                };
                let dispatch = (r.make)(MakeArgs {
                    service: Arc::clone(service),
                    client: client.clone(),
                    reply,
                    policy,
                    route: Arc::clone(&route_name),
                    wrap,
                });
                let explicit_sharing = r.sharing.is_some();
                let sharing = r
                    .sharing
                    .unwrap_or_else(|| Sharing::Group(identity.name.clone()));
                let summary = RouteSummary {
                    kind: r.kind,
                    name: route_name.to_string(),
                    topic: r.topic.clone(),
                    sharing: sharing.clone(),
                    listens: String::new(),
                    concurrency: r.concurrency,
                    max_attempts: r.retry.max_attempts,
                    envelope: envelope.name(),
                };
                let stats = Arc::new(RouteStats::new());
                let spec = RouteSpec {
                    name: Arc::clone(&route_name),
                    kind: r.kind,
                    concurrency: r.concurrency,
                    service: dispatch,
                    stats: Arc::clone(&stats),
                };
                let subscription = Subscription {
                    topic: r.topic,
                    sharing,
                    explicit_sharing,
                    name: r.name,
                    route: route_name,
                    service: identity.clone(),
                    kind: r.kind,
                    concurrency: r.concurrency,
                    max_attempts: r.retry.max_attempts,
                    dead_letter_topic: r.dead_letter_topic,
                    options: Arc::new(r.options),
                    service_options: Arc::clone(&service_options),
                    stats,
                };
                Ok((subscription, spec, summary))
            })
            .collect()
    }
}

fn wrap<L>(layer: L) -> WrapService
where
    L: Layer<RouteService> + Send + Sync + 'static,
    L::Service: Service<Message, Response = Outcome> + Clone + Send + Sync + 'static,
    <L::Service as Service<Message>>::Error: Into<BoxError>,
    <L::Service as Service<Message>>::Future: Send + 'static,
{
    Arc::new(move |svc: RouteService| {
        let layered = layer.layer(svc);
        BoxCloneSyncService::new(tower::util::MapErr::new(layered, Into::into))
    })
}

/// A registered route, as listed by [`Router::routes`].
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo<'a> {
    /// Event or request.
    pub kind: RouteKind,
    /// Handler name.
    pub name: &'a str,
    /// Topic pattern.
    pub topic: &'a str,
}

/// What the startup banner shows of a running route.
#[derive(Debug, Clone)]
pub struct RouteSummary {
    /// Event or request.
    pub kind: RouteKind,
    /// `service.handler`.
    pub name: String,
    /// Topic pattern.
    pub topic: String,
    /// Group or broadcast.
    pub sharing: Sharing,
    /// Where the bus listens for it (filled in once subscribed).
    pub listens: String,
    /// Concurrency limit.
    pub concurrency: usize,
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// Envelope name.
    pub envelope: &'static str,
}

/// Options of one route, returned by [`Router::subscribe`] and [`Router::request`].
#[derive(Debug)]
pub struct RouteBuilder<'a, S> {
    route: &'a mut RouteDef<S>,
}

impl<S> RouteBuilder<'_, S> {
    /// Names the route (default: the handler function's name).
    pub fn name(self, name: impl Into<String>) -> Self {
        self.route.name = name.into();
        self
    }

    /// Competing consumers in the named group (default group: the service name). Not with
    /// [`broadcast`](Self::broadcast): the two together fail the service's start.
    pub fn group(self, group: impl Into<String>) -> Self {
        if matches!(self.route.sharing, Some(Sharing::Broadcast)) {
            return self.reject(GROUP_AND_BROADCAST.to_owned());
        }
        self.route.sharing = Some(Sharing::Group(group.into()));
        self
    }

    /// Every instance of the service receives every message. Not with [`group`](Self::group):
    /// the two together fail the service's start.
    pub fn broadcast(self) -> Self {
        if matches!(self.route.sharing, Some(Sharing::Group(_))) {
            return self.reject(GROUP_AND_BROADCAST.to_owned());
        }
        self.route.sharing = Some(Sharing::Broadcast);
        self
    }

    /// At most `n` messages of this route are handled at once (and taken from the broker).
    pub fn concurrency(self, n: usize) -> Self {
        self.route.concurrency = n;
        self
    }

    /// Retries a failing message up to `n` times (so `n + 1` attempts in all).
    pub fn retries(self, n: u32) -> Self {
        self.route.retry.max_attempts = n.saturating_add(1);
        self
    }

    /// Replaces the whole retry policy.
    pub fn retry_policy(self, policy: RetryPolicy) -> Self {
        self.route.retry = policy;
        self
    }

    /// Sets the backoff bounds: first delay and cap, each a `Duration` or a string such as
    /// `"500ms"` (see [`IntoDuration`]). An invalid string fails the service's start.
    pub fn backoff(self, initial: impl IntoDuration, max: impl IntoDuration) -> Self {
        match (initial.into_duration(), max.into_duration()) {
            (Ok(initial), Ok(max)) => {
                self.route.retry.initial_backoff = initial;
                self.route.retry.max_backoff = max;
                self
            }
            (Err(e), _) | (_, Err(e)) => self.reject(format!("backoff {e}")),
        }
    }

    /// Uses this envelope for the route's messages (and replies).
    pub fn envelope(self, envelope: impl crate::envelope::Envelope) -> Self {
        self.route.envelope = Some(Arc::new(envelope));
        self
    }

    /// Dead-letters to this topic instead of `dlq.<topic>`.
    pub fn dead_letter_topic(self, topic: impl Into<String>) -> Self {
        self.route.dead_letter_topic = Some(topic.into());
        self
    }

    /// Short for [`dead_letter_topic`](Self::dead_letter_topic)
    /// (`#[subscribe(.., dead_letter = "orders.failed")]`).
    pub fn dead_letter(self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic(topic)
    }

    /// Fails (and retries) an attempt that runs longer than `timeout` (instead of the
    /// service's, [`Router::timeout`], or [`DEFAULT_HANDLER_TIMEOUT`]): the handler is dropped,
    /// its message's lease is no longer extended, and the failure is retried or dead-lettered
    /// like any other. A `Duration` or a string such as `"5s"` (see [`IntoDuration`]). An
    /// invalid string or a zero timeout fails the service's start.
    pub fn timeout(self, timeout: impl IntoDuration) -> Self {
        match checked_timeout(timeout) {
            Ok(timeout) => {
                self.route.timeout = Some(Some(timeout));
                self
            }
            Err(problem) => self.reject(problem),
        }
    }

    /// No handler timeout for this route, whatever the service's: its handler may run (and
    /// extend its message's lease) for as long as it takes.
    pub fn no_timeout(self) -> Self {
        self.route.timeout = Some(None);
        self
    }

    /// Wraps this route's handler in a tower layer. Later layers wrap earlier ones.
    pub fn layer<L>(self, layer: L) -> Self
    where
        L: Layer<RouteService> + Send + Sync + 'static,
        L::Service: Service<Message, Response = Outcome> + Clone + Send + Sync + 'static,
        <L::Service as Service<Message>>::Error: Into<BoxError>,
        <L::Service as Service<Message>>::Future: Send + 'static,
    {
        self.route.layers.push(wrap(layer));
        self
    }

    /// Stores a transport-specific option (e.g. a JetStream durable) for the bus to read.
    pub fn option<T: Send + Sync + 'static>(self, value: T) -> Self {
        self.route.options.insert(value);
        self
    }

    /// Remembers an invalid setting: the service then fails to start, naming the route.
    fn reject(self, problem: String) -> Self {
        crate::setting::reject(&mut self.route.options, problem);
        self
    }
}

const GROUP_AND_BROADCAST: &str = "`group` and `broadcast` cannot be combined: a route either \
    shares messages within a group or gives every instance every message";
