//! # kumi-macros
//!
//! The `#[kumi::service]` attribute macro. It is sugar only: it turns an inherent `impl` block
//! whose methods carry route attributes (`#[subscribe(..)]`, `#[http(..)]`, `#[schedule(..)]`,
//! ...) and lifecycle attributes into the [`kumi::Service`] impl you could write by hand, and
//! leaves the methods as they are.
//!
//! It knows no transport: a route attribute `#[NAME(..)]` becomes a call of the router method
//! `NAME` and of the builder methods its options name, so the transport crate that defines them
//! checks the arguments, once, and a new transport needs no change here.
//!
//! Use it through the `kumi` crate (`kumi::service`, also in `kumi::prelude`); the generated code
//! names `::kumi`, so this crate is not meant to be used on its own.
//!
//! [`kumi::Service`]: https://docs.rs/kumi/latest/kumi/trait.Service.html

mod expand;
mod route;
mod service;

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
///         use kumi::__macro::router_ext::*; // the router extension traits of kumi::prelude
///         router
///             .subscribe("orders.created", |this: Arc<Self>, a1: Data<Order>, a2: Context| async move {
///                 this.on_created(a1, a2).await
///             })
///             .name("on_created")
///             .retries(3)
///             .concurrency(8)
///             .timeout("5s");
///         router.subscribe("audit.>", /* ... */).name("audit").broadcast();
///         router.request("orders.get", /* ... */).name("get");
///     }
///     async fn starting(&self, client: &kumi::Client) -> Result<(), kumi::BoxError> {
///         self.connect(client).await.map_err(Into::into)
///     }
/// }
/// ```
///
/// # Route attributes
///
/// `#[NAME(positional.., key = value, flag, ..)]` on a method registers it with the router method
/// `NAME`:
///
/// ```text
/// router.NAME(positional.., <closure calling the method>).name("method").key(value).flag();
/// ```
///
/// - **Positional arguments** come first and are passed as written, before the handler: the
///   topic of `#[subscribe("orders.created")]`, the method and path of `#[http(GET, "/x")]`, the
///   trigger of `#[schedule("hourly")]`. Any expression works (a constant, `self.topic()`).
/// - **`key = value`** calls the route builder method `key` with `value`, in the order written
///   (so an option may be repeated: `layer = a, layer = b`). A tuple is the call's arguments:
///   `backoff = ("1s", "30s")` is `.backoff("1s", "30s")`. A bare name of a method of the same
///   impl block is that method: an `async fn` as a closure taking the service first, like a
///   handler (`on_connect = joined`), a plain `fn` as `Self::name`.
/// - **A bare lower-case name** (`broadcast`, `immediately`) calls that builder method without
///   arguments. Upper-case and camel-case names (`GET`, `TOPIC`, `Raw`) are values; to pass a
///   value named in lower case, write it in parentheses: `(topic)`.
/// - The route is named after the method (`.name("method")`) unless the attribute says
///   `name = ..`; every kumi route builder has `name`.
///
/// So the options of an attribute are exactly the builder methods of its transport, each with
/// its own documentation and checks: a misspelled option is rustc's "no method named
/// `concurency` found ... a method with a similar name exists: `concurrency`", pointing at the
/// option; a value of the wrong type is a type error at the value; a value that can only be
/// checked at run time (a cron expression, a duration string such as `"5s"`, a status number)
/// fails the service's start with an error naming the service and the route. The kumi builders:
///
/// | attribute | router method | builder (options) |
/// |---|---|---|
/// | `#[subscribe(topic, ..)]`, `#[request(topic, ..)]` | `Router::subscribe`, `Router::request` | `RouteBuilder`: `group`, `broadcast`, `concurrency`, `retries`, `backoff = ("1s", "30s")`, `envelope`, `dead_letter` / `dead_letter_topic`, `timeout = "5s"`, `no_timeout`, `option`, `layer`, `retry_policy` |
/// | `#[http(GET, "/orders/{id}", ..)]` | `HttpRouterExt::http` (the method is `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS`) | `HttpRoute`: `layer`, `protocol` |
/// | `#[http_error(404)]` | `HttpRouterExt::http_error` (400 to 599) | `HttpErrorRoute` |
/// | `#[websocket("/ws/{room}", ..)]` | `WebSocketRouterExt::websocket` | `WebSocketRoute`: `max_message_size`, `ping_interval = "20s"`, `pong_timeout`, `close_timeout`, `send_queue`, `recv_queue`, `on_connect = method`, `on_close = method`, `layer` |
/// | `#[schedule("*/5 * * * *", ..)]` | `ScheduleExt::schedule` (any trigger: `"10s"`, `"hourly"`, `"08:30"`, a cron expression, a timestamp, `Every::seconds(10)`, a `Duration`) | `ScheduleBuilder`: `timezone` / `tz`, `immediately`, `concurrency`, `timeout = "30s"` |
///
/// A method may carry several route attributes of any kinds (each registers its own route with
/// the same handler, in the order of the attributes), as long as its arguments are extractors
/// for each of them. The extension traits come from `kumi::prelude`, so the `http`, `websocket`
/// and `schedule` features of `kumi` (on by default) must be on for their attributes; the
/// service needs the matching transport at run time (`kumi::runner()` adds them).
///
/// **Which attributes are route attributes.** Every attribute of a method named by a single
/// identifier, except the lifecycle attributes below and Rust's built-in attributes (`doc`,
/// `cfg`, `cfg_attr`, `allow`, `warn`, `deny`, `forbid`, `expect`, `deprecated`, `must_use`,
/// `inline`, `cold`, `track_caller`, `target_feature`, ...), which stay on the method. An
/// attribute written as a path (`#[tracing::instrument]`, `#[rustfmt::skip]`) is left alone too:
/// write other crates' attribute macros that way. A route method's `#[cfg(..)]` also applies to
/// its registration.
///
/// **Handlers.** The method must be an `async fn` without type parameters. The receiver may be
/// `&self` or `self: Arc<Self>` (the handler gets the service as an `Arc<Self>` extractor);
/// methods without a receiver work too. Every other argument is an extractor of the transport;
/// argument patterns such as `Data(order)` are fine.
///
/// **Checks.** Before the registration, the expansion asks `kumi::__macro::NAME` (the facade's
/// checks for attribute `NAME`, if it has any) about each argument, the return type, the
/// parameters as a whole and the future, each call spanned at what it checks. So a bus handler
/// argument `g: Greeting` is reported at `Greeting` as "not a message extractor ... write
/// `Data<Greeting>`", an HTTP handler gets what `#[axum::debug_handler]` would say (an argument
/// that is no extractor, a body extractor before the last argument, a return type that is not
/// `IntoResponse`, a future that is not `Send`), and a websocket handler that does not take the
/// session is told so.
///
/// # `#[service(..)]` options
///
/// | option | default |
/// |---|---|
/// | `name = "orders"` | the type name in kebab case (`OrderService` → `"order-service"`) |
/// | `version = "1.2.0"` | the trait default, `"0.0.0"` |
///
/// # Anything else: a `#[routes]` method
///
/// One plain (not async) method `fn name(&self, router: &mut kumi::Router<Self>)` marked
/// `#[routes]` is called after the attributed routes are registered. It can do whatever a
/// hand-written `Service::routes` does: service-wide layers (`router.layer(..)`) and options
/// (`router.option(..)`), routes built from configuration at run time.
///
/// ```text
/// #[routes]
/// fn service_wide(&self, router: &mut kumi::Router<Self>) {
///     router.layer(ConcurrencyLimitLayer::new(64));
///     router.option(kumi::nats::Endpoint::new().queue_group("workers"));
/// }
/// ```
///
/// # Transport routes
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
///     #[schedule("10s", immediately)]
///     #[schedule("0 30 8 * * MON-FRI", tz = "Europe/Stockholm", name = "morning")]
///     async fn tick(&self, ctx: Context) -> Result<(), HandlerError> { /* ... */ }
/// }
/// ```
///
/// A schedule's route name is unique per service: a method with several `#[schedule]`
/// attributes names all but one of them (`name = ".."`), or the service fails to start.
///
/// # Lifecycle hooks
///
/// `#[starting]`, `#[started]`, `#[stopping]` and `#[stopped]` mark at most one `async fn` each,
/// taking `&self` (or no receiver). The first three may take `client: &kumi::Client`; `stopped`
/// takes nothing else. A hook returns `()` or `Result<(), E>` with `E: Into<kumi::BoxError>`; an
/// error from `starting` or `started` aborts startup.
///
/// # Errors this macro reports
///
/// Its own misuse, pointing at the offending tokens: a non-`async`, generic, `&mut self` or
/// `self` handler, an `impl Trait` argument, a positional argument after an option, a route
/// attribute with `=`, a method that is both a route and a hook, a duplicate hook or `#[routes]`
/// method, a kumi attribute on something other than a method, an unknown `#[service]` option,
/// or `#[service]` on anything but an inherent `impl` block. Everything about a route's
/// arguments and options is the transport's to say, as above.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::expand(args.into(), input.into()).into()
}
