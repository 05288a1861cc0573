//! An HTLC in flight at a force close is resolved on chain through the tenant's signer.
//!
//! The tenant (watch-only node, keys in `micronode signer`) pays a hold invoice of an
//! independent peer (ldk-node 0.7.1), which never settles it; the tenant force-closes. At the
//! HTLC's expiry LDK builds the zero-fee HTLC-timeout transaction, aggregated with a wallet
//! coin: the signer signs the wallet input (`sign_wallet_psbt` with a foreign HTLC input) and
//! the HTLC input (`sign_holder_htlc` on an anchor channel). bitcoind accepts it, the whole
//! HTLC goes to the tenant's delayed output, and the payment fails. Before that, the operator
//! (a proxy between node and signer) tampers with the claim: an HTLC signature for a
//! transaction paying the HTLC elsewhere, and a wallet signature for one that takes part of
//! the wallet's coin; both are refused, with their rules in the signer's log.

mod daemon;

use std::time::Duration;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::{Amount, Psbt, Transaction};
use daemon::tenant::*;
use daemon::wallet_psbt::foreign_script;
use micronode_node::remote::protocol::{ChannelOp, Hex, SignerRequest, SignerResponse};
use micronode_proto::v1;
use micronode_testenv::ldk_peer::{LdkPeer, PeerEvent};
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::wait_until;

const HELD_SAT: u64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_htlc_in_flight_at_a_force_close_times_out_on_chain_through_the_signer() {
    let env = Env::new("remote-htlc").await;
    // The operator sits between the node and the signer.
    let ProxiedTenant {
        node: a,
        proxy,
        signer: signer_process,
        ..
    } = start_behind_proxy(&env, None).await;
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

    // At expiry the operator first tampers with the claim, once per request kind; LDK retries
    // the claim each block, and the honest retry goes through.
    // (1) The HTLC input's signature for a transaction whose paired output pays the operator.
    let shape = proxy.tamper_next(|r| {
        let SignerRequest::Channel {
            op: ChannelOp::SignHolderHtlc { tx, input, .. },
            ..
        } = r
        else {
            return false;
        };
        let mut t: Transaction = deserialize(&tx.0).expect("tx");
        t.output[*input as usize].script_pubkey = foreign_script();
        *tx = Hex(serialize(&t));
        true
    });
    let refused = answer_while_mining(&env, shape).await;
    assert_eq!(
        rule_of(&refused),
        "policy-anchor-spend-shape",
        "{refused:?}"
    );
    // (2) The wallet's signature on a claim whose HTLC output takes part of the wallet's coin.
    let skim = proxy.tamper_next(|r| {
        let SignerRequest::SignWalletPsbt { psbt, .. } = r else {
            return false;
        };
        let mut p = Psbt::deserialize(&psbt.0).expect("psbt");
        let Some(htlc_input) = p
            .inputs
            .iter()
            .position(|i| i.bip32_derivation.is_empty() && i.non_witness_utxo.is_none())
        else {
            return false;
        };
        p.unsigned_tx.output[htlc_input].value += Amount::from_sat(1_000);
        *psbt = Hex(p.serialize());
        true
    });
    let refused = answer_while_mining(&env, skim).await;
    assert_eq!(
        rule_of(&refused),
        "policy-onchain-no-unknown-outputs",
        "{refused:?}"
    );
    let log = signer_process.log_text();
    for rule in [
        "policy-anchor-spend-shape",
        "policy-onchain-no-unknown-outputs",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("REFUSED") && l.contains(rule)),
            "the signer logged {rule}"
        );
    }

    // The honest claim: the zero-fee HTLC-timeout, paid for by a wallet coin, signed by the
    // signer.
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

/// The signer's answer to a tampered request, mining a block at a time until the claim that
/// carries it is built (at the HTLC's expiry).
async fn answer_while_mining(
    env: &Env,
    mut answer: tokio::sync::oneshot::Receiver<SignerResponse>,
) -> SignerResponse {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        match tokio::time::timeout(Duration::from_millis(300), &mut answer).await {
            Ok(response) => return response.expect("the proxy answered"),
            Err(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no tampered request"
                );
                env.mine(1).await;
            }
        }
    }
}

fn rule_of(response: &SignerResponse) -> &str {
    match response {
        SignerResponse::Refused { rule, .. } => rule,
        other => panic!("not refused: {other:?}"),
    }
}
