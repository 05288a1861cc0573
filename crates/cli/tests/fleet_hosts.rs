//! Two hosts of a fleet on one PostgreSQL database: `kill -9` of the host running three
//! tenants in the middle of a burst of payments to them. The other host takes their leases
//! once they lapse, their signers dial in again, every payment has one outcome on both sides,
//! every channel's two sides agree to the sat, and no channel is closed.
//!
//! Then fencing: the host now running them is paused (SIGSTOP) until a third host took their
//! leases, and resumed: it lets them go, their signers come to the third host, which serves
//! them on, to the sat and with no close.
//!
//! The tenants' state is sealed under keys their signers released: the operator, with its
//! fleet key and the database, reads none of it.
//!
//! The fleet's gateway is a node of its own (here in the test process), so the loss of either
//! host leaves the tenants' channel peer up.

mod daemon;

use std::path::Path;
use std::time::Instant;

use lightning::util::persist::KVStoreSync;

use daemon::host::*;
use daemon::tenant::{assert_no_close, outcome_mining};
use micronode_node::fleet::FleetKey;
use micronode_node::store::testing::TestDatabase;
use micronode_node::store::{Lease, PgDatabase};
use micronode_node::PaymentStatus;
use micronode_testenv::nodes::{Env, TestNode, TIMEOUT};
use micronode_testenv::wait_until;

/// Payments in the burst, per tenant.
const BURST: usize = 4;
/// Each burst payment.
const BURST_MSAT: u64 = 1_000_000;
/// What a tenant holds after its first, JIT, payment of 50,000 sat.
const AFTER_JIT_SAT: u64 = 48_000;

/// The gateway's balance in its channel with `tenant` (node id).
fn gateway_side_sat(gateway: &TestNode, tenant: &str) -> u64 {
    let channels: Vec<_> = gateway
        .list_channels()
        .into_iter()
        .filter(|c| c.counterparty == tenant)
        .collect();
    assert_eq!(channels.len(), 1, "one channel with {tenant}: {channels:?}");
    channels[0].balance_sat
}

/// The operator, with its fleet key and the database, opens the tenants' signer-link
/// entries (sealed under the fleet key) but none of their node state: channel manager,
/// monitors and payments are sealed under the keys their signers released.
fn operator_reads_no_tenant_state(db: &TestDatabase, key_file: &Path, tenants: &[HostedTenant]) {
    let pg = PgDatabase::connect(&db.url, 2).expect("connect");
    let fleet_key = FleetKey::read(key_file).expect("fleet key");
    for tenant in tenants {
        let stored = pg.entry_count(&tenant.id).expect("count");
        assert!(stored > 3, "{}: {stored} entries", tenant.name);
        let lease = Lease {
            tenant: tenant.id.clone(),
            holder: "the operator".into(),
            epoch: 0,
        };
        let as_operator = pg.tenant_store(&lease, &fleet_key.data_key(&tenant.id));
        assert!(
            KVStoreSync::read(&as_operator, "signer_link", "", "pairing").is_ok(),
            "the operator's key opens what it sealed"
        );
        let manager = KVStoreSync::read(&as_operator, "", "", "manager");
        assert_eq!(
            manager.map_err(|e| e.kind()),
            Err(lightning::io::ErrorKind::NotFound),
            "{}: the channel manager is not readable with the operator's key",
            tenant.name
        );
        let monitors = KVStoreSync::list(&as_operator, "monitors", "").expect("list");
        assert!(monitors.is_empty(), "{monitors:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_host_running_three_tenants_mid_burst_moves_them_without_a_close() {
    let env = Env::new("fleet-hosts").await;
    let db = TestDatabase::new("fleet_hosts");
    let key = env.dir.0.join("fleet.key");
    std::fs::write(&key, "23".repeat(32)).expect("key file");

    // The fleet's gateway serves JIT channels; an outside payer has a channel to it.
    let FleetGateway {
        gateway,
        events: mut gateway_events,
        payer,
        peer: gateway_peer,
    } = fleet_gateway(&env).await;

    // Two hosts; A creates the three tenants, so it runs them.
    let start = |name: &str, more: &[&str]| {
        HostProcess::start_fleet(
            &env,
            &env.dir.0.join(name),
            &db.url,
            &key,
            name,
            &gateway_peer,
            more,
        )
    };
    let mut host_a = start("host-a", &[]);
    let host_b = start("host-b", &[]);
    assert_eq!(host_a.ready["fleet_holder"], "host-a");
    assert!(host_a.ready["gateway_cookie"].is_null(), "no gateway here");
    let names = ["alice", "bob", "carol"];
    let mut tenants = Vec::new();
    for name in names {
        // Hosts A and B take signers at 127.0.0.1, host C (below) at 127.0.0.2.
        let both =
            |address: &str| format!("{address},{}", address.replace("127.0.0.1", "127.0.0.2"));
        tenants.push(provision_dialling(&env, &host_a, name, both).await);
    }
    for tenant in &tenants {
        assert!(
            host_b.admin(&["show", &tenant.id]).is_err(),
            "B runs none of A's tenants"
        );
    }
    let mut clients = Vec::new();
    for tenant in &tenants {
        let mut client = door(&host_a.api(), &tenant.app.token, None).await;
        first_payment(&env, &payer, &mut client, 50_000_000).await;
        assert_eq!(in_channels_sat(&mut client).await, AFTER_JIT_SAT);
        clients.push(client);
    }
    let gateway_before: Vec<u64> = tenants
        .iter()
        .map(|t| gateway_side_sat(&gateway, &t.node_id))
        .collect();
    let payer_before = payer.list_channels()[0].balance_sat;

    // A burst of payments to the three tenants, and kill -9 of A in the middle of it: once the
    // first has succeeded, with the rest in flight.
    let mut invoices = Vec::new();
    for _ in 0..BURST {
        for client in clients.iter_mut() {
            invoices.push(invoice(client, BURST_MSAT).await);
        }
    }
    let mut ids = Vec::new();
    for invoice in &invoices {
        ids.push(payer.pay_invoice(invoice, None, None).expect("pay"));
    }
    wait_until("a payment of the burst succeeded", TIMEOUT, || async {
        ids.iter().any(|id| {
            payer
                .payment(id)
                .is_some_and(|p| p.status == PaymentStatus::Succeeded)
        })
    })
    .await
    .expect("the burst goes through");
    let done_before_kill = ids
        .iter()
        .filter(|id| {
            payer
                .payment(id)
                .is_some_and(|p| p.status != PaymentStatus::Pending)
        })
        .count();
    host_a.kill_9();
    let killed = Instant::now();

    // B takes the three tenants over once their leases lapse; their signers dial in again.
    wait_until("the tenants run on B", TIMEOUT, || async {
        tenants.iter().all(|t| {
            host_b
                .admin(&["show", &t.id])
                .is_ok_and(|shown| shown["state"] == "active" && shown["signer_connected"] == true)
        })
    })
    .await
    .expect("B takes the tenants over");
    println!(
        "three tenants served again on B {:?} after the kill; {done_before_kill} of {} payments \
         had an outcome before it",
        killed.elapsed(),
        ids.len()
    );
    let mut clients = Vec::new();
    for tenant in &tenants {
        let shown = host_b.show(&tenant.id);
        assert_eq!(shown["node_id"], tenant.node_id.as_str(), "the same node");
        clients.push(door(&host_b.api(), &tenant.app.token, None).await);
    }

    // Every payment has one outcome on both sides.
    let mut received = [0u64; 3];
    for (n, (invoice, id)) in invoices.iter().zip(&ids).enumerate() {
        let paid = outcome_mining(&env, &payer, id).await;
        agrees(&mut clients[n % 3], invoice, &paid, BURST_MSAT).await;
        if paid.status == PaymentStatus::Succeeded {
            received[n % 3] += BURST_MSAT / 1000;
            assert_eq!(paid.fee_msat, Some(0), "no fee through the JIT channels");
        }
    }
    wait_until("nothing in flight", TIMEOUT, || async {
        gateway.list_channels().iter().all(|c| c.pending_htlcs == 0)
    })
    .await
    .expect("settled");

    // Both sides of every channel agree to the sat, and every channel is open and usable.
    let total: u64 = received.iter().sum();
    println!("the tenants received {received:?} sat of the burst");
    assert!(total > 0, "some of the burst was paid");
    assert_eq!(payer.list_channels()[0].balance_sat, payer_before - total);
    for (n, tenant) in tenants.iter().enumerate() {
        let client = &mut clients[n];
        assert_eq!(
            in_channels_sat(client).await,
            AFTER_JIT_SAT + received[n],
            "{}",
            tenant.name
        );
        assert_eq!(
            gateway_side_sat(&gateway, &tenant.node_id),
            gateway_before[n] - received[n],
            "{}",
            tenant.name
        );
        assert_one_usable_channel(client).await;
    }

    // Paid again after the failover, through B.
    pays_each(&env, &payer, &mut clients).await;

    // Fencing: B paused (SIGSTOP) until a third host, C, took the tenants' leases, then
    // resumed. B finds its leases lost and lets the tenants go (its node's writes are refused
    // by then), their signers come to C, and C serves them on.
    let host_c = start("host-c", &["--tenant-signer-ip", "127.0.0.2"]);
    host_b.signal(libc::SIGSTOP);
    let pg = PgDatabase::connect(&db.url, 2).expect("connect");
    wait_until("C holds the tenants' leases", TIMEOUT, || {
        let leases = pg.leases().expect("leases");
        std::future::ready(tenants.iter().all(|t| {
            leases
                .iter()
                .any(|l| l.tenant == t.id && l.holder == "host-c" && l.expires_in_ms > 0)
        }))
    })
    .await
    .expect("C takes the tenants of the paused B");
    host_b.signal(libc::SIGCONT);
    wait_until("B lets go, C serves", TIMEOUT, || async {
        tenants.iter().all(|t| {
            host_b.admin(&["show", &t.id]).is_err()
                && host_c.admin(&["show", &t.id]).is_ok_and(|shown| {
                    shown["state"] == "active" && shown["signer_connected"] == true
                })
        })
    })
    .await
    .expect("the resumed B stops serving the tenants; C serves them");
    let mut clients = Vec::new();
    for (n, tenant) in tenants.iter().enumerate() {
        let mut client = door(&host_c.api(), &tenant.app.token, None).await;
        assert_eq!(
            in_channels_sat(&mut client).await,
            AFTER_JIT_SAT + received[n] + 2_000,
            "{}",
            tenant.name
        );
        clients.push(client);
    }
    pays_each(&env, &payer, &mut clients).await;
    assert_no_close(&mut gateway_events);
    assert_eq!(
        gateway.list_channels().len(),
        4,
        "the payer's and three tenants'"
    );
    operator_reads_no_tenant_state(&db, &key, &tenants);
    drop((host_b, host_c, tenants));
    gateway.stop().await.expect("stop gateway");
    payer.stop().await.expect("stop payer");
}

/// The payer pays each tenant 2,000 sat; both sides record it, the tenant to the sat.
async fn pays_each(env: &Env, payer: &TestNode, clients: &mut [DoorClient]) {
    for client in clients.iter_mut() {
        let before = in_channels_sat(client).await;
        let invoice = invoice(client, 2_000_000).await;
        let id = payer.pay_invoice(&invoice, None, None).expect("pay");
        let paid = outcome_mining(env, payer, &id).await;
        assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
        agrees(client, &invoice, &paid, 2_000_000).await;
        wait_until("the tenant's balance counts it", TIMEOUT, || {
            let mut c = client.clone();
            async move { in_channels_sat(&mut c).await == before + 2_000 }
        })
        .await
        .expect("received to the sat");
    }
}
