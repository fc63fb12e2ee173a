//! Shutdown closes every session with 1001 Going Away and waits for them.

use std::time::Duration;

use kumi_websocket::{close_code, ClosedBy, WsClient};

use crate::support::{start, within};

#[tokio::test]
async fn shutdown_closes_sessions_with_1001() {
    let mut live = start().await;
    let mut echo = within("connect", WsClient::connect(&live.url("/echo/eve")))
        .await
        .unwrap();
    let mut feed = within("connect", WsClient::connect(&live.url("/feed/a")))
        .await
        .unwrap();
    live.joined(1).await;
    echo.send_text("hi").await.unwrap();
    assert_eq!(within("echo", echo.recv_text()).await.unwrap(), "hi");

    let late = live.url("/echo/late");
    let shutdown = tokio::spawn(live.app.shutdown(Duration::from_secs(5)));
    for ws in [&mut echo, &mut feed] {
        assert_eq!(within("the close", ws.recv()).await.unwrap(), None);
        let close = ws.close_info().unwrap();
        assert_eq!(close.code, Some(close_code::GOING_AWAY), "{close:?}");
        assert_eq!(close.by, ClosedBy::Peer);
    }
    let report = within("shutdown", shutdown).await.unwrap().unwrap();
    assert_eq!(report.abandoned, 0, "{report:?}");
    assert!(report.settled >= 2, "{report:?}");
    assert!(WsClient::connect(&late).await.is_err());
}

#[tokio::test]
async fn a_handler_still_running_at_the_deadline_is_abandoned() {
    let live = start().await;
    let mut ws = within("connect", WsClient::connect(&live.url("/stubborn")))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let shutdown = tokio::spawn(live.app.shutdown(Duration::from_millis(300)));
    // The connection still closes with 1001 at once...
    assert_eq!(within("the close", ws.recv()).await.unwrap(), None);
    assert_eq!(
        ws.close_info().and_then(|c| c.code),
        Some(close_code::GOING_AWAY)
    );
    // ...but the handler ignores it, and is given up at the transports' deadline: half of the
    // budget, since this service has bus routes too (they drain in the other half).
    let report = within("shutdown", shutdown).await.unwrap().unwrap();
    assert_eq!(report.abandoned, 1, "{report:?}");
    assert!(started.elapsed() >= Duration::from_millis(120));
}
