//! Helpers for transports parsing their bus URLs: percent-decoding and typed query options whose
//! errors name the URL (credentials removed) and the option.

use crate::error::{Error, Result};

/// Percent-decodes a URL component (user, password, query value). Invalid UTF-8 is replaced.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A boolean query option: `true`/`1`/`yes`/empty or `false`/`0`/`no`. `shown_url` is the URL as
/// errors may show it (see [`redact`](super::redact)).
pub fn parse_bool(shown_url: &str, key: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" | "yes" | "" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(Error::config(format!(
            "bus URL '{shown_url}': option '{key}' must be true or false, got '{value}'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_parses() {
        assert_eq!(percent_decode("s%3Acret%2F"), "s:cret/");
        assert!(parse_bool("x://", "tls", "yes").unwrap());
        assert!(!parse_bool("x://", "tls", "0").unwrap());
        let e = parse_bool("x://h", "tls", "maybe").unwrap_err().to_string();
        assert!(
            e.contains("'x://h'") && e.contains("'tls'") && e.contains("'maybe'"),
            "{e}"
        );
    }
}
