//! An HTLC in flight at a force close is resolved on chain through the tenant's signer.
//!
//! The tenant (watch-only node, keys in `micronode signer`) pays a hold invoice of an
//! independent peer (ldk-node 0.7.1), which never settles it; the tenant force-closes. At the
//! HTLC's expiry LDK builds the zero-fee HTLC-timeout transaction, aggregated with a wallet
//! coin: the signer signs the wallet input (`sign_wallet_psbt` with a foreign HTLC input) and
//! the HTLC input (`sign_holder_htlc` on an anchor channel). bitcoind accepts it, the whole
//! HTLC goes to the tenant's delayed output, and the payment fails.

mod daemon;

use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use daemon::tenant::*;
use micronode_proto::v1;
use micronode_testenv::ldk_peer::{LdkPeer, PeerEvent};
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::wait_until;

const HELD_SAT: u64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_htlc_in_flight_at_a_force_close_times_out_on_chain_through_the_signer() {
    let env = Env::new("remote-htlc").await;
    let a_dir = env.dir.0.join("a");
    let signer_dir = env.dir.0.join("a-signer");
    let Tenant {
        node: a,
        signer: _signer,
        ..
    } = start_pair(&env, &a_dir, &signer_dir, None);
    let mut client = a.client().await;
    // The peer accepts an anchor channel with an empty wallet (no reserve of its own).
    let peer = LdkPeer::start_with(
        &env.bitcoind,
        &env.dir.0.join("peer"),
        &["--anchor-reserve-sat", "0"],
    )
    .await
    .expect("peer");
    fund(&env, &mut client, 2_000_000).await;

    // The tenant opens an anchor channel to the peer.
    client
        .connect_peer(v1::ConnectPeerRequest {
            node_id: peer.node_id().to_string(),
            address: peer.listen_addr().to_string(),
        })
        .await
        .expect("connect");
    client
        .open_channel(v1::OpenChannelRequest {
            node_id: peer.node_id().to_string(),
            amount_sat: CHANNEL_SAT,
            push_msat: 0,
            announce: Some(false),
        })
        .await
        .expect("open channel");
    wait_until("funding in mempool", TIMEOUT, || async {
        !env.mempool().await.is_empty()
    })
    .await
    .expect("funding broadcast");
    env.mine(6).await;
    peer.sync().await.expect("sync");
    wait_until("channel usable", TIMEOUT, || {
        let mut c = client.clone();
        async move { channels(&mut c).await.iter().any(|ch| ch.is_usable) }
    })
    .await
    .expect("usable");
    let channel = channels(&mut client).await.remove(0);

    // A payment the peer holds: the HTLC stays in flight.
    let preimage: [u8; 32] = rand::random();
    let hash = hex::encode(sha256::Hash::hash(&preimage).to_byte_array());
    let invoice = peer
        .hold_invoice(HELD_SAT * 1000, &hash, "held", 3600)
        .await
        .expect("hold invoice");
    let sent = pay(&mut client, invoice.bolt11, false).await.expect("sent");
    peer.expect_event(
        "payment claimable",
        TIMEOUT,
        |e| matches!(e, PeerEvent::PaymentClaimable { payment_hash, .. } if *payment_hash == hash),
    )
    .await
    .expect("claimable");
    wait_until("the HTLC on the tenant's commitment", TIMEOUT, || {
        let mut c = client.clone();
        async move {
            channels(&mut c)
                .await
                .iter()
                .any(|ch| ch.pending_htlcs == 1)
        }
    })
    .await
    .expect("in flight");

    // The tenant force-closes; the signer signs the commitment and its CPFP child.
    let funding = funding_of(&mut client, &channel.channel_id).await;
    client
        .close_channel(v1::CloseChannelRequest {
            channel_id: channel.channel_id.clone(),
            force: true,
        })
        .await
        .expect("force close");
    let commitment = env.wait_for_spend(&funding).await;
    let htlc = micronode_testenv::nodes::output_paying(&commitment, HELD_SAT);
    env.mine(1).await;

    // At expiry: the zero-fee HTLC-timeout, paid for by a wallet coin, signed by the signer.
    let timeout_tx = env.mine_until_spent(&htlc).await;
    let index = timeout_tx
        .input
        .iter()
        .position(|i| i.previous_output == htlc)
        .expect("spends the HTLC");
    assert!(
        timeout_tx.input.len() >= 2,
        "a wallet coin pays the fee: {timeout_tx:?}"
    );
    assert_eq!(
        timeout_tx.output[index].value.to_sat(),
        HELD_SAT,
        "the whole HTLC goes to the tenant's delayed output"
    );
    assert!(env.fee_of(&timeout_tx).await > 0);
    env.mine(1).await;
    let confirmations: serde_json::Value = env
        .bitcoind
        .rpc()
        .call(
            "getrawtransaction",
            &[
                serde_json::json!(timeout_tx.compute_txid().to_string()),
                serde_json::json!(true),
            ],
        )
        .await
        .expect("timeout transaction");
    assert!(
        confirmations["confirmations"].as_u64().unwrap_or(0) >= 1,
        "bitcoind mined the HTLC-timeout: every signature on it is valid"
    );
    // LDK fails the payment once the HTLC-timeout is six blocks deep (its reorg safety).
    env.mine(6).await;
    wait_until("the payment failed", Duration::from_secs(60), || {
        let mut c = client.clone();
        let id = sent.id.clone();
        async move {
            c.get_payment(v1::GetPaymentRequest {
                id,
                ..Default::default()
            })
            .await
            .map(|p| p.into_inner().status == v1::PaymentStatus::Failed as i32)
            .unwrap_or(false)
        }
    })
    .await
    .expect("failed");
    peer.stop().await.expect("stop peer");
}
