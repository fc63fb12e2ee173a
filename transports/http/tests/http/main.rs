//! kumi-http against real sockets: every test starts its own server on a free port.

mod bad_input;
mod bus;
mod health_and_drain;
mod middleware;
#[cfg(feature = "tls")]
#[path = "../../../../tests/support/pki.rs"]
mod pki;
mod registration;
mod static_files;
mod support;
#[cfg(feature = "tls")]
mod tls;
