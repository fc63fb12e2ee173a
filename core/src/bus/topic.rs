//! Topic names and patterns, `.`-separated tokens as on NATS and AMQP.
//!
//! Wildcards in subscription patterns: `*` matches exactly one token; `>` (NATS) matches one or more
//! trailing tokens; `#` (AMQP) matches zero or more tokens, anywhere.

use std::sync::Arc;

use crate::error::{Error, Result};

/// The topic of the last message a consumer received, so that consecutive messages on one topic
/// share one allocation for [`Message::topic`](crate::Message::topic) (the usual case: a route
/// without wildcards only ever sees its own topic).
#[derive(Debug, Default, Clone)]
pub struct TopicCache(Option<Arc<str>>);

impl TopicCache {
    /// `topic` as a shared string: the remembered one when it is the same, else a new one, which
    /// is then remembered.
    pub fn get(&mut self, topic: &str) -> Arc<str> {
        match &self.0 {
            Some(last) if **last == *topic => Arc::clone(last),
            _ => Arc::clone(self.0.insert(Arc::from(topic))),
        }
    }
}

/// Checks a concrete topic (what is published to): non-empty tokens, no wildcards, no whitespace.
pub fn validate_topic(topic: &str) -> Result<()> {
    check(topic, false)
}

/// Checks a subscription pattern: like a topic, but `*`, `>` (last token only) and `#` are allowed.
pub fn validate_pattern(pattern: &str) -> Result<()> {
    check(pattern, true)
}

/// True for the usual name: tokens of `[A-Za-z0-9_-]` and other non-space, non-wildcard
/// characters, separated by single dots. One pass, no allocation; anything else gets the full
/// check, which names the fault.
fn plain(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.first() == Some(&b'.') || bytes.last() == Some(&b'.') || bytes.is_empty() {
        return false;
    }
    let mut previous_dot = false;
    for &b in bytes {
        let dot = b == b'.';
        if (dot && previous_dot) || matches!(b, b'*' | b'>' | b'#') || b.is_ascii_whitespace() {
            return false;
        }
        if !b.is_ascii() {
            // Unicode whitespace is refused: let the full check look.
            return false;
        }
        previous_dot = dot;
    }
    true
}

fn check(s: &str, wildcards: bool) -> Result<()> {
    if plain(s) {
        return Ok(());
    }
    let what = if wildcards { "topic pattern" } else { "topic" };
    if s.is_empty() {
        return Err(Error::config(format!("{what} must not be empty")));
    }
    let count = s.split('.').count();
    for (i, token) in s.split('.').enumerate() {
        if token.is_empty() {
            return Err(Error::config(format!(
                "{what} '{s}' has an empty token (leading, trailing or double '.')"
            )));
        }
        if token.chars().any(char::is_whitespace) {
            return Err(Error::config(format!("{what} '{s}' contains whitespace")));
        }
        let is_wild = matches!(token, "*" | ">" | "#");
        if is_wild && !wildcards {
            return Err(Error::config(format!(
                "topic '{s}' contains the wildcard '{token}'; publish to a concrete topic"
            )));
        }
        if token == ">" && i != count - 1 {
            return Err(Error::config(format!(
                "{what} '{s}': '>' is only allowed as the last token"
            )));
        }
        if !is_wild && (token.contains('*') || token.contains('>') || token.contains('#')) {
            return Err(Error::config(format!(
                "{what} '{s}': wildcards must be whole tokens, found '{token}'"
            )));
        }
    }
    Ok(())
}

/// True when `topic` matches `pattern`.
pub(crate) fn matches(pattern: &str, topic: &str) -> bool {
    if pattern == topic {
        return true;
    }
    if !pattern.contains(['*', '>', '#']) {
        return false;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    match_tokens(&p, &t)
}

fn match_tokens(p: &[&str], t: &[&str]) -> bool {
    match (p.first(), t.first()) {
        (None, None) => true,
        (Some(&"#"), _) => {
            // zero tokens, or consume one and keep '#'
            match_tokens(&p[1..], t) || (!t.is_empty() && match_tokens(p, &t[1..]))
        }
        (Some(&">"), Some(_)) => true,
        (Some(&"*"), Some(_)) => match_tokens(&p[1..], &t[1..]),
        (Some(a), Some(b)) if a == b => match_tokens(&p[1..], &t[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_cache_shares_repeated_topics() {
        let mut cache = TopicCache::default();
        let a = cache.get("orders.created");
        let b = cache.get("orders.created");
        assert!(Arc::ptr_eq(&a, &b), "same topic, same allocation");
        let c = cache.get("orders.paid");
        assert_eq!(&*c, "orders.paid");
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(Arc::ptr_eq(&c, &cache.get("orders.paid")));
    }

    #[test]
    fn wildcard_matching() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.c"));
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(!matches("a.*", "a"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(matches("a.#", "a"));
        assert!(matches("a.#", "a.b.c"));
        assert!(matches("#.c", "a.b.c"));
        assert!(matches("a.#.d", "a.b.c.d"));
        assert!(!matches("a.#.d", "a.b.c"));
        assert!(matches("*.b.>", "x.b.y"));
    }

    #[test]
    fn validation_names_the_fault() {
        assert!(validate_topic("orders.created").is_ok());
        let e = validate_topic("orders.*").unwrap_err();
        assert!(e.to_string().contains("wildcard '*'"), "{e}");
        let e = validate_pattern("a..b").unwrap_err();
        assert!(e.to_string().contains("empty token"), "{e}");
        let e = validate_pattern("a.>.b").unwrap_err();
        assert!(e.to_string().contains("last token"), "{e}");
        let e = validate_pattern("a.b*").unwrap_err();
        assert!(e.to_string().contains("whole tokens"), "{e}");
        assert!(validate_topic("").is_err());
        assert!(validate_pattern("a.*.>").is_ok());
        for bad in [".a", "a.", "a b", "a\u{2003}b", "a.#", ">"] {
            assert!(validate_topic(bad).is_err(), "{bad}");
        }
        assert!(validate_topic("ünï.cödé").is_ok());
        assert!(validate_topic("a-b_c.d/e:f").is_ok());
    }
}
