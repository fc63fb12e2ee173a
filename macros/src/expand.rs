//! The expansion of `#[service]`: the `Service` impl, built from the attributed methods.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{
    Attribute, FnArg, GenericParam, ImplItem, ImplItemFn, Item, ItemImpl, Meta, ReturnType, Type,
};

use crate::route::{self, Methods};
use crate::service::{default_service_name, lit_str, ServiceArgs};

/// Rust's built-in attributes that may sit on a method: they stay on it, as does any attribute
/// written as a path (`#[tracing::instrument]`, `#[rustfmt::skip]`). Every other attribute named
/// by a single identifier is a route attribute (see [`KumiAttr::of`]).
const BUILTIN_ATTRIBUTES: &[&str] = &[
    "allow",
    "automatically_derived",
    "cfg",
    "cfg_attr",
    "cold",
    "coverage",
    "deny",
    "deprecated",
    "doc",
    "expect",
    "export_name",
    "forbid",
    "ignore",
    "inline",
    "instruction_set",
    "link_section",
    "must_use",
    "no_mangle",
    "optimize",
    "should_panic",
    "target_feature",
    "test",
    "track_caller",
    "warn",
];

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
#[derive(Debug, Clone, PartialEq, Eq)]
enum KumiAttr {
    /// `#[NAME(..)]`: a route registered with the router method `NAME`.
    Route(syn::Ident),
    Hook(Hook),
    /// `#[routes]`: a plain method that adds to the router after the attributed routes.
    Routes,
}

impl KumiAttr {
    /// What `attr` is to this macro: a lifecycle hook, `#[routes]`, a route attribute (any other
    /// attribute named by one identifier that is not a Rust built-in), or nothing (a path such
    /// as `tracing::instrument`, or a built-in such as `doc`), left on the method.
    fn of(attr: &Attribute) -> Option<Self> {
        let ident = attr.path().get_ident()?;
        let name = ident.unraw().to_string();
        if name == "routes" {
            return Some(KumiAttr::Routes);
        }
        if let Some(hook) = Hook::ALL.iter().find(|h| h.name() == name) {
            return Some(KumiAttr::Hook(*hook));
        }
        if BUILTIN_ATTRIBUTES.contains(&name.as_str()) {
            return None;
        }
        Some(KumiAttr::Route(ident.clone()))
    }

    fn name(&self) -> String {
        match self {
            KumiAttr::Route(ident) => ident.unraw().to_string(),
            KumiAttr::Hook(h) => h.name().to_owned(),
            KumiAttr::Routes => "routes".to_owned(),
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
                #[allow(unused_imports)]
                use ::kumi::__macro::router_ext::*;
                #(#routes)*
                #extra_routes
            }

            #(#hooks)*
        }
    }
}

/// The pieces of the `Service` impl.
struct Builder {
    /// One registration block per route attribute.
    routes: Vec<TokenStream>,
    /// The `#[routes]` method, called after them: `self.method(router);`.
    extra_routes: Option<(syn::Ident, TokenStream)>,
    /// Per hook: the method it calls (for duplicate errors) and the trait method.
    hooks: [Option<(syn::Ident, TokenStream)>; 4],
}

impl Builder {
    fn collect(imp: &ItemImpl, errors: &mut Errors) -> Self {
        let methods = Methods::of(imp.items.iter().filter_map(|item| match item {
            ImplItem::Fn(f) => Some(f),
            _ => None,
        }));
        let mut this = Builder {
            routes: Vec::new(),
            extra_routes: None,
            hooks: Default::default(),
        };
        for item in &imp.items {
            match item {
                ImplItem::Fn(f) => this.method(f, &methods, errors),
                ImplItem::Const(c) => not_a_method(&c.attrs, errors),
                ImplItem::Type(t) => not_a_method(&t.attrs, errors),
                ImplItem::Macro(m) => not_a_method(&m.attrs, errors),
                _ => {}
            }
        }
        this
    }

    fn method(&mut self, f: &ImplItemFn, methods: &Methods<'_>, errors: &mut Errors) {
        let attrs: Vec<(KumiAttr, &Attribute)> = f
            .attrs
            .iter()
            .filter_map(|a| KumiAttr::of(a).map(|k| (k, a)))
            .collect();
        let Some((first, _)) = attrs.first() else {
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
            let (route, _) = attrs.iter().find(|(k, _)| is_route(k)).expect("a route");
            let (hook, hook_attr) = attrs.iter().find(|(k, _)| !is_route(k)).expect("a hook");
            errors.push(syn::Error::new_spanned(
                hook_attr,
                format!(
                    "a method is either a route handler (`#[{}]`) or a lifecycle hook (`#[{}]`), not both",
                    route.name(),
                    hook.name()
                ),
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
                KumiAttr::Route(name) => {
                    if let Some(route) = errors.check(route::route(&name, attr, f, methods)) {
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
            "fnroutes(&self,__kumi_router:&mut::kumi::Router<Self>){#[allow(unused_imports)]use::kumi::__macro::router_ext::*;",
            // Each route: its checks, then the router method named like the attribute.
            "{::kumi::__route!(subscribe);#[allow(unused_imports)]use__kumi_route::scope::*;\
             __kumi_route::argument(__kumi_router,::kumi::__macro::PhantomData::<Data<Order>>);\
             __kumi_route::last_argument(__kumi_router,::kumi::__macro::PhantomData::<Context>);\
             __kumi_route::output(__kumi_router,::kumi::__macro::PhantomData::<Result<(),HandlerError>>);\
             __kumi_route::signature(__kumi_router,::kumi::__macro::PhantomData::<(::std::sync::Arc<Self>,Data<Order>,Context,)>);\
             let_=||__kumi_route::future(Self::on_created(::kumi::__macro::value(),::kumi::__macro::value(),::kumi::__macro::value()));\
             __kumi_router.subscribe(\"orders.created\",|__kumi_this:::std::sync::Arc<Self>,__kumi_arg1:Data<Order>,__kumi_arg2:Context|asyncmove{__kumi_this.on_created(__kumi_arg1,__kumi_arg2).await}).name(\"on_created\").retries(3);}",
            "__kumi_router.request(\"orders.get\",|__kumi_this:::std::sync::Arc<Self>,__kumi_arg1:Data<u64>|asyncmove{__kumi_this.get(__kumi_arg1).await}).name(\"get\");",
            "__kumi_route::last_argument(__kumi_router,::kumi::__macro::PhantomData::<Data<u64>>);__kumi_route::signature(__kumi_router,::kumi::__macro::PhantomData::<(Data<u64>,)>);",
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
                    #[subscribe("t", option = Durable::new(), layer = Tag, option = Other, backoff = ("1s", "30s"), broadcast)]
                    async fn f(&self) {}
                    #[routes]
                    fn more(&self, router: &mut kumi::Router<Self>) {}
                }
            },
        ));
        for expected in [
            // Options in the order written; a tuple value is the call's arguments.
            ".name(\"f\").option(Durable::new()).layer(Tag).option(Other).backoff(\"1s\",\"30s\").broadcast();",
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
                quote!(impl S { #[starting] async fn a(&self) {} #[starting] async fn b(&self) {} }),
                "duplicate `#[starting]` hook: `a` is already",
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
                "a method is either a route handler (`#[subscribe]`) or a lifecycle hook (`#[starting]`), not both",
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
                    #[subscribe("t")] fn a(&self) {}
                    #[request("u")] async fn b(&mut self) {}
                }
            },
        );
        assert!(out.contains("`#[subscribe]` methods must be `async fn`"));
        assert!(out.contains("handlers share the service"));
        assert!(squash(&out).contains("impl::kumi::ServiceforS{fnname(&self)->&str{\"s\"}fnroutes(&self,_:&mut::kumi::Router<Self>){}}"));
    }

    #[test]
    fn any_attribute_is_a_router_method() {
        let out = squash(&ok(
            quote!(name = "shop"),
            quote! {
                impl Shop {
                    #[http(GET, "/orders/{id}")]
                    #[http(PUT, "/orders/{id}", name = "put_order", layer = Tag)]
                    #[doc = "kept"]
                    #[tracing::instrument]
                    #[allow(unused)]
                    async fn get_order(&self, Path(id): Path<u64>) -> Json<u64> { Json(id) }
                    #[http_error(404)]
                    async fn not_found(info: ErrorInfo) -> String { String::new() }
                    #[websocket("/ws", ping_interval = "20s", on_connect = joined, on_close = left, send_queue = QUEUE)]
                    async fn chat(self: Arc<Self>, session: Session) {}
                    async fn joined(&self, sender: SessionSender) {}
                    async fn left(this: Arc<Self>, closed: SessionClosed) {}
                    fn plain(&self) {}
                    #[schedule("10s", immediately)]
                    #[schedule("0 0 * * *", tz = "Europe/Stockholm", name = "nightly", on_skip = plain)]
                    #[subscribe("ticks")]
                    #[my_own_trigger]
                    async fn tick(self: Arc<Self>) {}
                }
            },
        ));
        for expected in [
            "{::kumi::__route!(http);#[allow(unused_imports)]use__kumi_route::scope::*;\
             __kumi_route::last_argument(__kumi_router,::kumi::__macro::PhantomData::<Path<u64>>);\
             __kumi_route::output(__kumi_router,::kumi::__macro::PhantomData::<Json<u64>>);",
            "__kumi_router.http(GET,\"/orders/{id}\",|__kumi_this:::std::sync::Arc<Self>,__kumi_arg1:Path<u64>|asyncmove{__kumi_this.get_order(__kumi_arg1).await}).name(\"get_order\");",
            "__kumi_router.http(PUT,\"/orders/{id}\",|__kumi_this:::std::sync::Arc<Self>,__kumi_arg1:Path<u64>|asyncmove{__kumi_this.get_order(__kumi_arg1).await}).name(\"put_order\").layer(Tag);",
            "__kumi_router.http_error(404,|__kumi_arg0:ErrorInfo|asyncmove{Self::not_found(__kumi_arg0).await}).name(\"not_found\");",
            // A bare name of a sibling `async fn` is that method as a handler; of a plain fn, `Self::name`.
            "__kumi_router.websocket(\"/ws\",|__kumi_this:::std::sync::Arc<Self>,__kumi_arg1:Session|asyncmove{__kumi_this.chat(__kumi_arg1).await}).name(\"chat\").ping_interval(\"20s\")\
             .on_connect(|__kumi_this:::std::sync::Arc<Self>,__kumi_arg1:SessionSender|asyncmove{__kumi_this.joined(__kumi_arg1).await})\
             .on_close(|__kumi_arg0:Arc<Self>,__kumi_arg1:SessionClosed|asyncmove{Self::left(__kumi_arg0,__kumi_arg1).await}).send_queue(QUEUE);",
            "__kumi_router.schedule(\"10s\",|__kumi_this:::std::sync::Arc<Self>,|asyncmove{__kumi_this.tick().await}).name(\"tick\").immediately();",
            "__kumi_router.schedule(\"0 0 * * *\",|__kumi_this:::std::sync::Arc<Self>,|asyncmove{__kumi_this.tick().await}).tz(\"Europe/Stockholm\").name(\"nightly\").on_skip(Self::plain);",
            "__kumi_router.subscribe(\"ticks\",|__kumi_this:::std::sync::Arc<Self>,|asyncmove{__kumi_this.tick().await}).name(\"tick\");",
            // An attribute the facade has no checks for still calls the router method of its name.
            "{::kumi::__route!(my_own_trigger);",
            "__kumi_router.my_own_trigger(|__kumi_this:::std::sync::Arc<Self>,|asyncmove{__kumi_this.tick().await}).name(\"tick\");",
            // Built-in and path attributes stay on the method.
            "#[doc=\"kept\"]#[tracing::instrument]#[allow(unused)]asyncfnget_order",
        ] {
            assert!(out.contains(&squash(expected)), "missing {expected}\nin {out}");
        }
        // Routes are registered in the order of the attributes.
        let at = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("no {needle}"));
        assert!(at("__kumi_router.http(GET") < at("__kumi_router.http(PUT"));
        assert!(at("__kumi_router.http(PUT") < at("__kumi_router.http_error("));
        assert!(at("__kumi_router.websocket(") < at("__kumi_router.schedule(\"10s\""));
        assert!(at("__kumi_router.schedule(\"0") < at("__kumi_router.subscribe("));
        for attr in [
            "#[http",
            "#[websocket",
            "#[schedule",
            "#[subscribe",
            "#[my_own",
        ] {
            assert!(!out.contains(attr), "{attr} left in {out}");
        }
        // A service without hooks needs no async_trait, whatever its routes.
        assert!(!out.contains("async_trait"));
    }

    #[test]
    fn cfg_carries_over_and_impl_trait_returns_are_not_checked() {
        let out = squash(&ok(
            quote!(),
            quote! {
                impl S {
                    #[cfg(feature = "x")]
                    #[subscribe("t")]
                    async fn f(&self) -> impl Sized {}
                }
            },
        ));
        assert!(
            out.contains("#[cfg(feature=\"x\")]{::kumi::__route!(subscribe);"),
            "{out}"
        );
        // No return type check for an `impl Trait` return type.
        assert!(!out.contains("__kumi_route::output"), "{out}");
    }

    #[test]
    fn transport_error_messages() {
        let cases: Vec<(TokenStream, &str)> = vec![
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
                "a method is either a route handler (`#[schedule]`) or a lifecycle hook (`#[started]`), not both",
            ),
            (
                quote!(impl S { #[http(GET, "/", retries = 3, "/late")] async fn f(&self) {} }),
                "positional arguments come first",
            ),
            (
                quote!(impl S { #[websocket = "/ws"] async fn f(&self) {} }),
                "write the arguments of a route attribute in parentheses: `#[websocket(..)]`",
            ),
            (
                quote!(impl S { #[subscribe("t")] async fn f(&self, a: impl Sized) {} }),
                "not `impl Trait`",
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
}
