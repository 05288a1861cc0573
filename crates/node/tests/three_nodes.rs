//! Three nodes A–B–C on a real regtest bitcoind, over real TCP: multi-hop payments, keysend,
//! cooperative and force closes, with every balance reconciled to the satoshi.

use micronode_node::{NodeEvent, PaymentStatus};
use micronode_testenv::nodes::{expect_event, open_channel, Env, TestNode, TIMEOUT};
use micronode_testenv::wait_until;

const CHANNEL_SAT: u64 = 1_000_000;
/// B's forwarding fee for an amount, per the default channel settings (1000 msat + 100 ppm).
fn forwarding_fee_msat(amount_msat: u64) -> u64 {
    1000 + amount_msat * 100 / 1_000_000
}

struct Balances {
    a: u64,
    b: u64,
    c: u64,
}

fn lightning(a: &TestNode, b: &TestNode, c: &TestNode) -> Balances {
    Balances {
        a: a.lightning_balance().in_channels_sat,
        b: b.lightning_balance().in_channels_sat,
        c: c.lightning_balance().in_channels_sat,
    }
}

async fn wait_settled(node: &TestNode) {
    wait_until("no HTLC in flight", TIMEOUT, || async {
        node.list_channels()
            .iter()
            .all(|ch| ch.is_usable && ch.pending_htlcs == 0)
    })
    .await
    .expect("settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_hop_keysend_and_closes_reconcile() {
    let env = Env::new("three").await;
    let a = env.start_node("a").await;
    let b = env.start_node("b").await;
    let c = env.start_node("c").await;
    env.fund(&a, 2_000_000).await;
    env.fund(&b, 2_000_000).await;

    let ab = open_channel(&env, &a, &b, CHANNEL_SAT).await;
    let bc = open_channel(&env, &b, &c, CHANNEL_SAT).await;
    // A must learn the B–C channel from gossip to route keysend (no route hints there).
    wait_until("A's graph has both channels", TIMEOUT, || async {
        a.info().graph_channels >= 2
    })
    .await
    .expect("gossip");

    // --- A pays an invoice of C through B.
    let before = lightning(&a, &b, &c);
    let amount_msat = 50_000_000;
    let invoice = c
        .create_invoice(Some(amount_msat), "coffee", 3600)
        .expect("invoice");
    let mut c_events = c.subscribe_events();
    let id = a.pay_invoice(&invoice.invoice, None, None).expect("pay");
    let paid = a.wait_payment(&id, TIMEOUT).await.expect("payment outcome");
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    let fee = forwarding_fee_msat(amount_msat);
    assert_eq!(paid.fee_msat, Some(fee));
    expect_event(
        &mut c_events,
        "payment received",
        |e| matches!(e, NodeEvent::PaymentReceived { amount_msat: m, .. } if *m == amount_msat),
    )
    .await;
    let received = c.payment(&id).expect("C has the invoice");
    assert_eq!(received.status, PaymentStatus::Succeeded);
    assert_eq!(received.preimage, paid.preimage);
    for n in [&a, &b, &c] {
        wait_settled(n).await;
    }
    let after = lightning(&a, &b, &c);
    assert_eq!(
        before.a - after.a,
        (amount_msat + fee) / 1000,
        "A paid amount + fee"
    );
    assert_eq!(after.c - before.c, amount_msat / 1000, "C got the amount");
    assert_eq!(after.b - before.b, fee / 1000, "B earned the fee");

    // --- Keysend A -> C.
    let before = lightning(&a, &b, &c);
    let ks_msat = 20_000_000;
    let id = a.keysend(c.node_id(), ks_msat, None).expect("keysend");
    let sent = a.wait_payment(&id, TIMEOUT).await.expect("keysend outcome");
    assert_eq!(sent.status, PaymentStatus::Succeeded, "{sent:?}");
    let fee = forwarding_fee_msat(ks_msat);
    assert_eq!(sent.fee_msat, Some(fee));
    wait_until("C recorded the keysend", TIMEOUT, || async {
        c.payment(&id)
            .map(|p| p.status == PaymentStatus::Succeeded)
            .unwrap_or(false)
    })
    .await
    .expect("keysend received");
    for n in [&a, &b, &c] {
        wait_settled(n).await;
    }
    let after = lightning(&a, &b, &c);
    assert_eq!(before.a - after.a, (ks_msat + fee) / 1000);
    assert_eq!(after.c - before.c, ks_msat / 1000);
    assert_eq!(after.b - before.b, fee / 1000);

    // --- Cooperative close of A–B: B (not the funder) gets its channel balance exactly; A gets
    // its balance less the closing fee.
    let channel = a
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == ab)
        .expect("ab");
    let funding: bitcoin::OutPoint = channel
        .funding_txo
        .expect("funded")
        .parse()
        .expect("outpoint");
    let funding_value = env.prevout_value(&funding).await;
    assert_eq!(funding_value, CHANNEL_SAT);
    let b_side = b
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == ab)
        .expect("ab at b");
    let b_balance_sat = channel_balance_sat(&b, &ab);
    let a_balance_sat = CHANNEL_SAT - b_balance_sat;
    assert!(b_side.inbound_capacity_msat > 0);
    let a_onchain = a.onchain_balance().total_sat;
    let b_onchain = b.onchain_balance().total_sat;
    a.close_channel(&ab, false).expect("coop close");
    let closing = env.wait_for_spend(&funding).await;
    let closing_fee = micronode_testenv::fee_paid(funding_value, &closing);
    env.mine(1).await;
    wait_until("A and B see the close on chain", TIMEOUT, || async {
        a.onchain_balance().total_sat == a_onchain + a_balance_sat - closing_fee
            && b.onchain_balance().total_sat == b_onchain + b_balance_sat
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: A {} (expected {}), B {} (expected {})",
            a.onchain_balance().total_sat,
            a_onchain + a_balance_sat - closing_fee,
            b.onchain_balance().total_sat,
            b_onchain + b_balance_sat
        )
    });

    // --- Force close of B–C by B (the funder), an anchor channel: B's wallet pays for the
    // commitment by CPFP, C's output is swept after one block and B's after the CSV delay.
    // Every fee is taken from the real transactions, so both sides reconcile to the sat.
    let channel = b
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == bc)
        .expect("bc");
    assert!(channel.anchors);
    let funding: bitcoin::OutPoint = channel
        .funding_txo
        .expect("funded")
        .parse()
        .expect("outpoint");
    let c_balance_sat = channel_balance_sat(&c, &bc);
    let b_balance_sat = channel_balance_sat(&b, &bc);
    // The funder pays the two anchors, which neither balance counts.
    assert_eq!(b_balance_sat + c_balance_sat + 2 * 330, CHANNEL_SAT);
    let b_onchain = b.onchain_balance().total_sat;
    let c_onchain = c.onchain_balance().total_sat;
    // C is offline when B force-closes: otherwise C answers B's error by broadcasting its own
    // commitment, and which of the two reaches the mempool first is a race. C comes back to
    // a closed channel and sweeps its output from B's commitment.
    let c_config = c.config().clone();
    c.stop().await.expect("stop c");
    b.close_channel(&bc, true).expect("force close");
    let commitment = env.wait_for_spend(&funding).await;
    let commitment_fee = micronode_testenv::fee_paid(CHANNEL_SAT, &commitment);
    let child = env.wait_for_anchor_child(&commitment).await;
    let child_fee = env.fee_of(&child).await;
    drop(c);
    let c = env.start_node_with(c_config).await;
    let output_paying = |sat: u64| micronode_testenv::nodes::output_paying(&commitment, sat);
    let b_to_local = b_balance_sat - commitment_fee;
    let c_sweep = env.mine_until_spent(&output_paying(c_balance_sat)).await;
    let b_sweep = env.mine_until_spent(&output_paying(b_to_local)).await;
    let c_sweep_fee = env.fee_of(&c_sweep).await;
    let b_sweep_fee = env.fee_of(&b_sweep).await;
    env.mine(1).await;
    let b_expected = b_onchain + 330 - child_fee + b_to_local - b_sweep_fee;
    let c_expected = c_onchain + c_balance_sat - c_sweep_fee;
    wait_until("both sides swept", TIMEOUT, || async {
        b.onchain_balance().confirmed_sat == b_expected
            && c.onchain_balance().confirmed_sat == c_expected
            && b.lightning_balance().claimable_sat == 0
            && c.lightning_balance().claimable_sat == 0
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: B {:?} (expected {b_expected}), C {:?} (expected {c_expected})",
            b.onchain_balance(),
            c.onchain_balance()
        )
    });
    for n in [&a, &b, &c] {
        n.stop().await.expect("stop");
    }
}

/// A node's balance in a channel, in whole sats (exact with no HTLC in flight).
fn channel_balance_sat(node: &TestNode, channel_id: &str) -> u64 {
    let ch = node
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .expect("channel");
    ch.balance_sat
}
