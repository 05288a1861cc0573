//! A graceful restart keeps channels and payments working; bad input gets typed errors.

use std::sync::Arc;
use std::time::Duration;

use bitcoin::Network;
use micronode_chain::{BitcoindRpc, ChainServices, FeedConfig, FeedError, RpcAuth, RpcError};
use micronode_node::{NodeError, NodeEvent, PaymentStatus, SendAmount};
use micronode_testenv::nodes::{open_channel, Env, TIMEOUT};
use micronode_testenv::{free_port, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_between_payments_keeps_channels() {
    let env = Env::new("restart").await;
    let a = env.start_node("a").await;
    let b = env.start_node("b").await;
    let c = env.start_node("c").await;
    env.fund(&a, 2_000_000).await;
    env.fund(&b, 2_000_000).await;
    open_channel(&env, &a, &b, 1_000_000).await;
    open_channel(&env, &b, &c, 1_000_000).await;
    wait_until("A's graph has both channels", TIMEOUT, || async {
        a.info().graph_channels >= 2
    })
    .await
    .expect("gossip");
    let mut a_events = a.subscribe_events();

    let pay = |amount: u64| {
        let invoice = c
            .create_invoice(Some(amount), "before", 600)
            .expect("invoice");
        a.pay_invoice(&invoice.invoice, None, None).expect("pay")
    };
    let id = pay(10_000_000);
    assert_eq!(
        a.wait_payment(&id, TIMEOUT).await.expect("paid").status,
        PaymentStatus::Succeeded
    );

    // Stop B gracefully and start it again on the same port, from the same directory.
    let b_config = {
        let mut config = b.config().clone();
        config.listen_addr = b.listen_addr();
        config
    };
    let channels_before = b.list_channels().len();
    // While B runs, nobody else may open its directory.
    let keys = std::sync::Arc::new(
        micronode_node::LocalKeys::load_or_create(&b_config.data_dir, Network::Regtest)
            .expect("keys"),
    );
    let second = micronode_node::Node::start(b_config.clone(), keys, env.chain.clone()).await;
    assert!(
        matches!(&second, Err(NodeError::Config(m)) if m.contains("in use")),
        "a second node on B's directory must be refused"
    );
    b.stop().await.expect("stop b");
    drop(b);
    env.mine(1).await;
    let b = env.start_node_with(b_config).await;
    assert_eq!(
        b.list_channels().len(),
        channels_before,
        "channels survive the restart"
    );
    wait_until("B's channels usable again", TIMEOUT, || async {
        b.list_channels().iter().all(|c| c.is_usable)
    })
    .await
    .expect("reconnected");

    for _ in 0..3 {
        let id = pay(5_000_000);
        let record = a.wait_payment(&id, TIMEOUT).await.expect("paid");
        assert_eq!(record.status, PaymentStatus::Succeeded, "{record:?}");
    }
    // No channel was closed by any of this.
    while let Ok(event) = a_events.try_recv() {
        assert!(
            !matches!(event, NodeEvent::ChannelClosed { .. }),
            "unexpected close: {event:?}"
        );
    }
    assert_eq!(a.list_channels().len(), 1);
    assert_eq!(c.list_channels().len(), 1);
    for n in [&a, &b, &c] {
        n.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors() {
    let env = Env::new("bad").await;
    let a = env.start_node("a").await;
    let b = env.start_node("b").await;
    env.fund(&a, 500_000).await;

    let err = a
        .pay_invoice("lnbcrt1notaninvoice", None, None)
        .expect_err("malformed invoice");
    assert!(matches!(err, NodeError::InvalidInput(_)), "{err:?}");

    let err = a
        .open_channel(b.node_id(), 100_000, 0, None)
        .expect_err("unknown peer");
    assert!(matches!(err, NodeError::UnknownPeer(_)), "{err:?}");

    a.connect_peer(b.node_id(), b.listen_addr().expect("listen"))
        .await
        .expect("connect");
    let err = a
        .open_channel(b.node_id(), 10_000_000, 0, None)
        .expect_err("too big");
    assert!(matches!(err, NodeError::InsufficientFunds(_)), "{err:?}");

    let address = b.new_address().expect("address");
    let err = a
        .send_onchain(&address, SendAmount::Sats(5_000_000), None)
        .await
        .expect_err("more than the balance");
    assert!(matches!(err, NodeError::InsufficientFunds(_)), "{err:?}");
    let err = a
        .send_onchain("bc1qnotregtest", SendAmount::Sats(1), None)
        .await
        .expect_err("bad address");
    assert!(matches!(err, NodeError::InvalidInput(_)), "{err:?}");

    // An invoice we cannot pay: no channel at all.
    let invoice = b
        .create_invoice(Some(1_000_000), "x", 600)
        .expect("invoice");
    let err = a
        .pay_invoice(&invoice.invoice, None, None)
        .expect_err("no channel");
    assert!(matches!(err, NodeError::InsufficientFunds(_)), "{err:?}");

    let err = a.close_channel("zz", false).expect_err("bad channel id");
    assert!(matches!(err, NodeError::InvalidInput(_)), "{err:?}");
    let err = a
        .close_channel(&"00".repeat(32), false)
        .expect_err("unknown channel");
    assert!(matches!(err, NodeError::UnknownChannel(_)), "{err:?}");

    // A good send still works after all that.
    let txid = a
        .send_onchain(&address, SendAmount::Sats(10_000), None)
        .await
        .expect("send");
    env.bitcoind
        .wait_for_mempool_tx(&txid, TIMEOUT)
        .await
        .expect("in mempool");
}

#[tokio::test]
async fn unreachable_bitcoind_is_a_typed_error() {
    let port = free_port();
    let rpc = BitcoindRpc::new(
        "127.0.0.1",
        port,
        RpcAuth::UserPass {
            user: "u".into(),
            pass: "p".into(),
        },
    )
    .expect("client")
    .with_timeout(Duration::from_secs(5));
    let err = ChainServices::start(
        Arc::new(rpc),
        FeedConfig {
            network: Network::Regtest,
            ..Default::default()
        },
    )
    .await
    .err()
    .expect("no bitcoind there");
    assert!(
        matches!(err, FeedError::Rpc(RpcError::Unreachable { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("not reachable"), "{err}");
}
