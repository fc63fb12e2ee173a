//! Starting and stopping services on a bus, programmatically: [`App`] and [`RunningApp`].
//!
//! [`Runner`](crate::runner::Runner) wraps this with configuration, logging and signals; tests and
//! embedders use it directly.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::bus::{ConnectOptions, Connectors, SharedBus};
use crate::client::Client;
use crate::consume::Runtime;
use crate::error::{Error, ErrorKind, Result};
use crate::health::Health;
use crate::identity::Identity;
use crate::router::{RouteSummary, Router, ServiceWide};
use crate::service::Service;
use crate::settlement::DrainReport;
use crate::transport::{ServiceHandle, SharedTransport};

/// A service with its type erased, so several kinds of services run in one process.
#[async_trait]
trait ServiceEntry: Send + Sync {
    fn name(&self) -> &str;
    async fn start(
        &self,
        bus: &SharedBus,
        runtime: &Runtime,
        transports: &[SharedTransport],
        instance_id: &str,
    ) -> Result<StartedService>;
}

struct Entry<S>(Arc<S>);

#[async_trait]
impl<S: Service> ServiceEntry for Entry<S> {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn start(
        &self,
        bus: &SharedBus,
        runtime: &Runtime,
        transports: &[SharedTransport],
        instance_id: &str,
    ) -> Result<StartedService> {
        let service = &self.0;
        let name = service.name().to_owned();
        let mut identity = Identity::new(name.clone()).with_version(service.version());
        identity.instance_id = instance_id.to_owned();
        identity.description = service.description().to_owned();
        identity.metadata = service.metadata();
        let client = Client::with_identity(Arc::clone(bus), identity);
        service.starting(&client).await.map_err(|e| {
            Error::new(
                ErrorKind::Lifecycle,
                format!("service '{name}': starting hook failed"),
            )
            .with_source(e)
        })?;
        let mut router = Router::new();
        service.routes(&mut router);
        let handle = ServiceHandle::new(
            client.identity().clone(),
            client.clone(),
            Arc::clone(service),
        );
        for t in transports {
            t.attach(&handle, router.extensions_mut())?;
        }
        let wide = router.service_wide();
        let mut routes = Vec::new();
        subscribe_all(bus, runtime, router, service, &client, &mut routes).await?;
        let hooks: Arc<dyn LifecycleHooks> = Arc::new(Hooks(Arc::clone(service), client.clone()));
        Ok(StartedService {
            name,
            client,
            routes,
            hooks,
            service: Arc::clone(service) as Arc<dyn Any + Send + Sync>,
            wide,
        })
    }
}

/// The lifecycle hooks that run after a service's routes started.
#[async_trait]
trait LifecycleHooks: Send + Sync {
    async fn started(&self) -> Result<()>;
    async fn stopping(&self);
    async fn stopped(&self);
}

struct Hooks<S>(Arc<S>, Client);

#[async_trait]
impl<S: Service> LifecycleHooks for Hooks<S> {
    async fn started(&self) -> Result<()> {
        self.0.started(&self.1).await.map_err(|e| {
            Error::new(
                ErrorKind::Lifecycle,
                format!("service '{}': started hook failed", self.0.name()),
            )
            .with_source(e)
        })
    }
    async fn stopping(&self) {
        if let Err(e) = self.0.stopping(&self.1).await {
            tracing::error!(service = self.0.name(), error = %e, "stopping hook failed");
        }
    }
    async fn stopped(&self) {
        if let Err(e) = self.0.stopped().await {
            tracing::error!(service = self.0.name(), error = %e, "stopped hook failed");
        }
    }
}

/// Subscribes a router's bus routes in order and starts consuming each in the runtime, adding
/// each one that starts to `routes`.
async fn subscribe_all<S: Service>(
    bus: &SharedBus,
    runtime: &Runtime,
    router: Router<S>,
    service: &Arc<S>,
    client: &Client,
    routes: &mut Vec<RouteSummary>,
) -> Result<()> {
    for (subscription, spec, mut summary) in router.into_subscriptions(service, client)? {
        let subscribed = bus.subscribe(subscription).await?;
        runtime.start(subscribed.consumer, spec)?;
        summary.listens = subscribed.listens;
        routes.push(summary);
    }
    Ok(())
}

struct StartedService {
    name: String,
    client: Client,
    routes: Vec<RouteSummary>,
    hooks: Arc<dyn LifecycleHooks>,
    /// The service itself (an `Arc<S>`), for routes added after start.
    service: Arc<dyn Any + Send + Sync>,
    /// Its service-wide layers and options, which apply to routes added after start too.
    wide: ServiceWide,
}

/// A callback of [`App::on_listening`].
type OnListening = Box<dyn FnOnce(&RunningApp) + Send>;

/// Services to start on one bus, with the non-bus transports (HTTP, schedules...) they use.
pub struct App {
    services: Vec<Box<dyn ServiceEntry>>,
    bus: Option<SharedBus>,
    bus_url: String,
    connectors: Connectors,
    transports: Vec<SharedTransport>,
    on_listening: Option<OnListening>,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.services.iter().map(|s| s.name()).collect();
        f.debug_struct("App")
            .field("services", &names)
            .field("bus_url", &self.bus_url)
            .finish()
    }
}

impl Default for App {
    fn default() -> Self {
        Self {
            services: Vec::new(),
            bus: None,
            bus_url: "memory://".to_owned(),
            connectors: Connectors::default(),
            transports: Vec::new(),
            on_listening: None,
        }
    }
}

impl App {
    /// No services, the `memory://` bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service.
    pub fn service<S: Service>(mut self, service: S) -> Self {
        self.services.push(Box::new(Entry(Arc::new(service))));
        self
    }

    /// Adds a service that the caller keeps a handle to.
    pub fn shared_service<S: Service>(mut self, service: Arc<S>) -> Self {
        self.services.push(Box::new(Entry(service)));
        self
    }

    /// Uses an already-connected bus (one the caller keeps a handle to, e.g. in tests). The app
    /// owns its lifecycle from then on: [`RunningApp::shutdown`] drains and shuts it down, and so
    /// does a failed [`App::start`] (a bus has no per-route unsubscribe, so the routes that
    /// started before the failure can only be stopped that way).
    pub fn bus(mut self, bus: SharedBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Connects to the bus at `url` on start.
    pub fn bus_url(mut self, url: impl Into<String>) -> Self {
        self.bus_url = url.into();
        self
    }

    /// The transports available for [`App::bus_url`].
    pub fn connectors(mut self, connectors: Connectors) -> Self {
        self.connectors = connectors;
        self
    }

    /// Adds a non-bus transport (an HTTP server, a scheduler...).
    pub fn transport(mut self, transport: SharedTransport) -> Self {
        self.transports.push(transport);
        self
    }

    /// Calls `f` during [`start`](Self::start) once every route listens and every transport
    /// started, before the services' `started` hooks run and before the process reports ready
    /// (and so before a schedule's run at start). The runner prints its banner here, so that
    /// what the hooks and first runs log comes after it. Several calls add callbacks, called in
    /// order.
    pub fn on_listening(mut self, f: impl FnOnce(&RunningApp) + Send + 'static) -> Self {
        let earlier = self.on_listening.take();
        self.on_listening = Some(Box::new(move |running| {
            if let Some(earlier) = earlier {
                earlier(running);
            }
            f(running);
        }));
        self
    }

    /// Connects the bus and starts the app, in this order: each service's `starting` hook and
    /// routes (service by service), the transports, [`on_listening`](Self::on_listening), each
    /// service's `started` hook (so a hook can publish to any service's routes), and then the
    /// process reports ready ([`Health::started`]). On failure, whatever started is shut down
    /// again and the error names the service and route at fault.
    pub async fn start(self) -> Result<RunningApp> {
        if self.services.is_empty() {
            return Err(Error::config(
                "no services to run; add one with .service(..)",
            ));
        }
        let mut names: Vec<&str> = self.services.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::config(format!(
                "two services are named '{}'; service names must be unique in a process",
                w[0]
            )));
        }
        // One instance id for the app's services, also in the name of the connection it opens.
        let instance_id = crate::identity::new_instance_id();
        let bus = match self.bus {
            Some(bus) => bus,
            None => {
                let name = format!(
                    "{}-{instance_id}",
                    self.services
                        .iter()
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join("+")
                );
                let options = ConnectOptions::new(self.bus_url.clone()).connection_name(name);
                self.connectors.connect_with(options).await?
            }
        };
        let health = Health::new();
        bus.attach_health(health.clone());
        let runtime = Runtime::new();
        let mut started = Vec::with_capacity(self.services.len());
        let mut transport_lines = Vec::new();
        let mut failure = None;
        for entry in &self.services {
            match entry
                .start(&bus, &runtime, &self.transports, &instance_id)
                .await
            {
                Ok(s) => started.push(s),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_none() {
            for t in &self.transports {
                match t.start(health.clone()).await {
                    Ok(lines) => transport_lines.extend(lines),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = failure {
            abort(&self.transports, &runtime, &bus).await;
            return Err(e);
        }
        let running = RunningApp {
            client: Client::new(Arc::clone(&bus)),
            bus,
            runtime,
            services: started,
            transports: self.transports,
            transport_lines,
            health,
        };
        if let Some(f) = self.on_listening {
            f(&running);
        }
        for s in &running.services {
            if let Err(e) = s.hooks.started().await {
                abort(&running.transports, &running.runtime, &running.bus).await;
                return Err(e);
            }
        }
        running.health.set_started();
        Ok(running)
    }
}

/// Undoes a start that failed: the transports, the routes and the bus stop (no hooks run), with a
/// short deadline for what they already took in.
async fn abort(transports: &[SharedTransport], runtime: &Runtime, bus: &SharedBus) {
    let deadline = Instant::now() + Duration::from_secs(5);
    for t in transports {
        let _ = t.shutdown(deadline).await;
    }
    runtime.drain(deadline).await;
    let _ = bus.shutdown(deadline).await;
}

/// Services running on a bus.
pub struct RunningApp {
    bus: SharedBus,
    runtime: Runtime,
    client: Client,
    services: Vec<StartedService>,
    transports: Vec<SharedTransport>,
    transport_lines: Vec<String>,
    health: Health,
}

impl fmt::Debug for RunningApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("RunningApp")
            .field("bus", &self.bus.url())
            .field("services", &names)
            .finish()
    }
}

impl RunningApp {
    /// A client on the same bus (producing as `kumi-client`).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The client a named service publishes with.
    pub fn service_client(&self, name: &str) -> Option<Client> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.client.clone())
    }

    /// The bus.
    pub fn bus(&self) -> &SharedBus {
        &self.bus
    }

    /// The running services' identities (name, version, instance id), in the order they were
    /// added. The services of one app share an instance id, which also names the broker
    /// connection the app opens (`<service names>-<instance id>`; not a bus given with
    /// [`App::bus`], which was named when it connected).
    pub fn identities(&self) -> impl Iterator<Item = &Identity> {
        self.services.iter().map(|s| s.client.identity())
    }

    /// Every running route, service by service.
    pub fn routes(&self) -> impl Iterator<Item = &RouteSummary> {
        self.services.iter().flat_map(|s| s.routes.iter())
    }

    /// Adds bus routes to the running service named `service` (of type `S`): an endpoint per
    /// tenant found at runtime, a topic learned from configuration... They consume at once, with
    /// the service's own layers around them, and show in [`RunningApp::routes`]; on NATS, request
    /// routes join the service's ADR-32 endpoints (INFO and STATS list them from then on).
    ///
    /// Only bus routes (`subscribe`, `request`) can be added this way: transport routes (HTTP,
    /// websockets, schedules) are bound when the transports start, and adding one is an error.
    /// Routes that subscribed before a failing one keep running.
    ///
    /// ```no_run
    /// # use kumi_core::{App, Router, Service};
    /// # struct Tenants;
    /// # impl Service for Tenants {
    /// #     fn name(&self) -> &str { "tenants" }
    /// #     fn routes(&self, _: &mut Router<Self>) {}
    /// # }
    /// # impl Tenants {
    /// #     async fn lookup(self: std::sync::Arc<Self>) -> Result<String, kumi_core::HandlerError> {
    /// #         Ok(String::new())
    /// #     }
    /// # }
    /// # async fn run() -> kumi_core::Result<()> {
    /// let mut app = App::new().service(Tenants).start().await?;
    /// app.add_routes("tenants", |r: &mut Router<Tenants>| {
    ///     r.request("tenants.acme.lookup", Tenants::lookup).name("acme_lookup");
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn add_routes<S: Service>(
        &mut self,
        service: &str,
        routes: impl FnOnce(&mut Router<S>),
    ) -> Result<&[RouteSummary]> {
        let started = self
            .services
            .iter_mut()
            .find(|s| s.name == service)
            .ok_or_else(|| {
                Error::config(format!(
                    "cannot add routes to service '{service}': no running service has that name"
                ))
            })?;
        let typed = Arc::clone(&started.service).downcast::<S>().map_err(|_| {
            Error::config(format!(
                "cannot add routes to service '{service}': it is not a {}",
                std::any::type_name::<S>()
            ))
        })?;
        let mut router = Router::new();
        routes(&mut router);
        if !router.extensions().is_empty() {
            return Err(Error::config(format!(
                "cannot add routes to service '{service}': only bus routes (subscribe, request) can \
                 be added after start; transport routes (HTTP, websockets, schedules) are bound \
                 when the transports start"
            )));
        }
        router.extend_service_wide(&started.wide);
        let first = started.routes.len();
        subscribe_all(
            &self.bus,
            &self.runtime,
            router,
            &typed,
            &started.client,
            &mut started.routes,
        )
        .await?;
        Ok(&started.routes[first..])
    }

    /// What the transports listen on, for the startup banner.
    pub fn transport_lines(&self) -> &[String] {
        &self.transport_lines
    }

    /// The process health the transports report to.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The consume runtime running the bus routes (their counters, in-flight count).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Graceful stop: marks the process draining, runs `stopping` hooks, drains the transports
    /// (HTTP, schedules...) within half of the budget left (all of it without bus routes), then the
    /// bus routes, then closes the bus, all within `drain`, then runs `stopped` hooks. What a bus
    /// route still held at the deadline is counted in the report as abandoned.
    pub async fn shutdown(self, drain: Duration) -> Result<DrainReport> {
        let deadline = Instant::now() + drain;
        self.health.set_draining();
        for s in &self.services {
            s.hooks.stopping().await;
        }
        // Transports first: their in-flight work (an HTTP request, a scheduled run) may still
        // publish on the bus, which keeps accepting until it closes. They get half of what is
        // left of the budget: one long request does not leave the bus routes no time to drain.
        // (All of it when no bus route runs.)
        let now = Instant::now();
        let transports_deadline = if self.runtime.has_routes() {
            now + deadline.saturating_duration_since(now) / 2
        } else {
            deadline
        };
        let transport_reports = futures_util::future::join_all(
            self.transports
                .iter()
                .map(|t| t.shutdown(transports_deadline)),
        )
        .await;
        let mut report = self.runtime.drain(deadline).await;
        let bus_report = self.bus.shutdown(deadline).await;
        for s in &self.services {
            s.hooks.stopped().await;
        }
        report += bus_report?;
        for r in transport_reports {
            report += r?;
        }
        Ok(report)
    }
}
