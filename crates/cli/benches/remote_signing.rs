//! What a remote signer costs: the throughput benchmark of the tenant-node issue, run twice in
//! one process against one payee, with the paying node (a) signing in-process (`LocalKeys`)
//! and (b) signing through the tenant's validating signer over loopback (`RemoteKeys` → Noise
//! link over TCP → VLS with its state persisted in redb). Reports both, the ratio (b)/(a) and
//! the latency each payment gains.
//!
//! The signer runs in this process (on its own runtime threads, as it would in its own
//! process), but every signature crosses the real link, is validated by VLS and persisted
//! exactly as in `micronode signer run`.
//!
//! Run: `cargo bench -p micronode --bench remote_signing` (env: BENCH_WORKERS,
//! BENCH_PAYMENTS; BENCH_SIGNER_DIR puts the signer's state on a real disk instead of the
//! test directory, which is on /dev/shm when available).

use std::sync::Arc;
use std::time::Duration;

use micronode_link::{LinkIdentity, PairingCode, PairingStore};
use micronode_node::remote::LinkSignerTransport;
use micronode_node::{Node, RemoteKeys};
use micronode_signer::chain::{BitcoindSource, ChainFollower};
use micronode_signer::{PolicyConfig, SignerEngine};
use micronode_testenv::bench::{measure_throughput, ThroughputRun};
use micronode_testenv::nodes::{open_channel_with, Env};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A node whose keys are in a validating signer reached over a loopback link.
async fn remote_payer(env: &Env, signer_dir: &std::path::Path) -> Arc<Node<RemoteKeys>> {
    let node_dir = env.dir.0.join("remote-payer");
    micronode_files::create_private_dir(&node_dir).expect("dir");
    let identity = Arc::new(LinkIdentity::generate().expect("identity"));
    let pairing = Arc::new(PairingStore::open(&node_dir).expect("pairing"));
    let code = pairing
        .new_pairing_code(Duration::from_secs(600))
        .expect("code");
    let transport = Arc::new(
        LinkSignerTransport::start(
            ([127, 0, 0, 1], 0).into(),
            identity,
            pairing,
            Duration::from_secs(30),
        )
        .expect("link"),
    );
    let engine = Arc::new(
        SignerEngine::open(
            signer_dir,
            zeroize::Zeroizing::new(rand::random::<[u8; 32]>()),
            bitcoin::Network::Regtest,
            PolicyConfig {
                max_sat_per_hour: 0,
                max_sat_per_day: 0,
                require_app_requests: false,
                ..PolicyConfig::default()
            },
        )
        .expect("signer"),
    );
    let addr = transport.local_addr().to_string();
    let code = PairingCode::parse(&code.reveal()).expect("code");
    // The signer follows the same bitcoind (on its own runtime below).
    let source = Arc::new(BitcoindSource::from_rpc(env.bitcoind.rpc().clone()));
    let follower = ChainFollower::new(engine.clone(), source, Duration::from_millis(100));
    let dir = signer_dir.to_path_buf();
    // Its own runtime, as in its own process: LDK's signer calls block the node's threads
    // while they wait for the answer.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("signer runtime");
        let _ = runtime.block_on(micronode_signer::serve::run(
            engine,
            dir,
            addr,
            Some(code),
            follower,
            std::future::pending(),
        ));
    });
    transport.wait_online().await;
    let cache = node_dir.join("remote_channel_keys.json");
    let keys = tokio::task::spawn_blocking(move || RemoteKeys::connect(transport, cache))
        .await
        .expect("join")
        .expect("greet the signer");
    let config = env.node_config("remote-payer");
    Arc::new(
        Node::start(config, Arc::new(keys), env.chain.clone())
            .await
            .expect("start the remote-signing node"),
    )
}

fn report(label: &str, run: &ThroughputRun) {
    println!(
        "  {label:<22} {:>7.1}/s   p50 {:>7.1} ms   p99 {:>7.1} ms   ({} settled, {} failed)",
        run.per_second(),
        run.p50.as_secs_f64() * 1000.0,
        run.p99.as_secs_f64() * 1000.0,
        run.settled,
        run.failed
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let workers = env_usize("BENCH_WORKERS", 100);
    // VLS tracks at most 1000 outgoing payments until it prunes them (a day after their
    // invoices expire), so a run stays below that.
    let total = env_usize("BENCH_PAYMENTS", 900);
    let env = Env::new("bench-remote").await;
    let signer_dir = match std::env::var_os("BENCH_SIGNER_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => env.dir.0.join("signer"),
    };
    let payee = Arc::new(env.start_node("payee").await);
    let local = Arc::new(env.start_node("local-payer").await);
    let remote = remote_payer(&env, &signer_dir).await;
    env.fund(&local, 20_000_000).await;
    env.fund(&remote, 20_000_000).await;
    // Both private: the signer's default policy does not route, so its node announces
    // nothing, and the set-ups differ only in where the keys are.
    open_channel_with(&env, &local, &payee, 16_000_000, false).await;
    open_channel_with(&env, &remote, &payee, 16_000_000, false).await;

    let a = measure_throughput(local.clone(), payee.clone(), workers, total, 1_000).await;
    let b = measure_throughput(remote.clone(), payee.clone(), workers, total, 1_000).await;
    println!("remote-signing benchmark: {workers} workers, {total} payments of 1 sat per run");
    report("(a) in-process keys", &a);
    report("(b) remote signer", &b);
    println!(
        "  ratio (b)/(a)          {:.2}",
        b.per_second() / a.per_second()
    );
    println!(
        "  added latency          p50 {:+.1} ms   p99 {:+.1} ms",
        (b.p50.as_secs_f64() - a.p50.as_secs_f64()) * 1000.0,
        (b.p99.as_secs_f64() - a.p99.as_secs_f64()) * 1000.0
    );
    remote.stop().await.expect("stop");
    local.stop().await.expect("stop");
    payee.stop().await.expect("stop");
}
