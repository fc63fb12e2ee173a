//! A hub forwards bus events to every connected client, or to a room.

use std::time::Duration;

use kumi_websocket::{close_code, Frame, WsClient};

use crate::support::{start, within, RoomMessage};

#[tokio::test]
async fn bus_events_reach_every_client() {
    let mut live = start().await;
    let mut clients = Vec::new();
    for room in ["a", "a", "b"] {
        let ws = within(
            "connect",
            WsClient::connect(&live.url(&format!("/feed/{room}"))),
        )
        .await;
        clients.push(ws.unwrap());
    }
    live.joined(3).await;
    assert_eq!(live.hub.len(), 3);

    let client = live.app.client();
    client
        .publish("prices", &serde_json::json!({ "tea": 4.5 }))
        .await
        .unwrap();
    for ws in &mut clients {
        let price: serde_json::Value = within("the broadcast", ws.recv_json()).await.unwrap();
        assert_eq!(price, serde_json::json!({ "tea": 4.5 }));
    }

    client
        .publish(
            "rooms",
            &RoomMessage {
                room: "a".into(),
                text: "only a".into(),
            },
        )
        .await
        .unwrap();
    client
        .publish("prices", &serde_json::json!({ "tea": 5.0 }))
        .await
        .unwrap();
    for ws in &mut clients[..2] {
        assert_eq!(
            within("room message", ws.recv_json::<String>())
                .await
                .unwrap(),
            "only a"
        );
        let next: serde_json::Value = within("broadcast", ws.recv_json()).await.unwrap();
        assert_eq!(next["tea"], 5.0);
    }
    // Room "b" skipped the room message: its next frame is the second broadcast.
    let next: serde_json::Value = within("broadcast", clients[2].recv_json()).await.unwrap();
    assert_eq!(next["tea"], 5.0);

    // A client that leaves leaves the hub.
    let gone = clients.pop().unwrap();
    gone.close().await.unwrap();
    assert!(matches!(
        live.next_seen().await,
        crate::support::Seen::Closed(..)
    ));
    assert_eq!(live.hub.len(), 2);
    assert_eq!(live.hub.broadcast(Frame::from("ping")), 2);
    drop(clients);
    live.app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_client_too_slow_for_the_hub_is_closed_1013() {
    let mut live = start().await;
    let mut ws = within("connect", WsClient::connect(&live.url("/tiny-queue/x")))
        .await
        .unwrap();
    let ids = live.joined(1).await;
    // On this single-threaded runtime nothing drains the queue (one frame) between these.
    assert_eq!(live.hub.broadcast(Frame::from("one")), 1);
    assert_eq!(live.hub.broadcast(Frame::from("two")), 0);
    assert_eq!(live.hub.len(), 0);
    let mut frames = Vec::new();
    while let Some(frame) = within("the close", ws.recv()).await.unwrap() {
        frames.push(frame);
    }
    assert!(frames.len() <= 1, "{frames:?}");
    assert_eq!(
        ws.close_info().and_then(|c| c.code),
        Some(close_code::TRY_AGAIN_LATER)
    );
    assert_eq!(
        live.closed(ids[0]).await.code,
        Some(close_code::TRY_AGAIN_LATER)
    );
    live.app.shutdown(Duration::from_secs(5)).await.unwrap();
}
