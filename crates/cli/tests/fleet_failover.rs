//! `node run --fleet-database`: one node's state in PostgreSQL, run by whichever process holds
//! its lease. `kill -9` of that process: another takes the node over once the lease lapses,
//! with its channel, balance and history, and no force close. A process paused (SIGSTOP)
//! until its lease is taken: on resuming, it stops running the node without writing anything.

mod daemon;

use std::path::Path;
use std::time::{Duration, Instant};

use daemon::tenant::{
    assert_no_close, channels, connect_to, fund, open_to, pays_peer, CHANNEL_SAT,
};
use daemon::{Client, Daemon};
use micronode_node::store::testing::TestDatabase;
use micronode_testenv::nodes::{Env, TestNode, TIMEOUT};
use micronode_testenv::wait_until;

const LEASE_MS: &str = "2000";

fn fleet_args(db: &TestDatabase, key_file: &Path, holder: &str) -> Vec<String> {
    [
        "--fleet-database",
        &db.url,
        "--fleet-tenant",
        "alice",
        "--fleet-holder",
        holder,
        "--fleet-key-file",
        &key_file.display().to_string(),
        "--fleet-lease-ms",
        LEASE_MS,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A process of alice's node on its own machine: its keys copied there, its state in the
/// database.
fn start_on(env: &Env, host: &str, db: &TestDatabase, key_file: &Path) -> Daemon {
    let dir = env.dir.0.join(host);
    let seed = env.dir.0.join("host-a").join("keys_seed");
    if host != "host-a" {
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::copy(&seed, dir.join("keys_seed")).expect("alice's keys");
    }
    Daemon::start_with_args(env, &dir, &fleet_args(db, key_file, host))
}

async fn usable(client: &Client) {
    wait_until("alice's channel usable", TIMEOUT, || {
        let mut c = client.clone();
        async move { channels(&mut c).await.iter().any(|ch| ch.is_usable) }
    })
    .await
    .expect("usable");
}

fn signal(daemon: &Daemon, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.child.id() as libc::pid_t, sig) };
}

fn bob_balance(bob: &TestNode) -> u64 {
    bob.list_channels()[0].balance_sat
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_holder_is_replaced_and_a_paused_one_is_fenced_without_a_force_close() {
    let env = Env::new("fleet").await;
    let db = TestDatabase::new("failover");
    let key_file = env.dir.0.join("fleet.key");
    std::fs::write(&key_file, "42".repeat(32)).expect("key file");
    let bob = env.start_node("bob").await;
    let mut bob_events = bob.subscribe_events();

    // Host A runs alice: funds, a channel to Bob, a payment.
    let mut a = start_on(&env, "host-a", &db, &key_file);
    let alice_id = a.node_id.clone();
    let mut client = a.client().await;
    fund(&env, &mut client, 2_000_000).await;
    connect_to(&mut client, &bob).await;
    let channel_id = open_to(&env, &mut client, &bob).await;
    let first = pays_peer(&mut client, &bob, 10_000).await;
    assert_eq!(bob_balance(&bob), 10_000);

    // kill -9 A. B waits for A's lease to lapse, then runs alice from the database.
    a.kill_9();
    let killed = Instant::now();
    let b = start_on(&env, "host-b", &db, &key_file);
    println!("alice served again {:?} after the kill", killed.elapsed());
    let mut client = b.client().await;
    let carried = channels(&mut client).await;
    assert_eq!(carried.len(), 1);
    assert_eq!(carried[0].channel_id, channel_id);
    assert_eq!(carried[0].capacity_sat, CHANNEL_SAT);
    // Its outcome may reach B's history by replay of A's last events (A died before writing
    // them): the same outcome, once.
    let hash = first.payment_hash.as_str();
    assert_eq!(
        daemon::succeeded_payments(&mut client, [hash]).await,
        [hash]
    );
    usable(&client).await;
    pays_peer(&mut client, &bob, 20_000).await;
    assert_eq!(bob_balance(&bob), 30_000);

    // Pause B until C has taken the lease over, and let C pay.
    signal(&b, libc::SIGSTOP);
    // Bob drops the silent connection, as his ping timeout would (after a minute or more).
    bob.disconnect_peer(alice_id.parse().expect("node id"));
    let c = start_on(&env, "host-c", &db, &key_file);
    let mut client_c = c.client().await;
    usable(&client_c).await;
    pays_peer(&mut client_c, &bob, 40_000).await;
    assert_eq!(bob_balance(&bob), 70_000);

    // B resumes believing it runs alice: it finds its lease gone and exits with an error,
    // having neither written nor talked to Bob with its older channel state.
    signal(&b, libc::SIGCONT);
    let mut b = b;
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = b.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the paused holder kept running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "a fenced holder exits with an error");

    // C carries on, and Bob's view agrees to the sat: no payment lost or doubled, no close.
    pays_peer(&mut client_c, &bob, 5_000).await;
    assert_eq!(bob_balance(&bob), 75_000);
    assert_no_close(&mut bob_events);
    assert_eq!(bob.list_channels().len(), 1);
    drop(c);
    bob.stop().await.expect("stop bob");
}
