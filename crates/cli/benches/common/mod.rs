//! What the benchmarks share: a tenant's validating signer run in the benchmark's process, on
//! its own runtime threads (as it would be in its own process), dialling its node over a real
//! loopback link, following the test bitcoind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use micronode_link::PairingCode;
use micronode_signer::chain::{BitcoindSource, ChainFollower};
use micronode_signer::{PolicyConfig, SignerEngine};
use micronode_testenv::nodes::Env;

/// A signer with a fresh seed in `dir`, without velocity limits; with `app_requests`, it
/// approves only app-signed payments.
pub fn bench_signer(dir: &Path, app_requests: bool) -> SignerEngine {
    SignerEngine::open(
        dir,
        zeroize::Zeroizing::new(rand::random::<[u8; 32]>()),
        bitcoin::Network::Regtest,
        PolicyConfig {
            max_sat_per_hour: 0,
            max_sat_per_day: 0,
            require_app_requests: app_requests,
            ..PolicyConfig::default()
        },
    )
    .expect("signer")
}

/// Runs `engine` (its state in `dir`) on a thread of its own with `threads` runtime workers:
/// it dials `node_addr`, pairing with `code` the first time, and follows the test bitcoind.
/// It runs until the process ends.
pub fn spawn_signer(
    env: &Env,
    engine: Arc<SignerEngine>,
    dir: PathBuf,
    node_addr: String,
    code: Option<PairingCode>,
    threads: usize,
) {
    let source = Arc::new(BitcoindSource::from_rpc(env.bitcoind.rpc().clone()));
    let follower = ChainFollower::new(engine.clone(), source, Duration::from_millis(100));
    // Its own runtime, as in its own process: LDK's signer calls block the node's threads
    // while they wait for the answer.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("signer runtime");
        let _ = runtime.block_on(micronode_signer::serve::run(
            engine,
            dir,
            vec![node_addr],
            code,
            follower,
            std::future::pending(),
        ));
    });
}
