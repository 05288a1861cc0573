//! Bad pairing with the real binaries: a signer pinned to one node refuses another node's key,
//! and a signer with the wrong pairing code is refused; in both cases the node keeps waiting
//! and signs nothing. (Replayed handshakes are covered frame by frame in
//! `crates/link/tests/replay.rs`.)

mod daemon;

use std::time::Duration;

use daemon::signer::{self, SignerProcess};
use daemon::tenant::launch_remote;
use micronode_testenv::nodes::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pinned_key_and_wrong_code_are_rejected_on_both_sides() {
    let env = Env::new("bad-pairing").await;

    // The tenant's signer pairs with its node, N1.
    let signer_dir = env.dir.0.join("signer");
    std::fs::create_dir_all(&signer_dir).expect("dir");
    signer::init(&signer_dir);
    let (n1, n1_listen, n1_code) = launch_remote(&env, &env.dir.0.join("n1"));
    let mut s = SignerProcess::start(&signer_dir, &n1_listen, Some(&n1_code), &env.bitcoind);
    let n1 = n1.ready();
    s.kill_9();

    // Another node, N2, stands where the signer dials: the signer, pinned to N1's key, keeps
    // being refused (it retries, as for a node that is restarting) and never serves N2; N2
    // never gets a signer.
    let (n2, n2_listen, n2_code) = launch_remote(&env, &env.dir.0.join("n2"));
    std::fs::remove_file(&s.log).expect("fresh log for the second run");
    let mut s = SignerProcess::start(&signer_dir, &n2_listen, None, &env.bitcoind);
    assert!(
        n2.try_event("ready", Duration::from_secs(3)).is_none(),
        "N2 must not start without its own signer"
    );
    let log = s.log_text();
    assert!(log.contains("rejected"), "{log}");
    assert!(!log.contains("connected to the node"), "{log}");
    s.kill_9();

    // A fresh signer with a wrong (well-formed) code is refused too.
    let other_dir = env.dir.0.join("other-signer");
    std::fs::create_dir_all(&other_dir).expect("dir");
    signer::init(&other_dir);
    let wrong = micronode_link::PairingCode::generate().reveal();
    let mut s2 = SignerProcess::start(&other_dir, &n2_listen, Some(&wrong), &env.bitcoind);
    let status = s2
        .wait_exit(Duration::from_secs(20))
        .expect("the signer gives up on a wrong code");
    assert!(!status.success());
    let log = s2.log_text();
    assert!(log.contains("pairing failed"), "{log}");
    assert!(
        n2.try_event("ready", Duration::from_secs(2)).is_none(),
        "a wrong code pairs nothing"
    );
    assert!(
        !other_dir.join("paired_node.json").exists(),
        "the signer pinned nothing"
    );

    // The right code still works, so the refusals above were about the keys.
    let s3 = SignerProcess::start(&other_dir, &n2_listen, Some(&n2_code), &env.bitcoind);
    let n2 = n2.ready();
    assert_eq!(n2.node_id, s3.node_id);
    assert_ne!(n2.node_id, n1.node_id);
}
