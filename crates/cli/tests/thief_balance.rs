//! Attack class 1, a balance moved by a commitment: the operator (who runs the tenant's node and
//! the gateway it pays through) rewrites the commitments the node asks the signer to sign so
//! that the tenant's balance goes to the gateway with no approved payment: once on a running
//! channel, once on a new channel's first state (a push the tenant never made). The signer,
//! with its default policy, refuses both (`policy-routing-balanced`,
//! `policy-commitment-initial-funding-value`), logs them, and the
//! tenant then leaves with `signer recover`: every sat the tenant held comes back, and the
//! gateway gets exactly what it was really paid.

mod daemon;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, CompressedPublicKey, Network};
use daemon::recovery::Recovery;
use daemon::tenant::*;
use lightning::ln::chan_utils::{ChannelTransactionParameters, CommitmentTransaction};
use lightning::util::ser::{Readable, ReadableArgs, Writeable};
use micronode_node::remote::protocol::{ChannelOp, Hex, SignerRequest, SignerResponse};
use micronode_proto::v1;
use micronode_testenv::nodes::Env;

/// LDK's first commitment number (they count down).
const FIRST_COMMITMENT: u64 = (1 << 48) - 1;

/// Rewrites a counterparty-commitment signing request so that `sat` more of the channel is
/// the counterparty's (and `sat` less the tenant's); `pick` chooses which requests qualify.
fn move_balance(
    request: &mut SignerRequest,
    sat: u64,
    pick: impl Fn(&Hex, &CommitmentTransaction) -> bool,
) -> bool {
    let SignerRequest::Channel {
        keys_id,
        op: ChannelOp::SignCounterparty { params, tx, .. },
    } = request
    else {
        return false;
    };
    let parsed = ChannelTransactionParameters::read(&mut &params.0[..], None).expect("params");
    let commitment = CommitmentTransaction::read(&mut &tx.0[..]).expect("commitment");
    if !pick(keys_id, &commitment) || commitment.to_countersignatory_value_sat() < sat {
        return false;
    }
    let pcp = commitment.trust().keys().per_commitment_point;
    let htlcs = commitment
        .nondust_htlcs()
        .iter()
        .cloned()
        .map(|mut h| {
            h.transaction_output_index = None;
            h
        })
        .collect();
    // The counterparty broadcasts this one: its own output is the broadcaster's.
    let moved = CommitmentTransaction::new(
        commitment.commitment_number(),
        &pcp,
        commitment.to_broadcaster_value_sat() + sat,
        commitment.to_countersignatory_value_sat() - sat,
        commitment.negotiated_feerate_per_kw(),
        htlcs,
        &parsed.as_counterparty_broadcastable(),
        &Secp256k1::new(),
    );
    *tx = Hex(moved.encode());
    true
}

fn refusal_rule(response: SignerResponse) -> String {
    match response {
        SignerResponse::Refused { rule, .. } => rule,
        other => panic!("the signer did not refuse: {other:?}"),
    }
}

fn tenant_address() -> Address {
    let key = SecretKey::new(&mut rand::thread_rng());
    Address::p2wpkh(
        &CompressedPublicKey(key.public_key(&Secp256k1::new())),
        Network::Regtest,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_balance_moved_by_a_commitment_is_refused_and_recovery_returns_every_sat() {
    let env = Env::new("thief-balance").await;
    let b = env.start_node("b").await;
    // The signer's default policy.
    let ProxiedTenant {
        node: mut a,
        proxy,
        signer: mut signer_process,
        signer_dir,
        ..
    } = start_behind_proxy(&env, None).await;
    let mut client = a.client().await;

    // Honest use: one payment above the dust limit and three below it.
    fund(&env, &mut client, 2_000_000).await;
    connect_to(&mut client, &b).await;
    let channel_id = open_to(&env, &mut client, &b).await;
    let funding = funding_of(&mut client, &channel_id).await;
    for (amount_msat, label) in [
        (2_000_000, "above dust"),
        (1_000, "dust 1"),
        (1_000, "dust 2"),
        (1_000, "dust 3"),
    ] {
        let invoice = b
            .create_invoice(Some(amount_msat), label, 3600)
            .expect("invoice");
        let paid = pay(&mut client, invoice.invoice, true).await.expect("pay");
        assert_eq!(paid.status, v1::PaymentStatus::Succeeded as i32, "{paid:?}");
    }
    settled(&client, &b).await;
    const PAID_SAT: u64 = 2_003;
    assert_eq!(channel_balance_sat(&b, &channel_id), PAID_SAT);
    let first_keys_id = proxy
        .recorded()
        .iter()
        .find_map(|r| match r {
            SignerRequest::Channel {
                keys_id,
                op: ChannelOp::SignCounterparty { .. },
            } => Some(keys_id.clone()),
            _ => None,
        })
        .expect("the channel's keys id");

    // Attack 1: the next counterparty commitment (the one a new payment needs) is rewritten
    // to hand the gateway 100,000 sat of the tenant's balance.
    let answer = proxy.tamper_next(|r| move_balance(r, 100_000, |_, _| true));
    let bait = b
        .create_invoice(Some(1_000_000), "the bait", 3600)
        .expect("invoice");
    let _ = pay(&mut client, bait.invoice, false).await.expect("sent");
    let response = tokio::time::timeout(std::time::Duration::from_secs(60), answer)
        .await
        .expect("the signer answered")
        .expect("answer");
    assert_eq!(refusal_rule(response), "policy-routing-balanced");

    // Attack 2: a second channel whose first state gives the gateway 200,000 sat: a push the
    // tenant never approved (the node's API refuses a push; the operator's node need not).
    let answer = proxy.tamper_next(move |r| {
        move_balance(r, 200_000, |keys_id, c| {
            *keys_id != first_keys_id && c.commitment_number() == FIRST_COMMITMENT
        })
    });
    client
        .open_channel(v1::OpenChannelRequest {
            node_id: b.node_id().to_string(),
            amount_sat: 500_000,
            push_msat: 0,
            announce: Some(false),
        })
        .await
        .expect("open");
    let response = tokio::time::timeout(std::time::Duration::from_secs(60), answer)
        .await
        .expect("the signer answered")
        .expect("answer");
    assert_eq!(
        refusal_rule(response),
        "policy-commitment-initial-funding-value"
    );

    // Both refusals are in the tenant's log; nothing reached the chain (the second channel's
    // funding is signed only after its first state is: it never was).
    let log = signer_process.log_text();
    for rule in [
        "policy-routing-balanced",
        "policy-commitment-initial-funding-value",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("REFUSED") && l.contains(rule)),
            "{rule} in {log}"
        );
    }
    assert!(env.mempool().await.is_empty(), "nothing was broadcast");
    let wallet = onchain(&mut client).await;
    assert_eq!(wallet.unconfirmed_sat, 0);

    // The tenant leaves without the operator and gets everything back.
    drop(client);
    a.kill_9();
    signer_process.kill_9();
    let to = tenant_address();
    let recovery =
        daemon::recovery::recover_to_the_end(&env, &signer_dir, &to.to_string(), 400).await;
    let broadcast = recovery.one("commitment_broadcast");
    let commitment = env.spend_of(&funding).await.expect("the commitment");
    assert_eq!(
        broadcast["commitment_txid"],
        commitment.compute_txid().to_string()
    );
    // The last state the signer validated: the gateway holds exactly what it was paid.
    let commitment_fee = micronode_testenv::fee_paid(CHANNEL_SAT, &commitment);
    // The tenant funded the channel: it paid the commitment's fee and the two 330-sat anchors.
    let ours = CHANNEL_SAT - PAID_SAT - 2 * 330 - commitment_fee;
    assert_eq!(broadcast["our_output_sat"], ours, "{broadcast}");
    assert!(
        commitment
            .output
            .iter()
            .any(|o| o.value.to_sat() == PAID_SAT),
        "the gateway's output is what it was paid: {:?}",
        commitment.output
    );
    // Every sat of the tenant's reaches its address, less the sweeps' own fees.
    let swept = recovery.one("swept");
    let sweep = Recovery::tx(&env, swept).await;
    assert_eq!(sweep.output[0].script_pubkey, to.script_pubkey());
    let sweep_fee = ours - sweep.output[0].value.to_sat();
    assert!(sweep_fee > 0 && sweep_fee < 2_000, "sweep fee {sweep_fee}");
    let wallet_sweep = recovery.wallet_sweep(&env, wallet.confirmed_sat, &to).await;
    assert_eq!(
        recovery.one("recovered")["total_sat"],
        sweep.output[0].value.to_sat() + wallet_sweep.output[0].value.to_sat()
    );
    b.stop().await.expect("stop b");
}
