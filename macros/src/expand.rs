//! The expansion of `#[service]`: the `Service` impl, built from the attributed methods.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{
    Attribute, FnArg, GenericParam, ImplItem, ImplItemFn, Item, ItemImpl, Meta, Receiver,
    ReturnType, Type,
};

use crate::options::{default_service_name, lit_str, RouteArgs, ServiceArgs};
use crate::transports::{HttpArgs, HttpErrorArgs, ScheduleArgs, WebSocketArgs};

/// A route trigger: a bus route, an HTTP route or error handler, a websocket endpoint or a
/// schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteKind {
    Subscribe,
    Request,
    Http,
    HttpError,
    WebSocket,
    Schedule,
}

impl RouteKind {
    const ALL: [RouteKind; 6] = [
        RouteKind::Subscribe,
        RouteKind::Request,
        RouteKind::Http,
        RouteKind::HttpError,
        RouteKind::WebSocket,
        RouteKind::Schedule,
    ];

    fn name(self) -> &'static str {
        match self {
            RouteKind::Subscribe => "subscribe",
            RouteKind::Request => "request",
            RouteKind::Http => "http",
            RouteKind::HttpError => "http_error",
            RouteKind::WebSocket => "websocket",
            RouteKind::Schedule => "schedule",
        }
    }
}

/// A lifecycle hook of the `Service` trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    Starting,
    Started,
    Stopping,
    Stopped,
}

impl Hook {
    const ALL: [Hook; 4] = [Hook::Starting, Hook::Started, Hook::Stopping, Hook::Stopped];

    fn name(self) -> &'static str {
        match self {
            Hook::Starting => "starting",
            Hook::Started => "started",
            Hook::Stopping => "stopping",
            Hook::Stopped => "stopped",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether the trait method gets a `&Client` (every hook but `stopped`).
    fn has_client(self) -> bool {
        self != Hook::Stopped
    }
}

/// One of the attributes this macro consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KumiAttr {
    Route(RouteKind),
    Hook(Hook),
    /// `#[routes]`: a plain method that adds to the router after the attributed routes.
    Routes,
}

impl KumiAttr {
    fn of(attr: &Attribute) -> Option<Self> {
        let ident = attr.path().get_ident()?;
        let name = ident.to_string();
        if let Some(kind) = RouteKind::ALL.iter().find(|k| k.name() == name) {
            return Some(KumiAttr::Route(*kind));
        }
        if name == "routes" {
            return Some(KumiAttr::Routes);
        }
        Some(KumiAttr::Hook(
            *Hook::ALL.iter().find(|h| h.name() == name)?,
        ))
    }

    fn name(self) -> &'static str {
        match self {
            KumiAttr::Route(kind) => kind.name(),
            KumiAttr::Hook(h) => h.name(),
            KumiAttr::Routes => "routes",
        }
    }
}

/// Collected errors, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn check<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }
}

/// Removes this macro's attributes from every item of the impl block.
fn strip_attributes(imp: &mut ItemImpl) {
    for item in &mut imp.items {
        if let Some(attrs) = item_attrs(item) {
            attrs.retain(|a| KumiAttr::of(a).is_none());
        }
    }
}

fn item_attrs(item: &mut ImplItem) -> Option<&mut Vec<Attribute>> {
    match item {
        ImplItem::Fn(f) => Some(&mut f.attrs),
        ImplItem::Const(c) => Some(&mut c.attrs),
        ImplItem::Type(t) => Some(&mut t.attrs),
        ImplItem::Macro(m) => Some(&mut m.attrs),
        _ => None,
    }
}

/// Expands `#[service(args)] input`.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse2::<Item>(input) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error(),
    };
    let mut imp = match item {
        Item::Impl(imp) => imp,
        other => {
            let error = syn::Error::new(
                Span::call_site(),
                "#[kumi::service] goes on an inherent `impl` block: `#[kumi::service] impl MyService { ... }`",
            );
            let error = error.to_compile_error();
            return quote!(#error #other);
        }
    };
    if let Some((_, path, _)) = &imp.trait_ {
        let error = syn::Error::new_spanned(
            path,
            "#[kumi::service] goes on an inherent `impl` block (`impl MyService { ... }`), not on a trait impl",
        )
        .to_compile_error();
        strip_attributes(&mut imp);
        return quote!(#error #imp);
    }

    let mut errors = Errors::default();
    let args = errors
        .check(syn::parse2::<ServiceArgs>(args))
        .unwrap_or_default();
    let service = Builder::collect(&imp, &mut errors);
    strip_attributes(&mut imp);

    let name = match (&args.name, default_service_name(&imp.self_ty)) {
        (Some(name), _) => name.clone(),
        (None, Some(name)) => lit_str(&name, Span::call_site()),
        (None, None) => {
            errors.push(syn::Error::new_spanned(
                &imp.self_ty,
                "cannot derive a service name from this type; name it: `#[kumi::service(name = \"my-service\")]`",
            ));
            lit_str("", Span::call_site())
        }
    };

    let (impl_generics, _, where_clause) = imp.generics.split_for_impl();
    let self_ty = &imp.self_ty;

    if let Some(error) = errors.0 {
        // Still implement `Service` (without routes) so that the errors above are the only ones.
        let error = error.to_compile_error();
        return quote! {
            #error
            #imp
            impl #impl_generics ::kumi::Service for #self_ty #where_clause {
                fn name(&self) -> &str { #name }
                fn routes(&self, _: &mut ::kumi::Router<Self>) {}
            }
        };
    }

    let version = args.version.map(|v| {
        quote! {
            fn version(&self) -> &str { #v }
        }
    });
    let routes = &service.routes;
    let extra_routes = service.extra_routes.as_ref().map(|(_, call)| call);
    let hooks: Vec<&TokenStream> = service.hooks.iter().flatten().map(|(_, t)| t).collect();
    let async_trait = (!hooks.is_empty()).then(|| quote!(#[::kumi::async_trait]));
    quote! {
        #imp

        #async_trait
        impl #impl_generics ::kumi::Service for #self_ty #where_clause {
            fn name(&self) -> &str {
                #name
            }

            #version

            fn routes(&self, __kumi_router: &mut ::kumi::Router<Self>) {
                #(#routes)*
                #extra_routes
            }

            #(#hooks)*
        }
    }
}

/// The pieces of the `Service` impl.
struct Builder {
    /// One `router.subscribe(..)...;` statement per route attribute.
    routes: Vec<TokenStream>,
    /// The `#[routes]` method, called after them: `self.method(router);`.
    extra_routes: Option<(syn::Ident, TokenStream)>,
    /// Per hook: the method it calls (for duplicate errors) and the trait method.
    hooks: [Option<(syn::Ident, TokenStream)>; 4],
    /// The methods of the impl block without a receiver (websocket hooks call them as
    /// associated functions).
    static_methods: HashSet<String>,
    /// Schedule route names known at expansion time, with the method that has them: two
    /// schedules of one service with one name fail at startup, so that is caught here.
    schedule_names: Vec<(String, syn::Ident)>,
}

impl Builder {
    fn collect(imp: &ItemImpl, errors: &mut Errors) -> Self {
        let static_methods = imp
            .items
            .iter()
            .filter_map(|item| match item {
                ImplItem::Fn(f) if f.sig.receiver().is_none() => {
                    Some(f.sig.ident.unraw().to_string())
                }
                _ => None,
            })
            .collect();
        let mut this = Builder {
            routes: Vec::new(),
            extra_routes: None,
            hooks: Default::default(),
            static_methods,
            schedule_names: Vec::new(),
        };
        for item in &imp.items {
            match item {
                ImplItem::Fn(f) => this.method(f, errors),
                ImplItem::Const(c) => not_a_method(&c.attrs, errors),
                ImplItem::Type(t) => not_a_method(&t.attrs, errors),
                ImplItem::Macro(m) => not_a_method(&m.attrs, errors),
                _ => {}
            }
        }
        this
    }

    fn method(&mut self, f: &ImplItemFn, errors: &mut Errors) {
        let attrs: Vec<(KumiAttr, &Attribute)> = f
            .attrs
            .iter()
            .filter_map(|a| KumiAttr::of(a).map(|k| (k, a)))
            .collect();
        let Some(&(first, _)) = attrs.first() else {
            return;
        };
        if let Some((_, attr)) = attrs.iter().find(|(k, _)| *k == KumiAttr::Routes) {
            if attrs.len() > 1 {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "a `#[routes]` method carries no other kumi attribute",
                ));
                return;
            }
            if let Some(call) = errors.check(routes_method(attr, f)) {
                if let Some((other, _)) = &self.extra_routes {
                    errors.push(syn::Error::new_spanned(
                        attr,
                        format!("duplicate `#[routes]` method: `{other}` already is; a service has at most one"),
                    ));
                } else {
                    self.extra_routes = Some((f.sig.ident.clone(), call));
                }
            }
            return;
        }
        let is_route = |k: &KumiAttr| matches!(k, KumiAttr::Route(_));
        if attrs.iter().any(|(k, _)| is_route(k)) && attrs.iter().any(|(k, _)| !is_route(k)) {
            let (_, hook_attr) = attrs.iter().find(|(k, _)| !is_route(k)).expect("a hook");
            errors.push(syn::Error::new_spanned(
                hook_attr,
                "a method is either a route handler (`#[subscribe]`, `#[request]`, `#[http]`, `#[http_error]`, `#[websocket]`, `#[schedule]`) or a lifecycle hook, not both",
            ));
            return;
        }
        if f.sig.asyncness.is_none() {
            let fn_token = &f.sig.fn_token;
            let ident = &f.sig.ident;
            errors.push(syn::Error::new_spanned(
                quote!(#fn_token #ident),
                format!(
                    "`#[{}]` methods must be `async fn`: `async fn {}(..)`",
                    first.name(),
                    f.sig.ident
                ),
            ));
            return;
        }
        if let Some(param) = f
            .sig
            .generics
            .params
            .iter()
            .find(|p| !matches!(p, GenericParam::Lifetime(_)))
        {
            errors.push(syn::Error::new_spanned(
                param,
                format!(
                    "`#[{}]` methods cannot have type or const parameters; put them on the impl block",
                    first.name()
                ),
            ));
            return;
        }
        for (kind, attr) in attrs {
            match kind {
                KumiAttr::Route(kind) => {
                    if let Some(route) = errors.check(self.route(kind, attr, f)) {
                        self.routes.push(route);
                    }
                }
                // Handled (and returned from) above.
                KumiAttr::Routes => {}
                KumiAttr::Hook(hook) => {
                    if let Meta::List(_) | Meta::NameValue(_) = &attr.meta {
                        errors.push(syn::Error::new_spanned(
                            attr,
                            format!("`#[{}]` takes no arguments", hook.name()),
                        ));
                        continue;
                    }
                    if let Some((first, _)) = &self.hooks[hook.index()] {
                        errors.push(syn::Error::new_spanned(
                            attr,
                            format!(
                                "duplicate `#[{0}]` hook: `{1}` is already the `{0}` hook; a service has at most one of each",
                                hook.name(),
                                first
                            ),
                        ));
                        continue;
                    }
                    if let Some(tokens) = errors.check(hook_method(hook, f)) {
                        self.hooks[hook.index()] = Some((f.sig.ident.clone(), tokens));
                    }
                }
            }
        }
    }

    /// The registration statement of one route attribute on `f`.
    fn route(
        &mut self,
        kind: RouteKind,
        attr: &Attribute,
        f: &ImplItemFn,
    ) -> syn::Result<TokenStream> {
        let method = &f.sig.ident;
        let method_name = method.unraw().to_string();
        let default_name = lit_str(&method_name, method.span());
        match kind {
            RouteKind::Subscribe | RouteKind::Request => bus_route(kind, attr, f),
            RouteKind::Http => {
                let args = HttpArgs::from_attribute(attr)?;
                Ok(args.registration(&handler_closure(f)?, &default_name))
            }
            RouteKind::HttpError => {
                let args = HttpErrorArgs::from_attribute(attr)?;
                Ok(args.registration(&handler_closure(f)?))
            }
            RouteKind::WebSocket => {
                let args = WebSocketArgs::from_attribute(attr)?;
                check_websocket_handler(f)?;
                let closure = handler_closure(f)?;
                Ok(args.registration(&closure, &default_name, &self.static_methods))
            }
            RouteKind::Schedule => {
                let args = ScheduleArgs::from_attribute(attr)?;
                let closure = handler_closure(f)?;
                if let Some(name) = args.known_name(&method_name) {
                    if let Some((_, other)) = self.schedule_names.iter().find(|(n, _)| *n == name) {
                        let holder = if *other == *method {
                            "another `#[schedule]` of this method".to_owned()
                        } else {
                            format!("the `#[schedule]` of `{other}`")
                        };
                        return Err(syn::Error::new_spanned(
                            attr,
                            format!(
                                "{holder} already has the route name \"{name}\" (a schedule is named after its method by default); \
                                 schedule names are unique per service, so name this one: `#[schedule(.., name = \"{method_name}_2\")]`"
                            ),
                        ));
                    }
                    self.schedule_names.push((name, method.clone()));
                }
                Ok(args.registration(&closure, &default_name))
            }
        }
    }
}

/// The call of a `#[routes]` method: `fn name(&self, router: &mut kumi::Router<Self>)`, plain
/// (not async), taking no attribute arguments.
fn routes_method(attr: &Attribute, f: &ImplItemFn) -> syn::Result<TokenStream> {
    if let Meta::List(_) | Meta::NameValue(_) = &attr.meta {
        return Err(syn::Error::new_spanned(
            attr,
            "`#[routes]` takes no arguments",
        ));
    }
    let ident = &f.sig.ident;
    let shape = format!(
        "a `#[routes]` method is a plain `fn {ident}(&self, router: &mut kumi::Router<Self>)`"
    );
    if f.sig.asyncness.is_some() {
        return Err(syn::Error::new_spanned(
            f.sig.asyncness,
            format!("{shape}, not async"),
        ));
    }
    let takes_router = matches!(
        f.sig.inputs.iter().collect::<Vec<_>>().as_slice(),
        [FnArg::Receiver(r), FnArg::Typed(_)] if r.reference.is_some() && r.mutability.is_none()
    );
    if !takes_router {
        return Err(syn::Error::new_spanned(&f.sig.inputs, shape));
    }
    Ok(quote!(self.#ident(__kumi_router);))
}

/// A websocket handler gets the service and the session: `(&self, Session)`,
/// `(self: Arc<Self>, Session)` or, without a receiver, `(Arc<Self>, Session)`.
fn check_websocket_handler(f: &ImplItemFn) -> syn::Result<()> {
    if f.sig.inputs.len() == 2 {
        return Ok(());
    }
    let ident = &f.sig.ident;
    let example = if f.sig.receiver().is_some() {
        format!("`async fn {ident}(&self, session: kumi::websocket::Session)`")
    } else {
        format!("`async fn {ident}(this: Arc<Self>, session: kumi::websocket::Session)`")
    };
    let message = format!("a `#[websocket]` handler takes the service and the session: {example}");
    Err(if f.sig.inputs.is_empty() {
        syn::Error::new(ident.span(), message)
    } else {
        syn::Error::new_spanned(&f.sig.inputs, message)
    })
}

fn not_a_method(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs {
        if let Some(kind) = KumiAttr::of(attr) {
            errors.push(syn::Error::new_spanned(
                attr,
                format!(
                    "`#[{}]` only applies to {} of the #[kumi::service] impl block",
                    kind.name(),
                    if kind == KumiAttr::Routes {
                        "methods"
                    } else {
                        "`async fn` methods"
                    }
                ),
            ));
        }
    }
}

/// `router.subscribe(topic, |this, args..| async move { this.method(args..).await }).name(..)..;`
fn bus_route(kind: RouteKind, attr: &Attribute, f: &ImplItemFn) -> syn::Result<TokenStream> {
    let args = RouteArgs::from_attribute(attr)?;
    let closure = handler_closure(f)?;
    let method = &f.sig.ident;
    let register = format_ident!("{}", kind.name(), span = method.span());
    let topic = &args.topic;
    let calls = args.builder_calls(&lit_str(&method.unraw().to_string(), method.span()));
    Ok(quote! {
        __kumi_router.#register(#topic, #closure) #calls;
    })
}

/// A closure calling the method, with one fresh, typed parameter per method argument (the
/// method's own patterns, like `Data(order)`, stay in the method). Methods with a receiver get the
/// service as an `Arc<Self>` extractor and are called with method syntax, which fits `&self`,
/// `self: Arc<Self>` and `self: &Arc<Self>` alike.
fn handler_closure(f: &ImplItemFn) -> syn::Result<TokenStream> {
    let span = f.sig.ident.span();
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

/// The `Service` hook method calling `f`.
fn hook_method(hook: Hook, f: &ImplItemFn) -> syn::Result<TokenStream> {
    let mut receiver = false;
    let mut typed = Vec::new();
    for input in &f.sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                if !matches!(&*r.ty, Type::Reference(t) if t.mutability.is_none()) {
                    return Err(syn::Error::new_spanned(
                        r,
                        format!("the `{}` hook takes `&self`", hook.name()),
                    ));
                }
                receiver = true;
            }
            FnArg::Typed(arg) => typed.push(arg),
        }
    }
    let max = usize::from(hook.has_client());
    if typed.len() > max {
        let extra = typed[max];
        let expected = if hook.has_client() {
            format!(
                "the `{}` hook takes `&self` and optionally `client: &kumi::Client`",
                hook.name()
            )
        } else {
            "the `stopped` hook takes only `&self` (publishing is no longer possible)".to_owned()
        };
        return Err(syn::Error::new_spanned(extra, expected));
    }
    let method = &f.sig.ident;
    let client = (!typed.is_empty()).then(|| quote!(__kumi_client));
    let call = if receiver {
        quote!(self.#method(#client))
    } else {
        quote!(Self::#method(#client))
    };
    let body = match &f.sig.output {
        ReturnType::Default => quote! {
            #call.await;
            ::std::result::Result::Ok(())
        },
        ReturnType::Type(..) => quote! {
            ::std::result::Result::map_err(#call.await, ::std::convert::Into::into)
        },
    };
    let name = format_ident!("{}", hook.name());
    let params = if hook.has_client() {
        quote!(&self, __kumi_client: &::kumi::Client)
    } else {
        quote!(&self)
    };
    Ok(quote! {
        async fn #name(#params) -> ::std::result::Result<(), ::kumi::BoxError> {
            #body
        }
    })
}

/// Rendered tokens, for tests.
#[cfg(test)]
fn render(t: impl quote::ToTokens) -> String {
    t.to_token_stream().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(args: TokenStream, input: TokenStream) -> String {
        let out = render(expand(args, input));
        assert!(!out.contains("compile_error"), "unexpected error: {out}");
        out
    }

    fn err(args: TokenStream, input: TokenStream) -> String {
        let out = render(expand(args, input));
        assert!(out.contains("compile_error"), "expected an error: {out}");
        out
    }

    fn squash(s: &str) -> String {
        s.split_whitespace().collect()
    }

    #[test]
    fn expands_routes_and_hooks() {
        let out = ok(
            quote!(name = "orders", version = "1.2.0"),
            quote! {
                impl Orders {
                    #[subscribe("orders.created", retries = 3)]
                    async fn on_created(&self, Data(o): Data<Order>, ctx: Context) -> Result<(), HandlerError> { Ok(()) }
                    #[request("orders.get")]
                    async fn get(self: Arc<Self>, Data(id): Data<u64>) -> u64 { id }
                    #[subscribe("ping")]
                    async fn ping(Data(n): Data<u64>) {}
                    #[starting]
                    async fn warm_up(&self, client: &kumi::Client) -> Result<(), kumi::BoxError> { Ok(()) }
                    #[stopped]
                    async fn gone(&self) {}
                    fn helper(&self) {}
                }
            },
        );
        let out = squash(&out);
        for expected in [
            "#[::kumi::async_trait]impl::kumi::ServiceforOrders{",
            "fnname(&self)->&str{\"orders\"}",
            "fnversion(&self)->&str{\"1.2.0\"}",
            "__kumi_router.subscribe(\"orders.created\",|__kumi_this:::std::sync::Arc<Self>,__kumi_arg1:Data<Order>,__kumi_arg2:Context|asyncmove{__kumi_this.on_created(__kumi_arg1,__kumi_arg2).await}).name(\"on_created\").retries(3);",
            "__kumi_router.request(\"orders.get\",|__kumi_this:::std::sync::Arc<Self>,__kumi_arg1:Data<u64>|asyncmove{__kumi_this.get(__kumi_arg1).await}).name(\"get\");",
            "__kumi_router.subscribe(\"ping\",|__kumi_arg0:Data<u64>|asyncmove{Self::ping(__kumi_arg0).await}).name(\"ping\");",
            "asyncfnstarting(&self,__kumi_client:&::kumi::Client)->::std::result::Result<(),::kumi::BoxError>{::std::result::Result::map_err(self.warm_up(__kumi_client).await,::std::convert::Into::into)}",
            "asyncfnstopped(&self)->::std::result::Result<(),::kumi::BoxError>{self.gone().await;::std::result::Result::Ok(())}",
        ] {
            assert!(out.contains(&squash(expected)), "missing {expected}\nin {out}");
        }
        // The impl block is kept, minus the kumi attributes.
        assert!(out.contains("implOrders{asyncfnon_created(&self,Data(o):Data<Order>"));
        assert!(out.contains("fnhelper(&self){}"));
        assert!(!out.contains("#[subscribe"));
        assert!(!out.contains("#[request"));
        assert!(!out.contains("#[starting]"));
        assert!(!out.contains("#[stopped]"));
    }

    #[test]
    fn expands_route_options_layers_and_a_routes_method() {
        let out = squash(&ok(
            quote!(name = "s"),
            quote! {
                impl S {
                    #[subscribe("t", option = Durable::new(), layer = Tag, option = Other)]
                    async fn f(&self) {}
                    #[routes]
                    fn more(&self, router: &mut kumi::Router<Self>) {}
                }
            },
        ));
        for expected in [
            ".name(\"f\").option(Durable::new()).option(Other).layer(Tag);",
            "fnroutes(&self,__kumi_router:&mut::kumi::Router<Self>){",
            "self.more(__kumi_router);}",
            "fnmore(&self,router:&mutkumi::Router<Self>){}",
        ] {
            assert!(
                out.contains(&squash(expected)),
                "missing {expected}\nin {out}"
            );
        }
        assert!(!out.contains("#[routes]"));
    }

    #[test]
    fn defaults_and_generics() {
        let out = squash(&ok(
            quote!(),
            quote! {
                impl<T: Send + Sync + 'static> OrderService<T> where T: Clone {
                    #[subscribe("a")]
                    async fn a(&self) {}
                }
            },
        ));
        assert!(out.contains(
            "impl<T:Send+Sync+'static>::kumi::ServiceforOrderService<T>whereT:Clone{fnname(&self)->&str{\"order-service\"}"
        ), "{out}");
        assert!(!out.contains("fnversion"));
        assert!(!out.contains("async_trait"));
        assert!(!out.contains("fnstarting"));
    }

    #[test]
    fn error_messages() {
        let cases: Vec<(TokenStream, TokenStream, &str)> = vec![
            (
                quote!(),
                quote!(
                    struct S;
                ),
                "goes on an inherent `impl` block",
            ),
            (quote!(), quote!(impl Trait for S {}), "not on a trait impl"),
            (
                quote!(nam = "x"),
                quote!(impl S {}),
                "unknown #[kumi::service] option `nam`",
            ),
            (
                quote!(),
                quote!(impl S { #[subscribe("t")] fn f(&self) {} }),
                "methods must be `async fn`",
            ),
            (
                quote!(),
                quote!(impl S { #[subscribe] async fn f(&self) {} }),
                "missing topic",
            ),
            (
                quote!(),
                quote!(impl S { #[subscribe("t", group = "g", broadcast)] async fn f(&self) {} }),
                "cannot be combined",
            ),
            (
                quote!(),
                quote!(impl S { #[subscribe("t", retry = 1)] async fn f(&self) {} }),
                "the known options are",
            ),
            (
                quote!(),
                quote!(impl S { #[subscribe("t", timeout = "5y")] async fn f(&self) {} }),
                "invalid duration",
            ),
            (
                quote!(),
                quote!(impl S { #[starting] async fn a(&self) {} #[starting] async fn b(&self) {} }),
                "duplicate `#[starting]` hook: `a` is already",
            ),
            (
                quote!(),
                quote!(impl S { #[subscribe("t", option = "durable")] async fn f(&self) {} }),
                "`option` takes a Rust value, not a literal",
            ),
            (
                quote!(),
                quote!(impl S { #[routes] async fn r(&self, router: &mut Router<Self>) {} }),
                "is a plain `fn r(&self, router: &mut kumi::Router<Self>)`, not async",
            ),
            (
                quote!(),
                quote!(impl S { #[routes] fn r(&self) {} }),
                "is a plain `fn r(&self, router: &mut kumi::Router<Self>)`",
            ),
            (
                quote!(),
                quote!(impl S { #[routes(x)] fn r(&self, router: &mut Router<Self>) {} }),
                "`#[routes]` takes no arguments",
            ),
            (
                quote!(),
                quote!(impl S {
                    #[routes] fn a(&self, r: &mut Router<Self>) {}
                    #[routes] fn b(&self, r: &mut Router<Self>) {}
                }),
                "duplicate `#[routes]` method: `a` already is",
            ),
            (
                quote!(),
                quote!(impl S { #[routes] #[starting] fn a(&self, r: &mut Router<Self>) {} }),
                "carries no other kumi attribute",
            ),
            (
                quote!(),
                quote!(impl S { #[subscribe("t")] const X: u8 = 1; }),
                "only applies to `async fn` methods",
            ),
            (
                quote!(),
                quote!(impl S { #[subscribe("t")] async fn f(&mut self) {} }),
                "handlers share the service",
            ),
            (
                quote!(),
                quote!(impl S { #[subscribe("t")] async fn f(self) {} }),
                "handlers share the service",
            ),
            (
                quote!(),
                quote!(impl S { #[subscribe("t")] async fn f<T>(&self) {} }),
                "cannot have type or const parameters",
            ),
            (
                quote!(),
                quote!(impl S { #[subscribe("t")] #[starting] async fn f(&self) {} }),
                "not both",
            ),
            (
                quote!(),
                quote!(impl S { #[stopped] async fn f(&self, c: &Client) {} }),
                "takes only `&self`",
            ),
            (
                quote!(),
                quote!(impl S { #[started] async fn f(&self, c: &Client, d: u8) {} }),
                "optionally `client: &kumi::Client`",
            ),
            (
                quote!(),
                quote!(impl S { #[stopping] async fn f(self: Arc<Self>) {} }),
                "the `stopping` hook takes `&self`",
            ),
            (
                quote!(),
                quote!(impl S { #[stopping(now)] async fn f(&self) {} }),
                "takes no arguments",
            ),
            (
                quote!(),
                quote!(
                    impl (A, B) {}
                ),
                "cannot derive a service name",
            ),
        ];
        for (args, input, message) in cases {
            let out = err(args, input.clone());
            assert!(
                out.contains(message),
                "{input}: expected {message:?} in {out}"
            );
            // No kumi attribute survives, so rustc reports nothing else.
            assert!(!out.contains("# [subscribe"), "{out}");
            assert!(!out.contains("# [st"), "{out}");
        }
    }

    #[test]
    fn errors_keep_a_fallback_impl_and_are_all_reported() {
        let out = err(
            quote!(),
            quote! {
                impl S {
                    #[subscribe("t", retry = 1)] async fn a(&self) {}
                    #[request] async fn b(&self) {}
                }
            },
        );
        assert!(out.contains("unknown route option `retry`"));
        assert!(out.contains("missing topic"));
        assert!(squash(&out).contains("impl::kumi::ServiceforS{fnname(&self)->&str{\"s\"}fnroutes(&self,_:&mut::kumi::Router<Self>){}}"));
    }

    #[test]
    fn expands_transport_routes() {
        let out = squash(&ok(
            quote!(name = "shop"),
            quote! {
                impl Shop {
                    #[http(GET, "/orders/{id}")]
                    #[http(PUT, "/orders/{id}", name = "put_order", layer = Tag)]
                    async fn get_order(&self, Path(id): Path<u64>) -> Json<u64> { Json(id) }
                    #[http_error(404)]
                    async fn not_found(info: ErrorInfo) -> String { String::new() }
                    #[websocket("/ws", ping_interval = "20s", on_connect = joined, on_close = left)]
                    async fn chat(self: Arc<Self>, session: Session) {}
                    async fn joined(&self, sender: SessionSender) {}
                    async fn left(this: Arc<Self>, closed: SessionClosed) {}
                    #[schedule(interval = "10s", immediately)]
                    #[schedule(cron = "0 0 * * *", tz = "Europe/Stockholm", name = "nightly")]
                    #[subscribe("ticks")]
                    async fn tick(self: Arc<Self>) {}
                }
            },
        ));
        for expected in [
            "fnroutes(&self,__kumi_router:&mut::kumi::Router<Self>){",
            "<::kumi::Router<Self>as::kumi::http::HttpRouterExt<Self>>::http(__kumi_router,::kumi::http::Method::GET,\"/orders/{id}\",|__kumi_this:::std::sync::Arc<Self>,__kumi_arg1:Path<u64>|asyncmove{__kumi_this.get_order(__kumi_arg1).await},).name(\"get_order\");",
            "::kumi::http::Method::PUT,\"/orders/{id}\",|__kumi_this:::std::sync::Arc<Self>,__kumi_arg1:Path<u64>|asyncmove{__kumi_this.get_order(__kumi_arg1).await},).name(\"put_order\").layer(Tag);",
            "<::kumi::Router<Self>as::kumi::http::HttpRouterExt<Self>>::http_error(__kumi_router,{const__KUMI_STATUS:::kumi::http::StatusCode=match::kumi::http::StatusCode::from_u16(404u16){",
            "__KUMI_STATUS},|__kumi_arg0:ErrorInfo|asyncmove{Self::not_found(__kumi_arg0).await},);",
            "<::kumi::Router<Self>as::kumi::websocket::WebSocketRouterExt<Self>>::websocket(__kumi_router,\"/ws\",|__kumi_this:::std::sync::Arc<Self>,__kumi_arg1:Session|asyncmove{__kumi_this.chat(__kumi_arg1).await},).name(\"chat\").ping_interval(::std::time::Duration::from_millis(20000u64))",
            ".on_connect(|__kumi_this:::std::sync::Arc<Self>,__kumi_arg:::kumi::websocket::SessionSender|asyncmove{__kumi_this.joined(__kumi_arg).await})",
            // `left` has no receiver: called as an associated function.
            ".on_close(|__kumi_this:::std::sync::Arc<Self>,__kumi_arg:::kumi::websocket::SessionClosed|asyncmove{Self::left(__kumi_this,__kumi_arg).await});",
            "<::kumi::Router<Self>as::kumi::schedule::ScheduleExt<Self>>::schedule(__kumi_router,::kumi::schedule::Trigger::parse_interval(\"10s\"),|__kumi_this:::std::sync::Arc<Self>,|asyncmove{__kumi_this.tick().await},).name(\"tick\").immediately();",
            "::schedule(__kumi_router,::kumi::schedule::Trigger::cron(\"0 0 * * *\"),|__kumi_this:::std::sync::Arc<Self>,|asyncmove{__kumi_this.tick().await},).name(\"nightly\").timezone(\"Europe/Stockholm\");",
            "__kumi_router.subscribe(\"ticks\",|__kumi_this:::std::sync::Arc<Self>,|asyncmove{__kumi_this.tick().await}).name(\"tick\");",
        ] {
            assert!(out.contains(&squash(expected)), "missing {expected}\nin {out}");
        }
        // Routes are registered in the order of the attributes.
        let http = out.find("::http(__kumi_router").unwrap();
        let error = out.find("::http_error(").unwrap();
        let ws = out.find("::websocket(__kumi_router").unwrap();
        let schedule = out.find("::schedule(__kumi_router").unwrap();
        let subscribe = out.find("__kumi_router.subscribe").unwrap();
        assert!(http < error && error < ws && ws < schedule && schedule < subscribe);
        for attr in [
            "#[http",
            "#[http_error",
            "#[websocket",
            "#[schedule",
            "#[subscribe",
        ] {
            assert!(!out.contains(attr), "{attr} left in {out}");
        }
        // A service without hooks needs no async_trait, whatever its routes.
        assert!(!out.contains("async_trait"));
    }

    #[test]
    fn transport_error_messages() {
        let cases: Vec<(TokenStream, &str)> = vec![
            (
                quote!(impl S { #[http(FETCH, "/x")] async fn f(&self) {} }),
                "unknown HTTP method `FETCH`",
            ),
            (
                quote!(impl S { #[http(GET, "/x/:id")] async fn f(&self) {} }),
                "since axum 0.8: \\\"/x/{id}\\\"",
            ),
            (
                quote!(impl S { #[http_error(302)] async fn f(&self) {} }),
                "400 to 599",
            ),
            (
                quote!(impl S { #[websocket("/ws", on_open = x)] async fn f(&self, s: Session) {} }),
                "unknown `#[websocket]` option `on_open`; the known options are",
            ),
            (
                quote!(impl S { #[websocket("/ws")] async fn f(&self) {} }),
                "a `#[websocket]` handler takes the service and the session: `async fn f(&self, session: kumi::websocket::Session)`",
            ),
            (
                quote!(impl S { #[websocket("/ws")] async fn f(s: Session) {} }),
                "`async fn f(this: Arc<Self>, session: kumi::websocket::Session)`",
            ),
            (
                quote!(impl S { #[websocket("/ws")] async fn f() {} }),
                "a `#[websocket]` handler takes the service and the session",
            ),
            (
                quote!(impl S { #[websocket("/ws")] async fn f(&self, s: Session, x: u8) {} }),
                "a `#[websocket]` handler takes the service and the session",
            ),
            (
                quote!(impl S { #[schedule(interval = "1s", daily = "08:00")] async fn f(&self) {} }),
                "exactly one trigger",
            ),
            (
                quote!(impl S { #[schedule("hourly")] #[schedule("daily")] async fn tick(&self) {} }),
                "another `#[schedule]` of this method already has the route name \\\"tick\\\"",
            ),
            (
                quote!(impl S {
                    #[schedule("hourly", name = "b")] async fn a(&self) {}
                    #[schedule("daily")] async fn b(&self) {}
                }),
                "the `#[schedule]` of `a` already has the route name \\\"b\\\"",
            ),
            (
                quote!(impl S { #[schedule("hourly")] fn f(&self) {} }),
                "`#[schedule]` methods must be `async fn`",
            ),
            (
                quote!(impl S { #[http(GET, "/")] async fn f(&mut self) {} }),
                "handlers share the service",
            ),
            (
                quote!(impl S { #[http(GET, "/")] const X: u8 = 1; }),
                "`#[http]` only applies to `async fn` methods",
            ),
            (
                quote!(impl S { #[schedule("hourly")] #[started] async fn f(&self) {} }),
                "(`#[subscribe]`, `#[request]`, `#[http]`, `#[http_error]`, `#[websocket]`, `#[schedule]`) or a lifecycle hook, not both",
            ),
        ];
        for (input, message) in cases {
            let out = err(quote!(), input.clone());
            assert!(
                out.contains(message),
                "{input}: expected {message:?} in {out}"
            );
            for attr in ["# [http", "# [websocket", "# [schedule", "# [st"] {
                assert!(!out.contains(attr), "{attr} survived in {out}");
            }
        }
    }

    #[test]
    fn several_schedules_with_names_are_fine() {
        let out = squash(&ok(
            quote!(),
            quote! {
                impl S {
                    #[schedule("hourly")]
                    #[schedule("daily", name = "daily_tick")]
                    #[schedule("weekly", name = NAME)]
                    #[schedule("monthly", name = NAME)]
                    async fn tick(&self) {}
                    #[schedule("hourly", name = "other")]
                    async fn other_method(&self) {}
                }
            },
        ));
        assert_eq!(
            out.matches("::kumi::schedule::ScheduleExt<Self>>::schedule(")
                .count(),
            5
        );
    }
}
