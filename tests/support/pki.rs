//! Certificates made for a test run: a CA, a server certificate for 127.0.0.1 and a client
//! certificate, as PEM files (`ca.pem`, `server.pem`, `server-key.pem`, `client.pem`,
//! `client-key.pem`) in a fresh directory removed when dropped.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in a fresh
/// directory.
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("kumi-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "kumi test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let leaf = |name: &str, san: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(vec![san.to_owned()]).expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let cert = params
                .signed_by(&key, &ca_cert, &ca_key)
                .expect("signed certificate");
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write cert");
            std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem())
                .expect("write key");
        };
        leaf("server", "127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth);
        leaf("client", "kumi-client", ExtendedKeyUsagePurpose::ClientAuth);
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write CA");
        Self { dir }
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
