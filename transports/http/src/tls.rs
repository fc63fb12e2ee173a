//! HTTPS: the server's certificate and key, loaded into a rustls acceptor (with the `tls`
//! feature; without it, no acceptor can exist and TLS settings are refused).

use std::path::PathBuf;

use kumi_core::{Error, Result};

/// PEM files of the server's certificate chain and its private key.
#[derive(Clone, Debug)]
pub(crate) struct TlsFiles {
    pub(crate) cert: PathBuf,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) key: PathBuf,
}

/// Terminates TLS on accepted connections.
#[cfg(feature = "tls")]
pub(crate) type Acceptor = tokio_rustls::TlsAcceptor;

/// Without the `tls` feature there is no acceptor.
#[cfg(not(feature = "tls"))]
pub(crate) enum Acceptor {}

/// The acceptor for `files`: errors name the file that cannot be read or used.
#[cfg(feature = "tls")]
pub(crate) fn acceptor(files: &TlsFiles) -> Result<Acceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        Error::config(format!("HTTP TLS: {what} {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| bad("cannot read the certificate chain", &files.cert, &e))?;
    if certs.is_empty() {
        return Err(bad(
            "no certificate in",
            &files.cert,
            &"expected PEM CERTIFICATE blocks",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| bad("cannot read the private key", &files.key, &e))?;
    // The provider async-nats and lapin use too; whichever is installed first serves all.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("the key does not fit the certificate in", &files.cert, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// Without the `tls` feature: refused, saying how to get it.
#[cfg(not(feature = "tls"))]
pub(crate) fn acceptor(files: &TlsFiles) -> Result<Acceptor> {
    Err(Error::config(format!(
        "HTTP TLS ({}): this build has no TLS support; enable kumi's `http-tls` feature",
        files.cert.display()
    )))
}
