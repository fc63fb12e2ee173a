//! One route attribute, expanded generically: `#[NAME(positional.., key = value, flag)]` on a
//! method becomes
//!
//! ```text
//! router.NAME(positional.., <closure calling the method>).name("method").key(value).flag();
//! ```
//!
//! preceded by the checks of the method's signature that `kumi::__macro::NAME` defines. Nothing
//! here knows a transport, a trigger or an option: the router method and the builder methods
//! check what they are given, each in its own crate.

use std::collections::HashMap;

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, FnArg, Ident, ImplItemFn, Meta, Receiver, ReturnType, Token, Type};

use crate::service::lit_str;

/// One argument of a route attribute.
#[derive(Debug)]
pub(crate) enum Arg {
    /// An expression passed to the router method before the handler.
    Positional(Expr),
    /// `key = value`: the builder call `.key(value)`; a tuple value `(a, b)` is the call's
    /// arguments, `.key(a, b)`.
    Option { key: Ident, value: Expr },
    /// A bare lower-case name: the builder call `.flag()`.
    Flag(Ident),
}

impl Arg {
    fn span(&self) -> Span {
        match self {
            Arg::Positional(expr) => first_span(expr),
            Arg::Option { key, .. } | Arg::Flag(key) => key.span(),
        }
    }
}

/// Whether a bare identifier is a flag (`broadcast`) rather than a positional value (`GET`,
/// `TOPIC`, `Raw`): flags are builder methods, named in lower case like every Rust method.
fn is_flag_name(ident: &Ident) -> bool {
    ident
        .unraw()
        .to_string()
        .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            return Ok(Arg::Option { key, value });
        }
        let fork = input.fork();
        if let Ok(ident) = fork.parse::<Ident>() {
            if (fork.is_empty() || fork.peek(Token![,])) && is_flag_name(&ident) {
                input.parse::<Ident>()?;
                return Ok(Arg::Flag(ident));
            }
        }
        Ok(Arg::Positional(input.parse()?))
    }
}

/// The arguments of a route attribute, in order: positional ones first.
#[derive(Debug, Default)]
pub(crate) struct RouteArgs {
    pub(crate) args: Vec<Arg>,
}

impl Parse for RouteArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let args = Punctuated::<Arg, Token![,]>::parse_terminated(input)?
            .into_iter()
            .collect();
        Ok(RouteArgs { args })
    }
}

impl RouteArgs {
    /// The arguments of `#[NAME(..)]`; none for `#[NAME]`.
    pub(crate) fn from_attribute(attr: &Attribute) -> syn::Result<Self> {
        let name = attr
            .path()
            .get_ident()
            .map(|n| n.unraw().to_string())
            .unwrap_or_default();
        let args: RouteArgs = match &attr.meta {
            Meta::Path(_) => RouteArgs::default(),
            Meta::List(list) => list.parse_args()?,
            Meta::NameValue(_) => {
                return Err(syn::Error::new_spanned(
                    attr,
                    format!(
                        "write the arguments of a route attribute in parentheses: `#[{name}(..)]`"
                    ),
                ))
            }
        };
        args.check_order(&name)?;
        Ok(args)
    }

    /// Positional arguments come before options and flags.
    fn check_order(&self, name: &str) -> syn::Result<()> {
        let args = &self.args;
        let Some(first_named) = args.iter().position(|a| !matches!(a, Arg::Positional(_))) else {
            return Ok(());
        };
        let Some(late) = args[first_named..]
            .iter()
            .find(|a| matches!(a, Arg::Positional(_)))
        else {
            return Ok(());
        };
        let hint = match &args[first_named] {
            Arg::Flag(flag) => format!(
                " (`{flag}` is a flag: a bare lower-case name calls `.{flag}()` on the route; \
                 to pass a value named in lower case, write it in parentheses: `({flag})`)"
            ),
            _ => String::new(),
        };
        Err(syn::Error::new(
            late.span(),
            format!(
                "positional arguments come first, then `key = value` options and flags: \
                 `#[{name}(\"..\", key = value, flag)]`{hint}"
            ),
        ))
    }

    /// Whether the attribute names the route itself (`name = ..`).
    fn has_name(&self) -> bool {
        self.args
            .iter()
            .any(|a| matches!(a, Arg::Option { key, .. } if key == "name"))
    }
}

/// What the route expansion needs to know of the impl block: its methods by name, for option
/// values naming one (`on_connect = joined`).
pub(crate) struct Methods<'a>(pub(crate) HashMap<String, &'a ImplItemFn>);

impl<'a> Methods<'a> {
    pub(crate) fn of(items: impl IntoIterator<Item = &'a ImplItemFn>) -> Self {
        Methods(
            items
                .into_iter()
                .map(|f| (f.sig.ident.unraw().to_string(), f))
                .collect(),
        )
    }

    /// The value of an option: a bare name of a method of the impl block is that method, as a
    /// handler closure for an `async fn` (taking the service first, like a route handler) and as
    /// `Self::name` otherwise; anything else is passed as written.
    fn value(&self, value: &Expr) -> syn::Result<TokenStream> {
        if let Expr::Path(path) = value {
            if path.qself.is_none() && path.attrs.is_empty() {
                if let Some(ident) = path.path.get_ident() {
                    if let Some(f) = self.0.get(&ident.unraw().to_string()) {
                        if f.sig.asyncness.is_some() {
                            return handler_closure(f, ident.span());
                        }
                        let method = &f.sig.ident;
                        return Ok(quote_spanned!(ident.span()=> Self::#method));
                    }
                }
            }
        }
        Ok(value.to_token_stream())
    }
}

/// The statement registering one route attribute `#[name(..)]` of method `f`.
pub(crate) fn route(
    name: &Ident,
    attr: &Attribute,
    f: &ImplItemFn,
    methods: &Methods<'_>,
) -> syn::Result<TokenStream> {
    let args = RouteArgs::from_attribute(attr)?;
    let closure = handler_closure(f, f.sig.ident.span())?;
    let checks = checks(f);

    let mut positional = Vec::new();
    let mut calls = TokenStream::new();
    if !args.has_name() {
        let method = &f.sig.ident;
        let default_name = lit_str(&method.unraw().to_string(), method.span());
        calls.extend(quote_spanned!(method.span()=> .name(#default_name)));
    }
    for arg in &args.args {
        match arg {
            Arg::Positional(expr) => positional.push(expr.to_token_stream()),
            Arg::Flag(flag) => calls.extend(quote_spanned!(flag.span()=> .#flag())),
            Arg::Option { key, value } => {
                let values = match value {
                    Expr::Tuple(tuple) if tuple.attrs.is_empty() => tuple
                        .elems
                        .iter()
                        .map(|v| methods.value(v))
                        .collect::<syn::Result<Vec<_>>>()?,
                    _ => vec![methods.value(value)?],
                };
                calls.extend(quote_spanned!(key.span()=> .#key(#(#values),*)));
            }
        }
    }
    let cfgs = f.attrs.iter().filter(|a| a.path().is_ident("cfg"));
    let method = Ident::new(&name.unraw().to_string(), name.span());
    let dispatch = Ident::new(&name.unraw().to_string(), Span::call_site());
    Ok(quote! {
        #(#cfgs)*
        {
            ::kumi::__route!(#dispatch);
            #[allow(unused_imports)]
            use __kumi_route::scope::*;
            #checks
            __kumi_router.#method(#(#positional,)* #closure) #calls;
        }
    })
}

/// The span of the first token of `tokens`, or the call site.
fn first_span(tokens: &impl ToTokens) -> Span {
    tokens
        .to_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

/// The span of the last token of `tokens`, or the call site.
fn last_span(tokens: &impl ToTokens) -> Span {
    tokens
        .to_token_stream()
        .into_iter()
        .last()
        .map_or_else(Span::call_site, |t: TokenTree| t.span())
}

/// `::kumi::__macro::PhantomData::<ty>` spanning what `lo` and `hi` span (rustc joins the spans
/// of an expression's first and last tokens), so an unsatisfied bound on it underlines that.
fn phantom(ty: TokenStream, lo: Span, hi: Span) -> TokenStream {
    let open = quote_spanned!(lo=> ::kumi::__macro::PhantomData::<);
    let close = quote_spanned!(hi=> >);
    quote!(#open #ty #close)
}

/// `__kumi_route::check(__kumi_router, value);`, the call spanning `lo` to `hi` like the value,
/// so that a bound blamed on the call rather than on its argument underlines the same tokens.
fn check_call(check: &str, value: TokenStream, lo: Span, hi: Span) -> TokenStream {
    let module = Ident::new("__kumi_route", lo);
    let check = Ident::new(check, hi);
    let path_sep = quote_spanned!(hi=> ::);
    let mut args = Group::new(
        Delimiter::Parenthesis,
        quote_spanned!(lo=> __kumi_router, #value),
    );
    args.set_span(hi);
    quote_spanned!(lo=> #module #path_sep #check #args;)
}

/// The checks of `f`'s signature by the route's module (`__kumi_route`): each argument, the
/// return type, the parameters as a whole, and the future.
fn checks(f: &ImplItemFn) -> TokenStream {
    let method = &f.sig.ident;
    let span = method.span();
    let mut checks = TokenStream::new();
    let typed: Vec<&syn::PatType> = f
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(arg) => Some(arg),
            FnArg::Receiver(_) => None,
        })
        .collect();
    for (i, arg) in typed.iter().enumerate() {
        let ty = &arg.ty;
        let (lo, hi) = (first_span(ty), last_span(ty));
        let check = if i + 1 == typed.len() {
            "last_argument"
        } else {
            "argument"
        };
        let value = phantom(ty.to_token_stream(), lo, hi);
        checks.extend(check_call(check, value, lo, hi));
    }
    if let ReturnType::Type(_, ty) = &f.sig.output {
        if !contains_impl_trait(ty) {
            let (lo, hi) = (first_span(ty), last_span(ty));
            let value = phantom(ty.to_token_stream(), lo, hi);
            checks.extend(check_call("output", value, lo, hi));
        }
    }
    let params = f.sig.inputs.iter().map(|input| match input {
        FnArg::Receiver(_) => quote!(::std::sync::Arc<Self>),
        FnArg::Typed(arg) => arg.ty.to_token_stream(),
    });
    let (lo, hi) = match (f.sig.inputs.first(), f.sig.inputs.last()) {
        (Some(first), Some(last)) => (first_span(first), last_span(last)),
        _ => (span, span),
    };
    let value = phantom(quote!((#(#params,)*)), lo, hi);
    checks.extend(check_call("signature", value, lo, hi));
    let values = f
        .sig
        .inputs
        .iter()
        .map(|_| quote_spanned!(span=> ::kumi::__macro::value()));
    checks.extend(quote_spanned! {span=>
        let _ = || __kumi_route::future(Self::#method(#(#values),*));
    });
    checks
}

/// Whether a type mentions `impl Trait`, which cannot be named in the function body.
fn contains_impl_trait(ty: &Type) -> bool {
    fn any_impl(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            TokenTree::Ident(i) => i == "impl",
            TokenTree::Group(g) => any_impl(g.stream()),
            _ => false,
        })
    }
    any_impl(ty.to_token_stream())
}

/// A closure calling the method, with one fresh, typed parameter per method argument (the
/// method's own patterns, like `Data(order)`, stay in the method). Methods with a receiver get the
/// service as an `Arc<Self>` extractor and are called with method syntax, which fits `&self`,
/// `self: Arc<Self>` and `self: &Arc<Self>` alike.
pub(crate) fn handler_closure(f: &ImplItemFn, span: Span) -> syn::Result<TokenStream> {
    let mut receiver = false;
    let mut params = Vec::new();
    let mut call_args = Vec::new();
    for (i, input) in f.sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(r) => {
                check_handler_receiver(r)?;
                receiver = true;
            }
            FnArg::Typed(arg) => {
                if let Type::ImplTrait(_) = &*arg.ty {
                    return Err(syn::Error::new_spanned(
                        &arg.ty,
                        "handler arguments need concrete types (extractors such as `Data<T>`), not `impl Trait`",
                    ));
                }
                let ident = format_ident!("__kumi_arg{}", i, span = span);
                let ty = &arg.ty;
                params.push(quote_spanned!(span=> #ident: #ty));
                call_args.push(ident);
            }
        }
    }
    let method = &f.sig.ident;
    Ok(if receiver {
        quote_spanned! {span=>
            |__kumi_this: ::std::sync::Arc<Self>, #(#params),*| async move {
                __kumi_this.#method(#(#call_args),*).await
            }
        }
    } else {
        quote_spanned! {span=>
            |#(#params),*| async move { Self::#method(#(#call_args),*).await }
        }
    })
}

fn check_handler_receiver(r: &Receiver) -> syn::Result<()> {
    let by_value = r.reference.is_none() && r.colon_token.is_none();
    let mutable = matches!(&*r.ty, Type::Reference(t) if t.mutability.is_some());
    if by_value || mutable {
        return Err(syn::Error::new_spanned(
            r,
            "handlers share the service: take `&self` (with interior mutability for state) or `self: Arc<Self>`",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn args(attr: Attribute) -> Vec<Arg> {
        RouteArgs::from_attribute(&attr).expect("parses").args
    }

    fn kinds(args: &[Arg]) -> Vec<String> {
        args.iter()
            .map(|a| match a {
                Arg::Positional(e) => format!("pos {}", e.to_token_stream()),
                Arg::Option { key, value } => format!("opt {key} = {}", value.to_token_stream()),
                Arg::Flag(f) => format!("flag {f}"),
            })
            .collect()
    }

    #[test]
    fn positional_options_and_flags() {
        let parsed = args(parse_quote!(#[subscribe(
            "orders.created", retries = 3, broadcast, envelope = kumi::envelope::Raw,
            backoff = ("1s", "30s"), immediately,
        )]));
        assert_eq!(
            kinds(&parsed),
            [
                "pos \"orders.created\"",
                "opt retries = 3",
                "flag broadcast",
                "opt envelope = kumi :: envelope :: Raw",
                "opt backoff = (\"1s\" , \"30s\")",
                "flag immediately",
            ]
        );
        // Upper-case and camel-case names, paths, calls and `self` expressions are values.
        let parsed = args(parse_quote!(#[http(GET, "/x", layer = Tag)]));
        assert_eq!(kinds(&parsed), ["pos GET", "pos \"/x\"", "opt layer = Tag"]);
        let parsed = args(parse_quote!(#[subscribe(TOPIC, (topic), self.topic(), Raw, a::b)]));
        assert_eq!(
            kinds(&parsed),
            [
                "pos TOPIC",
                "pos (topic)",
                "pos self . topic ()",
                "pos Raw",
                "pos a :: b"
            ]
        );
        // `==` is a comparison, not an option.
        let parsed = args(parse_quote!(#[route(a == b)]));
        assert_eq!(kinds(&parsed), ["pos a == b"]);
        assert!(args(parse_quote!(#[request])).is_empty());
        assert!(args(parse_quote!(#[request()])).is_empty());
    }

    #[test]
    fn positional_arguments_come_first() {
        let err = RouteArgs::from_attribute(&parse_quote!(#[subscribe(retries = 3, "t")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("positional arguments come first"), "{err}");
        let err = RouteArgs::from_attribute(&parse_quote!(#[http(get, "/x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`get` is a flag"), "{err}");
        let err = RouteArgs::from_attribute(&parse_quote!(#[schedule = "hourly"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`#[schedule(..)]`"), "{err}");
    }
}
