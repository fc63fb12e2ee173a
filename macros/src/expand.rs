//! The expansion of `#[service]`: the `Service` impl, built from the attributed methods.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{
    Attribute, FnArg, GenericParam, ImplItem, ImplItemFn, Item, ItemImpl, Meta, Receiver,
    ReturnType, Type,
};

use crate::options::{default_service_name, lit_str, RouteArgs, ServiceArgs};

/// A bus route trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteKind {
    Subscribe,
    Request,
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
}

impl KumiAttr {
    fn of(attr: &Attribute) -> Option<Self> {
        let ident = attr.path().get_ident()?;
        Some(match ident.to_string().as_str() {
            "subscribe" => KumiAttr::Route(RouteKind::Subscribe),
            "request" => KumiAttr::Route(RouteKind::Request),
            name => KumiAttr::Hook(*Hook::ALL.iter().find(|h| h.name() == name)?),
        })
    }

    fn name(self) -> &'static str {
        match self {
            KumiAttr::Route(RouteKind::Subscribe) => "subscribe",
            KumiAttr::Route(RouteKind::Request) => "request",
            KumiAttr::Hook(h) => h.name(),
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
            }

            #(#hooks)*
        }
    }
}

/// The pieces of the `Service` impl.
struct Builder {
    /// One `router.subscribe(..)...;` statement per route attribute.
    routes: Vec<TokenStream>,
    /// Per hook: the method it calls (for duplicate errors) and the trait method.
    hooks: [Option<(syn::Ident, TokenStream)>; 4],
}

impl Builder {
    fn collect(imp: &ItemImpl, errors: &mut Errors) -> Self {
        let mut this = Builder {
            routes: Vec::new(),
            hooks: Default::default(),
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
        let is_route = |k: &KumiAttr| matches!(k, KumiAttr::Route(_));
        if attrs.iter().any(|(k, _)| is_route(k)) && attrs.iter().any(|(k, _)| !is_route(k)) {
            let (_, hook_attr) = attrs.iter().find(|(k, _)| !is_route(k)).expect("a hook");
            errors.push(syn::Error::new_spanned(
                hook_attr,
                "a method is either a route handler (`#[subscribe]`, `#[request]`) or a lifecycle hook, not both",
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
                    if let Some(route) = errors.check(route(kind, attr, f)) {
                        self.routes.push(route);
                    }
                }
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

fn not_a_method(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs {
        if let Some(kind) = KumiAttr::of(attr) {
            errors.push(syn::Error::new_spanned(
                attr,
                format!(
                    "`#[{}]` only applies to `async fn` methods of the #[kumi::service] impl block",
                    kind.name()
                ),
            ));
        }
    }
}

/// `router.subscribe(topic, |this, args..| async move { this.method(args..).await }).name(..)..;`
fn route(kind: RouteKind, attr: &Attribute, f: &ImplItemFn) -> syn::Result<TokenStream> {
    let args = RouteArgs::from_attribute(attr)?;
    let closure = handler_closure(f)?;
    let method = &f.sig.ident;
    let register = match kind {
        RouteKind::Subscribe => format_ident!("subscribe", span = method.span()),
        RouteKind::Request => format_ident!("request", span = method.span()),
    };
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
}
