//! Three nodes A–B–C on a real regtest bitcoind, over real TCP: multi-hop payments, keysend,
//! cooperative and force closes, with every balance reconciled to the satoshi.

use std::time::Duration;

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

    // --- Force close of B–C by B (the funder): C's output is swept to its wallet; B's is
    // swept after the CSV delay. Both reconcile against the transactions' real fees.
    let channel = b
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == bc)
        .expect("bc");
    let funding: bitcoin::OutPoint = channel
        .funding_txo
        .expect("funded")
        .parse()
        .expect("outpoint");
    let c_balance_sat = channel_balance_sat(&c, &bc);
    let b_balance_sat = CHANNEL_SAT - c_balance_sat;
    let b_onchain = b.onchain_balance().total_sat;
    let c_onchain = c.onchain_balance().total_sat;
    b.close_channel(&bc, true).expect("force close");
    let commitment = env.wait_for_spend(&funding).await;
    let commitment_fee = micronode_testenv::fee_paid(CHANNEL_SAT, &commitment);
    // Mine past the to_self_delay (144 blocks) in steps so sweeps get broadcast and confirmed.
    for _ in 0..16 {
        env.mine(10).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each side's wallet must receive its channel balance less the real fees, give or take the
    // sweep's own fee (bounded below).
    const MAX_SWEEP_FEE: u64 = 5_000;
    let b_floor = b_onchain + b_balance_sat - commitment_fee - MAX_SWEEP_FEE;
    let c_floor = c_onchain + c_balance_sat - MAX_SWEEP_FEE;
    wait_until("both sides swept", Duration::from_secs(90), || async {
        env.mine(1).await;
        let done = b.onchain_balance().confirmed_sat > b_floor
            && c.onchain_balance().confirmed_sat > c_floor
            && b.lightning_balance().claimable_sat == 0
            && c.lightning_balance().claimable_sat == 0;
        tokio::time::sleep(Duration::from_millis(100)).await;
        done
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: B {:?} C {:?}",
            b.onchain_balance(),
            c.onchain_balance()
        )
    });
    let b_gain = b.onchain_balance().total_sat - b_onchain;
    let c_gain = c.onchain_balance().total_sat - c_onchain;
    // Sweep fees are whatever the sweeps paid; everything else is accounted for exactly.
    let b_sweep_fee = b_balance_sat - commitment_fee - b_gain;
    let c_sweep_fee = c_balance_sat - c_gain;
    assert!(
        b_sweep_fee > 0 && b_sweep_fee < MAX_SWEEP_FEE,
        "B's sweep fee {b_sweep_fee}"
    );
    assert!(
        c_sweep_fee > 0 && c_sweep_fee < MAX_SWEEP_FEE,
        "C's sweep fee {c_sweep_fee}"
    );
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
