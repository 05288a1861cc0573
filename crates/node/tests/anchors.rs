//! Anchor channels on a real regtest bitcoind: every channel is an anchor channel, a force
//! close is paid for by CPFP from the wallet (reconciled to the sat), and the on-chain reserve
//! an anchor channel needs is enforced both ways.

use bitcoin::OutPoint;
use micronode_node::{NodeError, NodeEvent, PaymentStatus};
use micronode_testenv::nodes::{expect_event, open_channel, Env, TestNode, TIMEOUT};
use micronode_testenv::wait_until;

const CHANNEL_SAT: u64 = 1_000_000;
const ANCHOR_SAT: u64 = 330;

fn channel(node: &TestNode, id: &str) -> micronode_node::ChannelInfo {
    node.list_channels()
        .into_iter()
        .find(|c| c.channel_id == id)
        .expect("channel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_close_of_an_anchor_channel_is_bumped_from_the_wallet_and_reconciles() {
    let env = Env::new("anchors-cpfp").await;
    let a = env.start_node("a").await;
    let b = env.start_node("b").await;
    env.fund(&a, 2_000_000).await;

    let ab = open_channel(&env, &a, &b, CHANNEL_SAT).await;
    assert!(channel(&a, &ab).anchors, "A's side is an anchor channel");
    assert!(channel(&b, &ab).anchors, "B's side is an anchor channel");

    // Give B a balance, so both sides have an output on the commitment.
    let invoice = b
        .create_invoice(Some(100_000_000), "both sides", 3600)
        .expect("invoice");
    let id = a.pay_invoice(&invoice.invoice, None, None).expect("pay");
    let paid = a.wait_payment(&id, TIMEOUT).await.expect("outcome");
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    wait_until("settled", TIMEOUT, || async {
        channel(&a, &ab).pending_htlcs == 0 && channel(&b, &ab).pending_htlcs == 0
    })
    .await
    .expect("settled");

    let funding: OutPoint = channel(&a, &ab)
        .funding_txo
        .expect("funded")
        .parse()
        .expect("outpoint");
    let a_channel_sat = channel(&a, &ab).balance_sat;
    let b_channel_sat = channel(&b, &ab).balance_sat;
    assert_eq!(b_channel_sat, 100_000);
    let a_before = a.onchain_balance().total_sat;
    let b_before = b.onchain_balance().total_sat;

    let mut b_events = b.subscribe_events();
    a.close_channel(&ab, true).expect("force close");
    let commitment = env.wait_for_spend(&funding).await;
    let commitment_fee = micronode_testenv::fee_paid(CHANNEL_SAT, &commitment);
    // The commitment is signed at the anchor rate (the mempool floor); the wallet pays for it
    // with a child spending A's anchor.
    let child = env.wait_for_anchor_child(&commitment).await;
    assert!(child.input.len() >= 2, "the child spends a wallet coin too");
    let child_fee = env.fee_of(&child).await;
    let package_rate = (commitment_fee + child_fee) * 1000
        / (commitment.weight().to_wu() + child.weight().to_wu());
    assert!(
        package_rate >= 1_900,
        "the package pays {package_rate} sat/kWU, below the sweep target"
    );
    env.mine(1).await;

    // Each side's output: A's after its CSV delay, B's (anchor `to_remote`, one-block CSV)
    // right away; both swept to the wallets.
    let output_paying = |sat: u64| micronode_testenv::nodes::output_paying(&commitment, sat);
    let to_remote = output_paying(b_channel_sat);
    // The anchors (paid by the funder) are not part of either balance.
    let to_local_sat = a_channel_sat - commitment_fee;
    let to_local = output_paying(to_local_sat);
    expect_event(&mut b_events, "B sees the close", |e| {
        matches!(e, NodeEvent::ChannelClosed { .. })
    })
    .await;
    let b_sweep = env.mine_until_spent(&to_remote).await;
    let a_sweep = env.mine_until_spent(&to_local).await;
    let b_sweep_fee = env.fee_of(&b_sweep).await;
    let a_sweep_fee = env.fee_of(&a_sweep).await;
    env.mine(1).await;

    let a_expected = a_before + ANCHOR_SAT - child_fee + to_local_sat - a_sweep_fee;
    let b_expected = b_before + b_channel_sat - b_sweep_fee;
    wait_until("both wallets reconcile", TIMEOUT, || async {
        a.onchain_balance().confirmed_sat == a_expected
            && b.onchain_balance().confirmed_sat == b_expected
            && a.lightning_balance().claimable_sat == 0
            && b.lightning_balance().claimable_sat == 0
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: A {:?} (expected {a_expected}), B {:?} (expected {b_expected})",
            a.onchain_balance(),
            b.onchain_balance()
        )
    });
    for n in [&a, &b] {
        n.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_anchor_channel_needs_its_on_chain_reserve() {
    const RESERVE: u64 = 25_000;
    let env = Env::new("anchors-reserve").await;
    let mut config = env.node_config("a");
    config.channels.anchor_reserve_sat = RESERVE;
    let a = env.start_node_with(config).await;
    let mut config = env.node_config("b");
    config.channels.anchor_reserve_sat = RESERVE;
    let b = env.start_node_with(config).await;
    env.fund(&a, 300_000).await;
    a.connect_peer(b.node_id(), b.listen_addr().expect("listening"))
        .await
        .expect("connect");

    // Opening: the wallet must keep the reserve after funding the channel.
    let err = a
        .open_channel(b.node_id(), 290_000, 0, Some(false))
        .expect_err("no reserve left");
    assert!(
        matches!(&err, NodeError::InsufficientFunds(m) if m.contains("25000 sat")),
        "{err}"
    );

    // Accepting: B holds nothing on chain, so it refuses the channel and A hears why.
    let mut a_events = a.subscribe_events();
    a.open_channel(b.node_id(), 200_000, 0, Some(false))
        .expect("A can afford it");
    let closed = expect_event(&mut a_events, "B refuses", |e| {
        matches!(e, NodeEvent::ChannelClosed { .. })
    })
    .await;
    let NodeEvent::ChannelClosed { reason, .. } = closed else {
        unreachable!()
    };
    // LDK retries a refused anchor channel as `static_remotekey`, which B refuses as well.
    assert!(reason.contains("anchor channel"), "{reason}");
    assert!(a.list_channels().is_empty() && b.list_channels().is_empty());

    // With its reserve on chain, B accepts.
    env.fund(&b, RESERVE).await;
    a.open_channel(b.node_id(), 200_000, 0, Some(false))
        .expect("open");
    expect_event(&mut a_events, "channel pending", |e| {
        matches!(e, NodeEvent::ChannelPending { .. })
    })
    .await;
    let opened = a.list_channels();
    assert_eq!(opened.len(), 1);
    assert!(opened[0].anchors);
    for n in [&a, &b] {
        n.stop().await.expect("stop");
    }
}
