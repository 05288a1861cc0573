//! The relay sees ciphertext only: with everything the relay logs at TRACE captured (and the
//! node's wallet link at DEBUG), a pairing and the calls over it leave none of their plaintext,
//! the token or the stream ids in the logs. Its own test binary, so its log capture is the
//! process's only one.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{within, Browser, World};
use serde_json::json;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_logs_no_plaintext_of_a_session() {
    let captured = Captured::default();
    let writer = captured.clone();
    // tungstenite's own frame dumps (TRACE) print whole frames: deployments keep it at DEBUG.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "micronode_relay=trace,micronode_wallet=debug,tungstenite=debug",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let world = World::new("wallet-relay-logs").await;
    let token = world.token(&["read", "invoice"]);
    let phrase = world.create_session(&token).await;
    let mut browser = within("pairing", Browser::pair(&world.relay.url(), &phrase))
        .await
        .expect("pairs");
    let marker = "pairing-marker-7c1f0e";
    let invoice = browser
        .call(
            "create_invoice",
            json!({"amount_sat": 1234, "description": marker}),
        )
        .await;
    let bolt11 = invoice["result"]["invoice"]
        .as_str()
        .expect("an invoice")
        .to_string();
    let hash = invoice["result"]["payment_hash"]
        .as_str()
        .unwrap()
        .to_string();
    world.link.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("micronode_relay"),
        "the relay's logs were captured"
    );
    let words = phrase.to_words_string();
    for secret in [
        marker,
        token.as_str(),
        &bolt11,
        &hash,
        &words,
        "get_info",
        "create_invoice",
    ] {
        assert!(
            !logs.contains(secret),
            "the relay or the link logged {secret:?}"
        );
    }
}
