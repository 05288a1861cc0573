//! The operator vanishes: the tenant node's process is killed and its data directory deleted.
//! With only the signer's directory (seed vault and validated state) and a bitcoind,
//! `micronode signer recover` gets everything back to the tenant's own address:
//!
//! - the channel with B, still open: force-closed with the latest state, its output swept after
//!   the delay;
//! - the channel with C, which C force-closed with its current state meanwhile: the tenant's
//!   output on C's commitment swept at once;
//! - the on-chain wallet, scanned up to its high-water mark.
//!
//! Every amount reconciles to the sat with the transactions' fees; a fee rate above the
//! tenant's ceiling is refused before anything happens; the operator is revoked.

mod daemon;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, CompressedPublicKey, Network, OutPoint};
use daemon::recovery::Recovery;
use daemon::signer;
use daemon::tenant::*;
use micronode_proto::v1;
use micronode_testenv::nodes::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signer_recover_returns_the_channel_funds_without_the_operator() {
    let env = Env::new("operator-vanishes").await;
    let b = env.start_node("b").await;
    let c = env.start_node("c").await;
    let a_dir = env.dir.0.join("a");
    let signer_dir = env.dir.0.join("a-signer");
    let Tenant {
        node: mut a,
        signer: mut signer_process,
        ..
    } = start_pair(&env, &a_dir, &signer_dir, Some(UNLIMITED_VELOCITY));
    let mut client = a.client().await;
    fund(&env, &mut client, 3_000_000).await;
    connect_to(&mut client, &b).await;
    connect_to(&mut client, &c).await;
    let ab = open_to(&env, &mut client, &b).await;
    let ac = open_to(&env, &mut client, &c).await;
    for (node, channel, sat) in [(&b, &ab, 100_000), (&c, &ac, 50_000)] {
        let invoice = node
            .create_invoice(Some(sat * 1000), "before the operator vanishes", 3600)
            .expect("invoice");
        let paid = pay(&mut client, invoice.invoice, true).await.expect("pay");
        assert_eq!(paid.status, v1::PaymentStatus::Succeeded as i32);
        settled(&client, node).await;
        assert_eq!(channel_balance_sat(node, channel), sat);
    }
    let ab_funding = funding_of(&mut client, &ab).await;
    let ac_funding = funding_of(&mut client, &ac).await;
    let wallet = onchain(&mut client).await;
    assert!(wallet.confirmed_sat > 900_000 && wallet.unconfirmed_sat == 0);

    // The operator vanishes with everything it held; C force-closes its channel meanwhile.
    drop(client);
    a.kill_9();
    std::fs::remove_dir_all(&a_dir).expect("delete the node's directory");
    signer_process.kill_9();
    c.close_channel(&ac, true).expect("C force-closes");
    let c_commitment = env.wait_for_spend(&ac_funding).await;
    env.mine(1).await;

    let key = SecretKey::new(&mut rand::thread_rng());
    let tenant_address = Address::p2wpkh(
        &CompressedPublicKey(key.public_key(&Secp256k1::new())),
        Network::Regtest,
    );
    // A fee rate above the tenant's sweep ceiling is refused before anything is touched.
    let (ok, _, stderr) = signer::run_once(
        &signer_dir,
        &[
            "recover",
            "--to",
            &tenant_address.to_string(),
            "--sat-per-vb",
            "5000",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("sweep fee ceiling"), "{stderr}");
    assert!(
        !signer_dir.join("state/REVOKED").exists(),
        "nothing happened"
    );

    let recovery =
        daemon::recovery::recover_to_the_end(&env, &signer_dir, &tenant_address.to_string(), 300)
            .await;
    recovery.one("operator_revoked");

    // B's channel: our latest state, our output swept after the delay.
    let broadcast = recovery.one("commitment_broadcast");
    let commitment = env.spend_of(&ab_funding).await.expect("the commitment");
    assert_eq!(
        broadcast["commitment_txid"],
        commitment.compute_txid().to_string()
    );
    let commitment_fee = micronode_testenv::fee_paid(CHANNEL_SAT, &commitment);
    // The funder (the tenant) pays the commitment's fee and its two 330-sat anchors.
    let ours = CHANNEL_SAT - 100_000 - 2 * 330 - commitment_fee;
    assert_eq!(
        broadcast["our_output_sat"], ours,
        "the latest state: {broadcast}"
    );
    let swept = recovery
        .all("swept")
        .into_iter()
        .find(|e| e["channel"] == broadcast["channel"])
        .expect("B's channel swept");
    let sweep = Recovery::tx(&env, swept).await;
    assert_eq!(
        sweep.output[0].script_pubkey,
        tenant_address.script_pubkey()
    );
    let sweep_fee = ours - sweep.output[0].value.to_sat();
    assert!(sweep_fee > 0 && sweep_fee < 2_000, "sweep fee {sweep_fee}");

    // C's channel: C's current state is on chain; our output on it is swept at once.
    let claimed = recovery.one("to_remote_broadcast");
    let claim = env
        .transaction(
            &claimed["txid"]
                .as_str()
                .expect("txid")
                .parse()
                .expect("txid"),
        )
        .await;
    let c_txid = c_commitment.compute_txid();
    let our_output = c_commitment
        .output
        .iter()
        .enumerate()
        .find(|(vout, _)| {
            claim
                .input
                .iter()
                .any(|i| i.previous_output == OutPoint::new(c_txid, *vout as u32))
        })
        .map(|(_, o)| o.value.to_sat())
        .expect("the claim spends C's commitment");
    // C funded nothing of ours: the tenant opened the channel, so the tenant's side is its
    // balance less the commitment fee and the two anchors it paid as the funder.
    let c_fee = micronode_testenv::fee_paid(CHANNEL_SAT, &c_commitment);
    assert_eq!(our_output, CHANNEL_SAT - 50_000 - 2 * 330 - c_fee);
    assert_eq!(
        claim.output[0].script_pubkey,
        tenant_address.script_pubkey()
    );
    let claim_fee = our_output - claim.output[0].value.to_sat();
    assert!(claim_fee > 0 && claim_fee < 2_000, "claim fee {claim_fee}");

    // The wallet: every coin, to the same address.
    let wallet_sweep = recovery
        .wallet_sweep(&env, wallet.confirmed_sat, &tenant_address)
        .await;
    assert_eq!(
        recovery.one("recovered")["total_sat"],
        sweep.output[0].value.to_sat()
            + claim.output[0].value.to_sat()
            + wallet_sweep.output[0].value.to_sat()
    );

    // The operator was revoked: the signer no longer serves any node.
    let (ok, _, stderr) = signer::run_once(&signer_dir, &["run", "--node", "127.0.0.1:1"]);
    assert!(!ok);
    assert!(stderr.contains("revoked"), "{stderr}");
    b.stop().await.expect("stop b");
    c.stop().await.expect("stop c");
}
