//! Oversized messages and unresponsive peers.

use std::time::Duration;

use kumi_websocket::{close_code, ClosedBy, WsClient};

use crate::support::{start, within, Seen};

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let mut live = start().await;
    let mut ws = within("connect", WsClient::connect(&live.url("/small")))
        .await
        .unwrap();
    ws.send_text("x".repeat(1000)).await.unwrap();
    assert_eq!(within("echo", ws.recv_text()).await.unwrap().len(), 1000);
    ws.send_text("y".repeat(2048)).await.unwrap();
    assert_eq!(within("the close", ws.recv()).await.unwrap(), None);
    assert_eq!(
        ws.close_info().and_then(|c| c.code),
        Some(close_code::TOO_BIG)
    );
    let Seen::Closed(_, close) = live.next_seen().await else {
        panic!("expected the close hook");
    };
    assert_eq!(close.code, Some(close_code::TOO_BIG));
    assert_eq!(close.by, ClosedBy::Local);
    live.app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let mut live = start().await;
    // Never reads, so never answers the server's pings.
    let _silent = within("connect", WsClient::connect(&live.url("/quick")))
        .await
        .unwrap();
    let Seen::Closed(_, close) = live.next_seen().await else {
        panic!("expected the close hook");
    };
    assert_eq!(close.code, Some(close_code::INTERNAL));
    assert!(close.reason.contains("no pong"), "{close:?}");
    live.app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_peer_that_answers_pings_stays() {
    let live = start().await;
    let mut ws = within("connect", WsClient::connect(&live.url("/quick")))
        .await
        .unwrap();
    // Receiving answers pings; nothing else arrives in many ping intervals.
    assert!(tokio::time::timeout(Duration::from_millis(600), ws.recv())
        .await
        .is_err());
    ws.send_text("alive").await.unwrap();
    assert_eq!(within("echo", ws.recv_text()).await.unwrap(), "alive");
    drop(ws);
    live.app.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// An endpoint whose keepalive settings are not durations.
struct Misconfigured;

impl Misconfigured {
    async fn session(self: std::sync::Arc<Self>, _session: kumi_websocket::Session) {}
}

impl kumi_core::Service for Misconfigured {
    fn name(&self) -> &str {
        "chat"
    }

    fn routes(&self, router: &mut kumi_core::Router<Self>) {
        use kumi_websocket::WebSocketRouterExt;
        router
            .websocket("/ws", Self::session)
            .name("room")
            .ping_interval("20 parsecs")
            .close_timeout("soon");
    }
}

#[tokio::test]
async fn invalid_durations_are_startup_errors_naming_the_endpoint() {
    let http = kumi_http::HttpTransport::bind("127.0.0.1:0");
    let error = within(
        "the start to fail",
        kumi_core::App::new()
            .transport(http.shared())
            .service(Misconfigured)
            .start(),
    )
    .await
    .expect_err("the service does not start");
    assert_eq!(error.kind(), kumi_core::ErrorKind::Config, "{error}");
    let text = error.to_string();
    for part in [
        "GET /ws (chat.room)",
        "ping_interval '20 parsecs' is not a duration",
        "close_timeout 'soon' is not a duration",
    ] {
        assert!(text.contains(part), "{text:?} should contain {part:?}");
    }
}
