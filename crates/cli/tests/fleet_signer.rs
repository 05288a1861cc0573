//! A remote-signer node in a fleet: its signer follows it to whichever machine runs it.
//!
//! The signer dials every machine that may run the node, in turn. Each machine derives the
//! same signer-link identity from the fleet key, and finds the paired signer in the node's
//! fenced store, so after `kill -9` of the machine running the node, the next one takes the
//! lease, the signer connects to it without pairing again, and the node pays on with its
//! channel and no force close.

mod daemon;

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use daemon::signer::{self, SignerProcess};
use daemon::tenant::{
    assert_no_close, channels, connect_to, fund, node_pays_alone, open_to, pays_peer,
    UNLIMITED_VELOCITY,
};
use daemon::Launch;
use micronode_node::store::testing::TestDatabase;
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::{free_port, wait_until};

/// Spawns alice's node on machine `host`, its signer link on `signer_port`, its state in
/// the fleet database.
fn launch_on(env: &Env, host: &str, signer_port: u16, db: &TestDatabase, key: &Path) -> Launch {
    let dir = env.dir.0.join(host);
    std::fs::create_dir_all(&dir).expect("dir");
    let log = std::fs::File::create(dir.with_extension("log")).expect("log");
    let flags: Vec<String> = [
        "--signer",
        "remote",
        "--signer-listen",
        &format!("127.0.0.1:{signer_port}"),
        "--fleet-database",
        &db.url,
        "--fleet-tenant",
        "alice",
        "--fleet-holder",
        host,
        "--fleet-key-file",
        &key.display().to_string(),
        "--fleet-lease-ms",
        "2000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Launch::spawn(env, &dir, &flags, Stdio::from(log))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_signer_follows_its_node_to_the_machine_that_took_it_over() {
    let env = Env::new("fleet-signer").await;
    let db = TestDatabase::new("fleet_signer");
    let key = env.dir.0.join("fleet.key");
    std::fs::write(&key, "17".repeat(32)).expect("key file");
    let bob = env.start_node("bob").await;
    let mut bob_events = bob.subscribe_events();
    let (port_a, port_b) = (free_port(), free_port());

    // Machine A runs alice; her signer pairs with it and knows both machines.
    let launch_a = launch_on(&env, "host-a", port_a, &db, &key);
    let waiting_a = launch_a.event("waiting_for_signer");
    let code = waiting_a["pairing_code"]
        .as_str()
        .expect("a new node shows a code");
    let signer_dir = env.dir.0.join("alice-signer");
    std::fs::create_dir_all(&signer_dir).expect("signer dir");
    signer::init(&signer_dir);
    signer::set_policy(&signer_dir, &node_pays_alone(Some(UNLIMITED_VELOCITY)));
    let both = format!("127.0.0.1:{port_a},127.0.0.1:{port_b}");
    let mut signer_process = SignerProcess::start(&signer_dir, &both, Some(code), &env.bitcoind);
    let mut a = launch_a.ready();
    let mut client = a.client().await;
    fund(&env, &mut client, 2_000_000).await;
    connect_to(&mut client, &bob).await;
    let channel_id = open_to(&env, &mut client, &bob).await;
    pays_peer(&mut client, &bob, 10_000).await;
    assert_eq!(bob.list_channels()[0].balance_sat, 10_000);

    // kill -9 A. B takes the lease once it lapses and listens with the same link key and
    // the paired signer known: no pairing code, and the signer comes to it on its own.
    a.kill_9();
    let killed = Instant::now();
    let launch_b = launch_on(&env, "host-b", port_b, &db, &key);
    let waiting_b = launch_b.event("waiting_for_signer");
    assert_eq!(waiting_b["node_link_key"], waiting_a["node_link_key"]);
    assert!(waiting_b["pairing_code"].is_null(), "{waiting_b}");
    let b = launch_b.ready();
    println!("alice served again {:?} after the kill", killed.elapsed());
    assert_eq!(
        b.node_id, a.node_id,
        "the same node, keys in the same signer"
    );

    let mut client = b.client().await;
    wait_until("alice's channel usable on B", TIMEOUT, || {
        let mut c = client.clone();
        async move { channels(&mut c).await.iter().any(|ch| ch.is_usable) }
    })
    .await
    .expect("usable");
    assert_eq!(channels(&mut client).await[0].channel_id, channel_id);
    pays_peer(&mut client, &bob, 20_000).await;
    assert_eq!(bob.list_channels()[0].balance_sat, 30_000);
    assert_no_close(&mut bob_events);
    assert_eq!(bob.list_channels().len(), 1);
    drop(b);
    signer_process.kill_9();
    bob.stop().await.expect("stop bob");
}
