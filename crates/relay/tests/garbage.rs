//! Malformed input gets an error (a frame or an HTTP status) and the relay keeps serving.

mod common;

use common::{b64, expect_error_then_close, http, raw_ws, send_text, sid, start, within};
use futures::SinkExt;
use micronode_relay::client::{create_stream, MailboxReceiver, MailboxSender};
use micronode_relay::{RelayConfig, RelayHandle, BOX_PATH, RECEIVE_PATH, SEND_PATH};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

async fn assert_still_serving(relay: &RelayHandle, tag: u8) {
    let url = relay.url();
    let id = sid(tag);
    create_stream(&url, &id).await.unwrap();
    let mut rx = MailboxReceiver::connect(&url, &id).await.unwrap();
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    tx.send(b"still serving").await.unwrap();
    assert_eq!(within("recv", rx.recv()).await.unwrap(), b"still serving");
}

fn assert_invalid(error: &Value, needle: &str) {
    assert_eq!(error["code"], 3, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "{message:?} should mention {needle:?}"
    );
    assert_eq!(error["details"][0]["reason"], "INVALID_REQUEST", "{error}");
}

#[tokio::test]
async fn garbage_on_the_receive_socket() {
    let relay = start(RelayConfig::default()).await;
    let url = relay.url();
    let cases = [
        ("this is not JSON", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (r#"{"stream_id": 5}"#, "stream_id must be a base64 string"),
        (
            r#"{"stream_id": "!!not base64!!"}"#,
            "stream_id is not valid base64",
        ),
        (r#"{}"#, "stream_id is required"),
    ];
    for (frame, needle) in cases {
        let mut ws = raw_ws(&url, RECEIVE_PATH).await;
        send_text(&mut ws, frame).await;
        assert_invalid(&expect_error_then_close(&mut ws).await, needle);
    }
    // A stream id one byte short.
    let mut ws = raw_ws(&url, RECEIVE_PATH).await;
    send_text(&mut ws, &format!(r#"{{"stream_id": "{}"}}"#, b64(&[7; 63]))).await;
    assert_invalid(
        &expect_error_then_close(&mut ws).await,
        "must be 64 bytes, not 63",
    );
    // A binary frame.
    let mut ws = raw_ws(&url, RECEIVE_PATH).await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_invalid(&expect_error_then_close(&mut ws).await, "binary frames");

    assert_still_serving(&relay, 30).await;
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_on_the_send_socket() {
    let relay = start(RelayConfig::default()).await;
    let url = relay.url();
    let id = sid(31);
    create_stream(&url, &id).await.unwrap();
    let good_desc = format!(r#"{{"stream_id": "{}"}}"#, b64(id.as_bytes()));
    let cases = [
        ("{not json".to_string(), "not valid JSON"),
        (
            format!(r#"{{"desc": {good_desc}, "msg": "%%%"}}"#),
            "msg is not valid base64",
        ),
        (
            format!(r#"{{"desc": {good_desc}, "msg": [1]}}"#),
            "msg must be a base64 string",
        ),
        (
            r#"{"msg": "AAAA"}"#.to_string(),
            "desc.stream_id is required",
        ),
        (
            r#"{"desc": "x", "msg": "AAAA"}"#.to_string(),
            "desc must be a JSON object",
        ),
        (
            format!(
                r#"{{"desc": {{"stream_id": "{}"}}, "msg": "AAAA"}}"#,
                b64(&[1; 65])
            ),
            "must be 64 bytes, not 65",
        ),
    ];
    for (frame, needle) in cases {
        let mut ws = raw_ws(&url, SEND_PATH).await;
        send_text(&mut ws, &frame).await;
        assert_invalid(&expect_error_then_close(&mut ws).await, needle);
    }
    let mut ws = raw_ws(&url, SEND_PATH).await;
    ws.send(Message::binary(vec![0; 10])).await.unwrap();
    assert_invalid(&expect_error_then_close(&mut ws).await, "binary frames");

    // Unknown stream on a raw socket: LNC's client looks for this exact text.
    let mut ws = raw_ws(&url, SEND_PATH).await;
    let unknown = format!(
        r#"{{"desc": {{"stream_id": "{}"}}, "msg": "AAAA"}}"#,
        b64(sid(32).as_bytes())
    );
    send_text(&mut ws, &unknown).await;
    let error = expect_error_then_close(&mut ws).await;
    assert_eq!(error["code"], 5);
    assert_eq!(error["message"], "stream not found");

    // A valid message after garbage still goes through (on another socket).
    assert_still_serving(&relay, 33).await;
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_over_http() {
    let relay = start(RelayConfig::default()).await;
    let url = relay.url();
    let cases = [
        ("nonsense", "not valid JSON"),
        (r#"{"lnd_auth": {}}"#, "desc is required"),
        (
            r#"{"desc": {"stream_id": 1}}"#,
            "desc.stream_id must be a base64 string",
        ),
        (r#"{"desc": {"stream_id": "@@"}}"#, "not valid base64"),
    ];
    for (body, needle) in cases {
        let (status, response) = http(&url, "POST", BOX_PATH, body).await;
        assert_eq!(status, 400, "{response}");
        let error: Value = serde_json::from_str(&response).unwrap();
        assert_invalid(&error, needle);
    }
    let short = format!(r#"{{"desc": {{"stream_id": "{}"}}}}"#, b64(&[9; 63]));
    let (status, response) = http(&url, "POST", BOX_PATH, &short).await;
    assert_eq!(status, 400);
    assert_invalid(
        &serde_json::from_str(&response).unwrap(),
        "64 bytes, not 63",
    );

    // The create/delete answers, grpc-gateway style.
    let body = format!(
        r#"{{"desc": {{"stream_id": "{}"}}, "lnd_auth": {{}}}}"#,
        b64(sid(34).as_bytes())
    );
    assert_eq!(
        http(&url, "POST", BOX_PATH, &body).await,
        (200, r#"{"success":{}}"#.to_string())
    );
    let (status, response) = http(&url, "POST", BOX_PATH, &body).await;
    assert_eq!(status, 409);
    let error: Value = serde_json::from_str(&response).unwrap();
    assert_eq!(error["code"], 6);
    assert_eq!(
        http(&url, "DELETE", BOX_PATH, &body).await,
        (200, "{}".into())
    );
    let (status, response) = http(&url, "DELETE", BOX_PATH, &body).await;
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<Value>(&response).unwrap()["code"], 5);

    // The streaming calls over plain HTTP point at the websocket form.
    for path in [SEND_PATH, RECEIVE_PATH] {
        let (status, response) = http(&url, "POST", path, "{}").await;
        assert_eq!(status, 400);
        assert_invalid(&serde_json::from_str(&response).unwrap(), "websocket");
        let (status, _) = http(&url, "GET", &format!("{path}?method=POST"), "").await;
        assert_eq!(status, 400);
    }

    assert_still_serving(&relay, 35).await;
    relay.shutdown().await.unwrap();
}
