//! The relay's logs never contain message bytes or whole stream ids, even at TRACE, and even
//! when a request is malformed.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{b64, expect_error_then_close, raw_ws, send_text, sid, start, within};
use micronode_relay::client::{create_stream, delete_stream, MailboxReceiver, MailboxSender};
use micronode_relay::{RelayConfig, RelayError, SEND_PATH};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const SECRET: &[u8] = b"PLAINTEXT-SECRET-correct-horse-battery-staple";

#[tokio::test]
async fn logs_carry_no_message_bytes_and_only_short_stream_ids() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Everything at TRACE, except tungstenite's own frame dumps (through the `log` bridge):
    // those print whole frames, so a deployment must not run tungstenite at TRACE.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "trace,tungstenite=debug,tokio_tungstenite=debug",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let config = RelayConfig {
        max_message_bytes: 4096,
        ..RelayConfig::default()
    };
    let relay = start(config).await;
    let url = relay.url();
    let id = sid(40);
    create_stream(&url, &id).await.unwrap();
    let mut rx = MailboxReceiver::connect(&url, &id).await.unwrap();
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    for _ in 0..3 {
        tx.send(SECRET).await.unwrap();
        assert_eq!(within("recv", rx.recv()).await.unwrap(), SECRET);
    }
    // Refused messages: too large, and malformed JSON quoting the secret.
    let mut big = SECRET.to_vec();
    big.resize(5000, b'x');
    assert!(matches!(tx.send(&big).await, Err(RelayError::TooLarge(_))));
    let mut ws = raw_ws(&url, SEND_PATH).await;
    let text = String::from_utf8(SECRET.to_vec()).unwrap();
    send_text(
        &mut ws,
        &format!(r#"{{"desc": "{text}", "msg": "{text}"}}"#),
    )
    .await;
    expect_error_then_close(&mut ws).await;
    let mut ws = raw_ws(&url, SEND_PATH).await;
    send_text(&mut ws, &format!(r#"{{"msg": "{text}"#)).await;
    expect_error_then_close(&mut ws).await;
    delete_stream(&url, &id).await.unwrap();
    relay.shutdown().await.unwrap();

    // Debug output of the client types shows no bytes either.
    let shown = format!("{rx:?} {tx:?} {id:?}");
    assert!(!shown.contains(&hex::encode(id.as_bytes())), "{shown}");

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{logs}");
    }
    assert!(
        logs.contains(&id.short()),
        "the logs should name the stream by its prefix:\n{logs}"
    );
    let forbidden = [
        String::from_utf8_lossy(SECRET).to_string(),
        "PLAINTEXT-SECRET".to_string(),
        b64(SECRET),
        // A 3-byte-aligned part of the base64, so a differently padded copy is found too.
        b64(&SECRET[..30]),
        hex::encode(SECRET),
        hex::encode(&SECRET[..16]),
        b64(id.as_bytes()),
        hex::encode(id.as_bytes()),
        hex::encode(&id.as_bytes()[..8]),
    ];
    for needle in forbidden {
        assert!(
            !logs.contains(&needle),
            "the logs contain {needle:?}:\n{logs}"
        );
    }
}
