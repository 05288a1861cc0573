//! `kill -9` of the gateway (a `node run --lsps2-service true` process) in the middle of a JIT
//! channel open: the funding is broadcast, the payer's HTLC is held. After a restart from the
//! same directory the payment has one outcome on both sides, the amounts reconcile to the msat,
//! and no channel is force-closed.

mod daemon;

use daemon::tenant::*;
use daemon::{Client, Daemon};
use micronode_node::{NodeEvent, PaymentStatus};
use micronode_proto::v1;
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::wait_until;

fn gateway_flags() -> Vec<String> {
    vec!["--lsps2-service".into(), "true".into()]
}

async fn connect(client: &mut Client, node_id: &str, address: &str) {
    client
        .connect_peer(v1::ConnectPeerRequest {
            node_id: node_id.to_string(),
            address: address.to_string(),
        })
        .await
        .expect("connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_killed_mid_jit_open_loses_nothing() {
    let env = Env::new("jit-crash").await;
    let gateway_dir = env.dir.0.join("gateway");
    let mut gateway = Daemon::start_with_args(&env, &gateway_dir, &gateway_flags());
    let mut gateway_client = gateway.client().await;
    fund(&env, &mut gateway_client, 1_000_000).await;

    // The payer opens a channel to the gateway.
    let payer = env.start_node("payer").await;
    env.fund(&payer, 2_000_000).await;
    let gateway_id: bitcoin::secp256k1::PublicKey = gateway.node_id.parse().expect("id");
    payer
        .connect_peer(gateway_id, gateway.p2p.parse().expect("addr"))
        .await
        .expect("connect");
    let mut events = payer.subscribe_events();
    payer
        .open_channel(gateway_id, 1_000_000, 0, Some(false))
        .expect("open");
    micronode_testenv::nodes::expect_event(&mut events, "channel pending", |e| {
        matches!(e, NodeEvent::ChannelPending { .. })
    })
    .await;
    wait_until("funding in mempool", TIMEOUT, || async {
        !env.mempool().await.is_empty()
    })
    .await
    .expect("funding");
    env.mine(6).await;
    wait_until("payer's channel usable", TIMEOUT, || async {
        payer.list_channels().iter().any(|c| c.is_usable)
    })
    .await
    .expect("usable");

    let pair = start_pair_with(
        &env,
        &env.dir.0.join("tenant"),
        &env.dir.0.join("tenant-signer"),
        None,
        &[
            "--lsp".to_string(),
            format!("{}@{}", gateway.node_id, gateway.p2p),
        ],
    );
    let mut tenant = pair.node.client().await;
    let invoice = tenant
        .create_invoice(v1::CreateInvoiceRequest {
            description_hash: None,
            amount_msat: Some(50_000_000),
            description: "paid across a crash".into(),
            expiry_secs: Some(3600),
        })
        .await
        .expect("JIT invoice")
        .into_inner()
        .invoice;

    // The payer pays; once the gateway has broadcast the JIT channel's funding, it dies.
    let payer_before = payer.lightning_balance().in_channels_sat;
    let id = payer.pay_invoice(&invoice, None, None).expect("pay");
    wait_until("the JIT funding in the mempool", TIMEOUT, || async {
        !env.mempool().await.is_empty()
    })
    .await
    .expect("the gateway opens the JIT channel");
    gateway.kill_9();

    // Restarted from the same directory, on a new port: the peers reconnect to it.
    let gateway = Daemon::start_with_args(&env, &gateway_dir, &gateway_flags());
    payer
        .connect_peer(gateway_id, gateway.p2p.parse().expect("addr"))
        .await
        .expect("payer reconnects");
    connect(&mut tenant, &gateway.node_id, &gateway.p2p).await;

    // Mine until the payment has its outcome.
    let outcome = outcome_mining(&env, &payer, &id).await;

    // One outcome on both sides, to the msat: the payer paid the invoice and the tenant got it
    // less the opening fee (2,000 sat), over one JIT channel.
    assert_eq!(outcome.status, PaymentStatus::Succeeded, "{outcome:?}");
    assert_eq!(outcome.fee_msat, Some(0));
    let hash = hex::encode(outcome.payment_hash);
    let received = tenant
        .get_payment(v1::GetPaymentRequest {
            id: hash,
            direction: Some(v1::PaymentDirection::Inbound as i32),
        })
        .await
        .expect("tenant's payment")
        .into_inner();
    assert_eq!(received.status, v1::PaymentStatus::Succeeded as i32);
    assert_eq!(received.amount_msat, Some(48_000_000));
    settled(&tenant, &payer).await;
    assert_eq!(in_channels_sat(&mut tenant).await, 48_000);
    assert_eq!(
        payer_before - payer.lightning_balance().in_channels_sat,
        50_000
    );

    // No channel was force-closed: the payer's and the tenant's channels are open and usable.
    assert!(payer.list_channels().iter().all(|c| c.is_usable));
    let tenant_channels = channels(&mut tenant).await;
    assert_eq!(tenant_channels.len(), 1, "{tenant_channels:?}");
    assert!(tenant_channels[0].is_usable);
    let mut gateway_client = gateway.client().await;
    assert_eq!(channels(&mut gateway_client).await.len(), 2);

    drop(pair);
    drop(gateway);
    payer.stop().await.expect("stop");
}
