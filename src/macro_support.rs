//! What the code `#[kumi::service]` generates calls: not a public API.
//!
//! The macro knows no transport. A route attribute `#[NAME(args..)]` on a method becomes a call
//! of the router's own method `NAME` (core's `subscribe`, or a transport's extension method such
//! as `http`), and the method's signature is checked by the functions of the module of this
//! one named `NAME`, found with [`__route!`](crate::__route). Each check is a function whose
//! trait bound carries `#[diagnostic::on_unimplemented]`, called with a value spanned at the
//! checked tokens, so that a mistake is reported at the handler's argument (or return type) in
//! the transport's own words instead of as an unsatisfied bound of the registration call.
//!
//! A module for an attribute has:
//!
//! | item | called with | checks |
//! |---|---|---|
//! | `scope` | glob-imported around the route statement | names usable in the attribute's arguments (`GET` for `#[http]`) |
//! | `argument(router, PhantomData::<T>)` | each argument type but the last (not the receiver) | an extractor of the transport |
//! | `last_argument(router, PhantomData::<T>)` | the last argument type | idem; HTTP: the only one that may read the body |
//! | `output(router, PhantomData::<R>)` | the return type (`()` without one) | a value the transport can use |
//! | `signature(router, PhantomData::<(A, ..)>)` | the handler closure's parameter types (`Arc<Self>` first for a receiver) | the shape as a whole |
//! | `future(Self::method(value(), ..))` | the method's future (never run) | `Send` |
//!
//! A new transport adds its module here and its arm to [`__route!`](crate::__route) (usually
//! starting from `pub use super::any::*;` and replacing what it checks); the macro does not
//! change. An attribute without a module (a typo, a router extension from another crate) gets
//! [`any`]: the call of the router method is all there is, and rustc's "no method named .."
//! error (with its "a method with a similar name exists" hint) reports a typo.

use std::future::Future;

pub use std::marker::PhantomData;

use kumi_core::Router;

/// Finds the checks for route attribute `NAME`: `__route!(NAME)` expands to
/// `use $crate::__macro::NAME as __kumi_route;`, or to the checks of [`any`] for a name without
/// a module of its own.
#[doc(hidden)]
#[macro_export]
macro_rules! __route {
    (subscribe) => {
        use $crate::__macro::subscribe as __kumi_route;
    };
    (request) => {
        use $crate::__macro::request as __kumi_route;
    };
    (http) => {
        use $crate::__macro::http as __kumi_route;
    };
    (http_error) => {
        use $crate::__macro::http_error as __kumi_route;
    };
    (websocket) => {
        use $crate::__macro::websocket as __kumi_route;
    };
    (schedule) => {
        use $crate::__macro::schedule as __kumi_route;
    };
    ($other:ident) => {
        use $crate::__macro::any as __kumi_route;
    };
}

/// The router extension traits of the enabled transports, imported without their names, so that
/// a glob import of this module gives `Router` their methods and shadows nothing.
pub mod router_ext {
    #[cfg(feature = "http")]
    pub use kumi_http::HttpRouterExt as _;
    #[cfg(feature = "schedule")]
    pub use kumi_schedule::ScheduleExt as _;
    #[cfg(feature = "websocket")]
    pub use kumi_websocket::WebSocketRouterExt as _;
}

/// A value of any type, for type-checking a call that never runs.
pub fn value<T>() -> T {
    unreachable!("only type-checked, never called")
}

/// The checks every attribute has: none, but a `Send` future.
pub mod any {
    use super::*;

    /// Names for the attribute's arguments: none.
    pub mod scope {}

    /// Any argument type.
    pub fn argument<S, T>(_: &Router<S>, _: PhantomData<T>) {}

    /// Any argument type.
    pub fn last_argument<S, T>(_: &Router<S>, _: PhantomData<T>) {}

    /// Any return type.
    pub fn output<S, R>(_: &Router<S>, _: PhantomData<R>) {}

    /// Any signature.
    pub fn signature<S, A>(_: &Router<S>, _: PhantomData<A>) {}

    /// A handler's future runs on the runtime's threads.
    pub fn future<F: Future + Send>(_: F) {}
}

/// `#[subscribe]` and `#[request]`: message extractors, and a return value that is an outcome.
pub mod bus {
    use super::*;
    use kumi_core::extract::FromMessage;
    use kumi_core::IntoOutcome;

    pub use super::any::{future, scope, signature};

    /// A bus handler argument.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a message extractor, so it cannot be an argument of a bus handler",
        label = "not an extractor; for the message's payload, write `Data<{Self}>`",
        note = "the arguments of a `#[subscribe]` or `#[request]` handler are extractors: `Data<T>` (the payload, deserialized with serde), `Context`, `Topic`, `Headers`, `MessageId`, `CorrelationId`, `Attempt`, `RawBody`, `bytes::Bytes`, `Arc<Self>`, an `Option` of one, or a type of yours implementing `FromMessage<S>`"
    )]
    pub trait MessageArgument<S> {}

    impl<S, T: FromMessage<S>> MessageArgument<S> for T {}

    /// A bus handler's return type.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be returned by a bus handler",
        label = "return `()`, `Result<T, E>` with `T: Serialize` and `E: Into<HandlerError>`, or an `Outcome`",
        note = "a request handler's `Ok` value is the reply; an event handler's is dropped"
    )]
    pub trait MessageOutput {}

    impl<R: IntoOutcome> MessageOutput for R {}

    /// A bus handler argument.
    pub fn argument<S, T: MessageArgument<S>>(_: &Router<S>, _: PhantomData<T>) {}

    /// A bus handler argument.
    pub fn last_argument<S, T: MessageArgument<S>>(_: &Router<S>, _: PhantomData<T>) {}

    /// A bus handler's return type.
    pub fn output<S, R: MessageOutput>(_: &Router<S>, _: PhantomData<R>) {}
}

/// `#[subscribe("topic", ..)]`: `Router::subscribe`.
pub mod subscribe {
    pub use super::bus::*;
}

/// `#[request("topic", ..)]`: `Router::request`.
pub mod request {
    pub use super::bus::*;
}

/// `#[http(GET, "/path", ..)]`: `HttpRouterExt::http`, with axum's checks (what
/// `#[axum::debug_handler]` reports).
#[cfg(feature = "http")]
pub mod http {
    use super::*;
    use kumi_http::axum::extract::{FromRequest, FromRequestParts};
    use kumi_http::axum::response::IntoResponse;
    use kumi_http::ServiceState;

    pub use super::any::{future, signature};

    /// The HTTP methods, as `#[http(GET, ..)]` writes them.
    pub mod scope {
        use kumi_http::Method;

        /// `GET`.
        pub const GET: Method = Method::GET;
        /// `POST`.
        pub const POST: Method = Method::POST;
        /// `PUT`.
        pub const PUT: Method = Method::PUT;
        /// `PATCH`.
        pub const PATCH: Method = Method::PATCH;
        /// `DELETE`.
        pub const DELETE: Method = Method::DELETE;
        /// `HEAD`.
        pub const HEAD: Method = Method::HEAD;
        /// `OPTIONS`.
        pub const OPTIONS: Method = Method::OPTIONS;
    }

    /// An HTTP handler argument: an axum extractor on the service's state (`M` is axum's marker
    /// of whether it reads the request body).
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not an axum extractor, so it cannot be an argument of an HTTP handler",
        label = "not an extractor",
        note = "the arguments of an HTTP handler are axum extractors: `Path<T>`, `Query<T>`, `HeaderMap`, `Method`, `Uri`, `kumi::http::BusContext`, `Arc<Self>`..., and last, at most one that reads the request body: `Json<T>`, `String`, `Bytes`, `Form<T>`, `Request`"
    )]
    pub trait HttpArgument<S, M> {}

    impl<S, M, T: FromRequest<ServiceState<S>, M>> HttpArgument<S, M> for T {}

    /// A type of ours that reads no body: `Probe: FromRequest<_, M>` holds exactly when `M` is
    /// axum's marker for extractors that read no body (which axum does not name).
    pub struct Probe;

    impl<S: Send + Sync> FromRequestParts<S> for Probe {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            _: &mut kumi_http::axum::http::request::Parts,
            _: &S,
        ) -> Result<Self, Self::Rejection> {
            Ok(Probe)
        }
    }

    /// `M`, the axum marker of extractor `T`, is the one of extractors that read no body, so `T`
    /// may come before the last argument. Implemented on the marker so that, while the marker is
    /// unknown (`T` is no extractor at all), the check waits instead of failing twice.
    #[diagnostic::on_unimplemented(
        message = "`{T}` reads the request body, so it must be the last argument of an HTTP handler",
        label = "reads the request body",
        note = "the body can be read once: make this the last argument (and only one argument may read the body)"
    )]
    pub trait BeforeLast<T, S> {}

    #[diagnostic::do_not_recommend]
    impl<T, S, M> BeforeLast<T, S> for M where Probe: FromRequest<ServiceState<S>, M> {}

    /// An HTTP handler's return type.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not an HTTP response, so an HTTP handler cannot return it",
        label = "does not implement `IntoResponse`",
        note = "an HTTP handler returns something axum can turn into a response (`IntoResponse`): `Json<T>`, `String`, `StatusCode`, `(StatusCode, Json<T>)`, `Result<T, kumi::http::HttpError>`..."
    )]
    pub trait HttpOutput {}

    impl<R: IntoResponse> HttpOutput for R {}

    /// An argument before the last: an extractor that reads no body.
    pub fn argument<S, T, M>(_: &Router<S>, _: PhantomData<T>)
    where
        T: HttpArgument<S, M>,
        M: BeforeLast<T, S>,
    {
    }

    /// The last argument: any extractor.
    pub fn last_argument<S, T, M>(_: &Router<S>, _: PhantomData<T>)
    where
        T: HttpArgument<S, M>,
    {
    }

    /// An HTTP handler's return type.
    pub fn output<S, R: HttpOutput>(_: &Router<S>, _: PhantomData<R>) {}
}

/// `#[http_error(404)]`: `HttpRouterExt::http_error`, whose handler is an HTTP handler.
#[cfg(feature = "http")]
pub mod http_error {
    pub use super::http::*;
}

/// `#[websocket("/path", ..)]`: `WebSocketRouterExt::websocket`.
#[cfg(feature = "websocket")]
pub mod websocket {
    use super::*;
    use kumi_websocket::{Session, SessionOutcome};

    pub use super::any::{argument, future, last_argument, scope};

    /// A websocket handler's parameters: the service and the session.
    #[diagnostic::on_unimplemented(
        message = "a websocket handler takes the service and the session",
        label = "write `(&self, session: kumi::websocket::Session)` (or `self: Arc<Self>`, or `this: Arc<Self>` without a receiver)",
        note = "the handler runs once per connection; the session receives and sends its frames"
    )]
    pub trait WebSocketSignature<S> {}

    impl<S> WebSocketSignature<S> for (std::sync::Arc<S>, Session) {}

    /// A websocket handler's return type.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be returned by a websocket handler",
        label = "return `()` or `Result<(), E>` with `E: Display` (an `Err` closes the session with 1011)"
    )]
    pub trait WebSocketOutput {}

    impl<R: SessionOutcome> WebSocketOutput for R {}

    /// The handler's parameters.
    pub fn signature<S, A: WebSocketSignature<S>>(_: &Router<S>, _: PhantomData<A>) {}

    /// A websocket handler's return type.
    pub fn output<S, R: WebSocketOutput>(_: &Router<S>, _: PhantomData<R>) {}
}

/// `#[schedule("trigger", ..)]`: `ScheduleExt::schedule`.
#[cfg(feature = "schedule")]
pub mod schedule {
    use super::*;
    use kumi_core::IntoOutcome;
    use kumi_schedule::FromTick;

    pub use super::any::{future, scope, signature};

    /// A scheduled handler argument.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be an argument of a scheduled handler",
        label = "not a tick extractor",
        note = "a scheduled run has no message: its arguments are `Arc<Self>`, `Context`, `Client`, `kumi::schedule::ScheduledTime`, `kumi::schedule::Tick`, an `Option` of one, or a type of yours implementing `FromTick<S>`"
    )]
    pub trait TickArgument<S> {}

    impl<S, T: FromTick<S>> TickArgument<S> for T {}

    /// A scheduled handler's return type.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be returned by a scheduled handler",
        label = "return `()` or `Result<T, E>` with `E: Into<HandlerError>`"
    )]
    pub trait TickOutput {}

    impl<R: IntoOutcome> TickOutput for R {}

    /// A scheduled handler argument.
    pub fn argument<S, T: TickArgument<S>>(_: &Router<S>, _: PhantomData<T>) {}

    /// A scheduled handler argument.
    pub fn last_argument<S, T: TickArgument<S>>(_: &Router<S>, _: PhantomData<T>) {}

    /// A scheduled handler's return type.
    pub fn output<S, R: TickOutput>(_: &Router<S>, _: PhantomData<R>) {}
}

/// Without the `http` feature: no checks (the missing router method is the error).
#[cfg(not(feature = "http"))]
pub mod http {
    pub use super::any::*;
}

/// Without the `http` feature: no checks (the missing router method is the error).
#[cfg(not(feature = "http"))]
pub mod http_error {
    pub use super::any::*;
}

/// Without the `websocket` feature: no checks (the missing router method is the error).
#[cfg(not(feature = "websocket"))]
pub mod websocket {
    pub use super::any::*;
}

/// Without the `schedule` feature: no checks (the missing router method is the error).
#[cfg(not(feature = "schedule"))]
pub mod schedule {
    pub use super::any::*;
}
