//! The operator vanishes: the tenant node's process is killed and its data directory deleted.
//! With only the signer's directory (seed vault and validated state) and a bitcoind,
//! `micronode signer recover` force-closes the channel with the latest state, waits out the
//! delay and sweeps the tenant's side to the tenant's own address; the amount reconciles with
//! what the channel held, minus the commitment and sweep fees. The on-chain wallet's coins
//! follow to the same address. The operator is revoked.

mod daemon;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, CompressedPublicKey, Network};
use daemon::signer;
use daemon::tenant::*;
use micronode_proto::v1;
use micronode_testenv::nodes::Env;

/// The next event line, without blocking past `wait`.
fn poll_event(lines: &Receiver<String>, wait: Duration) -> Option<serde_json::Value> {
    let line = lines.recv_timeout(wait).ok()?;
    serde_json::from_str(&line).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signer_recover_returns_the_channel_funds_without_the_operator() {
    let env = Env::new("operator-vanishes").await;
    let b = env.start_node("b").await;
    let a_dir = env.dir.0.join("a");
    let signer_dir = env.dir.0.join("a-signer");
    let Tenant {
        node: mut a,
        signer: mut signer_process,
        ..
    } = start_pair(&env, &a_dir, &signer_dir, None);
    let mut client = a.client().await;
    fund(&env, &mut client, 2_000_000).await;
    connect_to(&mut client, &b).await;
    let channel_id = open_to(&env, &mut client, &b).await;
    let invoice = b
        .create_invoice(Some(100_000_000), "before the operator vanishes", 3600)
        .expect("invoice");
    let paid = pay(&mut client, invoice.invoice, true).await.expect("pay");
    assert_eq!(paid.status, v1::PaymentStatus::Succeeded as i32);
    settled(&client, &b).await;
    let funding = funding_of(&mut client, &channel_id).await;
    let tenant_balance = CHANNEL_SAT - channel_balance_sat(&b, &channel_id);
    assert_eq!(tenant_balance, CHANNEL_SAT - 100_000);
    let wallet = onchain(&mut client).await;
    assert!(wallet.confirmed_sat > 900_000 && wallet.unconfirmed_sat == 0);

    // The operator vanishes with everything it held.
    drop(client);
    a.kill_9();
    std::fs::remove_dir_all(&a_dir).expect("delete the node's directory");
    signer_process.kill_9();

    // The tenant recovers to an address of their own.
    let key = SecretKey::new(&mut rand::thread_rng());
    let tenant_address = Address::p2wpkh(
        &CompressedPublicKey(key.public_key(&Secp256k1::new())),
        Network::Regtest,
    );
    let (mut recover, lines) = signer::spawn_recover(
        &signer_dir,
        &env.bitcoind,
        &[
            "--to",
            &tenant_address.to_string(),
            "--poll-interval-ms",
            "100",
        ],
    );
    daemon::next_event(&lines, "operator_revoked");
    let broadcast = daemon::next_event(&lines, "commitment_broadcast");
    let commitment = env.wait_for_spend(&funding).await;
    assert_eq!(
        broadcast["commitment_txid"],
        commitment.compute_txid().to_string()
    );
    let commitment_fee = CHANNEL_SAT
        - commitment
            .output
            .iter()
            .map(|o| o.value.to_sat())
            .sum::<u64>();
    let ours = tenant_balance - commitment_fee;
    assert_eq!(
        broadcast["our_output_sat"], ours,
        "the latest state: {broadcast}"
    );
    let delay = broadcast["to_self_delay"].as_u64().expect("delay");

    // Mine through the delay; the sweep follows, then its confirmation.
    let mut mined = 0;
    let mut sweep = None;
    let mut wallet_swept = None;
    let mut recovered = None;
    while recovered.is_none() {
        assert!(mined < delay + 40, "no sweep after {mined} blocks");
        env.mine(5).await;
        mined += 5;
        while let Some(event) = poll_event(&lines, Duration::from_millis(300)) {
            match event["event"].as_str() {
                Some("sweep_broadcast") => sweep = Some(event),
                Some("recovered") => recovered = Some(event),
                Some("wallet_swept") => wallet_swept = Some(event),
                Some("channel_failed") => panic!("recovery failed: {event}"),
                _ => {}
            }
        }
    }
    let sweep = sweep.expect("a sweep was broadcast");
    let recovered = recovered.expect("recovered");
    assert!(mined >= delay, "the sweep waited for the delay");
    let swept_sat = sweep["amount_sat"].as_u64().expect("amount");
    // The on-chain wallet's coins (the funding change) went to the same address.
    let wallet_sat = wallet_swept.expect("the wallet was swept")["amount_sat"]
        .as_u64()
        .expect("amount");
    let wallet_fee = wallet.confirmed_sat - wallet_sat;
    assert!(
        wallet_fee > 0 && wallet_fee < 5_000,
        "wallet sweep fee {wallet_fee}"
    );
    assert_eq!(recovered["total_sat"], swept_sat + wallet_sat);
    let sweep_fee = ours - swept_sat;
    assert!(
        sweep_fee > 0 && sweep_fee < 5_000,
        "sweep fee {sweep_fee} (got {swept_sat} of {ours})"
    );
    // On chain: the tenant's address holds exactly that.
    let txid = sweep["txid"].as_str().expect("txid");
    let out: serde_json::Value = env
        .bitcoind
        .rpc()
        .call("gettxout", &[serde_json::json!(txid), serde_json::json!(0)])
        .await
        .expect("gettxout");
    assert_eq!(
        out["scriptPubKey"]["address"],
        tenant_address.to_string(),
        "{out}"
    );
    assert_eq!(
        (out["value"].as_f64().expect("value") * 1e8).round() as u64,
        swept_sat
    );
    let status = recover.wait().expect("recover exits");
    assert!(status.success());

    // The operator was revoked: the signer no longer serves any node.
    let (ok, _, stderr) = signer::run_once(&signer_dir, &["run", "--node", "127.0.0.1:1"]);
    assert!(!ok);
    assert!(stderr.contains("revoked"), "{stderr}");
    b.stop().await.expect("stop b");
}
