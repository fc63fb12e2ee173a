//! The listen address: where it came from, checking it, and binding it with errors that say
//! which setting to change.

use std::net::SocketAddr;

use kumi_core::{Error, ErrorKind, Result};
use tokio::net::TcpListener;

/// The address used when `--http` / `KUMI_HTTP_ADDR` is not set (and some service has routes).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Where the listen address came from, for error messages and the listen-or-not decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddrSource {
    /// Nothing set: [`DEFAULT_ADDR`], and only when some service has HTTP routes.
    Default,
    /// `--http` / `KUMI_HTTP_ADDR`.
    Setting,
    /// [`HttpTransportBuilder::addr`](crate::HttpTransportBuilder::addr).
    Code,
}

#[derive(Debug, Clone)]
pub(crate) struct ListenAddr {
    pub(crate) addr: String,
    pub(crate) source: AddrSource,
}

impl Default for ListenAddr {
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADDR.to_owned(),
            source: AddrSource::Default,
        }
    }
}

impl ListenAddr {
    pub(crate) fn new(addr: &str, source: AddrSource) -> Self {
        // `:8080` means every interface, as in Go and many other servers.
        let addr = match addr.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => addr.to_owned(),
        };
        Self { addr, source }
    }

    /// Always listen, even without routes (to serve the health endpoints)?
    pub(crate) fn explicit(&self) -> bool {
        self.source != AddrSource::Default
    }

    fn hint(&self) -> &'static str {
        match self.source {
            AddrSource::Default => {
                " (the default address; choose another with --http or KUMI_HTTP_ADDR, port 0 picks a free one)"
            }
            AddrSource::Setting => {
                " (set by --http / KUMI_HTTP_ADDR; port 0 picks a free one)"
            }
            AddrSource::Code => "",
        }
    }

    pub(crate) async fn bind(&self) -> Result<(TcpListener, SocketAddr)> {
        check(&self.addr).map_err(|e| Error::config(format!("{e}{}", self.hint())))?;
        let listener = TcpListener::bind(self.addr.as_str()).await.map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!(
                    "cannot listen for HTTP on {}{}: {e}",
                    self.addr,
                    self.hint()
                ),
            )
            .with_source(e)
        })?;
        let local = listener.local_addr().map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!(
                    "cannot read the local address of HTTP listener {}",
                    self.addr
                ),
            )
            .with_source(e)
        })?;
        Ok((listener, local))
    }
}

/// Checks that `addr` looks like `host:port` (`127.0.0.1:8080`, `[::1]:0`, `localhost:3000`,
/// `:8080`).
pub(crate) fn check(addr: &str) -> std::result::Result<(), String> {
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || {
        format!(
            "'{addr}' is not a listen address like 127.0.0.1:8080, 0.0.0.0:0, [::1]:8080 or :8080"
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.contains(['/', ' ']) || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        for good in [
            "127.0.0.1:8080",
            "0.0.0.0:0",
            "[::1]:80",
            "localhost:3000",
            ":8080",
        ] {
            assert!(check(good).is_ok(), "{good}");
        }
        for bad in [
            "8080",
            "localhost",
            "http://127.0.0.1:80",
            "127.0.0.1:http",
            "",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ListenAddr::new(":9000", AddrSource::Setting).addr,
            "0.0.0.0:9000"
        );
    }

    #[tokio::test]
    async fn address_in_use_names_the_address_and_the_setting() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let err = ListenAddr::new(&addr, AddrSource::Setting)
            .bind()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&addr) && err.contains("KUMI_HTTP_ADDR"),
            "{err}"
        );
    }
}
