//! Parsing of the transport attributes: `#[http(..)]`, `#[http_error(..)]`, `#[websocket(..)]`
//! and `#[schedule(..)]`, and the builder calls they turn into. Like [`crate::options`], this
//! works on `proc_macro2` tokens so it can be unit-tested.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, Lit, LitInt, LitStr, Meta, Token};

use crate::options::{
    duration_option, integer_option, list, literal, parse_duration, string_option, DurationOpt,
};

/// The HTTP methods `#[http(METHOD, ..)]` accepts.
pub(crate) const HTTP_METHODS: &[&str] =
    &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The options of `#[http(..)]`, after the method and the path.
pub(crate) const HTTP_OPTIONS: &[&str] = &["name", "layer"];

/// The options of `#[websocket(..)]`, after the path.
pub(crate) const WEBSOCKET_OPTIONS: &[&str] = &[
    "name",
    "max_message_size",
    "ping_interval",
    "pong_timeout",
    "close_timeout",
    "send_queue",
    "recv_queue",
    "on_connect",
    "on_close",
    "layer",
];

/// The trigger options of `#[schedule(..)]`; a schedule has exactly one trigger.
pub(crate) const SCHEDULE_TRIGGERS: &[&str] = &["interval", "cron", "daily", "at"];

/// Every option of `#[schedule(..)]`.
pub(crate) const SCHEDULE_OPTIONS: &[&str] = &[
    "interval",
    "cron",
    "daily",
    "at",
    "tz",
    "timezone",
    "immediately",
    "concurrency",
    "timeout",
    "name",
];

/// The cron nicknames `kumi::schedule` knows.
const CRON_NICKNAMES: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// One `key` or `key = value` of an attribute's option list.
struct Opt {
    key: Ident,
    /// The key without `r#`, and with aliases resolved (`tz` -> `timezone`).
    name: String,
    value: Option<Expr>,
}

/// What an attribute's option list accepts.
struct OptionSpec {
    /// The attribute, for messages: `http`.
    attr: &'static str,
    known: &'static [&'static str],
    /// Options that take no value (`immediately`).
    flags: &'static [&'static str],
    /// `(alias, option)` pairs: both spellings are one option.
    aliases: &'static [(&'static str, &'static str)],
}

impl OptionSpec {
    fn unknown(&self, key: &Ident, name: &str) -> syn::Error {
        syn::Error::new(
            key.span(),
            format!(
                "unknown `#[{}]` option `{name}`; the known options are {}",
                self.attr,
                list(self.known)
            ),
        )
    }

    fn canonical<'a>(&self, name: &'a str) -> &'a str {
        self.aliases
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |(_, option)| option)
    }

    /// Whether `input` starts with an option (`key =`, or a known flag) rather than a positional
    /// argument such as a path expression.
    fn starts_option(&self, input: ParseStream<'_>) -> bool {
        let fork = input.fork();
        let Ok(ident) = fork.call(Ident::parse_any) else {
            return false;
        };
        let name = ident.unraw().to_string();
        (fork.peek(Token![=]) && !fork.peek(Token![==]))
            || (self.known.contains(&name.as_str()) && (fork.is_empty() || fork.peek(Token![,])))
    }

    /// Parses `, key = value, flag, ...` up to the end of `input`. With `leading_comma`, a comma
    /// separates the options from what came before them.
    fn parse(&self, input: ParseStream<'_>, leading_comma: bool) -> syn::Result<Vec<Opt>> {
        let mut opts: Vec<Opt> = Vec::new();
        let mut need_comma = leading_comma;
        while !input.is_empty() {
            if need_comma {
                input.parse::<Token![,]>()?;
                if input.is_empty() {
                    break;
                }
            }
            need_comma = true;
            if !input.peek(Ident::peek_any) {
                return Err(input.error(format!(
                    "expected an option of `#[{}]`: {}",
                    self.attr,
                    list(self.known)
                )));
            }
            let key = input.call(Ident::parse_any)?;
            let written = key.unraw().to_string();
            if !self.known.contains(&written.as_str()) {
                return Err(self.unknown(&key, &written));
            }
            let name = self.canonical(&written).to_owned();
            if let Some(first) = opts.iter().find(|o| o.name == name) {
                let first = first.key.unraw().to_string();
                let message = if first == written {
                    format!("duplicate option `{written}`")
                } else {
                    format!("`{first}` and `{written}` are the same option; give it once")
                };
                return Err(syn::Error::new(key.span(), message));
            }
            let value = if self.flags.contains(&name.as_str()) {
                if input.peek(Token![=]) {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("`{written}` takes no value: write `{written}`"),
                    ));
                }
                None
            } else {
                if !input.peek(Token![=]) {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("`{written}` needs a value: `{written} = ...`"),
                    ));
                }
                input.parse::<Token![=]>()?;
                Some(input.parse::<Expr>()?)
            };
            opts.push(Opt { key, name, value });
        }
        Ok(opts)
    }
}

impl Opt {
    /// The value of an option that is not a flag.
    fn value(self) -> Expr {
        self.value
            .expect("options other than flags have a value (checked when parsing)")
    }
}

/// The arguments of an attribute given as a list, or `missing` for `#[attr]` / `#[attr = ..]` /
/// `#[attr()]`.
fn parse_list<T: Parse>(
    attr: &Attribute,
    missing: impl FnOnce(Span) -> syn::Error,
) -> syn::Result<T> {
    match &attr.meta {
        Meta::List(list) if !list.tokens.is_empty() => list.parse_args(),
        _ => Err(missing(attr.span())),
    }
}

/// Checks an HTTP or websocket path: a string literal, starting with `/`, in axum 0.8 syntax.
fn path_literal(expr: &Expr, example: &str) -> syn::Result<LitStr> {
    let path = match literal(expr) {
        Some(Lit::Str(s)) => s.clone(),
        _ => {
            return Err(syn::Error::new_spanned(
                expr,
                format!("the path must be a string literal starting with '/', e.g. `{example}`"),
            ))
        }
    };
    let text = path.value();
    if !text.starts_with('/') {
        return Err(syn::Error::new(
            path.span(),
            format!(
                "the path must start with '/': \"/{}\"",
                text.trim_start_matches('/')
            ),
        ));
    }
    if let Some(segment) = text
        .split('/')
        .find(|s| s.starts_with(':') || s.starts_with('*'))
    {
        let what = if segment.starts_with(':') {
            "parameters"
        } else {
            "wildcards"
        };
        let fixed: Vec<String> = text
            .split('/')
            .map(|s| match s.strip_prefix(':') {
                Some(param) => format!("{{{param}}}"),
                None if s.starts_with('*') => format!("{{{s}}}"),
                None => s.to_owned(),
            })
            .collect();
        return Err(syn::Error::new(
            path.span(),
            format!(
                "the path segment `{segment}` uses the axum 0.7 syntax; path {what} are written \
                 `{{name}}` / `{{*rest}}` since axum 0.8: \"{}\"",
                fixed.join("/")
            ),
        ));
    }
    Ok(path)
}

/// A string the route name compares as, for duplicate checks: the literal's text.
fn literal_text(expr: &Expr) -> Option<String> {
    match literal(expr) {
        Some(Lit::Str(s)) => Some(s.value()),
        _ => None,
    }
}

/// `.name(..)` with the given name or the method's.
fn name_call(name: Option<&Expr>, default_name: &LitStr) -> TokenStream {
    match name {
        Some(name) => quote!(.name(#name)),
        None => quote!(.name(#default_name)),
    }
}

// --- #[http] -------------------------------------------------------------------------------

fn missing_method(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "missing method and path: `#[http(GET, \"/orders/{id}\")]`",
    )
}

/// The arguments of `#[http(METHOD, "/path", ..)]`.
#[derive(Debug)]
pub(crate) struct HttpArgs {
    /// The method, upper case, with the span of what was written.
    pub(crate) method: Ident,
    /// The path, in axum 0.8 syntax.
    pub(crate) path: LitStr,
    /// `name = "..."` (default: the method name).
    pub(crate) name: Option<Expr>,
    /// `layer = expr`: a tower layer for this route.
    pub(crate) layer: Option<Expr>,
}

const HTTP_SPEC: OptionSpec = OptionSpec {
    attr: "http",
    known: HTTP_OPTIONS,
    flags: &[],
    aliases: &[],
};

impl Parse for HttpArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(missing_method(input.span()));
        }
        if input.peek(LitStr) {
            return Err(input.error(
                "missing HTTP method: it comes before the path, e.g. `#[http(GET, \"/orders/{id}\")]`",
            ));
        }
        if HTTP_SPEC.starts_option(input) {
            return Err(missing_method(input.span()));
        }
        if !input.peek(Ident::peek_any) {
            return Err(input.error(format!("expected an HTTP method: {}", list(HTTP_METHODS))));
        }
        let written = input.call(Ident::parse_any)?;
        let text = written.unraw().to_string();
        if !HTTP_METHODS.contains(&text.as_str()) {
            let upper = text.to_ascii_uppercase();
            let message = if HTTP_METHODS.contains(&upper.as_str()) {
                format!("write the HTTP method in upper case: `{upper}`")
            } else {
                format!(
                    "unknown HTTP method `{text}`; use one of {}",
                    list(HTTP_METHODS)
                )
            };
            return Err(syn::Error::new(written.span(), message));
        }
        let method = format_ident!("{}", text, span = written.span());
        let missing_path = || {
            syn::Error::new(
                written.span(),
                format!("missing path after `{text}`: `#[http({text}, \"/orders/{{id}}\")]`"),
            )
        };
        if input.is_empty() {
            return Err(missing_path());
        }
        input.parse::<Token![,]>()?;
        if input.is_empty() || HTTP_SPEC.starts_option(input) {
            return Err(missing_path());
        }
        let path: Expr = input.parse()?;
        let path = path_literal(&path, "\"/orders/{id}\"")?;
        let mut args = HttpArgs {
            method,
            path,
            name: None,
            layer: None,
        };
        for opt in HTTP_SPEC.parse(input, true)? {
            match opt.name.as_str() {
                "name" => args.name = Some(string_option("name", opt.value())?),
                "layer" => args.layer = Some(opt.value()),
                other => unreachable!("unhandled #[http] option {other}"),
            }
        }
        Ok(args)
    }
}

impl HttpArgs {
    /// Parses a `#[http(..)]` attribute.
    pub(crate) fn from_attribute(attr: &Attribute) -> syn::Result<Self> {
        parse_list(attr, missing_method)
    }

    /// `<Router<Self> as HttpRouterExt<Self>>::http(router, METHOD, "/path", closure).name(..)..;`
    pub(crate) fn registration(&self, closure: &TokenStream, default_name: &LitStr) -> TokenStream {
        let method = &self.method;
        let path = &self.path;
        let name = name_call(self.name.as_ref(), default_name);
        let layer = self.layer.as_ref().map(|layer| quote!(.layer(#layer)));
        quote! {
            <::kumi::Router<Self> as ::kumi::http::HttpRouterExt<Self>>::http(
                __kumi_router,
                ::kumi::http::Method::#method,
                #path,
                #closure,
            ) #name #layer;
        }
    }
}

// --- #[http_error] -------------------------------------------------------------------------

fn missing_status(span: Span) -> syn::Error {
    syn::Error::new(span, "missing status: `#[http_error(404)]`")
}

/// The argument of `#[http_error(404)]`.
#[derive(Debug)]
pub(crate) struct HttpErrorArgs {
    /// The status, 400 to 599.
    pub(crate) status: LitInt,
}

impl Parse for HttpErrorArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(missing_status(input.span()));
        }
        let value: Expr = input.parse()?;
        let status = match literal(&value) {
            Some(Lit::Int(status)) => status.clone(),
            _ => {
                return Err(syn::Error::new_spanned(
                    &value,
                    "the status must be an integer literal, e.g. `#[http_error(404)]`",
                ))
            }
        };
        let in_range = status
            .base10_parse::<u16>()
            .is_ok_and(|s| (400..=599).contains(&s));
        if !in_range {
            return Err(syn::Error::new(
                status.span(),
                "error handlers are for error statuses: 400 to 599",
            ));
        }
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
        }
        if !input.is_empty() {
            return Err(
                input.error("`#[http_error]` takes only the status, e.g. `#[http_error(404)]`")
            );
        }
        Ok(HttpErrorArgs { status })
    }
}

impl HttpErrorArgs {
    /// Parses a `#[http_error(..)]` attribute.
    pub(crate) fn from_attribute(attr: &Attribute) -> syn::Result<Self> {
        parse_list(attr, missing_status)
    }

    /// `<Router<Self> as HttpRouterExt<Self>>::http_error(router, STATUS, closure);`, the status
    /// built in a constant (checked at expansion time, so it cannot fail).
    pub(crate) fn registration(&self, closure: &TokenStream) -> TokenStream {
        let status = self
            .status
            .base10_parse::<u16>()
            .expect("checked when parsing");
        let span = self.status.span();
        let status = quote_spanned! {span=>
            {
                const __KUMI_STATUS: ::kumi::http::StatusCode =
                    match ::kumi::http::StatusCode::from_u16(#status) {
                        ::std::result::Result::Ok(status) => status,
                        ::std::result::Result::Err(_) => ::std::panic!("invalid HTTP status"),
                    };
                __KUMI_STATUS
            }
        };
        quote! {
            <::kumi::Router<Self> as ::kumi::http::HttpRouterExt<Self>>::http_error(
                __kumi_router,
                #status,
                #closure,
            );
        }
    }
}

// --- #[websocket] --------------------------------------------------------------------------

fn missing_ws_path(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "missing path: the first argument is the path, e.g. `#[websocket(\"/ws\")]`",
    )
}

/// A session hook: a method of the service, or any hook expression.
#[derive(Debug)]
pub(crate) enum HookRef {
    /// `on_connect = joined`: the service's method `joined`.
    Method(Ident),
    /// Any other expression (`Self::joined`, a closure), passed as the hook.
    Expr(Expr),
}

impl HookRef {
    fn parse(key: &str, value: Expr) -> syn::Result<Self> {
        if let Expr::Path(path) = &value {
            if path.qself.is_none() && path.attrs.is_empty() {
                if let Some(ident) = path.path.get_ident() {
                    return Ok(HookRef::Method(ident.clone()));
                }
            }
        }
        if literal(&value).is_some() {
            return Err(syn::Error::new_spanned(
                &value,
                format!("`{key}` names a method of the service, e.g. `{key} = joined`"),
            ));
        }
        Ok(HookRef::Expr(value))
    }

    /// The hook: for a method, a closure taking the service and `arg_ty` and calling it (as an
    /// associated function when it is one of `static_methods`, which have no receiver).
    fn hook(&self, arg_ty: &TokenStream, static_methods: &HashSet<String>) -> TokenStream {
        match self {
            HookRef::Expr(expr) => quote!(#expr),
            HookRef::Method(method) => {
                let span = method.span();
                let call = if static_methods.contains(&method.unraw().to_string()) {
                    quote_spanned!(span=> Self::#method(__kumi_this, __kumi_arg))
                } else {
                    quote_spanned!(span=> __kumi_this.#method(__kumi_arg))
                };
                quote_spanned! {span=>
                    |__kumi_this: ::std::sync::Arc<Self>, __kumi_arg: #arg_ty| async move {
                        #call.await
                    }
                }
            }
        }
    }
}

/// The arguments of `#[websocket("/path", ..)]`.
#[derive(Debug)]
pub(crate) struct WebSocketArgs {
    /// The path, in axum 0.8 syntax.
    pub(crate) path: LitStr,
    pub(crate) name: Option<Expr>,
    pub(crate) max_message_size: Option<Expr>,
    pub(crate) ping_interval: Option<DurationOpt>,
    pub(crate) pong_timeout: Option<DurationOpt>,
    pub(crate) close_timeout: Option<DurationOpt>,
    pub(crate) send_queue: Option<Expr>,
    pub(crate) recv_queue: Option<Expr>,
    pub(crate) on_connect: Option<HookRef>,
    pub(crate) on_close: Option<HookRef>,
    pub(crate) layer: Option<Expr>,
}

const WEBSOCKET_SPEC: OptionSpec = OptionSpec {
    attr: "websocket",
    known: WEBSOCKET_OPTIONS,
    flags: &[],
    aliases: &[],
};

impl Parse for WebSocketArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() || WEBSOCKET_SPEC.starts_option(input) {
            return Err(missing_ws_path(input.span()));
        }
        let path: Expr = input.parse()?;
        let path = path_literal(&path, "\"/ws\"")?;
        let mut args = WebSocketArgs {
            path,
            name: None,
            max_message_size: None,
            ping_interval: None,
            pong_timeout: None,
            close_timeout: None,
            send_queue: None,
            recv_queue: None,
            on_connect: None,
            on_close: None,
            layer: None,
        };
        for opt in WEBSOCKET_SPEC.parse(input, true)? {
            let key = opt.name.clone();
            let value = opt.value();
            match key.as_str() {
                "name" => args.name = Some(string_option("name", value)?),
                "max_message_size" => {
                    args.max_message_size = Some(integer_option::<usize>(&key, value, 1)?)
                }
                "ping_interval" => args.ping_interval = Some(duration_option(&key, value)?),
                "pong_timeout" => args.pong_timeout = Some(duration_option(&key, value)?),
                "close_timeout" => args.close_timeout = Some(duration_option(&key, value)?),
                "send_queue" => args.send_queue = Some(integer_option::<usize>(&key, value, 1)?),
                "recv_queue" => args.recv_queue = Some(integer_option::<usize>(&key, value, 1)?),
                "on_connect" => args.on_connect = Some(HookRef::parse(&key, value)?),
                "on_close" => args.on_close = Some(HookRef::parse(&key, value)?),
                "layer" => args.layer = Some(value),
                other => unreachable!("unhandled #[websocket] option {other}"),
            }
        }
        Ok(args)
    }
}

impl WebSocketArgs {
    /// Parses a `#[websocket(..)]` attribute.
    pub(crate) fn from_attribute(attr: &Attribute) -> syn::Result<Self> {
        parse_list(attr, missing_ws_path)
    }

    /// The `WebSocketRoute` calls, the name first.
    pub(crate) fn builder_calls(
        &self,
        default_name: &LitStr,
        static_methods: &HashSet<String>,
    ) -> TokenStream {
        let mut calls = name_call(self.name.as_ref(), default_name);
        if let Some(n) = &self.max_message_size {
            calls.extend(quote!(.max_message_size(#n)));
        }
        for (method, value) in [
            ("ping_interval", &self.ping_interval),
            ("pong_timeout", &self.pong_timeout),
            ("close_timeout", &self.close_timeout),
        ] {
            if let Some(value) = value {
                let method = format_ident!("{}", method);
                let duration = value.duration();
                calls.extend(quote!(.#method(#duration)));
            }
        }
        if let Some(n) = &self.send_queue {
            calls.extend(quote!(.send_queue(#n)));
        }
        if let Some(n) = &self.recv_queue {
            calls.extend(quote!(.recv_queue(#n)));
        }
        if let Some(hook) = &self.on_connect {
            let hook = hook.hook(&quote!(::kumi::websocket::SessionSender), static_methods);
            calls.extend(quote!(.on_connect(#hook)));
        }
        if let Some(hook) = &self.on_close {
            let hook = hook.hook(&quote!(::kumi::websocket::SessionClosed), static_methods);
            calls.extend(quote!(.on_close(#hook)));
        }
        if let Some(layer) = &self.layer {
            calls.extend(quote!(.layer(#layer)));
        }
        calls
    }

    /// `<Router<Self> as WebSocketRouterExt<Self>>::websocket(router, "/path", closure)...;`
    pub(crate) fn registration(
        &self,
        closure: &TokenStream,
        default_name: &LitStr,
        static_methods: &HashSet<String>,
    ) -> TokenStream {
        let path = &self.path;
        let calls = self.builder_calls(default_name, static_methods);
        quote! {
            <::kumi::Router<Self> as ::kumi::websocket::WebSocketRouterExt<Self>>::websocket(
                __kumi_router,
                #path,
                #closure,
            ) #calls;
        }
    }
}

// --- #[schedule] ---------------------------------------------------------------------------

fn missing_trigger(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "missing trigger: give one of `interval = \"10s\"`, `cron = \"*/5 * * * *\"`, \
         `daily = \"08:30\"`, `at = \"2026-12-01T08:00:00Z\"`, or a trigger string such as \
         `#[schedule(\"hourly\")]`",
    )
}

/// When a schedule runs.
#[derive(Debug)]
pub(crate) enum TriggerOpt {
    /// A bare first argument (`"hourly"`, `TRIGGER`): passed to `schedule` as it is.
    Spec(Expr),
    /// `interval = "10s"`: checked now, parsed by `Trigger::parse_interval`.
    Interval(LitStr),
    /// `interval = 10`: seconds.
    IntervalSecs(LitInt),
    /// `interval = expr`: any trigger value (a `Duration`, usually), passed as it is.
    IntervalExpr(Expr),
    /// `cron = ".."`.
    Cron(Expr),
    /// `daily = "08:30"`.
    Daily(Expr),
    /// `at = "2026-12-01T08:00:00Z"`.
    At(Expr),
}

impl TriggerOpt {
    /// The trigger argument of `ScheduleExt::schedule`.
    pub(crate) fn trigger(&self) -> TokenStream {
        match self {
            TriggerOpt::Spec(expr) | TriggerOpt::IntervalExpr(expr) => quote!(#expr),
            TriggerOpt::Interval(text) => {
                quote_spanned!(text.span()=> ::kumi::schedule::Trigger::parse_interval(#text))
            }
            TriggerOpt::IntervalSecs(secs) => {
                quote_spanned!(secs.span()=> ::std::time::Duration::from_secs(#secs))
            }
            TriggerOpt::Cron(expr) => {
                quote_spanned!(expr.span()=> ::kumi::schedule::Trigger::cron(#expr))
            }
            TriggerOpt::Daily(expr) => {
                quote_spanned!(expr.span()=> ::kumi::schedule::Trigger::daily_at(#expr))
            }
            TriggerOpt::At(expr) => {
                quote_spanned!(expr.span()=> ::kumi::schedule::Trigger::timestamp(#expr))
            }
        }
    }
}

/// The arguments of `#[schedule(..)]`: exactly one trigger, and options.
#[derive(Debug)]
pub(crate) struct ScheduleArgs {
    pub(crate) trigger: TriggerOpt,
    /// `name = "..."` (default: the method name).
    pub(crate) name: Option<Expr>,
    /// `tz = ".."` / `timezone = ".."`.
    pub(crate) timezone: Option<Expr>,
    /// `immediately`.
    pub(crate) immediately: Option<Span>,
    /// `concurrency = n`.
    pub(crate) concurrency: Option<Expr>,
    /// `timeout = "30s"`.
    pub(crate) timeout: Option<DurationOpt>,
}

const SCHEDULE_SPEC: OptionSpec = OptionSpec {
    attr: "schedule",
    known: SCHEDULE_OPTIONS,
    flags: &["immediately"],
    aliases: &[("tz", "timezone")],
};

/// A string trigger value checked with `check` (the expression is kept), or any non-literal
/// expression.
fn trigger_string(
    key: &str,
    value: Expr,
    example: &str,
    check: fn(&str) -> Result<(), String>,
) -> syn::Result<Expr> {
    match literal(&value) {
        None => Ok(value),
        Some(Lit::Str(s)) => match check(&s.value()) {
            Ok(()) => Ok(value),
            Err(e) => Err(syn::Error::new(
                s.span(),
                format!("invalid `{key}` {:?}: {e}", s.value()),
            )),
        },
        Some(other) => Err(syn::Error::new(
            other.span(),
            format!("`{key}` must be a string, e.g. `{key} = {example}`"),
        )),
    }
}

fn interval_trigger(value: Expr) -> syn::Result<TriggerOpt> {
    match literal(&value) {
        None => Ok(TriggerOpt::IntervalExpr(value)),
        Some(Lit::Str(s)) => {
            let text = s.value();
            let trimmed = text.trim();
            let spec = trimmed
                .get(..6)
                .filter(|head| head.eq_ignore_ascii_case("every "))
                .map_or(trimmed, |_| &trimmed[6..]);
            match parse_duration(spec) {
                Ok(_) => Ok(TriggerOpt::Interval(s.clone())),
                Err(e) => Err(syn::Error::new(
                    s.span(),
                    format!("invalid interval {text:?}: {e}"),
                )),
            }
        }
        Some(Lit::Int(secs)) => {
            integer_option::<u64>("interval", value.clone(), 1)?;
            Ok(TriggerOpt::IntervalSecs(secs.clone()))
        }
        Some(other) => Err(syn::Error::new(
            other.span(),
            "`interval` is a duration string (`\"10s\"`, `\"250ms\"`, `\"1h30m\"`) or whole seconds (`10`)",
        )),
    }
}

/// A cron expression: 5, 6 (seconds first) or 7 (and a year) fields, or an `@nickname`.
fn check_cron(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    if trimmed.starts_with('@') {
        if CRON_NICKNAMES
            .iter()
            .any(|n| n.eq_ignore_ascii_case(trimmed))
        {
            return Ok(());
        }
        return Err(format!(
            "unknown nickname; use one of {}",
            CRON_NICKNAMES.join(", ")
        ));
    }
    let fields = trimmed.split_whitespace().count();
    if (5..=7).contains(&fields) {
        Ok(())
    } else {
        Err(format!(
            "{fields} field{}; a cron expression has 5 fields (minute hour day-of-month month \
             day-of-week) or 6 with seconds first",
            if fields == 1 { "" } else { "s" }
        ))
    }
}

/// Parses `HH:MM` or `HH:MM:SS` on a 24-hour clock.
fn parse_time(text: &str) -> Option<(u32, u32, u32)> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let mut numbers = [0u32; 3];
    for (slot, part) in numbers.iter_mut().zip(&parts) {
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    let [h, m, s] = numbers;
    (h < 24 && m < 60 && s < 60).then_some((h, m, s))
}

fn check_daily(text: &str) -> Result<(), String> {
    match parse_time(text.trim()) {
        Some(_) => Ok(()),
        None => Err(
            "a time of day is HH:MM or HH:MM:SS on a 24-hour clock, from 00:00 to 23:59:59"
                .to_owned(),
        ),
    }
}

/// `YYYY-MM-DD` then `T` or a space, `HH:MM[:SS[.fraction]]`, and an optional `Z` or `±HH:MM`.
/// The schedule transport checks the rest (the day exists, the local time exists in the
/// timezone) at startup.
fn check_timestamp(text: &str) -> Result<(), String> {
    const FORM: &str = "a timestamp is YYYY-MM-DDTHH:MM[:SS] with an optional offset ('Z', \
                        '+01:00'); without one it is read in the schedule's timezone";
    let bad = || Err(FORM.to_owned());
    let text = text.trim();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (Some(date), Some(sep), Some(rest)) = (text.get(..10), text.get(10..11), text.get(11..))
    else {
        return bad();
    };
    let date: Vec<&str> = date.split('-').collect();
    let date_ok = matches!(date.as_slice(), [y, m, d] if y.len() == 4 && digits(y) && m.len() == 2
        && digits(m) && (1..=12).contains(&m.parse::<u32>().unwrap_or(0)) && d.len() == 2
        && digits(d) && (1..=31).contains(&d.parse::<u32>().unwrap_or(0)));
    if !date_ok || !(sep == "T" || sep == "t" || sep == " ") {
        return bad();
    }
    let (time, offset) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, None)
    } else {
        match rest.rfind(['+', '-']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        }
    };
    if let Some(offset) = offset {
        if !matches!(parse_time(offset), Some((h, _, 0)) if h <= 23) || offset.len() != 5 {
            return bad();
        }
    }
    let (time, fraction) = match time.split_once('.') {
        Some((time, fraction)) => (time, Some(fraction)),
        None => (time, None),
    };
    if fraction.is_some_and(|f| !digits(f)) || (fraction.is_some() && time.len() != 8) {
        return bad();
    }
    match parse_time(time) {
        Some(_) => Ok(()),
        None => bad(),
    }
}

impl Parse for ScheduleArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let start = input.span();
        if input.is_empty() {
            return Err(missing_trigger(start));
        }
        let mut trigger: Option<(TriggerOpt, String)> = None;
        let positional = !SCHEDULE_SPEC.starts_option(input);
        if positional {
            let spec: Expr = input.parse()?;
            match literal(&spec) {
                None => {}
                Some(Lit::Str(s)) if s.value().trim().is_empty() => {
                    return Err(syn::Error::new(s.span(), "the trigger must not be empty"))
                }
                Some(Lit::Str(_)) => {}
                Some(Lit::Int(i)) => {
                    return Err(syn::Error::new(
                        i.span(),
                        format!("a bare number is not a trigger; for seconds write `interval = {i}`"),
                    ))
                }
                Some(other) => {
                    return Err(syn::Error::new(
                        other.span(),
                        "a trigger is a string such as \"hourly\", \"*/5 * * * *\" or \"10s\", or an option: `interval = \"10s\"`",
                    ))
                }
            }
            trigger = Some((TriggerOpt::Spec(spec), "the trigger string".to_owned()));
        }
        let (mut name, mut timezone, mut immediately, mut concurrency, mut timeout) =
            (None, None, None, None, None);
        for opt in SCHEDULE_SPEC.parse(input, positional)? {
            if SCHEDULE_TRIGGERS.contains(&opt.name.as_str()) {
                let written = opt.key.unraw().to_string();
                if let Some((_, first)) = &trigger {
                    return Err(syn::Error::new(
                        opt.key.span(),
                        format!(
                            "a `#[schedule]` has exactly one trigger, and `{written}` comes after {first}; \
                             put each trigger in its own `#[schedule(..)]` (with its own `name = \"..\"`)"
                        ),
                    ));
                }
                let value = opt.value();
                let parsed = match written.as_str() {
                    "interval" => interval_trigger(value)?,
                    "cron" => TriggerOpt::Cron(trigger_string(
                        "cron",
                        value,
                        "\"*/5 * * * *\"",
                        check_cron,
                    )?),
                    "daily" => {
                        TriggerOpt::Daily(trigger_string("daily", value, "\"08:30\"", check_daily)?)
                    }
                    "at" => TriggerOpt::At(trigger_string(
                        "at",
                        value,
                        "\"2026-12-01T08:00:00Z\"",
                        check_timestamp,
                    )?),
                    other => unreachable!("unhandled trigger {other}"),
                };
                trigger = Some((parsed, format!("`{written}`")));
                continue;
            }
            match opt.name.as_str() {
                "name" => name = Some(string_option("name", opt.value())?),
                "timezone" => {
                    let key = opt.key.unraw().to_string();
                    timezone = Some(string_option(&key, opt.value())?);
                }
                "immediately" => immediately = Some(opt.key.span()),
                "concurrency" => {
                    concurrency = Some(integer_option::<usize>("concurrency", opt.value(), 1)?)
                }
                "timeout" => timeout = Some(duration_option("timeout", opt.value())?),
                other => unreachable!("unhandled #[schedule] option {other}"),
            }
        }
        let Some((trigger, _)) = trigger else {
            return Err(missing_trigger(start));
        };
        Ok(ScheduleArgs {
            trigger,
            name,
            timezone,
            immediately,
            concurrency,
            timeout,
        })
    }
}

impl ScheduleArgs {
    /// Parses a `#[schedule(..)]` attribute.
    pub(crate) fn from_attribute(attr: &Attribute) -> syn::Result<Self> {
        parse_list(attr, missing_trigger)
    }

    /// The route name if it is known now: the `name` literal, or `default_name`.
    pub(crate) fn known_name(&self, default_name: &str) -> Option<String> {
        match &self.name {
            Some(name) => literal_text(name),
            None => Some(default_name.to_owned()),
        }
    }

    /// The `ScheduleBuilder` calls, the name first.
    pub(crate) fn builder_calls(&self, default_name: &LitStr) -> TokenStream {
        let mut calls = name_call(self.name.as_ref(), default_name);
        if let Some(tz) = &self.timezone {
            calls.extend(quote!(.timezone(#tz)));
        }
        if let Some(span) = self.immediately {
            calls.extend(quote_spanned!(span=> .immediately()));
        }
        if let Some(n) = &self.concurrency {
            calls.extend(quote!(.concurrency(#n)));
        }
        if let Some(timeout) = &self.timeout {
            let timeout = timeout.duration();
            calls.extend(quote!(.timeout(#timeout)));
        }
        calls
    }

    /// `<Router<Self> as ScheduleExt<Self>>::schedule(router, TRIGGER, closure).name(..)..;`
    pub(crate) fn registration(&self, closure: &TokenStream, default_name: &LitStr) -> TokenStream {
        let trigger = self.trigger.trigger();
        let calls = self.builder_calls(default_name);
        quote! {
            <::kumi::Router<Self> as ::kumi::schedule::ScheduleExt<Self>>::schedule(
                __kumi_router,
                #trigger,
                #closure,
            ) #calls;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn closure() -> TokenStream {
        quote!(CLOSURE)
    }

    fn name(text: &str) -> LitStr {
        LitStr::new(text, Span::call_site())
    }

    fn http_err(attr: Attribute) -> String {
        HttpArgs::from_attribute(&attr)
            .expect_err("should fail")
            .to_string()
    }

    fn status_err(attr: Attribute) -> String {
        HttpErrorArgs::from_attribute(&attr)
            .expect_err("should fail")
            .to_string()
    }

    fn ws_err(attr: Attribute) -> String {
        WebSocketArgs::from_attribute(&attr)
            .expect_err("should fail")
            .to_string()
    }

    fn schedule(attr: Attribute) -> ScheduleArgs {
        ScheduleArgs::from_attribute(&attr).expect("should parse")
    }

    fn schedule_err(attr: Attribute) -> String {
        ScheduleArgs::from_attribute(&attr)
            .expect_err("should fail")
            .to_string()
    }

    fn schedule_tokens(attr: Attribute) -> String {
        schedule(attr)
            .registration(&closure(), &name("tick"))
            .to_string()
    }

    #[test]
    fn http_routes() {
        let args = HttpArgs::from_attribute(&parse_quote!(#[http(GET, "/orders/{id}")])).unwrap();
        assert_eq!(args.method.to_string(), "GET");
        assert_eq!(args.path.value(), "/orders/{id}");
        assert_eq!(
            args.registration(&closure(), &name("get_order"))
                .to_string(),
            "< :: kumi :: Router < Self > as :: kumi :: http :: HttpRouterExt < Self >> :: http \
             (__kumi_router , :: kumi :: http :: Method :: GET , \"/orders/{id}\" , CLOSURE ,) \
             . name (\"get_order\") ;"
        );

        let args = HttpArgs::from_attribute(&parse_quote!(#[http(
            POST, "/x", name = "n", layer = tower::limit::ConcurrencyLimitLayer::new(8),
        )]))
        .unwrap();
        let out = args.registration(&closure(), &name("create")).to_string();
        assert!(
            out.ends_with(
                ". name (\"n\") . layer (tower :: limit :: ConcurrencyLimitLayer :: new (8)) ;"
            ),
            "{out}"
        );
        assert!(out.contains(":: kumi :: http :: Method :: POST , \"/x\""));

        for method in HTTP_METHODS {
            let method = format_ident!("{}", method);
            let attr: Attribute = parse_quote!(#[http(#method, "/")]);
            assert!(HttpArgs::from_attribute(&attr).is_ok(), "{method}");
        }
    }

    #[test]
    fn http_route_errors() {
        assert_eq!(
            http_err(parse_quote!(#[http(FETCH, "/x")])),
            "unknown HTTP method `FETCH`; use one of `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, \
             `HEAD`, `OPTIONS`"
        );
        assert_eq!(
            http_err(parse_quote!(#[http(get, "/x")])),
            "write the HTTP method in upper case: `GET`"
        );
        assert_eq!(
            http_err(parse_quote!(#[http(GET, "/x", nam = "n")])),
            "unknown `#[http]` option `nam`; the known options are `name`, `layer`"
        );
        for attr in [
            parse_quote!(#[http]),
            parse_quote!(#[http()]),
            parse_quote!(#[http = "/x"]),
            parse_quote!(#[http(name = "x")]),
        ] {
            assert!(http_err(attr).starts_with("missing method and path"));
        }
        assert!(http_err(parse_quote!(#[http("/x")])).starts_with("missing HTTP method"));
        assert!(http_err(parse_quote!(#[http(GET)])).starts_with("missing path after `GET`"));
        assert!(http_err(parse_quote!(#[http(GET,)])).starts_with("missing path after `GET`"));
        assert!(http_err(parse_quote!(#[http(GET, name = "n")])).starts_with("missing path"));
        assert!(http_err(parse_quote!(#[http(GET, PATH)])).contains("must be a string literal"));
        assert!(http_err(parse_quote!(#[http(GET, 3)])).contains("must be a string literal"));
        assert_eq!(
            http_err(parse_quote!(#[http(GET, "orders")])),
            "the path must start with '/': \"/orders\""
        );
        assert_eq!(
            http_err(parse_quote!(#[http(GET, "/orders/:id/items/:item")])),
            "the path segment `:id` uses the axum 0.7 syntax; path parameters are written \
             `{name}` / `{*rest}` since axum 0.8: \"/orders/{id}/items/{item}\""
        );
        assert_eq!(
            http_err(parse_quote!(#[http(GET, "/files/*rest")])),
            "the path segment `*rest` uses the axum 0.7 syntax; path wildcards are written \
             `{name}` / `{*rest}` since axum 0.8: \"/files/{*rest}\""
        );
        assert!(
            http_err(parse_quote!(#[http(GET, "/x", name = "a", name = "b")]))
                .contains("duplicate option `name`")
        );
        assert!(http_err(parse_quote!(#[http(GET, "/x", name = 3)])).contains("must be a string"));
        assert!(http_err(parse_quote!(#[http(GET, "/x", name = "")])).contains("must not be empty"));
        assert!(http_err(parse_quote!(#[http(GET, "/x", layer)])).contains("needs a value"));
        assert!(http_err(parse_quote!(#[http(GET, "/x", "/y")])).contains("expected an option"));
    }

    #[test]
    fn http_error_handlers() {
        let args = HttpErrorArgs::from_attribute(&parse_quote!(#[http_error(404)])).unwrap();
        assert_eq!(
            args.registration(&closure()).to_string(),
            "< :: kumi :: Router < Self > as :: kumi :: http :: HttpRouterExt < Self >> :: http_error \
             (__kumi_router , { const __KUMI_STATUS : :: kumi :: http :: StatusCode = match \
             :: kumi :: http :: StatusCode :: from_u16 (404u16) { :: std :: result :: Result :: Ok \
             (status) => status , :: std :: result :: Result :: Err (_) => :: std :: panic ! \
             (\"invalid HTTP status\") , } ; __KUMI_STATUS } , CLOSURE ,) ;"
        );
        for ok in [
            parse_quote!(#[http_error(400)]),
            parse_quote!(#[http_error(599,)]),
            parse_quote!(#[http_error(500u16)]),
        ] {
            assert!(HttpErrorArgs::from_attribute(&ok).is_ok());
        }
        for attr in [
            parse_quote!(#[http_error(200)]),
            parse_quote!(#[http_error(399)]),
            parse_quote!(#[http_error(600)]),
            parse_quote!(#[http_error(70000)]),
        ] {
            assert_eq!(
                status_err(attr),
                "error handlers are for error statuses: 400 to 599"
            );
        }
        for attr in [parse_quote!(#[http_error]), parse_quote!(#[http_error()])] {
            assert_eq!(status_err(attr), "missing status: `#[http_error(404)]`");
        }
        assert!(status_err(parse_quote!(#[http_error("404")])).contains("integer literal"));
        assert!(status_err(parse_quote!(#[http_error(NOT_FOUND)])).contains("integer literal"));
        assert!(status_err(parse_quote!(#[http_error(404, name = "x")]))
            .contains("takes only the status"));
    }

    #[test]
    fn websocket_endpoints() {
        let args = WebSocketArgs::from_attribute(&parse_quote!(#[websocket(
            "/ws", max_message_size = 65536, ping_interval = "20s", pong_timeout = "1m",
            close_timeout = LIMIT, send_queue = 8, recv_queue = 4, on_connect = joined,
            on_close = left, layer = auth(), name = "chat",
        )]))
        .unwrap();
        assert_eq!(args.path.value(), "/ws");
        let statics: HashSet<String> = ["left".to_owned()].into();
        let out = args
            .registration(&closure(), &name("session"), &statics)
            .to_string();
        assert_eq!(
            out,
            "< :: kumi :: Router < Self > as :: kumi :: websocket :: WebSocketRouterExt < Self >> \
             :: websocket (__kumi_router , \"/ws\" , CLOSURE ,) . name (\"chat\") \
             . max_message_size (65536) \
             . ping_interval (:: std :: time :: Duration :: from_millis (20000u64)) \
             . pong_timeout (:: std :: time :: Duration :: from_millis (60000u64)) \
             . close_timeout (LIMIT) . send_queue (8) . recv_queue (4) \
             . on_connect (| __kumi_this : :: std :: sync :: Arc < Self > , __kumi_arg : \
             :: kumi :: websocket :: SessionSender | async move { __kumi_this . joined (__kumi_arg) \
             . await }) \
             . on_close (| __kumi_this : :: std :: sync :: Arc < Self > , __kumi_arg : \
             :: kumi :: websocket :: SessionClosed | async move { Self :: left (__kumi_this , \
             __kumi_arg) . await }) \
             . layer (auth ()) ;"
        );

        // Defaults, and hooks given as expressions.
        let args = WebSocketArgs::from_attribute(&parse_quote!(#[websocket(
            "/rooms/{room}", on_connect = Self::joined, on_close = |_, _| async {},
        )]))
        .unwrap();
        let calls = args
            .builder_calls(&name("room"), &HashSet::new())
            .to_string();
        assert_eq!(
            calls,
            ". name (\"room\") . on_connect (Self :: joined) . on_close (| _ , _ | async { })"
        );
    }

    #[test]
    fn websocket_errors() {
        assert_eq!(
            ws_err(parse_quote!(#[websocket("/ws", ping = "1s")])),
            "unknown `#[websocket]` option `ping`; the known options are `name`, \
             `max_message_size`, `ping_interval`, `pong_timeout`, `close_timeout`, `send_queue`, \
             `recv_queue`, `on_connect`, `on_close`, `layer`"
        );
        for attr in [
            parse_quote!(#[websocket]),
            parse_quote!(#[websocket()]),
            parse_quote!(#[websocket(name = "x")]),
            parse_quote!(#[websocket(max_message_size = 3)]),
        ] {
            assert!(ws_err(attr).starts_with("missing path"));
        }
        assert!(ws_err(parse_quote!(#[websocket(PATH)])).contains("must be a string literal"));
        assert!(ws_err(parse_quote!(#[websocket("ws")])).contains("must start with '/'"));
        assert!(ws_err(parse_quote!(#[websocket("/rooms/:room")])).contains("\"/rooms/{room}\""));
        assert!(
            ws_err(parse_quote!(#[websocket("/ws", ping_interval = "20")]))
                .starts_with("invalid duration \"20\": missing unit")
        );
        assert!(ws_err(parse_quote!(#[websocket("/ws", pong_timeout = 20)]))
            .contains("`pong_timeout` must be a duration string"));
        assert!(
            ws_err(parse_quote!(#[websocket("/ws", max_message_size = 0)]))
                .contains("`max_message_size` must be at least 1")
        );
        assert!(ws_err(parse_quote!(#[websocket("/ws", send_queue = "8")])).contains("integer"));
        assert!(
            ws_err(parse_quote!(#[websocket("/ws", on_connect = "joined")]))
                .contains("`on_connect` names a method of the service")
        );
        assert!(ws_err(parse_quote!(#[websocket("/ws", on_close)])).contains("needs a value"));
        assert!(
            ws_err(parse_quote!(#[websocket("/ws", name = "a", name = "b")]))
                .contains("duplicate option `name`")
        );
    }

    #[test]
    fn schedule_triggers() {
        let prefix =
            "< :: kumi :: Router < Self > as :: kumi :: schedule :: ScheduleExt < Self >> \
                      :: schedule (__kumi_router ,";
        let cases: Vec<(Attribute, &str)> = vec![
            (
                parse_quote!(#[schedule(interval = "10s")]),
                ":: kumi :: schedule :: Trigger :: parse_interval (\"10s\") , CLOSURE ,) . name (\"tick\") ;",
            ),
            (
                parse_quote!(#[schedule(interval = "every 1h30m")]),
                ":: kumi :: schedule :: Trigger :: parse_interval (\"every 1h30m\") ,",
            ),
            (
                parse_quote!(#[schedule(interval = 10)]),
                ":: std :: time :: Duration :: from_secs (10) ,",
            ),
            (
                parse_quote!(#[schedule(interval = PERIOD)]),
                "PERIOD , CLOSURE",
            ),
            (
                parse_quote!(#[schedule(cron = "*/5 * * * * *", tz = "Europe/Stockholm")]),
                ":: kumi :: schedule :: Trigger :: cron (\"*/5 * * * * *\") , CLOSURE ,) \
                 . name (\"tick\") . timezone (\"Europe/Stockholm\") ;",
            ),
            (
                parse_quote!(#[schedule(cron = "@Hourly")]),
                ":: kumi :: schedule :: Trigger :: cron (\"@Hourly\") ,",
            ),
            (
                parse_quote!(#[schedule(daily = "08:30", immediately)]),
                ":: kumi :: schedule :: Trigger :: daily_at (\"08:30\") , CLOSURE ,) \
                 . name (\"tick\") . immediately () ;",
            ),
            (
                parse_quote!(#[schedule(at = "2026-12-01T08:00:00Z")]),
                ":: kumi :: schedule :: Trigger :: timestamp (\"2026-12-01T08:00:00Z\") ,",
            ),
            (
                parse_quote!(#[schedule("hourly")]),
                "\"hourly\" , CLOSURE ,) . name (\"tick\") ;",
            ),
            (
                parse_quote!(#[schedule(kumi::schedule::Every::seconds(5), name = "five")]),
                "kumi :: schedule :: Every :: seconds (5) , CLOSURE ,) . name (\"five\") ;",
            ),
            (
                parse_quote!(#[schedule(
                    "*/5 * * * *", timezone = TZ, immediately, concurrency = 2, timeout = "30s",
                    name = "report",
                )]),
                "\"*/5 * * * *\" , CLOSURE ,) . name (\"report\") . timezone (TZ) \
                 . immediately () . concurrency (2) \
                 . timeout (:: std :: time :: Duration :: from_millis (30000u64)) ;",
            ),
        ];
        for (attr, expected) in cases {
            let out = schedule_tokens(attr);
            assert!(out.starts_with(prefix), "{out}");
            assert!(out.contains(expected), "expected {expected}\nin {out}");
        }
    }

    #[test]
    fn schedule_names() {
        let args = schedule(parse_quote!(#[schedule("hourly")]));
        assert_eq!(args.known_name("tick").as_deref(), Some("tick"));
        let args = schedule(parse_quote!(#[schedule("hourly", name = "h")]));
        assert_eq!(args.known_name("tick").as_deref(), Some("h"));
        let args = schedule(parse_quote!(#[schedule("hourly", name = NAME)]));
        assert_eq!(args.known_name("tick"), None);
    }

    #[test]
    fn schedule_errors() {
        assert_eq!(
            schedule_err(parse_quote!(#[schedule(every = "10s")])),
            "unknown `#[schedule]` option `every`; the known options are `interval`, `cron`, \
             `daily`, `at`, `tz`, `timezone`, `immediately`, `concurrency`, `timeout`, `name`"
        );
        for attr in [
            parse_quote!(#[schedule]),
            parse_quote!(#[schedule()]),
            parse_quote!(#[schedule(immediately)]),
            parse_quote!(#[schedule(name = "x", tz = "UTC")]),
        ] {
            assert!(schedule_err(attr).starts_with("missing trigger"));
        }
        assert!(
            schedule_err(parse_quote!(#[schedule(interval = "1s", cron = "* * * * *")]))
                .starts_with(
                    "a `#[schedule]` has exactly one trigger, and `cron` comes after `interval`"
                )
        );
        assert!(
            schedule_err(parse_quote!(#[schedule("hourly", daily = "08:00")]))
                .contains("`daily` comes after the trigger string")
        );
        assert!(
            schedule_err(parse_quote!(#[schedule(interval = "1s", interval = "2s")]))
                .contains("duplicate option `interval`")
        );
        // The interval grammar is the one of durations: `ms`, `s`, `m`, `h`, sums, spaces.
        schedule(parse_quote!(#[schedule(interval = " 1m 30 s ")]));
        assert!(schedule_err(parse_quote!(#[schedule(interval = "10")]))
            .starts_with("invalid interval \"10\": missing unit"));
        assert!(
            schedule_err(parse_quote!(#[schedule(interval = "0s")])).contains("greater than zero")
        );
        assert!(schedule_err(parse_quote!(#[schedule(interval = 0)]))
            .contains("`interval` must be at least 1"));
        assert!(schedule_err(parse_quote!(#[schedule(interval = 1.5)])).contains("whole seconds"));
        assert!(schedule_err(parse_quote!(#[schedule(cron = "* * *")]))
            .starts_with("invalid `cron` \"* * *\": 3 fields"));
        assert!(
            schedule_err(parse_quote!(#[schedule(cron = "@often")])).contains("unknown nickname")
        );
        assert!(schedule_err(parse_quote!(#[schedule(cron = 5)])).contains("must be a string"));
        assert!(schedule_err(parse_quote!(#[schedule(daily = "25:00")]))
            .starts_with("invalid `daily` \"25:00\": a time of day is HH:MM"));
        assert!(schedule_err(parse_quote!(#[schedule(at = "tomorrow")]))
            .starts_with("invalid `at` \"tomorrow\": a timestamp is"));
        assert!(schedule_err(parse_quote!(#[schedule("")])).contains("must not be empty"));
        assert!(schedule_err(parse_quote!(#[schedule(10)])).contains("write `interval = 10`"));
        assert!(schedule_err(parse_quote!(#[schedule(true)])).contains("a trigger is a string"));
        assert_eq!(
            schedule_err(parse_quote!(#[schedule("hourly", tz = "UTC", timezone = "UTC")])),
            "`tz` and `timezone` are the same option; give it once"
        );
        assert!(schedule_err(parse_quote!(#[schedule("hourly", tz = "")]))
            .contains("`tz` must not be empty"));
        assert!(
            schedule_err(parse_quote!(#[schedule("hourly", immediately = true)]))
                .contains("`immediately` takes no value")
        );
        assert!(
            schedule_err(parse_quote!(#[schedule("hourly", concurrency = 0)]))
                .contains("`concurrency` must be at least 1")
        );
        assert!(
            schedule_err(parse_quote!(#[schedule("hourly", timeout = "soon")]))
                .starts_with("invalid duration \"soon\"")
        );
        assert!(schedule_err(parse_quote!(#[schedule("hourly", name)])).contains("needs a value"));
    }

    #[test]
    fn trigger_checks() {
        for ok in [
            "* * * * *",
            "*/5 * * * * *",
            "0 0 8 * * MON-FRI 2030",
            "@daily",
            "@ANNUALLY",
        ] {
            assert_eq!(check_cron(ok), Ok(()), "{ok}");
        }
        for bad in ["", "* * * *", "1 2 3 4 5 6 7 8", "@never"] {
            assert!(check_cron(bad).is_err(), "{bad}");
        }
        for ok in ["08:30", "00:00", "23:59:59", " 08:30 "] {
            assert_eq!(check_daily(ok), Ok(()), "{ok}");
        }
        for bad in [
            "8:30",
            "24:00",
            "12:60",
            "12:00:60",
            "noon",
            "12",
            "12:00:00:00",
            "-1:00",
        ] {
            assert!(check_daily(bad).is_err(), "{bad}");
        }
        for ok in [
            "2026-12-01T08:00:00Z",
            "2026-12-01T08:00Z",
            "2026-12-01 08:00",
            "2026-12-01T08:00:00.250",
            "2026-12-01T08:00:00+01:00",
            "2026-12-01T08:00:00-05:30",
            "2026-12-01t08:00:00z",
        ] {
            assert_eq!(check_timestamp(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "2026-12-01",
            "2026-13-01T08:00",
            "2026-12-32T08:00",
            "26-12-01T08:00:00",
            "2026-12-01X08:00",
            "2026-12-01T25:00",
            "2026-12-01T08:00:00+1",
            "2026-12-01T08:00:00.x",
            "2026-12-01T08:00.5",
        ] {
            assert!(check_timestamp(bad).is_err(), "{bad}");
        }
    }
}
