//! The independent ldk-node peer (`interop/ldk-peer`) against a real bitcoind and our node.
//!
//! Needs the peer binary: `LDK_PEER_EXE`, or a build in `interop/ldk-peer/target/debug`
//! (made on first use if missing; `scripts/test.sh` builds it first).

use std::time::Duration;

use micronode_node::{PaymentDirection, PaymentStatus};
use micronode_testenv::ldk_peer::{teach_fee_rate, LdkPeer, PeerBalances, PeerEvent};
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::{wait_until, Bitcoind};

/// LDK's commitment weight without HTLCs: anchor channels, and the others.
const COMMITMENT_WEIGHT_ANCHORS: u64 = 1124;
const COMMITMENT_WEIGHT_LEGACY: u64 = 724;
/// The two 330-sat anchor outputs the funder pays for.
const ANCHOR_OUTPUTS_SAT: u64 = 660;
/// ldk-node's default per-channel anchor reserve.
const LDK_NODE_ANCHOR_RESERVE_SAT: u64 = 25_000;

/// Syncs the peer until `pred` holds for its balances; returns them.
async fn peer_balances_until(
    peer: &LdkPeer,
    what: &str,
    pred: impl Fn(&PeerBalances) -> bool,
) -> PeerBalances {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        peer.sync().await.expect("sync");
        let balances = peer.balances().await.expect("balances");
        if pred(&balances) {
            return balances;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; balances: {balances:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_funds_itself_on_chain_to_the_sat() {
    let bitcoind = Bitcoind::start().await.expect("bitcoind");
    let dir = micronode_testenv::nodes::TempDir::new("ldk-peer-funds");
    let peer = LdkPeer::start(&bitcoind, &dir.0.join("peer"))
        .await
        .expect("start the peer");
    let info = peer.info().await.expect("info");
    assert_eq!(info.node_id, peer.node_id());
    assert!(info.is_running);
    assert_eq!(
        info.anchor_reserve_per_channel_sat,
        LDK_NODE_ANCHOR_RESERVE_SAT
    );

    let address = peer.new_address().await.expect("address");
    let txid = bitcoind
        .fund_address(&address, 1_234_567)
        .await
        .expect("fund");
    bitcoind.mine(1).await.expect("mine");
    let b = peer_balances_until(&peer, "the funds", |b| b.total_onchain_sat > 0).await;
    assert_eq!(b.total_onchain_sat, 1_234_567, "{txid}");
    assert_eq!(b.spendable_onchain_sat, 1_234_567);
    assert_eq!(b.total_anchor_channels_reserve_sat, 0);
    assert_eq!(b.total_lightning_sat, 0);
    assert!(b.lightning_balances.is_empty() && b.pending_sweep_balances.is_empty());

    // A command error is typed and names ldk-node's variant; the peer keeps serving.
    let err = peer.payment(&"00".repeat(32)).await.unwrap_err();
    assert!(err.to_string().contains("UnknownPayment"), "{err}");
    assert!(peer.next_event().await.expect("next event").is_none());
    peer.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_opens_a_channel_to_our_node_and_pays_an_invoice() {
    let env = Env::new("ldk-peer").await;
    let peer = LdkPeer::start(&env.bitcoind, &env.dir.0.join("ldk-peer"))
        .await
        .expect("start the peer");
    let ours = env.start_node("ours").await;
    // On-chain funds for our node: with anchor channels it keeps a reserve per channel and
    // refuses an inbound channel it could not cover.
    env.fund(&ours, 100_000).await;

    let address = peer.new_address().await.expect("address");
    let fund_txid = env
        .bitcoind
        .fund_address(&address, 1_000_000)
        .await
        .expect("fund");
    env.mine(1).await;
    let b = peer_balances_until(&peer, "the funds", |b| b.total_onchain_sat > 0).await;
    assert_eq!(b.total_onchain_sat, 1_000_000);
    assert_eq!(b.spendable_onchain_sat, 1_000_000);

    let user_channel_id = peer
        .open_channel(
            ours.node_id(),
            ours.listen_addr().expect("listening"),
            500_000,
            0,
            true,
        )
        .await
        .expect("open channel");
    let pending = peer
        .expect_event("channel pending", TIMEOUT, |e| {
            matches!(
                e,
                PeerEvent::ChannelPending { .. } | PeerEvent::ChannelClosed { .. }
            )
        })
        .await
        .expect("channel pending");
    let PeerEvent::ChannelPending {
        channel_id,
        user_channel_id: pending_id,
        funding_txo,
        ..
    } = pending
    else {
        panic!("the channel closed before it was funded: {pending:?}");
    };
    assert_eq!(pending_id, user_channel_id);
    let funding_txid: bitcoin::Txid = funding_txo.split(':').next().unwrap().parse().unwrap();
    env.bitcoind
        .wait_for_mempool_tx(&funding_txid, TIMEOUT)
        .await
        .expect("funding broadcast");
    let funding_tx = env.transaction(&funding_txid).await;
    // The funding transaction spends the peer's one coin, so its fee is what is missing.
    assert_eq!(funding_tx.input.len(), 1);
    assert_eq!(funding_tx.input[0].previous_output.txid, fund_txid);
    let funding_fee = micronode_testenv::fee_paid(1_000_000, &funding_tx);

    env.mine(6).await;
    peer.expect_event("channel ready", TIMEOUT, |e| {
        matches!(e, PeerEvent::ChannelReady { .. })
    })
    .await
    .expect("channel ready");
    wait_until("the channel is usable on both sides", TIMEOUT, || async {
        let theirs = peer.channels().await.expect("channels");
        theirs
            .iter()
            .any(|c| c.channel_id == channel_id && c.is_usable)
            && ours
                .list_channels()
                .iter()
                .any(|c| c.channel_id == channel_id && c.is_usable)
    })
    .await
    .expect("usable");

    let channel = peer.channels().await.expect("channels").remove(0);
    assert_eq!(channel.user_channel_id, user_channel_id);
    assert_eq!(channel.counterparty_node_id, ours.node_id());
    assert_eq!(channel.value_sat, 500_000);
    assert!(channel.is_outbound && channel.is_channel_ready && channel.is_announced);
    // ldk-node funds at its regtest rate: estimatesmartfee has no data, so 250 sat/kw
    // floored to 253 (see `teach_fee_rate`).
    assert_eq!(channel.feerate_sat_per_kw, 253);
    let anchors = channel
        .anchors
        .expect("the anchor reserve tells the channel type");
    eprintln!("channel type negotiated with our node: anchors = {anchors}");
    let (weight, anchor_outputs, reserve) = if anchors {
        (
            COMMITMENT_WEIGHT_ANCHORS,
            ANCHOR_OUTPUTS_SAT,
            LDK_NODE_ANCHOR_RESERVE_SAT,
        )
    } else {
        (COMMITMENT_WEIGHT_LEGACY, 0, 0)
    };
    let commit_fee = u64::from(channel.feerate_sat_per_kw) * weight / 1000;

    // The peer, to the sat: the wallet lost the channel and the funding fee; the channel holds
    // the rest of the 500 000 after the commitment fee and anchors it pays as the funder.
    let onchain = 1_000_000 - 500_000 - funding_fee;
    let to_self = 500_000 - commit_fee - anchor_outputs;
    // LDK counts an anchor output it leaves out (a side with nothing on the commitment gets
    // none) as commitment fee.
    let check_peer = |b: &PeerBalances, to_self: u64, to_remote: u64| {
        let elided_anchor = if anchors && to_remote == 0 { 330 } else { 0 };
        assert_eq!(b.total_onchain_sat, onchain, "{b:#?}");
        assert_eq!(b.spendable_onchain_sat, onchain - reserve, "{b:#?}");
        assert_eq!(b.total_anchor_channels_reserve_sat, reserve, "{b:#?}");
        assert_eq!(b.lightning_balances.len(), 1, "{b:#?}");
        let l = &b.lightning_balances[0];
        assert_eq!(l.kind, "ClaimableOnChannelClose");
        assert_eq!(l.channel_id, channel_id);
        assert_eq!(l.amount_sat, to_self, "{b:#?}");
        assert_eq!(
            l.transaction_fee_sat,
            Some(commit_fee + elided_anchor),
            "{b:#?}"
        );
        assert_eq!(b.total_lightning_sat, to_self);
        assert!(b.pending_sweep_balances.is_empty());
    };
    let b = peer_balances_until(&peer, "the channel balance", |b| {
        !b.lightning_balances.is_empty()
    })
    .await;
    check_peer(&b, to_self, 0);
    // Our node: its wallet untouched, nothing of its own in the channel yet.
    assert_eq!(ours.onchain_balance().confirmed_sat, 100_000);
    assert_eq!(ours.lightning_balance().in_channels_sat, 0);

    // The peer pays an invoice of ours over the direct channel: no routing fee.
    let amount_msat = 50_000_000;
    let invoice = ours
        .create_invoice(Some(amount_msat), "from ldk-node", 3600)
        .expect("invoice");
    let payment_id = peer.pay(&invoice.invoice).await.expect("pay");
    let paid = peer
        .wait_payment(&payment_id, TIMEOUT)
        .await
        .expect("payment resolves");
    assert_eq!(paid.status, "succeeded", "{paid:?}");
    assert_eq!(paid.direction, "outbound");
    assert_eq!(paid.kind, "bolt11");
    assert_eq!(paid.amount_msat, Some(amount_msat));
    assert_eq!(paid.fee_paid_msat, Some(0));
    assert_eq!(
        paid.payment_hash.as_deref(),
        Some(invoice.payment_hash.as_str())
    );
    let success = peer
        .expect_event("payment successful", TIMEOUT, |e| {
            matches!(e, PeerEvent::PaymentSuccessful { .. })
        })
        .await
        .expect("event");
    let PeerEvent::PaymentSuccessful {
        payment_hash,
        fee_paid_msat,
        ..
    } = success
    else {
        unreachable!()
    };
    assert_eq!(payment_hash, invoice.payment_hash);
    assert_eq!(fee_paid_msat, Some(0));

    let hash: [u8; 32] = hex::decode(&invoice.payment_hash)
        .unwrap()
        .try_into()
        .unwrap();
    wait_until("our node records the payment", TIMEOUT, || async {
        ours.payment_in(PaymentDirection::Inbound, &hash)
            .is_some_and(|p| p.status == PaymentStatus::Succeeded)
    })
    .await
    .expect("received");
    let received = ours
        .payment_in(PaymentDirection::Inbound, &hash)
        .expect("payment");
    assert_eq!(received.amount_msat, Some(amount_msat));

    // Both sides once the HTLC is gone from both commitments.
    let b = peer_balances_until(&peer, "the payment settled", |b| {
        b.lightning_balances
            .first()
            .is_some_and(|l| l.amount_sat == to_self - 50_000)
    })
    .await;
    check_peer(&b, to_self - 50_000, 50_000);
    wait_until("our channel balance", TIMEOUT, || async {
        ours.lightning_balance().in_channels_sat == 50_000
    })
    .await
    .expect("our balance");
    assert_eq!(ours.lightning_balance().claimable_sat, 50_000);
    assert_eq!(ours.onchain_balance().confirmed_sat, 100_000);
    let theirs = &ours.list_channels()[0];
    assert_eq!(theirs.capacity_sat, 500_000);
    assert_eq!(theirs.balance_sat, 50_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_rate_taught_to_bitcoind_reaches_ldk_node() {
    let bitcoind = Bitcoind::start().await.expect("bitcoind");
    let dir = micronode_testenv::nodes::TempDir::new("ldk-peer-fees");
    let peer = LdkPeer::start(&bitcoind, &dir.0.join("peer"))
        .await
        .expect("start the peer");
    let address = peer.new_address().await.expect("address");
    bitcoind
        .fund_address(&address, 1_000_000)
        .await
        .expect("fund");
    bitcoind.mine(1).await.expect("mine");

    let taught = teach_fee_rate(&bitcoind, 7).await.expect("teach 7 sat/vB");
    // The wallet rounds each fee up, so the average lands a hair above 7000 sat/kvB.
    assert!((7000..=7010).contains(&taught.sat_per_kvb), "{taught:?}");
    assert_eq!(taught.sat_per_kw, 1750, "{taught:?}");
    peer_balances_until(&peer, "the funds", |b| b.total_onchain_sat == 1_000_000).await;

    // An on-chain payment without a rate uses ldk-node's OnchainPayment target, which now
    // reads the taught estimate.
    let to = bitcoind
        .wallet_rpc()
        .get_new_address()
        .await
        .expect("address");
    let txid = peer
        .send_onchain(&to, 100_000, None)
        .await
        .expect("send on chain");
    bitcoind
        .wait_for_mempool_tx(&txid, TIMEOUT)
        .await
        .expect("broadcast");
    let hex: String = bitcoind
        .rpc()
        .call("getrawtransaction", &[serde_json::json!(txid.to_string())])
        .await
        .expect("tx");
    let tx: bitcoin::Transaction = bitcoin::consensus::encode::deserialize_hex(&hex).unwrap();
    let fee = micronode_testenv::fee_paid(1_000_000, &tx);
    let weight = tx.weight().to_wu();
    // BDK prices the weight it estimated before signing, a few WU above the signed weight
    // (signature lengths); at ldk-node's untaught 253 sat/kw this would be ~140 sat.
    let at_rate = taught.sat_per_kw * weight / 1000;
    assert!(
        (at_rate..=at_rate + 5).contains(&fee),
        "fee {fee} sat for {weight} WU, expected about {at_rate} (1750 sat/kw)"
    );
}
