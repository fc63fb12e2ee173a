//! The arguments of `#[service(...)]` and the default service name. Everything here works on
//! `proc_macro2` tokens so it can be unit-tested.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, Lit, LitStr, Token};

/// The options of `#[service(...)]`.
const SERVICE_OPTIONS: &[&str] = &["name", "version"];

/// `` `a`, `b`, `c` `` for error messages.
fn list(options: &[&str]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

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
}
