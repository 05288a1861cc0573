//! A brand-new tenant (its keys in a separate signer process, no channel, nothing on chain)
//! gets paid through a JIT channel from the gateway (LSPS2): the gateway holds the payment,
//! opens a channel to the tenant, and forwards the payment minus the opening fee the tenant
//! agreed to. The tenant's signer signs the JIT invoice and every commitment, with the
//! skimmed HTLC in it. A failed open fails the held payment back at once. Every amount
//! reconciles to the msat on both sides.

mod daemon;

use daemon::tenant::*;
use daemon::Client;
use micronode_node::{Lsps2ServiceSettings, PaymentStatus};
use micronode_proto::v1;
use micronode_testenv::nodes::{open_channel, Env, TestNode};

/// What the gateway charges: at least 2,000 sat, or 1 % of the payment.
fn service() -> Lsps2ServiceSettings {
    Lsps2ServiceSettings {
        min_fee_msat: 2_000_000,
        proportional_millionths: 10_000,
        channel_extra_sat: 100_000,
        ..Default::default()
    }
}

async fn jit_invoice(client: &mut Client, amount_msat: u64) -> String {
    client
        .create_invoice(v1::CreateInvoiceRequest {
            description_hash: None,
            amount_msat: Some(amount_msat),
            description: "first payment".into(),
            expiry_secs: Some(3600),
        })
        .await
        .expect("invoice")
        .into_inner()
        .invoice
}

async fn received(client: &mut Client, invoice: &str) -> (i32, Option<u64>) {
    let parsed: lightning_invoice::Bolt11Invoice = invoice.parse().expect("invoice parses");
    let payment = client
        .get_payment(v1::GetPaymentRequest {
            id: hex::encode(parsed.payment_hash()),
            direction: Some(v1::PaymentDirection::Inbound as i32),
        })
        .await
        .expect("payment")
        .into_inner();
    (payment.status, payment.amount_msat)
}

/// Pays `invoice` from `payer` and returns the outcome, mining as the payment needs.
async fn pay_mining(env: &Env, payer: &TestNode, invoice: &str) -> micronode_node::PaymentRecord {
    let id = payer.pay_invoice(invoice, None, None).expect("pay");
    outcome_mining(env, payer, &id).await
}

/// The tenant makes an invoice of `amount_msat` (a JIT invoice when its channels cannot
/// receive it), the payer pays it: the payer pays exactly the amount with no fee, the tenant
/// records `received_msat`, and nothing is left in flight.
async fn receive(
    env: &Env,
    client: &mut Client,
    payer: &TestNode,
    gateway: &TestNode,
    amount_msat: u64,
    received_msat: u64,
) {
    let invoice = jit_invoice(client, amount_msat).await;
    let paid = pay_mining(env, payer, &invoice).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    assert_eq!(paid.amount_msat, Some(amount_msat));
    assert_eq!(
        paid.fee_msat,
        Some(0),
        "the payer pays the invoice, no more"
    );
    assert_eq!(
        received(client, &invoice).await,
        (v1::PaymentStatus::Succeeded as i32, Some(received_msat))
    );
    settled(client, gateway).await;
}

/// The capacities of the gateway's channels with `tenant`, smallest first.
fn capacities(gateway: &TestNode, tenant: &str) -> Vec<u64> {
    let mut sizes: Vec<u64> = gateway
        .list_channels()
        .iter()
        .filter(|c| c.counterparty == tenant)
        .map(|c| c.capacity_sat)
        .collect();
    sizes.sort_unstable();
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_tenant_is_paid_through_a_jit_channel() {
    let env = Env::new("jit").await;
    let mut gateway_config = env.node_config("gateway");
    gateway_config.liquidity.lsps2_service = Some(service());
    let gateway = env.start_node_with(gateway_config).await;
    let payer = env.start_node("payer").await;
    env.fund(&payer, 2_000_000).await;
    open_channel(&env, &payer, &gateway, 1_000_000).await;

    let lsp = format!(
        "{}@{}",
        gateway.node_id(),
        gateway.listen_addr().expect("gateway listens")
    );
    let pair = start_pair_with(
        &env,
        &env.dir.0.join("tenant"),
        &env.dir.0.join("tenant-signer"),
        None,
        &["--lsp".to_string(), lsp],
    );
    let tenant = &pair.node;
    let mut client = tenant.client().await;
    assert!(channels(&mut client).await.is_empty());
    assert_eq!(onchain(&mut client).await.total_sat, 0);

    // --- The gateway has nothing on chain: it cannot open, and the payer's HTLC fails back
    // at once instead of waiting for its expiry. Nobody pays anything.
    let amount_msat = 50_000_000;
    let invoice = jit_invoice(&mut client, amount_msat).await;
    let payer_before = payer.lightning_balance().in_channels_sat;
    let failed = pay_mining(&env, &payer, &invoice).await;
    assert_eq!(failed.status, PaymentStatus::Failed, "{failed:?}");
    assert_eq!(payer.lightning_balance().in_channels_sat, payer_before);
    assert!(capacities(&gateway, &tenant.node_id).is_empty());

    // --- Funded, the gateway opens a channel of what it forwards plus 100,000 sat, and forwards
    // the payment less its fee: max(2,000 sat, 1 % of 50,000 sat) = 2,000 sat.
    env.fund(&gateway, 1_000_000).await;
    let fee_msat = 2_000_000;
    receive(
        &env,
        &mut client,
        &payer,
        &gateway,
        amount_msat,
        amount_msat - fee_msat,
    )
    .await;
    assert_eq!(
        capacities(&gateway, &tenant.node_id),
        [48_000 + 100_000],
        "what it forwards plus the extra"
    );
    assert_eq!(in_channels_sat(&mut client).await, 48_000);
    assert_eq!(
        onchain(&mut client).await.total_sat,
        0,
        "no on-chain step of the tenant's"
    );

    // --- The channel now receives: a plain invoice, forwarded for free, nothing skimmed.
    receive(&env, &mut client, &payer, &gateway, 20_000_000, 20_000_000).await;
    assert_eq!(in_channels_sat(&mut client).await, 68_000);
    assert_eq!(
        capacities(&gateway, &tenant.node_id),
        [148_000],
        "no second JIT channel"
    );

    // --- More than the channel can receive: a second JIT channel, for that payment less
    // max(2,000 sat, 1 % of 120,000 sat) = 2,000 sat.
    receive(
        &env,
        &mut client,
        &payer,
        &gateway,
        120_000_000,
        118_000_000,
    )
    .await;
    assert_eq!(in_channels_sat(&mut client).await, 68_000 + 118_000);
    assert_eq!(capacities(&gateway, &tenant.node_id), [148_000, 218_000]);

    drop(pair);
    for node in [&gateway, &payer] {
        node.stop().await.expect("stop");
    }
}
