//! # kumi-macros
//!
//! The `#[kumi::service]` attribute macro. It is sugar only: it turns an inherent `impl` block
//! whose methods carry `#[subscribe(..)]`, `#[request(..)]` and lifecycle attributes into the
//! [`kumi::Service`] impl you could write by hand, and leaves the methods as they are.
//!
//! Use it through the `kumi` crate (`kumi::service`, also in `kumi::prelude`); the generated code
//! names `::kumi`, so this crate is not meant to be used on its own.
//!
//! [`kumi::Service`]: https://docs.rs/kumi/latest/kumi/trait.Service.html

mod expand;
mod options;

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
/// # `#[service(..)]` options
///
/// | option | default |
/// |---|---|
/// | `name = "orders"` | the type name in kebab case (`OrderService` → `"order-service"`) |
/// | `version = "1.2.0"` | the trait default, `"0.0.0"` |
///
/// # Routes: `#[subscribe(topic, ..)]` and `#[request(topic, ..)]`
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
/// or `#[service]` on anything but an inherent `impl` block.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::expand(args.into(), input.into()).into()
}
