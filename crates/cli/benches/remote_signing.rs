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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use micronode_link::{LinkIdentity, PairingCode, PairingStore};
use micronode_node::remote::LinkSignerTransport;
use micronode_node::{KeysBackend, Node, PaymentStatus, RemoteKeys};
use micronode_signer::{PolicyConfig, SignerEngine};
use micronode_testenv::nodes::{open_channel, Env, TestNode};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Run {
    settled: usize,
    failed: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure<K: KeysBackend>(
    payer: Arc<Node<K>>,
    payee: Arc<TestNode>,
    workers: usize,
    total: usize,
) -> Run {
    // Warm-up (untimed): LDK's first HTLC batch waits its initial forwarding delay.
    for _ in 0..3 {
        let inv = payee
            .create_invoice(Some(1_000), "warm-up", 600)
            .expect("invoice");
        let id = payer.pay_invoice(&inv.invoice, None, None).expect("pay");
        let rec = payer
            .wait_payment(&id, Duration::from_secs(60))
            .await
            .expect("warm-up payment");
        assert_eq!(rec.status, PaymentStatus::Succeeded, "{rec:?}");
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (a, b, next) = (payer.clone(), payee.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t0 = Instant::now();
                let ok = async {
                    let inv = b.create_invoice(Some(1_000), "bench", 600).ok()?;
                    let id = a.pay_invoice(&inv.invoice, None, None).ok()?;
                    let rec = a.wait_payment(&id, Duration::from_secs(120)).await.ok()?;
                    (rec.status == PaymentStatus::Succeeded).then_some(())
                }
                .await;
                match ok {
                    Some(()) => latencies.push(t0.elapsed()),
                    None => failed += 1,
                }
            }
            (latencies, failed)
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.expect("worker");
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Run {
        settled: latencies.len(),
        failed,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}

/// A node whose keys are in a validating signer reached over a loopback link.
async fn remote_payer(env: &Env, signer_dir: &std::path::Path) -> Arc<Node<RemoteKeys>> {
    let node_dir = env.dir.0.join("remote-payer");
    micronode_node::secret_file::create_private_dir(&node_dir).expect("dir");
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
                ..PolicyConfig::default()
            },
        )
        .expect("signer"),
    );
    let addr = transport.local_addr().to_string();
    let code = PairingCode::parse(&code.reveal()).expect("code");
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

fn report(label: &str, run: &Run) {
    println!(
        "  {label:<22} {:>7.1}/s   p50 {:>7.1} ms   p99 {:>7.1} ms   ({} settled, {} failed)",
        run.per_second,
        run.p50.as_secs_f64() * 1000.0,
        run.p99.as_secs_f64() * 1000.0,
        run.settled,
        run.failed
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let workers = env_usize("BENCH_WORKERS", 100);
    let total = env_usize("BENCH_PAYMENTS", 2000);
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
    open_channel(&env, &local, &payee, 16_000_000).await;
    open_channel(&env, &remote, &payee, 16_000_000).await;

    let a = measure(local.clone(), payee.clone(), workers, total).await;
    let b = measure(remote.clone(), payee.clone(), workers, total).await;
    println!("remote-signing benchmark: {workers} workers, {total} payments of 1 sat per run");
    report("(a) in-process keys", &a);
    report("(b) remote signer", &b);
    println!(
        "  ratio (b)/(a)          {:.2}",
        b.per_second / a.per_second
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
