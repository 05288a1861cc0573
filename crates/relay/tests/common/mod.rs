//! Helpers for the relay's tests: relays on 127.0.0.1:0, raw websockets and raw HTTP.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use micronode_relay::{RelayConfig, RelayHandle, StreamId};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A raw websocket to a relay.
pub type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A deadline so that a broken relay fails a test instead of hanging it. Not a speed check.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `future`, failing the test if it has not finished by [`DEADLINE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: nothing happened within {DEADLINE:?}"),
    }
}

/// Starts a relay on a free loopback port.
pub async fn start(config: RelayConfig) -> RelayHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    RelayHandle::start(listener, config).expect("start the relay")
}

/// A stream id made from a tag.
pub fn sid(tag: u8) -> StreamId {
    let mut bytes = [0u8; 64];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = tag.wrapping_mul(31).wrapping_add(i as u8);
    }
    StreamId::new(bytes)
}

/// The pairing protocol's two ids: `sid` and `sid` with byte 63 xor 1.
pub fn pair(tag: u8) -> (StreamId, StreamId) {
    let a = sid(tag);
    let mut b = *a.as_bytes();
    b[63] ^= 1;
    (a, StreamId::new(b))
}

/// Standard base64.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Opens a raw websocket on a route (`/v1/lightning-node-connect/hashmail/receive`).
pub async fn raw_ws(base_url: &str, route: &str) -> RawWs {
    let url = format!(
        "{}{route}?method=POST",
        base_url.replace("http://", "ws://")
    );
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connect");
    ws
}

/// Sends a text frame.
pub async fn send_text(ws: &mut RawWs, text: &str) {
    ws.send(Message::text(text))
        .await
        .expect("send a text frame");
}

/// Reads until a text frame (skipping control frames); `None` when the socket ends.
pub async fn next_text(ws: &mut RawWs) -> Option<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Binary(_))) => panic!("the relay sent a binary frame"),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
        }
    }
}

/// Expects an error frame, then the end of the socket; returns the error object.
pub async fn expect_error_then_close(ws: &mut RawWs) -> Value {
    let text = within("an error frame", next_text(ws))
        .await
        .expect("an error frame before the close");
    let value: Value = serde_json::from_str(&text).expect("JSON");
    let error = value
        .get("error")
        .unwrap_or_else(|| panic!("expected an error frame, got {text}"))
        .clone();
    assert!(
        within("the close", next_text(ws)).await.is_none(),
        "the socket should close after an error"
    );
    error
}

/// One raw HTTP/1.1 request; returns the status code and the body.
pub async fn http(base_url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let authority = base_url.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(authority).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    within("an HTTP response", tcp.read_to_end(&mut response))
        .await
        .expect("read");
    let response = String::from_utf8(response).expect("UTF-8 response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
