//! What the node broadcasts while bitcoind is down or hung is never lost, and what the wallet
//! signed is never spent twice.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Network, OutPoint, Txid};
use micronode_chain::{ChainServices, FeedConfig, FeedError, RpcAuth, RpcError};
use micronode_node::{NodeError, NodeEvent, PaymentStatus, SendAmount};
use micronode_testenv::nodes::{expect_event, Env, TIMEOUT};
use micronode_testenv::{wait_until, BitcoindRpc};

fn txid_of(funding_txo: &str) -> Txid {
    let (txid, _) = funding_txo.split_once(':').expect("txid:vout");
    Txid::from_str(txid).expect("txid")
}

/// A channel opened and a send made while bitcoind is stopped reach the chain once it is back,
/// with no manual step, and the channel carries a payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channel_opened_while_bitcoind_is_down_gets_mined() {
    let mut env = Env::new("outage").await;
    let a = env.start_node("a").await;
    let b = env.start_node("b").await;
    env.fund(&a, 600_000).await;
    env.fund(&a, 600_000).await;
    a.connect_peer(b.node_id(), b.listen_addr().expect("listening"))
        .await
        .expect("connect");

    env.bitcoind.stop().await.expect("stop bitcoind");
    wait_until("the node sees bitcoind gone", TIMEOUT, || async {
        !a.info().bitcoind_reachable
    })
    .await
    .expect("outage noticed");

    let mut events = a.subscribe_events();
    a.open_channel(b.node_id(), 400_000, 0, Some(false))
        .expect("open channel");
    let NodeEvent::ChannelPending {
        channel_id,
        funding_txo,
        ..
    } = expect_event(&mut events, "channel pending", |e| {
        matches!(e, NodeEvent::ChannelPending { .. })
    })
    .await
    else {
        unreachable!()
    };
    let funding = txid_of(&funding_txo);

    let address = b.new_address().expect("address");
    let err = a
        .send_onchain(&address, SendAmount::Sats(50_000), None)
        .await
        .expect_err("bitcoind is down");
    let NodeError::BroadcastDeferred { txid, source } = err else {
        panic!("expected a deferred broadcast, got {err:?}")
    };
    assert!(matches!(source, RpcError::Unreachable { .. }), "{source:?}");
    let sent = Txid::from_str(&txid).expect("txid");

    // Both are kept, and the node says they are not getting through.
    wait_until("both broadcasts reported failing", TIMEOUT, || async {
        a.info().broadcasts.failing.len() == 2
    })
    .await
    .expect("failing reported");
    let status = a.info().broadcasts;
    assert_eq!(status.unconfirmed, 2);
    let mut failing: Vec<Txid> = status
        .failing
        .iter()
        .map(|f| Txid::from_str(&f.txid).expect("txid"))
        .collect();
    failing.sort();
    let mut expected = vec![funding, sent];
    expected.sort();
    assert_eq!(failing, expected);
    assert!(status.failing.iter().all(|f| f.attempts >= 3));

    // bitcoind comes back on the same datadir and ports: both reach its mempool by themselves.
    env.bitcoind.restart().await.expect("restart bitcoind");
    for txid in [funding, sent] {
        env.bitcoind
            .wait_for_mempool_tx(&txid, TIMEOUT)
            .await
            .expect("rebroadcast");
    }
    wait_until("the node sees bitcoind back", TIMEOUT, || async {
        let info = a.info();
        info.bitcoind_reachable && info.broadcasts.failing.is_empty()
    })
    .await
    .expect("recovered");

    env.mine(6).await;
    wait_until("channel usable on both sides", TIMEOUT, || async {
        let usable = |cs: Vec<micronode_node::ChannelInfo>| {
            cs.iter().any(|c| c.channel_id == channel_id && c.is_usable)
        };
        usable(a.list_channels()) && usable(b.list_channels())
    })
    .await
    .expect("channel usable");
    wait_until("B has the on-chain payment", TIMEOUT, || async {
        b.onchain_balance().confirmed_sat == 50_000
    })
    .await
    .expect("paid on chain");
    wait_until("nothing left to get mined", TIMEOUT, || async {
        a.info().broadcasts.unconfirmed == 0
    })
    .await
    .expect("outbox empty");

    let invoice = b.create_invoice(Some(10_000_000), "after the outage", 600);
    let id = a
        .pay_invoice(&invoice.expect("invoice").invoice, None, None)
        .expect("pay");
    let record = a.wait_payment(&id, TIMEOUT).await.expect("paid");
    assert_eq!(record.status, PaymentStatus::Succeeded, "{record:?}");
    a.stop().await.expect("stop a");
    b.stop().await.expect("stop b");
}

/// With bitcoind hung (it accepts connections, answers nothing), a send gives up after the
/// RPC timeout with a typed error naming the kept transaction; a send abandoned mid-way is
/// recorded all the same; the next send does not spend their coins again, and all of them are
/// mined once bitcoind answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_while_bitcoind_hangs_are_recorded_and_never_double_spent() {
    let env = Env::with_rpc_timeout("hung", Duration::from_secs(3)).await;
    let a = Arc::new(env.start_node("a").await);
    let b = env.start_node("b").await;
    let funding = {
        let address = a.new_address().expect("address");
        let address = bitcoin::Address::from_str(&address)
            .expect("parse")
            .assume_checked();
        env.bitcoind
            .fund_address(&address, 500_000)
            .await
            .expect("fund")
    };
    env.mine(1).await;
    wait_until("A is funded", TIMEOUT, || async {
        a.onchain_balance().confirmed_sat == 500_000
    })
    .await
    .expect("funded");
    let coin = env
        .transaction(&funding)
        .await
        .output
        .iter()
        .position(|o| o.value.to_sat() == 500_000)
        .map(|vout| OutPoint::new(funding, vout as u32))
        .expect("the funding output");
    let address = b.new_address().expect("address");

    env.bitcoind.pause().expect("pause bitcoind");
    let err = a
        .send_onchain(&address, SendAmount::Sats(100_000), None)
        .await
        .expect_err("bitcoind hangs");
    let NodeError::BroadcastDeferred { txid, source } = err else {
        panic!("expected a deferred broadcast, got {err:?}")
    };
    assert!(
        matches!(&source, RpcError::Unreachable { source, .. } if source.kind() == std::io::ErrorKind::TimedOut),
        "{source:?}"
    );
    let first = Txid::from_str(&txid).expect("txid");

    // A second send, abandoned by its caller while bitcoind hangs: once it is signed, the
    // wallet has it, before any answer from bitcoind.
    let spent_before = a.onchain_balance();
    let sender = a.clone();
    let abandoned_to = address.clone();
    let task = tokio::spawn(async move {
        sender
            .send_onchain(&abandoned_to, SendAmount::Sats(70_000), None)
            .await
    });
    wait_until("the abandoned send is recorded", TIMEOUT, || async {
        a.info().broadcasts.unconfirmed == 2
            && a.onchain_balance().total_sat < spent_before.total_sat
    })
    .await
    .expect("recorded");
    task.abort();
    let _ = task.await;

    env.bitcoind.resume().expect("resume bitcoind");
    // The abandoned send reaches bitcoind by itself.
    let first_tx = env.wait_for_spend(&coin).await;
    assert_eq!(
        first_tx.compute_txid(),
        first,
        "the first send spent the coin"
    );
    let second_tx = env
        .wait_for_spend(&OutPoint::new(first, change_vout(&first_tx, 100_000)))
        .await;
    // The next send spends neither coin again.
    let third = a
        .send_onchain(&address, SendAmount::Sats(30_000), None)
        .await
        .expect("send with bitcoind back");
    let third_tx = env.transaction(&third).await;
    for earlier in [&first_tx, &second_tx] {
        for input in &third_tx.input {
            assert!(
                earlier
                    .input
                    .iter()
                    .all(|i| i.previous_output != input.previous_output),
                "{third} spends {} again",
                input.previous_output
            );
        }
    }
    env.mine(1).await;
    wait_until("B got all three", TIMEOUT, || async {
        b.onchain_balance().confirmed_sat == 200_000
    })
    .await
    .expect("all mined");
}

/// The output of `tx` that is not the `paid` one (the change).
fn change_vout(tx: &bitcoin::Transaction, paid: u64) -> u32 {
    tx.output
        .iter()
        .position(|o| o.value.to_sat() != paid)
        .expect("change") as u32
}

/// A bitcoind that accepts connections and never answers fails the start within the RPC
/// timeout, with the usual "not reachable" error.
#[tokio::test]
async fn hung_bitcoind_fails_the_start_within_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let rpc = BitcoindRpc::new(
        "127.0.0.1",
        port,
        RpcAuth::UserPass {
            user: "u".into(),
            pass: "p".into(),
        },
    )
    .expect("client")
    .with_timeout(Duration::from_secs(2));
    let err = ChainServices::start(
        Arc::new(rpc),
        FeedConfig {
            network: Network::Regtest,
            ..Default::default()
        },
    )
    .await
    .err()
    .expect("nothing answers");
    assert!(
        matches!(&err, FeedError::Rpc(RpcError::Unreachable { source, .. }) if source.kind() == std::io::ErrorKind::TimedOut),
        "{err:?}"
    );
    assert!(err.to_string().contains("not reachable"), "{err}");
    drop(listener);
}

/// A payment to the wallet shows as pending, to the satoshi, while it is in the mempool, and
/// as confirmed once mined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_payment_is_pending_then_confirmed() {
    let env = Env::new("mempool").await;
    let a = env.start_node("a").await;
    let address = bitcoin::Address::from_str(&a.new_address().expect("address"))
        .expect("parse")
        .assume_checked();
    let txid = env
        .bitcoind
        .fund_address(&address, 123_456)
        .await
        .expect("pay");
    env.bitcoind
        .wait_for_mempool_tx(&txid, TIMEOUT)
        .await
        .expect("in mempool");
    wait_until("the payment shows as pending", TIMEOUT, || async {
        a.onchain_balance().pending_incoming_sat == 123_456
    })
    .await
    .expect("pending");
    let balance = a.onchain_balance();
    assert_eq!(balance.confirmed_sat, 0);
    assert_eq!(balance.unconfirmed_sat, 123_456);
    assert_eq!(balance.total_sat, 123_456);

    env.mine(1).await;
    wait_until("the payment shows as confirmed", TIMEOUT, || async {
        let b = a.onchain_balance();
        b.confirmed_sat == 123_456 && b.pending_incoming_sat == 0
    })
    .await
    .expect("confirmed");
    a.stop().await.expect("stop");
}
