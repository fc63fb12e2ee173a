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
