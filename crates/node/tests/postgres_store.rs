//! A real LDK node on the fleet's store: its state in PostgreSQL, sealed under its data key,
//! carried on by another host's lease, and the first host fenced off.

use std::sync::Arc;
use std::time::Duration;

use lightning::util::persist::KVStoreSync;
use micronode_node::store::testing::TestDatabase;
use micronode_node::store::{DataKey, Fenced, Lease, NodeStore, PgDatabase};
use micronode_node::{NodeConfig, NodeEvent, PaymentRecord, PaymentStatus, StoreChoice};
use micronode_testenv::nodes::{open_channel, Env, TestNode, TIMEOUT};

const LEASE: Duration = Duration::from_secs(30);
/// Bob's first balance in the channel gives him an output, and the funder (Alice) pays for its
/// anchor from then on.
const SECOND_ANCHOR_SAT: u64 = 330;

/// A node config on `host`'s store for alice, under `lease`, sealed with `key`.
fn on_fleet(env: &Env, dir: &str, host: &PgDatabase, lease: &Lease, key: &DataKey) -> NodeConfig {
    let mut config = env.node_config(dir);
    config.store = StoreChoice::Given(Arc::new(NodeStore::from(host.tenant_store(lease, key))));
    config
}

/// Alice pays Bob `sat` and sees it succeed.
async fn pays(alice: &TestNode, bob: &TestNode, sat: u64) -> PaymentRecord {
    let invoice = bob
        .create_invoice(Some(sat * 1000), "on postgres", 600)
        .expect("invoice");
    let id = alice
        .pay_invoice(&invoice.invoice, None, None)
        .expect("pay");
    let sent = alice.wait_payment(&id, TIMEOUT).await.expect("paid");
    assert_eq!(sent.status, PaymentStatus::Succeeded, "{sent:?}");
    sent
}

async fn usable(node: &TestNode) {
    micronode_testenv::wait_until("channel usable", TIMEOUT, || async {
        node.list_channels().iter().all(|c| c.is_usable)
    })
    .await
    .expect("usable");
}

fn no_close(events: &mut tokio::sync::broadcast::Receiver<NodeEvent>) {
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, NodeEvent::ChannelClosed { .. }),
            "no close: {event:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_on_postgresql_moves_to_another_host_with_its_channel_and_history() {
    let env = Env::new("pg-node").await;
    let db = TestDatabase::new("node");
    let key = DataKey::random();

    // Host A takes alice's lease and runs her node on the fleet database.
    let host_a = PgDatabase::connect(&db.url, 2).expect("host A connects");
    let lease_a = host_a
        .acquire_lease("alice", "host-a", LEASE)
        .expect("lease A");
    let mut config = on_fleet(&env, "alice", &host_a, &lease_a, &key);
    let StoreChoice::Given(store_a) = config.store.clone() else {
        unreachable!()
    };
    let alice = env.start_node_with(config.clone()).await;
    let bob = env.start_node("bob").await;
    env.fund(&alice, 2_000_000).await;
    let channel_id = open_channel(&env, &alice, &bob, 1_000_000).await;
    let alice_before = alice.list_channels()[0].balance_sat;

    let id = pays(&alice, &bob, 10_000).await.id;
    assert_eq!(
        alice.list_channels()[0].balance_sat,
        alice_before - 10_000 - SECOND_ANCHOR_SAT
    );
    assert_eq!(bob.list_channels()[0].balance_sat, 10_000);

    // Host A goes away; host B (its own connections) takes the lease over and runs alice from
    // the same rows, at a new epoch.
    alice.stop().await.expect("stop alice");
    drop(alice);
    host_a.release_lease(&lease_a).expect("release");
    let host_b = PgDatabase::connect(&db.url, 2).expect("host B connects");
    let lease_b = host_b
        .acquire_lease("alice", "host-b", LEASE)
        .expect("lease B");
    assert_eq!(lease_b.epoch, lease_a.epoch + 1);
    config.store = on_fleet(&env, "alice", &host_b, &lease_b, &key).store;
    let mut bob_events = bob.subscribe_events();
    let alice = env.start_node_with(config).await;

    // The channel, its balance to the sat, and the payment history carried over.
    let channels = alice.list_channels();
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0].channel_id, channel_id);
    assert_eq!(
        channels[0].balance_sat,
        alice_before - 10_000 - SECOND_ANCHOR_SAT
    );
    let record = alice.payment(&id).expect("the payment is in the history");
    assert_eq!(record.status, PaymentStatus::Succeeded);
    assert_eq!(record.amount_msat, Some(10_000_000));

    // Host A's store is fenced: whatever it still holds, it cannot write alice's state.
    let err = KVStoreSync::write(&*store_a, "", "", "manager", vec![0]).unwrap_err();
    assert!(Fenced::find(&err).is_some(), "{err}");

    // Alice pays again from host B.
    usable(&alice).await;
    let sent = pays(&alice, &bob, 20_000).await;
    assert_eq!(
        alice.list_channels()[0].balance_sat,
        alice_before - 30_000 - SECOND_ANCHOR_SAT
    );
    assert_eq!(bob.list_channels()[0].balance_sat, 30_000);
    no_close(&mut bob_events);

    // The database holds alice's state, and none of it in a form the operator can read.
    assert!(host_b.entry_count("alice").expect("count") > 3);
    let dump = db.dump().to_lowercase();
    for needle in [
        channel_id.clone(),
        hex::encode(record.payment_hash),
        hex::encode(sent.payment_hash),
        alice.node_id().to_string(),
        bob.node_id().to_string(),
    ] {
        assert!(!dump.contains(&needle), "the dump shows {needle}");
    }
    alice.stop().await.expect("stop alice");
    bob.stop().await.expect("stop bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_lease_moved_on_writes_nothing_and_leaves_its_peers() {
    let env = Env::new("pg-fence").await;
    let db = TestDatabase::new("fence_node");
    let key = DataKey::random();
    let short = Duration::from_millis(500);

    // Host A runs alice under a lease it will not renew (as if paused).
    let host_a = PgDatabase::connect(&db.url, 2).expect("host A connects");
    let lease_a = host_a
        .acquire_lease("alice", "host-a", LEASE)
        .expect("lease A");
    let config_a = on_fleet(&env, "alice-on-a", &host_a, &lease_a, &key);
    let alice_a = env.start_node_with(config_a.clone()).await;
    let bob = env.start_node("bob").await;
    env.fund(&alice_a, 2_000_000).await;
    let channel_id = open_channel(&env, &alice_a, &bob, 1_000_000).await;
    let alice_before = alice_a.list_channels()[0].balance_sat;
    let mut bob_events = bob.subscribe_events();

    // Host B takes the lease over while A still runs alice (A's lease lapsed unrenewed).
    host_a.renew_lease(&lease_a, short).expect("shorten");
    tokio::time::sleep(short + Duration::from_millis(300)).await;
    let host_b = PgDatabase::connect(&db.url, 2).expect("host B connects");
    let lease_b = host_b
        .acquire_lease("alice", "host-b", LEASE)
        .expect("lease B");

    // Alice on A tries to pay: nothing of it can be stored, so nothing of it reaches Bob as a
    // committed state, and A leaves its peers and accepts none.
    let invoice = bob
        .create_invoice(Some(10_000_000), "from the fenced copy", 600)
        .expect("invoice");
    let _ = alice_a.pay_invoice(&invoice.invoice, None, None);
    micronode_testenv::wait_until("A fenced and without peers", TIMEOUT, || async {
        alice_a.is_fenced() && alice_a.list_peers().is_empty()
    })
    .await
    .expect("fenced");

    // Host B runs alice (her keys on B's machine, her state from the database).
    let dir_b = env.dir.0.join("alice-on-b");
    std::fs::create_dir_all(&dir_b).expect("dir");
    std::fs::copy(config_a.data_dir.join("keys_seed"), dir_b.join("keys_seed")).expect("keys");
    let config_b = on_fleet(&env, "alice-on-b", &host_b, &lease_b, &key);
    let alice_b = env.start_node_with(config_b).await;
    assert_eq!(alice_b.node_id(), alice_a.node_id());
    assert_eq!(alice_b.list_channels()[0].channel_id, channel_id);
    assert_eq!(alice_b.list_channels()[0].balance_sat, alice_before);
    // B's copy dials Bob itself (his address is in alice's stored peers), as after any restart;
    // a second dial from here would race it and be refused by Bob as a duplicate connection.
    usable(&alice_b).await;

    // The fenced copy's payment never happened; B's does, to the sat on both sides.
    pays(&alice_b, &bob, 20_000).await;
    assert_eq!(
        alice_b.list_channels()[0].balance_sat,
        alice_before - 20_000 - SECOND_ANCHOR_SAT
    );
    assert_eq!(bob.list_channels()[0].balance_sat, 20_000);
    assert!(!alice_b.is_fenced());
    no_close(&mut bob_events);
    // A's own stop cannot write either; it is not an error to try.
    let _ = alice_a.stop().await;
    alice_b.stop().await.expect("stop alice on B");
    bob.stop().await.expect("stop bob");
}
