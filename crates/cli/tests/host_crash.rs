//! `kill -9` of a host in the middle of a JIT channel open, and again in the middle of a burst
//! of payments to two tenants: after each restart no funds are lost, no channel is
//! force-closed, and every payment has one outcome on both sides.

mod daemon;

use daemon::host::*;
use daemon::tenant::outcome_mining;
use micronode_node::PaymentStatus;
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::wait_until;

/// Payments in the burst, per tenant.
const BURST: usize = 8;
/// Each burst payment.
const BURST_MSAT: u64 = 1_000_000;

/// Both tenants active again, with clients of the front door.
async fn back(host: &HostProcess, tenants: [&HostedTenant; 2]) -> [DoorClient; 2] {
    wait_until("tenants back", TIMEOUT, || async {
        tenants
            .iter()
            .all(|t| host.show(&t.id)["state"] == "active")
    })
    .await
    .expect("tenants come back after kill -9");
    let api = host.api();
    [
        door(&api, &tenants[0].app.token, None).await,
        door(&api, &tenants[1].app.token, None).await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_host_mid_jit_open_and_mid_burst_loses_nothing() {
    let env = Env::new("hostcrash").await;
    let (payer, host_dir, mut host) = payer_and_host(&env, None).await;
    let alice = provision(&env, &host, "alice").await;
    let bob = provision(&env, &host, "bob").await;
    let api = host.api();
    let mut a = door(&api, &alice.app.token, None).await;
    let mut b = door(&api, &bob.app.token, None).await;

    // Bob gets his channel through a JIT open before anything goes wrong.
    first_payment(&env, &payer, &mut b, 50_000_000).await;
    let bob_sat = in_channels_sat(&mut b).await;
    assert_eq!(bob_sat, 48_000);

    // --- kill -9 while the gateway opens Alice's JIT channel: its funding is broadcast, not
    // yet confirmed, and the payer's HTLC is held.
    let invoice_a = invoice(&mut a, 50_000_000).await;
    let id = payer.pay_invoice(&invoice_a, None, None).expect("pay");
    wait_until("JIT funding broadcast", TIMEOUT, || async {
        !env.mempool().await.is_empty()
    })
    .await
    .expect("the gateway broadcasts the JIT funding");
    host.kill_9();
    let host = HostProcess::start(&env, &host_dir, None);
    reconnect(&payer, &host).await;
    let [mut a, mut b] = back(&host, [&alice, &bob]).await;
    let paid = outcome_mining(&env, &payer, &id).await;
    agrees(&mut a, &invoice_a, &paid, 50_000_000 - JIT_FEE_MSAT).await;
    let alice_sat = match paid.status {
        PaymentStatus::Succeeded => 48_000,
        _ => 0,
    };
    assert_eq!(in_channels_sat(&mut a).await, alice_sat);
    if alice_sat == 0 {
        // The open did not survive: Alice is paid through a new JIT channel now.
        first_payment(&env, &payer, &mut a, 50_000_000).await;
    }
    let alice_sat = in_channels_sat(&mut a).await;
    assert_eq!(alice_sat, 48_000);

    // --- A burst of payments to both tenants, and kill -9 in the middle of it.
    let mut invoices = Vec::new();
    for _ in 0..BURST {
        for client in [&mut a, &mut b] {
            let invoice = invoice(client, BURST_MSAT).await;
            invoices.push(invoice);
        }
    }
    let mut ids = Vec::new();
    for invoice in &invoices {
        ids.push(payer.pay_invoice(invoice, None, None).expect("pay"));
    }
    let mut host = host;
    host.kill_9();
    let host = HostProcess::start(&env, &host_dir, None);
    reconnect(&payer, &host).await;
    let [mut a, mut b] = back(&host, [&alice, &bob]).await;
    let mut received = [0u64; 2];
    for (n, (invoice, id)) in invoices.iter().zip(&ids).enumerate() {
        let paid = outcome_mining(&env, &payer, id).await;
        let (client, total) = if n % 2 == 0 {
            (&mut a, &mut received[0])
        } else {
            (&mut b, &mut received[1])
        };
        agrees(client, invoice, &paid, BURST_MSAT).await;
        if paid.status == PaymentStatus::Succeeded {
            *total += BURST_MSAT / 1000;
            assert_eq!(paid.fee_msat, Some(0), "no fee through the JIT channels");
        }
    }
    // No funds lost: each tenant holds what it had plus what it was paid, to the sat, and every
    // channel is still open.
    wait_until("nothing in flight", TIMEOUT, || async {
        payer.list_channels().iter().all(|c| c.pending_htlcs == 0)
    })
    .await
    .expect("settled");
    assert_eq!(in_channels_sat(&mut a).await, alice_sat + received[0]);
    assert_eq!(in_channels_sat(&mut b).await, bob_sat + received[1]);
    for client in [&mut a, &mut b] {
        assert_one_usable_channel(client).await;
    }
    assert_eq!(payer.list_channels().len(), 1);
    drop((alice, bob));
}
