//! The tenant-node payment flow with the tenant's keys in a separate `micronode signer`
//! process, with the signer's default policy (balance accounting on, tight velocity limits):
//! A (`node run --signer remote`, a child process) opens to B, pays C through B, sends
//! sub-dust payments and a keysend, closes cooperatively, then opens again and force-closes,
//! sweeping after the delay. Every balance reconciles, and A's data directory, config and logs
//! hold no key.

mod daemon;

use std::time::Duration;

use daemon::tenant::*;
use micronode_proto::v1;
use micronode_testenv::nodes::{open_channel, Env, TIMEOUT};
use micronode_testenv::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_only_tenant_pays_closes_and_sweeps_with_a_remote_signer() {
    let env = Env::new("remote-flow").await;
    let b = env.start_node("b").await;
    let c = env.start_node("c").await;
    env.fund(&b, 2_000_000).await;
    open_channel(&env, &b, &c, CHANNEL_SAT).await;

    let a_dir = env.dir.0.join("a");
    let signer_dir = env.dir.0.join("a-signer");
    let Tenant {
        node: mut a,
        signer,
        words,
        ..
    } = start_pair(&env, &a_dir, &signer_dir, None);
    let mut client = a.client().await;
    fund(&env, &mut client, 3_000_000).await;
    connect_to(&mut client, &b).await;
    let ab = open_to(&env, &mut client, &b).await;
    wait_until("A's graph has B–C", TIMEOUT, || {
        let mut c = client.clone();
        async move {
            c.get_info(v1::GetInfoRequest {})
                .await
                .map(|i| i.into_inner().graph_channels >= 1)
                .unwrap_or(false)
        }
    })
    .await
    .expect("gossip");

    // --- A pays an invoice of C through B; the signer approves and signs every step. A's
    // balance is shown in whole sat, rounded down: it reconciles with the msat it sent so far.
    let a_start = in_channels_sat(&mut client).await;
    let mut spent_msat = 0;
    let b_before = b.lightning_balance().in_channels_sat;
    let amount_msat = 4_000_000;
    let invoice = c
        .create_invoice(Some(amount_msat), "coffee", 3600)
        .expect("invoice");
    let paid = pay(&mut client, invoice.invoice.clone(), true)
        .await
        .expect("pay");
    assert_eq!(paid.status, v1::PaymentStatus::Succeeded as i32, "{paid:?}");
    let fee = forwarding_fee_msat(amount_msat);
    assert_eq!(paid.fee_msat, Some(fee));
    settled(&client, &b).await;
    spent_msat += amount_msat + fee;
    assert_eq!(
        a_start - in_channels_sat(&mut client).await,
        spent_msat.div_ceil(1000)
    );
    assert_eq!(
        b.lightning_balance().in_channels_sat - b_before,
        fee / 1000,
        "B earned the fee"
    );

    // --- Sub-dust payments A -> C through B: invisible to the signer's HTLC checks, accounted
    // for by the approvals' credits. Each costs 1 sat plus B's 1 sat base fee.
    let c_before = c.lightning_balance().in_channels_sat;
    for i in 0..3 {
        let invoice = c
            .create_invoice(Some(1_000), format!("sub-dust {i}"), 3600)
            .expect("invoice");
        let paid = pay(&mut client, invoice.invoice, true)
            .await
            .expect("pay a sub-dust invoice");
        assert_eq!(paid.status, v1::PaymentStatus::Succeeded as i32, "{paid:?}");
        assert_eq!(paid.fee_msat, Some(forwarding_fee_msat(1_000)));
        spent_msat += 1_000 + forwarding_fee_msat(1_000);
    }
    settled(&client, &b).await;
    assert_eq!(
        a_start - in_channels_sat(&mut client).await,
        spent_msat.div_ceil(1000)
    );
    assert_eq!(c.lightning_balance().in_channels_sat - c_before, 3);

    // --- Keysend A -> C through B.
    let ks_msat = 1_000_000;
    let sent = client
        .keysend(v1::KeysendRequest {
            preimage: None,
            node_id: c.node_id().to_string(),
            amount_msat: ks_msat,
            wait: true,
            timeout_secs: Some(60),
            ..Default::default()
        })
        .await
        .expect("keysend")
        .into_inner();
    assert_eq!(sent.status, v1::PaymentStatus::Succeeded as i32, "{sent:?}");
    settled(&client, &b).await;
    spent_msat += ks_msat + forwarding_fee_msat(ks_msat);
    assert_eq!(
        a_start - in_channels_sat(&mut client).await,
        spent_msat.div_ceil(1000)
    );

    // --- Cooperative close: B gets exactly its channel balance; A (the funder) gets the rest
    // less the closing fee.
    let a_balance = CHANNEL_SAT - channel_balance_sat(&b, &ab);
    let a_onchain = onchain(&mut client).await.total_sat;
    let funding = funding_of(&mut client, &ab).await;
    client
        .close_channel(v1::CloseChannelRequest {
            channel_id: ab.clone(),
            force: false,
        })
        .await
        .expect("coop close");
    let closing = env.wait_for_spend(&funding).await;
    let closing_fee = micronode_testenv::fee_paid(CHANNEL_SAT, &closing);
    env.mine(1).await;
    let expected = a_onchain + a_balance - closing_fee;
    let reconciled = wait_until("A's wallet has the coop close", TIMEOUT, || {
        let mut c = client.clone();
        async move { onchain(&mut c).await.total_sat == expected }
    })
    .await;
    if let Err(e) = reconciled {
        panic!(
            "{e}: A has {:?}, expected {expected} (before {a_onchain}, channel {a_balance}, \
             fee {closing_fee}); closing outputs {:?}",
            onchain(&mut client).await,
            closing.output
        );
    }

    // --- A second channel, a payment to B, then a force close by A: A's commitment is signed
    // by the signer, and A's output is swept to A's wallet after the delay.
    let ab2 = open_to(&env, &mut client, &b).await;
    let invoice = b
        .create_invoice(Some(3_000_000), "before the force close", 3600)
        .expect("invoice");
    let paid = pay(&mut client, invoice.invoice, true)
        .await
        .expect("pay B");
    assert_eq!(paid.status, v1::PaymentStatus::Succeeded as i32);
    settled(&client, &b).await;
    assert_eq!(channel_balance_sat(&b, &ab2), 3_000);
    let a_balance = CHANNEL_SAT - 3_000;
    let a_onchain = onchain(&mut client).await.total_sat;
    let funding = funding_of(&mut client, &ab2).await;
    client
        .close_channel(v1::CloseChannelRequest {
            channel_id: ab2.clone(),
            force: true,
        })
        .await
        .expect("force close");
    let commitment = env.wait_for_spend(&funding).await;
    let commitment_fee = micronode_testenv::fee_paid(CHANNEL_SAT, &commitment);
    // An anchor channel: the tenant's signer signs the CPFP child (the anchor input and the
    // wallet's coins), which pays for the commitment at the sweep target.
    let child = env.wait_for_anchor_child(&commitment).await;
    let child_fee = env.fee_of(&child).await;
    let package_rate = (commitment_fee + child_fee) * 1000
        / (commitment.weight().to_wu() + child.weight().to_wu());
    assert!(package_rate >= 1_900, "package at {package_rate} sat/kWU");
    // The funder pays the commitment's fee and its two 330-sat anchors.
    let to_local_sat = a_balance - 2 * 330 - commitment_fee;
    let to_local = micronode_testenv::nodes::output_paying(&commitment, to_local_sat);
    let sweep = env.mine_until_spent(&to_local).await;
    let sweep_fee = env.fee_of(&sweep).await;
    env.mine(1).await;
    // Exact: the anchor comes back through the child's change, less the child's fee.
    let expected = a_onchain + 330 - child_fee + to_local_sat - sweep_fee;
    wait_until("A's output swept", Duration::from_secs(90), || {
        let mut c = client.clone();
        async move {
            let claimable = c
                .lightning_balance(v1::LightningBalanceRequest {})
                .await
                .map(|b| b.into_inner().claimable_sat)
                .unwrap_or(u64::MAX);
            onchain(&mut c).await.confirmed_sat == expected && claimable == 0
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: expected {expected} sat on chain"));

    // --- Watch-only: nothing of the tenant's secrets in A's directory, config or logs.
    a.terminate();
    drop(signer);
    daemon::watch_only::assert_no_secrets(&a_dir, &a_dir.with_extension("log"), &words, &a.node_id);
    for n in [&b, &c] {
        n.stop().await.expect("stop");
    }
}
