//! Parsing of the macro's arguments: `#[service(...)]`, `#[subscribe(...)]` / `#[request(...)]`,
//! durations and default service names. Everything here works on `proc_macro2` tokens so it can
//! be unit-tested.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, Lit, LitStr, Meta, Token};

/// The options of `#[service(...)]`.
pub(crate) const SERVICE_OPTIONS: &[&str] = &["name", "version"];

/// The options of `#[subscribe(...)]` and `#[request(...)]`, after the topic.
pub(crate) const ROUTE_OPTIONS: &[&str] = &[
    "name",
    "group",
    "broadcast",
    "concurrency",
    "retries",
    "envelope",
    "dead_letter",
    "timeout",
    "option",
    "layer",
];

/// Route options that may be given several times (each adds one).
const REPEATABLE_ROUTE_OPTIONS: &[&str] = &["option", "layer"];

/// `` `a`, `b`, `c` `` for error messages.
pub(crate) fn list(options: &[&str]) -> String {
    options
        .iter()
        .map(|o| format!("`{o}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_service_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The arguments of `#[kumi::service(name = "...", version = "...")]`.
#[derive(Debug, Default)]
pub(crate) struct ServiceArgs {
    /// `name = "..."`.
    pub(crate) name: Option<LitStr>,
    /// `version = "..."`.
    pub(crate) version: Option<LitStr>,
}

impl Parse for ServiceArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = ServiceArgs::default();
        while !input.is_empty() {
            let key = input.call(Ident::parse_any)?;
            let key_name = key.unraw().to_string();
            let slot = match key_name.as_str() {
                "name" => &mut args.name,
                "version" => &mut args.version,
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                        "unknown #[kumi::service] option `{key_name}`; the known options are {}",
                        list(SERVICE_OPTIONS)
                    ),
                    ))
                }
            };
            if slot.is_some() {
                return Err(syn::Error::new(
                    key.span(),
                    format!("duplicate option `{key_name}`"),
                ));
            }
            if !input.peek(Token![=]) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("`{key_name}` needs a value: `{key_name} = \"...\"`"),
                ));
            }
            input.parse::<Token![=]>()?;
            let value = match input.parse::<Lit>()? {
                Lit::Str(s) => s,
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        format!("`{key_name}` must be a string literal"),
                    ))
                }
            };
            let text = value.value();
            if key_name == "name" && !is_service_name(&text) {
                return Err(syn::Error::new(
                    value.span(),
                    "a service name must be non-empty and use only `A-Z a-z 0-9 _ -`",
                ));
            }
            if key_name == "version" && text.trim().is_empty() {
                return Err(syn::Error::new(
                    value.span(),
                    "the version must not be empty",
                ));
            }
            *slot = Some(value);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// Group or broadcast delivery.
#[derive(Debug)]
pub(crate) enum DeliveryOpt {
    /// `group = "..."`.
    Group(Expr),
    /// `broadcast`.
    Broadcast(Span),
}

/// A duration option (a route timeout, a websocket ping interval...).
#[derive(Debug)]
pub(crate) enum DurationOpt {
    /// A duration string, parsed at expansion time.
    Millis(u64, Span),
    /// Any other expression of type `Duration`, passed through.
    Expr(Expr),
}

impl DurationOpt {
    /// The `Duration` expression.
    pub(crate) fn duration(&self) -> TokenStream {
        match self {
            DurationOpt::Millis(ms, span) => {
                quote_spanned!(*span=> ::std::time::Duration::from_millis(#ms))
            }
            DurationOpt::Expr(expr) => quote!(#expr),
        }
    }
}

/// The arguments of `#[subscribe(...)]` / `#[request(...)]`: the topic, then options.
#[derive(Debug)]
pub(crate) struct RouteArgs {
    /// The topic pattern (usually a string literal; any `&str` expression works).
    pub(crate) topic: Expr,
    /// `name = "..."`: the route name (default: the method name).
    pub(crate) name: Option<Expr>,
    /// `group = "..."` or `broadcast`.
    pub(crate) delivery: Option<DeliveryOpt>,
    /// `concurrency = n`.
    pub(crate) concurrency: Option<Expr>,
    /// `retries = n`.
    pub(crate) retries: Option<Expr>,
    /// `envelope = E`.
    pub(crate) envelope: Option<Expr>,
    /// `dead_letter = "topic"`.
    pub(crate) dead_letter: Option<Expr>,
    /// `timeout = "5s"`.
    pub(crate) timeout: Option<DurationOpt>,
    /// `option = expr`, each: a transport-specific option (e.g. a JetStream durable).
    pub(crate) options: Vec<Expr>,
    /// `layer = expr`, each: a tower layer around this route.
    pub(crate) layers: Vec<Expr>,
}

/// Looks through invisible groups (macro_rules fragments) to a literal.
pub(crate) fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(l) => Some(&l.lit),
        Expr::Group(g) => literal(&g.expr),
        Expr::Paren(p) => literal(&p.expr),
        _ => None,
    }
}

/// A string option: a non-empty string literal, or any other (non-literal) expression.
pub(crate) fn string_option(key: &str, value: Expr) -> syn::Result<Expr> {
    match literal(&value) {
        Some(Lit::Str(s)) if s.value().is_empty() => Err(syn::Error::new(
            s.span(),
            format!("`{key}` must not be empty"),
        )),
        Some(Lit::Str(_)) | None => Ok(value),
        Some(other) => Err(syn::Error::new(
            other.span(),
            format!("`{key}` must be a string, e.g. `{key} = \"...\"`"),
        )),
    }
}

/// An integer option: an integer literal that fits (and is at least `min`), or an expression.
pub(crate) fn integer_option<T>(key: &str, value: Expr, min: T) -> syn::Result<Expr>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    if let Expr::Unary(syn::ExprUnary {
        op: syn::UnOp::Neg(_),
        ..
    }) = &value
    {
        return Err(syn::Error::new_spanned(
            &value,
            format!("`{key}` must be at least {min}"),
        ));
    }
    match literal(&value) {
        None => Ok(value),
        Some(Lit::Int(i)) => {
            let n: T = i.base10_parse().map_err(|e| {
                syn::Error::new(i.span(), format!("invalid value for `{key}`: {e}"))
            })?;
            if n < min {
                return Err(syn::Error::new(
                    i.span(),
                    format!("`{key}` must be at least {min}"),
                ));
            }
            Ok(value)
        }
        Some(other) => Err(syn::Error::new(
            other.span(),
            format!("`{key}` must be an integer, e.g. `{key} = 3`"),
        )),
    }
}

impl Parse for RouteArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // The topic comes first. An `option = ...` or a bare option name there means it is missing.
        if input.is_empty() {
            return Err(missing_topic(input.span()));
        }
        let fork = input.fork();
        if let Ok(ident) = fork.call(Ident::parse_any) {
            let name = ident.unraw().to_string();
            if fork.peek(Token![=])
                || (ROUTE_OPTIONS.contains(&name.as_str()) && !fork.peek(Token![::]))
            {
                return Err(missing_topic(ident.span()));
            }
        }
        let topic: Expr = input.parse()?;
        if let Some(lit) = literal(&topic) {
            match lit {
                Lit::Str(s) if s.value().is_empty() => {
                    return Err(syn::Error::new(s.span(), "the topic must not be empty"))
                }
                Lit::Str(_) => {}
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "the topic must be a string, e.g. `#[subscribe(\"orders.created\")]`",
                    ))
                }
            }
        }
        let mut args = RouteArgs {
            topic,
            name: None,
            delivery: None,
            concurrency: None,
            retries: None,
            envelope: None,
            dead_letter: None,
            timeout: None,
            options: Vec::new(),
            layers: Vec::new(),
        };
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key = input.call(Ident::parse_any)?;
            let key_name = key.unraw().to_string();
            if !ROUTE_OPTIONS.contains(&key_name.as_str()) {
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown route option `{key_name}`; the known options are {}",
                        list(ROUTE_OPTIONS)
                    ),
                ));
            }
            if seen.contains(&key_name) && !REPEATABLE_ROUTE_OPTIONS.contains(&key_name.as_str()) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("duplicate option `{key_name}`"),
                ));
            }
            seen.push(key_name.clone());
            if key_name == "broadcast" {
                if input.peek(Token![=]) {
                    return Err(syn::Error::new(
                        key.span(),
                        "`broadcast` takes no value: write `broadcast`",
                    ));
                }
                if args.delivery.is_some() {
                    return Err(both_group_and_broadcast(key.span()));
                }
                args.delivery = Some(DeliveryOpt::Broadcast(key.span()));
                continue;
            }
            if !input.peek(Token![=]) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("`{key_name}` needs a value: `{key_name} = ...`"),
                ));
            }
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            match key_name.as_str() {
                "name" => args.name = Some(string_option("name", value)?),
                "group" => {
                    if args.delivery.is_some() {
                        return Err(both_group_and_broadcast(key.span()));
                    }
                    args.delivery = Some(DeliveryOpt::Group(string_option("group", value)?));
                }
                "concurrency" => {
                    args.concurrency = Some(integer_option::<usize>("concurrency", value, 1)?);
                }
                "retries" => args.retries = Some(integer_option::<u32>("retries", value, 0)?),
                "envelope" => {
                    if let Some(lit) = literal(&value) {
                        return Err(syn::Error::new(
                            lit.span(),
                            "`envelope` takes an envelope value, e.g. `envelope = kumi::envelope::Raw`",
                        ));
                    }
                    args.envelope = Some(value);
                }
                "dead_letter" => args.dead_letter = Some(string_option("dead_letter", value)?),
                "timeout" => args.timeout = Some(timeout_option(value)?),
                "option" => args.options.push(expression_option("option", value)?),
                "layer" => args.layers.push(expression_option("layer", value)?),
                _ => unreachable!("every known option is handled"),
            }
        }
        Ok(args)
    }
}

/// An option whose value is a Rust value (`option`, `layer`): any expression but a literal.
fn expression_option(key: &str, value: Expr) -> syn::Result<Expr> {
    match literal(&value) {
        Some(lit) => Err(syn::Error::new(
            lit.span(),
            format!(
                "`{key}` takes a Rust value, not a literal: e.g. {}",
                match key {
                    "layer" => "`layer = ConcurrencyLimitLayer::new(4)`",
                    _ => "`option = kumi::nats::JetStream::durable()`",
                }
            ),
        )),
        None => Ok(value),
    }
}

fn missing_topic(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "missing topic: the first argument is the topic, e.g. `#[subscribe(\"orders.created\", retries = 3)]`",
    )
}

fn both_group_and_broadcast(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "`group` and `broadcast` cannot be combined: a route either shares messages within a group or gives every instance every message",
    )
}

fn timeout_option(value: Expr) -> syn::Result<DurationOpt> {
    duration_option("timeout", value)
}

/// A duration option: a duration string checked now (see [`parse_duration`]), or any other
/// (non-literal) expression of type `Duration`.
pub(crate) fn duration_option(key: &str, value: Expr) -> syn::Result<DurationOpt> {
    match literal(&value) {
        None => Ok(DurationOpt::Expr(value)),
        Some(Lit::Str(s)) => match parse_duration(&s.value()) {
            Ok(ms) => Ok(DurationOpt::Millis(ms, s.span())),
            Err(e) => Err(syn::Error::new(
                s.span(),
                format!("invalid duration {:?}: {e}", s.value()),
            )),
        },
        Some(other) => Err(syn::Error::new(
            other.span(),
            format!(
                "`{key}` must be a duration string such as \"5s\", \"250ms\", \"2m\" or \"1h\""
            ),
        )),
    }
}

impl RouteArgs {
    /// Parses the arguments of a `#[subscribe(...)]` / `#[request(...)]` attribute.
    pub(crate) fn from_attribute(attr: &Attribute) -> syn::Result<Self> {
        match &attr.meta {
            Meta::List(list) if !list.tokens.is_empty() => list.parse_args(),
            _ => Err(missing_topic(attr.span())),
        }
    }

    /// The `RouteBuilder` calls after `router.subscribe(..)`, the route name first.
    pub(crate) fn builder_calls(&self, default_name: &LitStr) -> TokenStream {
        let mut calls = TokenStream::new();
        match &self.name {
            Some(name) => calls.extend(quote!(.name(#name))),
            None => calls.extend(quote!(.name(#default_name))),
        }
        match &self.delivery {
            Some(DeliveryOpt::Group(group)) => calls.extend(quote!(.group(#group))),
            Some(DeliveryOpt::Broadcast(span)) => {
                calls.extend(quote_spanned!(*span=> .broadcast()))
            }
            None => {}
        }
        if let Some(n) = &self.concurrency {
            calls.extend(quote!(.concurrency(#n)));
        }
        if let Some(n) = &self.retries {
            calls.extend(quote!(.retries(#n)));
        }
        if let Some(envelope) = &self.envelope {
            calls.extend(quote!(.envelope(#envelope)));
        }
        if let Some(topic) = &self.dead_letter {
            calls.extend(quote!(.dead_letter_topic(#topic)));
        }
        if let Some(timeout) = &self.timeout {
            let timeout = timeout.duration();
            calls.extend(quote!(.timeout(#timeout)));
        }
        for option in &self.options {
            calls.extend(quote!(.option(#option)));
        }
        for layer in &self.layers {
            calls.extend(quote!(.layer(#layer)));
        }
        calls
    }
}

/// Parses `"5s"`, `"250ms"`, `"2m"`, `"1h"` or sums of them (`"1m30s"`) into milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration; expected e.g. \"5s\" or \"250ms\"".to_owned());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{}` is too large", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        let factor: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(format!("missing unit after `{number}`; use ms, s, m or h")),
            other => return Err(format!("unknown unit `{other}`; use ms, s, m or h")),
        };
        total = number
            .checked_mul(factor)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| "duration is too large".to_owned())?;
        rest = rest[unit_len..].trim_start();
    }
    if total == 0 {
        return Err("a duration must be greater than zero".to_owned());
    }
    Ok(total)
}

/// `OrderService` -> `order-service`, `HTTPGateway` -> `http-gateway`, `my_service` -> `my-service`.
pub(crate) fn kebab_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' {
            if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            continue;
        }
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(char::is_lowercase),
                _ => false,
            };
            if boundary && !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The default service name of `Self` (its last path segment in kebab case), if there is one.
pub(crate) fn default_service_name(self_ty: &syn::Type) -> Option<String> {
    let syn::Type::Path(path) = self_ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let ident = &path.path.segments.last()?.ident;
    let name = kebab_case(&ident.unraw().to_string());
    is_service_name(&name).then_some(name)
}

/// A `LitStr` printing as `text`, for `quote!`.
pub(crate) fn lit_str(text: &str, span: Span) -> LitStr {
    LitStr::new(text, span)
}

/// Tokens of an expression, for tests.
#[cfg(test)]
fn tokens(t: &impl quote::ToTokens) -> String {
    t.to_token_stream().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn route(attr: Attribute) -> syn::Result<RouteArgs> {
        RouteArgs::from_attribute(&attr)
    }

    fn route_err(attr: Attribute) -> String {
        route(attr).expect_err("should fail").to_string()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(5_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("2m"), Ok(120_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration(" 1m 500ms "), Ok(60_500));
    }

    #[test]
    fn bad_durations() {
        for bad in [
            "",
            "5",
            "s",
            "5x",
            "-5s",
            "1.5s",
            "0s",
            "5 sec",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(parse_duration("5x")
            .unwrap_err()
            .contains("unknown unit `x`"));
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
        assert!(parse_duration("0ms")
            .unwrap_err()
            .contains("greater than zero"));
        assert!(parse_duration("9999999999999h")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn kebab() {
        assert_eq!(kebab_case("OrderService"), "order-service");
        assert_eq!(kebab_case("Orders"), "orders");
        assert_eq!(kebab_case("HTTPGateway"), "http-gateway");
        assert_eq!(kebab_case("Api2Service"), "api2-service");
        assert_eq!(kebab_case("my_service"), "my-service");
        assert_eq!(kebab_case("V2"), "v2");
        assert_eq!(kebab_case("IOHandler_"), "io-handler");
    }

    #[test]
    fn default_names() {
        let ty: syn::Type = parse_quote!(crate::svc::OrderService<T>);
        assert_eq!(default_service_name(&ty).as_deref(), Some("order-service"));
        let ty: syn::Type = parse_quote!(r#Match);
        assert_eq!(default_service_name(&ty).as_deref(), Some("match"));
        let ty: syn::Type = parse_quote!((A, B));
        assert_eq!(default_service_name(&ty), None);
        let ty: syn::Type = parse_quote!(Ünïcode);
        assert_eq!(default_service_name(&ty), None);
    }

    #[test]
    fn service_args() {
        let args: ServiceArgs = syn::parse_str(r#"name = "orders", version = "1.2.0""#).unwrap();
        assert_eq!(args.name.unwrap().value(), "orders");
        assert_eq!(args.version.unwrap().value(), "1.2.0");
        let args: ServiceArgs = syn::parse_str("").unwrap();
        assert!(args.name.is_none() && args.version.is_none());
        let args: ServiceArgs = syn::parse_str(r#"version = "2","#).unwrap();
        assert_eq!(args.version.unwrap().value(), "2");
    }

    #[test]
    fn service_arg_errors() {
        let err = |s: &str| syn::parse_str::<ServiceArgs>(s).unwrap_err().to_string();
        assert_eq!(
            err(r#"nme = "x""#),
            "unknown #[kumi::service] option `nme`; the known options are `name`, `version`"
        );
        assert!(err(r#"name = "a", name = "b""#).contains("duplicate option `name`"));
        assert!(err("name").contains("needs a value"));
        assert!(err("name = 3").contains("string literal"));
        assert!(err(r#"name = "has space""#).contains("A-Z a-z 0-9 _ -"));
        assert!(err(r#"version = """#).contains("must not be empty"));
    }

    #[test]
    fn route_options() {
        let args = route(parse_quote!(#[subscribe(
            "orders.created", retries = 3, concurrency = 8, group = "billing",
            envelope = kumi::envelope::Raw, dead_letter = "orders.failed", timeout = "5s",
            name = "created",
        )]))
        .unwrap();
        assert_eq!(tokens(&args.topic), "\"orders.created\"");
        assert_eq!(tokens(args.retries.as_ref().unwrap()), "3");
        assert_eq!(tokens(args.concurrency.as_ref().unwrap()), "8");
        assert!(
            matches!(&args.delivery, Some(DeliveryOpt::Group(g)) if tokens(g) == "\"billing\"")
        );
        assert_eq!(
            tokens(args.envelope.as_ref().unwrap()),
            "kumi :: envelope :: Raw"
        );
        assert_eq!(
            tokens(args.dead_letter.as_ref().unwrap()),
            "\"orders.failed\""
        );
        assert!(matches!(args.timeout, Some(DurationOpt::Millis(5_000, _))));
        let calls = args
            .builder_calls(&lit_str("on_created", Span::call_site()))
            .to_string();
        assert_eq!(
            calls,
            ". name (\"created\") . group (\"billing\") . concurrency (8) . retries (3) \
             . envelope (kumi :: envelope :: Raw) . dead_letter_topic (\"orders.failed\") \
             . timeout (:: std :: time :: Duration :: from_millis (5000u64))"
        );
    }

    #[test]
    fn route_defaults_and_expressions() {
        let args = route(parse_quote!(#[request("orders.get")])).unwrap();
        assert!(args.name.is_none() && args.delivery.is_none() && args.timeout.is_none());
        let calls = args.builder_calls(&lit_str("get", Span::call_site()));
        assert_eq!(calls.to_string(), ". name (\"get\")");

        let args =
            route(parse_quote!(#[subscribe(TOPIC, broadcast, timeout = LIMIT, retries = N)]))
                .unwrap();
        assert_eq!(tokens(&args.topic), "TOPIC");
        assert!(matches!(args.delivery, Some(DeliveryOpt::Broadcast(_))));
        assert!(matches!(&args.timeout, Some(DurationOpt::Expr(e)) if tokens(e) == "LIMIT"));
        let calls = args.builder_calls(&lit_str("audit", Span::call_site()));
        assert_eq!(
            calls.to_string(),
            ". name (\"audit\") . broadcast () . retries (N) . timeout (LIMIT)"
        );

        // A path topic that starts like an option name is still a topic.
        let args = route(parse_quote!(#[subscribe(name::TOPIC)])).unwrap();
        assert_eq!(tokens(&args.topic), "name :: TOPIC");
    }

    #[test]
    fn route_errors() {
        let unknown = route_err(parse_quote!(#[subscribe("t", retry = 3)]));
        assert_eq!(
            unknown,
            "unknown route option `retry`; the known options are `name`, `group`, `broadcast`, \
             `concurrency`, `retries`, `envelope`, `dead_letter`, `timeout`, `option`, `layer`"
        );
        for attr in [
            parse_quote!(#[subscribe]),
            parse_quote!(#[subscribe()]),
            parse_quote!(#[subscribe(retries = 3)]),
            parse_quote!(#[subscribe(broadcast)]),
            parse_quote!(#[subscribe = "t"]),
        ] {
            assert!(route_err(attr).starts_with("missing topic"));
        }
        assert!(
            route_err(parse_quote!(#[subscribe("t", group = "g", broadcast)]))
                .contains("`group` and `broadcast` cannot be combined")
        );
        assert!(
            route_err(parse_quote!(#[subscribe("t", broadcast, group = "g")]))
                .contains("`group` and `broadcast` cannot be combined")
        );
        assert!(
            route_err(parse_quote!(#[subscribe("t", retries = 1, retries = 2)]))
                .contains("duplicate option `retries`")
        );
        assert!(
            route_err(parse_quote!(#[subscribe("t", timeout = "5 parsecs")]))
                .starts_with("invalid duration \"5 parsecs\": unknown unit `parsecs`")
        );
        assert!(route_err(parse_quote!(#[subscribe("t", timeout = 5)])).contains("duration string"));
        assert!(route_err(parse_quote!(#[subscribe("t", concurrency = 0)]))
            .contains("`concurrency` must be at least 1"));
        assert!(route_err(parse_quote!(#[subscribe("t", retries = -1)])).contains("retries"));
        assert!(route_err(parse_quote!(#[subscribe("t", retries = "3")])).contains("integer"));
        assert!(route_err(parse_quote!(#[subscribe("t", group = 3)])).contains("string"));
        assert!(
            route_err(parse_quote!(#[subscribe("t", group = "")])).contains("must not be empty")
        );
        assert!(
            route_err(parse_quote!(#[subscribe("t", broadcast = true)])).contains("takes no value")
        );
        assert!(route_err(parse_quote!(#[subscribe("t", retries)])).contains("needs a value"));
        assert!(
            route_err(parse_quote!(#[subscribe("t", envelope = "raw")])).contains("envelope value")
        );
        assert!(route_err(parse_quote!(#[subscribe("")])).contains("topic must not be empty"));
        assert!(route_err(parse_quote!(#[subscribe(42)])).contains("topic must be a string"));
    }
}
