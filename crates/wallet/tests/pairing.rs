//! The node's side of browser pairing against a real node, a real relay and a browser written
//! in Rust: pairing, the wallet API over the tunnel, one attempt per phrase, replayed and
//! reordered frames, a node restart (KK) and a relay restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{create_request, now, start_relay, within, Browser, World};
use micronode_lnc::{Handshake, Phrase, StreamIds};
use micronode_proto::ERROR_CODE_METADATA;
use micronode_relay::client::{MailboxReceiver, MailboxSender};
use micronode_relay::StreamId;
use serde_json::json;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_serves_the_wallet_api_and_reconnects_after_a_node_restart() {
    let world = World::new("wallet-pairs").await;
    let session_token = world.token(&["read", "invoice"]);

    // Another token may not register a session that hands out this one.
    let other = world.token(&["read"]);
    let refused = world
        .client()
        .await
        .create_pairing(World::request(
            create_request(&Phrase::generate(), &session_token),
            &other,
        ))
        .await
        .expect_err("only the token's holder registers it");
    assert_eq!(
        refused.metadata().get(ERROR_CODE_METADATA).unwrap(),
        "METHOD_NOT_ALLOWED"
    );

    let phrase = world.create_session(&session_token).await;
    assert_eq!(world.session_state(&session_token).await, "waiting");
    let relay = world.relay.url();
    let mut browser = within("pairing", Browser::pair(&relay, &phrase))
        .await
        .expect("pairs");
    assert_eq!(browser.auth["token"], json!(session_token));

    let info = browser.call("get_info", json!({})).await;
    assert_eq!(
        info["result"]["node_id"],
        json!(world.node.node_id().to_string())
    );
    assert_eq!(info["result"]["signer"], "local");
    let balance = browser.call("balance", json!({})).await;
    assert_eq!(
        balance["result"],
        json!({"spendable_sat": 0, "receivable_sat": 0, "onchain_sat": 0,
               "onchain_pending_sat": 0, "closing_sat": 0})
    );
    let marker = "pairing-marker-7c1f0e";
    let invoice = browser
        .call(
            "create_invoice",
            json!({"amount_sat": 1234, "description": marker}),
        )
        .await;
    let hash = invoice["result"]["payment_hash"]
        .as_str()
        .expect("an invoice")
        .to_string();
    let recorded = world.node.list_payments();
    let payment = recorded
        .iter()
        .find(|p| hex::encode(p.payment_hash) == hash)
        .expect("the node made the invoice");
    assert_eq!(payment.amount_msat, Some(1_234_000));
    // The tunnel can do what its token can, no more: this one may not pay.
    let pay = browser
        .call(
            "pay_invoice",
            json!({"invoice": invoice["result"]["invoice"], "app_request": {
            "request": {"method": "pay_invoice", "target": hash, "amount_msat": 1_234_000,
                        "nonce": "00".repeat(16), "time": now()}, "signature": "00".repeat(64)}}),
        )
        .await;
    assert_eq!(pay["error"]["code"], "METHOD_NOT_ALLOWED", "{pay}");
    let unknown = browser.call("send_everything", json!({})).await;
    assert_eq!(unknown["error"]["code"], "UNKNOWN_METHOD");
    let bad = browser
        .call("create_invoice", json!({"amount_sat": "lots"}))
        .await;
    assert_eq!(bad["error"]["code"], "BAD_REQUEST");
    assert_eq!(world.session_state(&session_token).await, "paired");

    // The node restarts its wallet link; the browser comes back with its keys (KK).
    let (local, node_key) = (browser.local, browser.node);
    drop(browser);
    world.link.stop().await;
    let (_stop, stop_rx) = watch::channel(false);
    let restarted = micronode_wallet::start_for_node(
        world.node.clone(),
        Arc::new(world.tokens.clone()),
        &relay,
        None,
        stop_rx,
    )
    .await
    .expect("restart");
    let mut again = within("KK", Browser::reconnect(&relay, local, node_key))
        .await
        .expect("KK");
    let info = again.call("get_info", json!({})).await;
    assert_eq!(
        info["result"]["node_id"],
        json!(world.node.node_id().to_string())
    );

    // The phrase was used: it pairs nothing more.
    let reuse = Browser::pair_within(&relay, &phrase, Duration::from_secs(3)).await;
    assert!(reuse.is_err(), "a used phrase pairs again");
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_phrase_ends_the_session_for_good() {
    let world = World::new("wallet-wrong").await;
    let token = world.token(&["read"]);
    let phrase = world.create_session(&token).await;
    // Whoever sees the relay knows the stream ids, but not the phrase: one try.
    let ids = StreamIds::from_phrase(&phrase);
    let relay = world.relay.url();
    let (mut tx, mut rx) = loop {
        let tx = MailboxSender::connect(&relay, &StreamId::new(ids.client_to_server)).await;
        let rx = MailboxReceiver::connect(&relay, &StreamId::new(ids.server_to_client)).await;
        if let (Ok(tx), Ok(rx)) = (tx, rx) {
            break (tx, rx);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let guess = Phrase::generate();
    let mut hs = Handshake::xx_initiator(
        Handshake::random_ephemeral(),
        guess.stretch(),
        Handshake::random_ephemeral(),
    );
    tx.send(&hs.write_act().unwrap()).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert!(
        !matches!(answer, Ok(Ok(_))),
        "the node answers a wrong guess with nothing"
    );
    within("the session fails", async {
        while world.session_state(&token).await != "failed" {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // The right phrase comes too late.
    let late = Browser::pair_within(&relay, &phrase, Duration::from_secs(3)).await;
    assert!(late.is_err(), "a failed session pairs nobody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_and_reordered_frames_end_the_connection_and_the_browser_comes_back() {
    let world = World::new("wallet-replay").await;
    let token = world.token(&["read"]);
    let phrase = world.create_session(&token).await;
    let relay = world.relay.url();
    let mut browser = within("pairing", Browser::pair(&relay, &phrase))
        .await
        .expect("pairs");
    let request =
        serde_json::to_vec(&json!({"id": 1, "method": "get_info", "params": {}})).unwrap();
    let frame = browser.send_raw(&request).await;
    let reply = browser.next_message().await;
    assert_eq!(reply["id"], 1);
    // The same frame again: refused; the connection is over, nothing answers it or what follows.
    browser.tx.send(&frame).await.unwrap();
    browser.send_raw(&request).await;
    let silence = tokio::time::timeout(Duration::from_secs(3), browser.rx.recv()).await;
    assert!(silence.is_err(), "the node answered after a replayed frame");

    // A new connection; then two frames in the wrong order.
    let (local, node_key) = (browser.local, browser.node);
    drop(browser);
    let mut browser = Browser::reconnect(&relay, local, node_key)
        .await
        .expect("KK");
    let first = browser.transport.encrypt(&request).unwrap();
    let second = browser.transport.encrypt(&request).unwrap();
    browser.tx.send(&second).await.unwrap();
    browser.tx.send(&first).await.unwrap();
    let silence = tokio::time::timeout(Duration::from_secs(3), browser.rx.recv()).await;
    assert!(silence.is_err(), "the node answered reordered frames");

    let (local, node_key) = (browser.local, browser.node);
    drop(browser);
    let mut browser = Browser::reconnect(&relay, local, node_key)
        .await
        .expect("KK again");
    let info = browser.call("get_info", json!({})).await;
    assert_eq!(
        info["result"]["node_id"],
        json!(world.node.node_id().to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_restarting_mid_session_is_survived_by_both_sides() {
    let world = World::new("wallet-relay-restart").await;
    let token = world.token(&["read"]);
    let phrase = world.create_session(&token).await;
    let relay_url = world.relay.url();
    let mut browser = within("pairing", Browser::pair(&relay_url, &phrase))
        .await
        .expect("pairs");
    assert!(browser
        .call("get_info", json!({}))
        .await
        .get("result")
        .is_some());

    // The relay goes away and comes back on the same address, with nothing in it.
    let addr = world.relay.local_addr();
    let World { relay, .. } = world;
    relay.shutdown().await.expect("relay stops");
    let relay = start_relay(&addr.to_string()).await;
    let received = tokio::time::timeout(Duration::from_secs(5), browser.rx.recv()).await;
    assert!(!matches!(received, Ok(Ok(_))), "the old connection is gone");
    let (local, node_key) = (browser.local, browser.node);
    drop(browser);
    let mut browser = within(
        "KK after the relay restart",
        Browser::reconnect(&relay_url, local, node_key),
    )
    .await
    .expect("reconnects");
    let info = browser.call("get_info", json!({})).await;
    assert!(info.get("result").is_some(), "{info}");
    drop(relay);
}
