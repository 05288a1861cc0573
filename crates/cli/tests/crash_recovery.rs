//! `kill -9` of a node daemon in the middle of a burst of 50 payments: after a restart every
//! payment is settled or failed, the receiver agrees to the msat, no channel is force-closed
//! and the channel balances reconcile.

mod daemon;

use std::time::Duration;

use daemon::Daemon;
use micronode_node::{NodeEvent, PaymentDirection, PaymentStatus};
use micronode_proto::v1;
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::wait_until;

const CHANNEL_SAT: u64 = 1_000_000;
const PAYMENTS: usize = 50;
const AMOUNT_MSAT: u64 = 1_000_000;

async fn channel_usable(client: &mut daemon::Client) -> bool {
    client
        .list_channels(v1::ListChannelsRequest {})
        .await
        .map(|r| r.into_inner().channels.iter().any(|c| c.is_usable))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_burst_loses_nothing() {
    let env = Env::new("crash").await;
    let b = env.start_node("b").await;
    let a_dir = env.dir.0.join("a");
    let mut a = Daemon::start(&env, &a_dir);
    let mut client = a.client().await;

    // Fund A and open A -> B.
    let address = daemon::tenant::new_address(&mut client).await;
    env.bitcoind
        .fund_address(&address, 3_000_000)
        .await
        .expect("fund");
    env.mine(1).await;
    wait_until("A's wallet funded", TIMEOUT, || {
        let mut c = client.clone();
        async move {
            c.onchain_balance(v1::OnchainBalanceRequest {})
                .await
                .map(|r| r.into_inner().confirmed_sat >= 3_000_000)
                .unwrap_or(false)
        }
    })
    .await
    .expect("funded");
    client
        .connect_peer(v1::ConnectPeerRequest {
            node_id: b.node_id().to_string(),
            address: b.listen_addr().expect("b listens").to_string(),
        })
        .await
        .expect("connect");
    client
        .open_channel(v1::OpenChannelRequest {
            node_id: b.node_id().to_string(),
            amount_sat: CHANNEL_SAT,
            push_msat: 0,
            announce: Some(false),
        })
        .await
        .expect("open");
    wait_until("funding in mempool", TIMEOUT, || async {
        !env.mempool().await.is_empty()
    })
    .await
    .expect("funding");
    env.mine(6).await;
    wait_until("channel usable", TIMEOUT, || {
        let mut c = client.clone();
        async move { channel_usable(&mut c).await }
    })
    .await
    .expect("usable");
    let mut b_events = b.subscribe_events();

    // The burst: 50 invoices of B, paid by A without waiting; kill A part-way through.
    let invoices: Vec<_> = (0..PAYMENTS)
        .map(|i| {
            b.create_invoice(Some(AMOUNT_MSAT), format!("burst {i}"), 3600)
                .expect("invoice")
        })
        .collect();
    // Sent at a steady pace (several in flight at once) so the kill lands mid-burst.
    let mut sends = Vec::new();
    for inv in &invoices {
        let mut c = client.clone();
        let invoice = inv.invoice.clone();
        sends.push(tokio::spawn(async move {
            c.pay_invoice(v1::PayInvoiceRequest {
                invoice,
                wait: false,
                ..Default::default()
            })
            .await
        }));
        tokio::time::sleep(Duration::from_millis(15)).await;
        let settled = b
            .list_payments()
            .iter()
            .filter(|p| {
                p.direction == PaymentDirection::Inbound && p.status == PaymentStatus::Succeeded
            })
            .count();
        if settled >= 10 {
            break;
        }
    }
    // What B had received when A died: the kill must land before the burst is over (after the
    // restart A may finish payments it had in flight; that is allowed, losing one is not).
    let received_at_kill = b
        .list_payments()
        .iter()
        .filter(|p| {
            p.direction == PaymentDirection::Inbound && p.status == PaymentStatus::Succeeded
        })
        .count();
    a.kill_9();
    for s in sends {
        let _ = s.await; // some calls fail: the daemon died under them.
    }

    // Restart A from the same directory.
    let a = Daemon::start(&env, &a_dir);
    let mut client = a.client().await;
    wait_until("channel usable after restart", TIMEOUT, || {
        let mut c = client.clone();
        async move { channel_usable(&mut c).await }
    })
    .await
    .expect("usable again");

    // Every payment A knows of resolves.
    let succeeded = daemon::succeeded_payments(
        &mut client,
        invoices.iter().map(|i| i.payment_hash.as_str()),
    )
    .await;
    assert!(
        succeeded.len() >= 10,
        "the payments settled before the crash count"
    );
    assert!(
        received_at_kill < PAYMENTS,
        "the kill must interrupt the burst ({received_at_kill} of {PAYMENTS} were received)"
    );

    // B agrees exactly: what A says succeeded is what B received, and nothing else.
    wait_until("B settled everything", TIMEOUT, || async {
        b.list_channels()
            .iter()
            .all(|c| c.pending_htlcs == 0 && c.is_usable)
    })
    .await
    .expect("no HTLC in flight");
    let b_received: Vec<String> = b
        .list_payments()
        .into_iter()
        .filter(|p| {
            p.direction == PaymentDirection::Inbound && p.status == PaymentStatus::Succeeded
        })
        .map(|p| hex::encode(p.payment_hash))
        .collect();
    let mut b_sorted = b_received.clone();
    b_sorted.sort();
    assert_eq!(
        succeeded, b_sorted,
        "payer and payee agree on what was paid"
    );

    // Balances reconcile to the sat and the channel was never closed.
    let received_sat = b_received.len() as u64 * AMOUNT_MSAT / 1000;
    // (The monitors settle their latest commitment a moment after the HTLC lists empty.)
    wait_until(
        "B's channel balance is what it received",
        TIMEOUT,
        || async { b.list_channels().pop().map(|c| c.balance_sat) == Some(received_sat) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}, received {received_sat}", b.list_channels()));
    wait_until("A's channel balance is the rest", TIMEOUT, || {
        let mut c = client.clone();
        async move {
            let channels = c
                .list_channels(v1::ListChannelsRequest {})
                .await
                .expect("list")
                .into_inner();
            channels.channels.len() == 1
                // The funder's balance does not count the two 330-sat anchors.
                && channels.channels[0].balance_sat == CHANNEL_SAT - 2 * 330 - received_sat
        }
    })
    .await
    .expect("A reconciles");
    while let Ok(event) = b_events.try_recv() {
        assert!(
            !matches!(event, NodeEvent::ChannelClosed { .. }),
            "channel closed: {event:?}"
        );
    }
    b.stop().await.expect("stop b");
    let mut a = a;
    a.terminate();
}
