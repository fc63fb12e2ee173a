//! Client and server exchange text, binary and JSON; hooks see sessions come and go.

use std::time::Duration;

use kumi_websocket::{close_code, ClientOptions, ClosedBy, Frame, WsClient};
use serde::{Deserialize, Serialize};

use crate::support::{start, within, Seen};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Chat {
    from: String,
    text: String,
}

#[tokio::test]
async fn text_binary_and_json_round_trip() {
    let mut live = start().await;
    let mut ws = within("connect", WsClient::connect(&live.url("/echo/ann")))
        .await
        .unwrap();
    let Seen::Connected(id, name) = live.next_seen().await else {
        panic!("expected the connect hook first");
    };
    assert_eq!(name, "ann");

    ws.send_text("hello").await.unwrap();
    assert_eq!(within("echo", ws.recv_text()).await.unwrap(), "hello");

    ws.send_binary(vec![0u8, 1, 2, 255]).await.unwrap();
    assert_eq!(
        within("echo", ws.recv()).await.unwrap(),
        Some(Frame::Binary(vec![0u8, 1, 2, 255].into()))
    );

    let chat = Chat {
        from: "ann".into(),
        text: "こんにちは".into(),
    };
    ws.send_json(&chat).await.unwrap();
    assert_eq!(within("echo", ws.recv_json::<Chat>()).await.unwrap(), chat);

    let closed = within("close", ws.close()).await.unwrap();
    assert_eq!(closed.and_then(|c| c.code), Some(close_code::NORMAL));
    let seen = live.closed(id).await;
    assert_eq!(seen.code, Some(close_code::NORMAL));
    assert_eq!(seen.by, ClosedBy::Peer);
    live.app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn the_session_sees_path_params_query_and_headers() {
    let live = start().await;
    let options = ClientOptions {
        headers: vec![("x-agent".into(), "tests".into())],
        ..ClientOptions::default()
    };
    let mut ws = within(
        "connect",
        WsClient::connect_with(&live.url("/echo/bob?lang=ja"), options),
    )
    .await
    .unwrap();
    ws.send_text("whoami").await.unwrap();
    let me: serde_json::Value = within("whoami", ws.recv_json()).await.unwrap();
    assert_eq!(
        me,
        serde_json::json!({ "name": "bob", "query": "lang=ja", "agent": "tests" })
    );
    drop(ws);
    live.app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn the_handler_returning_closes_1000_failing_closes_1011() {
    let mut live = start().await;
    for (say, code) in [
        ("bye", close_code::NORMAL),
        ("fail", close_code::INTERNAL),
        ("panic", close_code::INTERNAL),
    ] {
        let mut ws = within("connect", WsClient::connect(&live.url("/echo/carl")))
            .await
            .unwrap();
        let Seen::Connected(id, _) = live.next_seen().await else {
            panic!("expected the connect hook");
        };
        ws.send_text(say).await.unwrap();
        assert_eq!(within("close", ws.recv()).await.unwrap(), None);
        assert_eq!(ws.close_info().and_then(|c| c.code), Some(code), "{say}");
        assert_eq!(live.closed(id).await.code, Some(code), "{say}");
    }
    // The server is still fine after a handler panicked.
    let mut ws = within("connect", WsClient::connect(&live.url("/echo/dee")))
        .await
        .unwrap();
    ws.send_text("still here?").await.unwrap();
    assert_eq!(within("echo", ws.recv_text()).await.unwrap(), "still here?");
    drop(ws);
    live.app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn the_connect_hook_can_refuse_with_1008() {
    let mut live = start().await;
    let mut ws = within("connect", WsClient::connect(&live.url("/echo/intruder")))
        .await
        .unwrap();
    assert_eq!(within("refusal", ws.recv()).await.unwrap(), None);
    let close = ws.close_info().unwrap();
    assert_eq!(close.code, Some(close_code::POLICY));
    assert_eq!(close.reason, "intruders are not welcome");
    assert!(matches!(live.next_seen().await, Seen::Connected(_, n) if n == "intruder"));
    live.app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_plain_get_on_an_endpoint_is_a_json_400() {
    let live = start().await;
    let addr = live.http.local_addr().unwrap();
    let response = within("plain GET", async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /echo/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        let _ = stream.read_to_string(&mut out).await;
        out
    })
    .await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains(r#"{"error":"#), "{response}");
    live.app.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn connecting_to_nothing_names_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("ws://{addr}/ws");
    let err = WsClient::connect(&url).await.unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
    let err = WsClient::connect("not a url").await.unwrap_err();
    assert_eq!(err.kind(), kumi_core::ErrorKind::Config);
}
