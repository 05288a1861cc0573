//! The tenant's signer dies (`kill -9`) in the middle of a burst of payments: the node stays
//! up, answers "signer offline" to new payments, and once the signer is back every payment
//! resolves, payer and payee agree, new payments go through and no channel was closed.

mod daemon;

use std::time::Duration;

use daemon::signer::SignerProcess;
use daemon::tenant::*;
use micronode_node::{NodeEvent, PaymentDirection, PaymentStatus};
use micronode_proto::v1;
use micronode_proto::ERROR_CODE_METADATA;
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::wait_until;

const PAYMENTS: usize = 30;
// Above the dust threshold LDK assumes at a fee spike (about 3,500 sat at regtest's 2,000
// sat/kw), so the payments do not count against the dust exposure cap.
const AMOUNT_MSAT: u64 = 4_000_000;

fn error_code(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get(ERROR_CODE_METADATA)
        .and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_signer_mid_burst_loses_nothing_and_closes_nothing() {
    let env = Env::new("signer-offline").await;
    let b = env.start_node("b").await;
    let a_dir = env.dir.0.join("a");
    let signer_dir = env.dir.0.join("a-signer");
    let Tenant {
        node: a,
        mut signer,
        signer_listen,
        ..
    } = start_pair(&env, &a_dir, &signer_dir, Some(UNLIMITED_VELOCITY));
    let mut client = a.client().await;
    fund(&env, &mut client, 2_000_000).await;
    connect_to(&mut client, &b).await;
    let channel_id = open_to(&env, &mut client, &b).await;
    let mut b_events = b.subscribe_events();

    // The burst, with the signer killed once a few payments have landed.
    let invoices: Vec<_> = (0..PAYMENTS)
        .map(|i| {
            b.create_invoice(Some(AMOUNT_MSAT), format!("burst {i}"), 3600)
                .expect("invoice")
        })
        .collect();
    // A third of the burst goes out; once five of those have landed the signer dies, and the
    // rest of the burst is sent into the outage.
    let before_kill = PAYMENTS / 3;
    let spawn_pay = |invoice: String| {
        let mut c = client.clone();
        tokio::spawn(async move { pay(&mut c, invoice, false).await })
    };
    let mut sends = Vec::new();
    for inv in &invoices[..before_kill] {
        sends.push(spawn_pay(inv.invoice.clone()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until("five payments land before the kill", TIMEOUT, || async {
        b.list_payments()
            .iter()
            .filter(|p| {
                p.direction == PaymentDirection::Inbound && p.status == PaymentStatus::Succeeded
            })
            .count()
            >= 5
    })
    .await
    .expect("payments before the kill");
    signer.kill_9();
    for inv in &invoices[before_kill..] {
        sends.push(spawn_pay(inv.invoice.clone()));
    }
    for s in sends {
        let _ = s.await.expect("task"); // calls after the kill fail with "signer offline"
    }

    // The node is up and says why it cannot pay.
    let late = b
        .create_invoice(Some(AMOUNT_MSAT), "while the signer is away", 3600)
        .expect("invoice");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let offline = loop {
        match pay(&mut client, late.invoice.clone(), false).await {
            Err(status) if error_code(&status) == Some("SIGNER_OFFLINE") => break status,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "the node never reported the signer offline: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(offline.code(), tonic::Code::Unavailable);
    assert!(
        offline.message().contains("signer offline"),
        "{}",
        offline.message()
    );
    // The peer restarts while the signer is away. Without its signer the node cannot even
    // complete a peer handshake (the node key is the signer's), so the peer is turned away,
    // and the node stays up.
    while let Ok(event) = b_events.try_recv() {
        assert!(
            !matches!(event, NodeEvent::ChannelClosed { .. }),
            "channel closed: {event:?}"
        );
    }
    b.stop().await.expect("stop b");
    let b = env.start_node("b").await;
    let mut b_events = b.subscribe_events();
    let a_id: bitcoin::secp256k1::PublicKey = a.node_id.parse().expect("node id");
    let a_addr: std::net::SocketAddr = a.p2p.parse().expect("addr");
    assert!(
        b.connect_peer(a_id, a_addr).await.is_err(),
        "no handshake without the signer"
    );
    assert!(
        micronode_testenv::process_alive(a.child.id()),
        "the node survived the reconnection"
    );
    let info = client
        .get_info(v1::GetInfoRequest {})
        .await
        .expect("the node still answers reads")
        .into_inner();
    assert_eq!(info.num_channels, 1);

    // The signer returns (pinned now: no pairing code), the peer reconnects and everything
    // resolves.
    let signer = SignerProcess::start(&signer_dir, &signer_listen, None, &env.bitcoind);
    wait_until("B reconnects to A", TIMEOUT, || async {
        b.connect_peer(a_id, a_addr).await.is_ok()
    })
    .await
    .expect("reconnected");
    let succeeded = daemon::succeeded_payments(
        &mut client,
        invoices.iter().map(|i| i.payment_hash.as_str()),
    )
    .await;
    assert!(succeeded.len() >= 5, "the payments before the kill count");
    assert!(
        succeeded.len() < PAYMENTS,
        "the kill must interrupt the burst"
    );

    // Payer and payee agree on exactly what was paid.
    settled(&client, &b).await;
    let mut received: Vec<String> = b
        .list_payments()
        .into_iter()
        .filter(|p| {
            p.direction == PaymentDirection::Inbound && p.status == PaymentStatus::Succeeded
        })
        .map(|p| hex::encode(p.payment_hash))
        .collect();
    received.sort();
    assert_eq!(succeeded, received, "payer and payee agree");

    // Work resumes: the payment refused while offline now goes through.
    let paid = pay(&mut client, late.invoice, true).await.expect("pay");
    assert_eq!(paid.status, v1::PaymentStatus::Succeeded as i32, "{paid:?}");
    settled(&client, &b).await;
    let expected_sat = (received.len() as u64 + 1) * AMOUNT_MSAT / 1000;
    wait_until("B's balance is what it received", TIMEOUT, || async {
        channel_balance_sat(&b, &channel_id) == expected_sat
    })
    .await
    .expect("balances reconcile");
    while let Ok(event) = b_events.try_recv() {
        assert!(
            !matches!(event, NodeEvent::ChannelClosed { .. }),
            "channel closed: {event:?}"
        );
    }
    assert!(env.mempool().await.is_empty(), "nothing was broadcast");
    let log = std::fs::read_to_string(a_dir.with_extension("log")).expect("node log");
    assert!(!log.contains("panicked"), "the node panicked:\n{log}");
    b.stop().await.expect("stop b");
    drop(signer);
    drop(a);
}
