//! Attack class 3, nobody watching the chain for the tenant: the gateway (the operator's)
//! opens a channel to the tenant and pays it twice, keeping a copy of the state between the
//! payments, in which it held more; the operator stops the tenant's node, and the gateway
//! broadcasts that revoked state. The tenant's signer, following the
//! chain on its own, punishes it: its justice transaction takes every output of the revoked
//! commitment into the tenant's wallet, so the tenant ends with the whole channel (less the two
//! transactions' fees) and the gateway with nothing. `signer recover` then finds the breach
//! already punished and sweeps the wallet to the tenant's own address.

mod daemon;

use std::path::Path;
use std::str::FromStr;

use bitcoin::bip32::{ChildNumber, Xpub};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, CompressedPublicKey, Network, ScriptBuf};
use daemon::signer::{self, SignerProcess};
use daemon::tenant::*;
use micronode_proto::v1;
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::wait_until;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The tenant's change scripts, from the account xpub the signer exports.
fn change_script(xpub: &Xpub, index: u32) -> ScriptBuf {
    let key = xpub
        .derive_pub(
            &Secp256k1::new(),
            &[
                ChildNumber::Normal { index: 1 },
                ChildNumber::Normal { index },
            ],
        )
        .expect("derive")
        .public_key;
    ScriptBuf::new_p2wpkh(&CompressedPublicKey(key).wpubkey_hash())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_state_broadcast_by_the_gateway_is_punished_with_the_operator_gone() {
    let env = Env::new("thief-breach").await;
    let b = env.start_node("b").await;
    let signer_dir = env.dir.0.join("a-signer");
    std::fs::create_dir_all(&signer_dir).expect("dir");
    signer::init(&signer_dir); // the signer's default policy
    let public = signer::export_public(&signer_dir);
    let xpub = Xpub::from_str(public["wallet_xpub"].as_str().expect("xpub")).expect("xpub");
    let (launch, listen, code) = launch_remote(&env, &env.dir.0.join("a"));
    let signer_process = SignerProcess::start(&signer_dir, &listen, Some(&code), &env.bitcoind);
    let mut a = launch.ready();
    let mut client = a.client().await;
    let a_id: bitcoin::secp256k1::PublicKey = a.node_id.parse().expect("node id");
    let a_addr: std::net::SocketAddr = a.p2p.parse().expect("addr");

    // The gateway opens a channel to the tenant (inbound liquidity, as for a new tenant) and
    // pays it 50,000 sat: a state in which the gateway holds 950,000 sat less the fee.
    env.fund(&b, 2_000_000).await;
    b.connect_peer(a_id, a_addr).await.expect("connect");
    b.open_channel(a_id, CHANNEL_SAT, 0, Some(false))
        .expect("the gateway opens");
    wait_until("funding broadcast", TIMEOUT, || async {
        !env.mempool().await.is_empty()
    })
    .await
    .expect("funding");
    env.mine(6).await;
    wait_until("channel usable", TIMEOUT, || {
        let mut c = client.clone();
        async move { channels(&mut c).await.iter().any(|ch| ch.is_usable) }
    })
    .await
    .expect("usable");
    let channel_id = channels(&mut client).await[0].channel_id.clone();
    let funding = funding_of(&mut client, &channel_id).await;
    let invoicer = client.clone();
    let receive = |sat: u64, label: &'static str| {
        let mut client = invoicer.clone();
        async move {
            client
                .create_invoice(v1::CreateInvoiceRequest {
                    description_hash: None,
                    amount_msat: Some(sat * 1000),
                    description: label.into(),
                    expiry_secs: Some(3600),
                })
                .await
                .expect("invoice")
                .into_inner()
                .invoice
        }
    };
    let invoice = receive(50_000, "first").await;
    let id = b.pay_invoice(&invoice, None, None).expect("pay");
    let paid = b.wait_payment(&id, TIMEOUT).await.expect("resolves");
    assert_eq!(paid.status, micronode_node::PaymentStatus::Succeeded);
    settled(&client, &b).await;
    assert_eq!(in_channels_sat(&mut client).await, 50_000);

    // The operator, root on the gateway's host, keeps a copy of that state.
    b.stop().await.expect("stop b");
    let b_dir = env.dir.0.join("b");
    let old_dir = env.dir.0.join("b-old");
    copy_dir(&b_dir, &old_dir);
    let b = env.start_node("b").await;
    wait_until("the gateway reconnects", TIMEOUT, || async {
        b.connect_peer(a_id, a_addr).await.is_ok()
    })
    .await
    .expect("reconnected");

    // The gateway pays 100,000 sat more: the copied state is now revoked.
    let invoice = receive(100_000, "second").await;
    let id = b.pay_invoice(&invoice, None, None).expect("pay");
    let paid = b.wait_payment(&id, TIMEOUT).await.expect("resolves");
    assert_eq!(paid.status, micronode_node::PaymentStatus::Succeeded);
    settled(&client, &b).await;
    assert_eq!(in_channels_sat(&mut client).await, 150_000);

    // The operator stops the tenant's node and broadcasts the revoked state from its copy.
    drop(client);
    a.kill_9();
    b.stop().await.expect("stop b");
    let mut config = env.node_config("b");
    config.data_dir = old_dir;
    let cheater = env.start_node_with(config).await;
    cheater
        .close_channel(&channel_id, true)
        .expect("force close with the old state");
    let revoked = env.wait_for_spend(&funding).await;
    let revoked_txid = revoked.compute_txid();
    let revoked_total: u64 = revoked.output.iter().map(|o| o.value.to_sat()).sum();
    let commitment_fee = CHANNEL_SAT - revoked_total;
    env.mine(1).await;

    // The tenant's signer, alone, punishes it: every output of the revoked state but the two
    // 330-sat anchors (the cheater's node spends its own to bump the commitment). With anchors
    // the tenant's own `to_remote` (one-block CSV) is claimed in a transaction of its own; the
    // justice transaction takes the cheater's `to_local`.
    let claimable: Vec<u32> = (0..revoked.output.len() as u32)
        .filter(|vout| revoked.output[*vout as usize].value.to_sat() != 330)
        .collect();
    assert_eq!(
        claimable.len(),
        revoked.output.len() - 2,
        "an anchor channel"
    );
    let mut claims: Vec<bitcoin::Transaction> = Vec::new();
    for vout in &claimable {
        let outpoint = bitcoin::OutPoint::new(revoked_txid, *vout);
        wait_until("the signer's claims", TIMEOUT, || async {
            env.mine(1).await;
            env.spend_of(&outpoint).await.is_some()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: output {vout} of the revoked state is claimed"));
        let claim = env.spend_of(&outpoint).await.expect("claim");
        if !claims
            .iter()
            .any(|c| c.compute_txid() == claim.compute_txid())
        {
            claims.push(claim);
        }
    }
    env.mine(1).await;
    let largest = claimable
        .iter()
        .copied()
        .max_by_key(|v| revoked.output[*v as usize].value)
        .expect("outputs");
    let justice = claims
        .iter()
        .find(|c| {
            c.input
                .iter()
                .any(|i| i.previous_output == bitcoin::OutPoint::new(revoked_txid, largest))
        })
        .cloned()
        .expect("the justice transaction");
    // ...each into one output of the tenant's wallet, at a modest fee: together the whole
    // channel, less the commitment's fee and the anchors.
    let mut taken_sat = 0;
    for claim in &claims {
        assert_eq!(claim.output.len(), 1);
        assert!(
            (0..50).any(|i| change_script(&xpub, i) == claim.output[0].script_pubkey),
            "a claim pays the tenant's wallet"
        );
        let fee = env.fee_of(claim).await;
        assert!(fee > 0 && fee < 2_000, "claim fee {fee}");
        taken_sat += claim.output[0].value.to_sat() + fee;
    }
    assert_eq!(taken_sat, CHANNEL_SAT - commitment_fee - 2 * 330);
    let log = signer_process.log_text();
    assert!(log.contains("BREACH"), "the signer logged the breach");
    cheater.stop().await.expect("stop");

    // Later the tenant leaves: recover finds the breach already punished and sweeps the
    // wallet (the justice output and the funding change) to the tenant's own address.
    drop(signer_process);
    let to = Address::p2wpkh(
        &CompressedPublicKey(SecretKey::new(&mut rand::thread_rng()).public_key(&Secp256k1::new())),
        Network::Regtest,
    );
    let recovery =
        daemon::recovery::recover_to_the_end(&env, &signer_dir, &to.to_string(), 100).await;
    let punished = recovery.one("breach_punished");
    assert_eq!(punished["txid"], justice.compute_txid().to_string());
    assert_eq!(punished["commitment_txid"], revoked_txid.to_string());
    let wallet_swept = recovery.one("wallet_swept");
    let sweep = daemon::recovery::Recovery::tx(&env, wallet_swept).await;
    assert!(sweep
        .input
        .iter()
        .any(|i| i.previous_output == bitcoin::OutPoint::new(justice.compute_txid(), 0)));
    assert_eq!(sweep.output[0].script_pubkey, to.script_pubkey());
    assert_eq!(
        recovery.one("recovered")["total_sat"],
        sweep.output[0].value.to_sat()
    );
}
