//! # kumi-macros
//!
//! The `#[kumi::service]` attribute macro. It is sugar only: it turns an inherent `impl` block
//! whose methods carry route attributes (`#[subscribe(..)]`, `#[request(..)]`, `#[http(..)]`,
//! `#[http_error(..)]`, `#[websocket(..)]`, `#[schedule(..)]`) and lifecycle attributes into the
//! [`kumi::Service`] impl you could write by hand, and leaves the methods as they are.
//!
//! Use it through the `kumi` crate (`kumi::service`, also in `kumi::prelude`); the generated code
//! names `::kumi`, so this crate is not meant to be used on its own.
//!
//! [`kumi::Service`]: https://docs.rs/kumi/latest/kumi/trait.Service.html

mod expand;
mod options;
mod transports;

use proc_macro::TokenStream;

/// Implements `kumi::Service` for the type of an inherent `impl` block, from attributes on its
/// methods.
///
/// ```text
/// use std::sync::Arc;
/// use kumi::prelude::*;
///
/// struct Orders { /* state, clients, ... */ }
///
/// #[kumi::service(name = "orders", version = "1.2.0")]
/// impl Orders {
///     #[subscribe("orders.created", retries = 3, concurrency = 8, timeout = "5s")]
///     async fn on_created(&self, Data(order): Data<Order>, ctx: Context) -> Result<(), HandlerError> {
///         ctx.publish("billing.invoice", &order).await?;
///         Ok(())
///     }
///
///     #[subscribe("audit.>", broadcast)]
///     async fn audit(self: Arc<Self>, Topic(topic): Topic) { /* ... */ }
///
///     #[request("orders.get")]
///     async fn get(&self, Data(id): Data<u64>) -> Result<Order, HandlerError> { /* ... */ }
///
///     #[starting]
///     async fn connect(&self, client: &kumi::Client) -> Result<(), kumi::BoxError> { /* ... */ }
/// }
/// ```
///
/// expands to the impl block (minus the kumi attributes) and, in essence:
///
/// ```text
/// #[kumi::async_trait]
/// impl kumi::Service for Orders {
///     fn name(&self) -> &str { "orders" }
///     fn version(&self) -> &str { "1.2.0" }
///     fn routes(&self, router: &mut kumi::Router<Self>) {
///         router
///             .subscribe("orders.created", |this: Arc<Self>, a1: Data<Order>, a2: Context| async move {
///                 this.on_created(a1, a2).await
///             })
///             .name("on_created")
///             .concurrency(8)
///             .retries(3)
///             .timeout(Duration::from_millis(5000));
///         router.subscribe("audit.>", /* ... */).name("audit").broadcast();
///         router.request("orders.get", /* ... */).name("get");
///     }
///     async fn starting(&self, client: &kumi::Client) -> Result<(), kumi::BoxError> {
///         self.connect(client).await.map_err(Into::into)
///     }
/// }
/// ```
///
/// The transport attributes register HTTP routes, error handlers, websocket endpoints and
/// schedules the same way:
///
/// ```text
/// use kumi::http::{ErrorInfo, HttpError, Json, Path};
/// use kumi::websocket::{Session, SessionSender};
///
/// #[kumi::service]
/// impl Shop {
///     #[http(GET, "/orders/{id}")]
///     async fn get_order(&self, Path(id): Path<u64>) -> Result<Json<Order>, HttpError> { /* ... */ }
///
///     #[http_error(404)]
///     async fn not_found(&self, info: ErrorInfo) -> Json<serde_json::Value> { /* ... */ }
///
///     #[websocket("/ws/{room}", ping_interval = "20s", on_connect = joined)]
///     async fn chat(self: Arc<Self>, session: Session) { /* ... */ }
///
///     async fn joined(&self, sender: SessionSender) -> Result<(), String> { /* ... */ }
///
///     #[schedule(interval = "10s", immediately)]
///     #[schedule(cron = "0 30 8 * * MON-FRI", tz = "Europe/Stockholm", name = "morning")]
///     async fn tick(&self, ctx: Context) -> Result<(), HandlerError> { /* ... */ }
/// }
/// ```
///
/// # `#[service(..)]` options
///
/// | option | default |
/// |---|---|
/// | `name = "orders"` | the type name in kebab case (`OrderService` → `"order-service"`) |
/// | `version = "1.2.0"` | the trait default, `"0.0.0"` |
///
/// # Bus routes: `#[subscribe(topic, ..)]` and `#[request(topic, ..)]`
///
/// The first argument is the topic pattern (a string literal or any `&str` expression). The
/// method must be an `async fn`; it is a handler like any other: every argument is an extractor
/// (`Data<T>`, `Context`, `Topic`, `Arc<Self>`...), argument patterns such as `Data(order)` are
/// fine. The receiver may be `&self` or `self: Arc<Self>` (both get the service from the route);
/// methods without a receiver work too. A method may carry several route attributes.
///
/// | option | `RouteBuilder` call |
/// |---|---|
/// | `name = "created"` | `.name(..)`; the default is the method name |
/// | `group = "billing"` | `.group(..)`; not with `broadcast` |
/// | `broadcast` | `.broadcast()` |
/// | `concurrency = 8` | `.concurrency(8)`; at least 1 |
/// | `retries = 3` | `.retries(3)` |
/// | `envelope = kumi::envelope::Raw` | `.envelope(..)`, any envelope expression |
/// | `dead_letter = "orders.failed"` | `.dead_letter_topic(..)` |
/// | `timeout = "5s"` | `.timeout(..)`: `ms`, `s`, `m`, `h` or sums (`"1m30s"`), checked at compile time; a non-literal expression is passed as a `Duration` |
/// | `option = expr` | `.option(expr)`: a transport option, e.g. `option = kumi::nats::JetStream::durable()`; may be repeated |
/// | `layer = expr` | `.layer(expr)`: a tower layer around this route; may be repeated |
///
/// # Anything else: a `#[routes]` method
///
/// One plain (not async) method `fn name(&self, router: &mut kumi::Router<Self>)` marked
/// `#[routes]` is called after the attributed routes are registered. It can do whatever a
/// hand-written `Service::routes` does: service-wide layers (`router.layer(..)`) and options
/// (`router.option(..)`), routes built from configuration at runtime.
///
/// ```text
/// #[routes]
/// fn service_wide(&self, router: &mut kumi::Router<Self>) {
///     router.layer(ConcurrencyLimitLayer::new(64));
///     router.option(kumi::nats::Endpoint::new().queue_group("workers"));
/// }
/// ```
///
/// # HTTP routes: `#[http(METHOD, "/path", ..)]`
///
/// The method is one of `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`, `OPTIONS`; the path is a
/// string literal starting with `/` in axum 0.8 syntax (`/orders/{id}`, `/files/{*rest}`; the
/// axum 0.7 forms `:id` and `*rest` are compile errors with the corrected path). The method is
/// an axum handler on the service's state: any axum extractor, `kumi::http::BusContext`, and
/// the service (`&self`, `self: Arc<Self>`, or an `Arc<Self>` argument). It expands to
///
/// ```text
/// <kumi::Router<Self> as kumi::http::HttpRouterExt<Self>>::http(
///     router, kumi::http::Method::GET, "/orders/{id}", |this: Arc<Self>, a1: Path<u64>| async move {
///         this.get_order(a1).await
///     },
/// ).name("get_order");
/// ```
///
/// | option | `HttpRoute` call |
/// |---|---|
/// | `name = "orders"` | `.name(..)`; the default is the method name |
/// | `layer = expr` | `.layer(expr)`: a tower layer around this route only |
///
/// # HTTP error handlers: `#[http_error(404)]`
///
/// The status is an integer literal from 400 to 599. The method produces the response for that
/// status on the whole HTTP server (see `kumi::http::errors`), with the same arguments as an
/// HTTP route plus `kumi::http::ErrorInfo`: `HttpRouterExt::http_error(router, STATUS, ..)`. It
/// has no options.
///
/// # Websocket endpoints: `#[websocket("/path", ..)]`
///
/// The path is as for `#[http]`. The method runs once per connection and takes the service and
/// the session: `async fn chat(&self, session: kumi::websocket::Session)` (or
/// `self: Arc<Self>`, or `this: Arc<Self>` without a receiver); it returns `()` or
/// `Result<(), E: Display>`. It expands to
/// `<kumi::Router<Self> as kumi::websocket::WebSocketRouterExt<Self>>::websocket(router, "/path", ..)`
/// and:
///
/// | option | `WebSocketRoute` call |
/// |---|---|
/// | `name = "chat"` | `.name(..)`; the default is the method name |
/// | `max_message_size = 65536` | `.max_message_size(..)` in bytes; at least 1 |
/// | `ping_interval = "20s"` | `.ping_interval(..)` |
/// | `pong_timeout = "20s"` | `.pong_timeout(..)` |
/// | `close_timeout = "2s"` | `.close_timeout(..)` |
/// | `send_queue = 256` | `.send_queue(..)`; at least 1 |
/// | `recv_queue = 32` | `.recv_queue(..)`; at least 1 |
/// | `on_connect = joined` | `.on_connect(..)` calling the service's method `joined(sender: kumi::websocket::SessionSender)`, which returns `()` or `Result<(), E: Display>` (an `Err` refuses the session) |
/// | `on_close = left` | `.on_close(..)` calling the service's method `left(closed: kumi::websocket::SessionClosed)`, which returns `()` |
/// | `layer = expr` | `.layer(expr)` around the upgrade request |
///
/// Durations are checked at compile time as for `timeout`. A hook method may take `&self`,
/// `self: Arc<Self>`, or (without a receiver) `this: Arc<Self>` first; any other expression
/// (`on_connect = Self::joined`, a closure) is passed to the builder as it is.
///
/// # Schedules: `#[schedule(..)]`
///
/// Exactly one trigger per attribute; the method is a scheduled handler (arguments:
/// `Arc<Self>`/`&self`, `kumi::Context`, `kumi::Client`, `kumi::schedule::ScheduledTime`,
/// `kumi::schedule::Tick`). It expands to
/// `<kumi::Router<Self> as kumi::schedule::ScheduleExt<Self>>::schedule(router, TRIGGER, ..)`
/// with:
///
/// | trigger | `TRIGGER` |
/// |---|---|
/// | `interval = "10s"` | `Trigger::parse_interval("10s")`; the duration grammar of `timeout`, optionally after `every `, checked at compile time |
/// | `interval = 10` | `Duration::from_secs(10)`; at least 1 |
/// | `interval = expr` | `expr` as it is (a `Duration`, say) |
/// | `cron = "*/5 * * * * *"` | `Trigger::cron(..)`: 5 fields, 6 with seconds first, 7 with a year, or an `@nickname` |
/// | `daily = "08:30"` | `Trigger::daily_at(..)`: `HH:MM` or `HH:MM:SS` |
/// | `at = "2026-12-01T08:00:00Z"` | `Trigger::timestamp(..)`: a one-shot time, with or without an offset |
/// | `"hourly"` (first, bare) | passed as it is: any form of `Trigger::parse` (`"weekdays"`, `"@daily"`, `"*/5 * * * *"`, `"10s"`), or any trigger expression |
///
/// | option | `ScheduleBuilder` call |
/// |---|---|
/// | `name = "tick"` | `.name(..)`; the default is the method name |
/// | `tz = "Europe/Stockholm"` or `timezone = ..` | `.timezone(..)`; the default is UTC |
/// | `immediately` | `.immediately()`: also run once at start |
/// | `concurrency = 2` | `.concurrency(2)`; at least 1 (default 1: a due run is skipped while the previous one goes on) |
/// | `timeout = "30s"` | `.timeout(..)` |
///
/// Schedule names are unique per service: a method with several `#[schedule]` attributes names
/// all but one of them (`name = ".."`); a clash of names known at compile time is a compile
/// error.
///
/// # Combining attributes
///
/// A method may carry any number of route attributes of any kinds (each registers its own
/// route with the same handler, in the order of the attributes), as long as its arguments are
/// extractors for each of them: `async fn check(self: Arc<Self>)` can be a bus route, an HTTP
/// route and a schedule at once. Route attributes and lifecycle hooks do not mix. The generated
/// code names `kumi::http`, `kumi::websocket` and `kumi::schedule`, so the `http`, `websocket`
/// and `schedule` features of `kumi` (all on by default) must be on for the attributes that use
/// them; the service needs the matching transport at run time (`kumi::runner()` adds them).
///
/// # Lifecycle hooks
///
/// `#[starting]`, `#[started]`, `#[stopping]` and `#[stopped]` mark at most one `async fn` each,
/// taking `&self` (or no receiver). The first three may take `client: &kumi::Client`; `stopped`
/// takes nothing else. A hook returns `()` or `Result<(), E>` with `E: Into<kumi::BoxError>`; an
/// error from `starting` or `started` aborts startup.
///
/// # Errors
///
/// Misuse is a compile error pointing at the offending tokens: an unknown option (the message
/// lists the known ones), a missing topic, `group` with `broadcast`, a bad duration, a non-`async`
/// or `&mut self` handler, a duplicate hook, a kumi attribute on something other than a method,
/// or `#[service]` on anything but an inherent `impl` block; and for the transport attributes an
/// unknown HTTP method, a path not starting with `/` or in axum 0.7 syntax, an error status
/// outside 400–599, a websocket handler not taking the service and the session, a missing or
/// second trigger, a malformed interval, cron expression, time of day or timestamp, and two
/// schedules of a service with the same name.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::expand(args.into(), input.into()).into()
}
