//! Who a service instance is: name, version and a per-process instance id.

use std::collections::BTreeMap;
use std::fmt;

/// A service instance's identity, used in envelopes, connection names and the NATS service API.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// Service name.
    pub name: String,
    /// Service version.
    pub version: String,
    /// Instance id: 22 base-62 characters, unique per process and service.
    pub instance_id: String,
    /// Human-readable description (shown by service discovery, e.g. NATS `$SRV.INFO`).
    pub description: String,
    /// Free-form metadata (shown by service discovery).
    pub metadata: BTreeMap<String, String>,
}

impl Identity {
    /// An identity named `name`, version `0.0.0`, with a fresh instance id.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: "0.0.0".to_owned(),
            instance_id: new_instance_id(),
            description: String::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// The same identity with `version`.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} ({})", self.name, self.version, self.instance_id)
    }
}

/// A name for a connection opened without one: `<program>-<new instance id>`.
pub(crate) fn default_connection_name() -> String {
    let program = std::env::args()
        .next()
        .and_then(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "kumi".to_owned());
    format!("{program}-{}", new_instance_id())
}

/// A NUID-like id: 22 characters of `[0-9A-Za-z]` from 128 random bits (also a valid NATS
/// service name).
pub fn new_instance_id() -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = uuid::Uuid::new_v4().as_u128();
    let mut out = String::with_capacity(22);
    for _ in 0..22 {
        out.push(ALPHABET[(n % 62) as usize] as char);
        n /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn instance_ids_are_22_base62() {
        let a = super::new_instance_id();
        let b = super::new_instance_id();
        assert_eq!(a.len(), 22);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
