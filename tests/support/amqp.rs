//! The RabbitMQ the AMQP tests use: `KUMI_TEST_AMQP_URL` (see `scripts/brokers`), by default
//! the local broker with the guest account.

#![allow(dead_code, unreachable_pub)]

/// The broker's URL.
pub fn base_url() -> String {
    std::env::var("KUMI_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// `host:port` of the broker in `url`.
pub fn broker_addr(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5672")
    }
}
