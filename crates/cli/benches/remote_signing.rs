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
//! A third run (c) pays through a signer that approves only app-signed payments, each payment
//! signed by the app in the timed part; the signer's own cost of checking a request is timed
//! apart, over 300 approvals on a fresh signer.
//!
//! Run: `cargo bench -p micronode --bench remote_signing` (env: BENCH_WORKERS,
//! BENCH_PAYMENTS (3,000), BENCH_AMOUNT_SAT (1); BENCH_SIGNER_DIR puts the signer's state on a
//! real disk instead of the test directory, which is on /dev/shm when available).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::bench_signer;

use micronode_link::{LinkIdentity, PairingCode, PairingStore};
use micronode_node::remote::LinkSignerTransport;
use micronode_node::{Node, RemoteKeys};
use micronode_signer_protocol::{AppCredential, AppMethod};
use micronode_testenv::bench::{measure_throughput, measure_throughput_as, ThroughputRun};
use micronode_testenv::nodes::{open_channel_with, Env};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A node whose keys are in a validating signer reached over a loopback link; with
/// `app_requests`, the signer approves only app-signed payments and the app is returned.
async fn remote_payer(
    env: &Env,
    signer_dir: &std::path::Path,
    name: &str,
    app_requests: bool,
) -> (Arc<Node<RemoteKeys>>, Option<Arc<AppCredential>>) {
    let node_dir = env.dir.0.join(name);
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
            &micronode_node::edge::IpAllowList::any(),
        )
        .expect("link"),
    );
    let engine = Arc::new(bench_signer(signer_dir, app_requests));
    let app = app_requests.then(|| {
        let app = engine
            .apps()
            .add_app("bench", &["pay".into()], u64::MAX / 2, 0, None)
            .expect("app");
        Arc::new(app.credential)
    });
    let addr = transport.local_addr().to_string();
    let code = PairingCode::parse(&code.reveal()).expect("code");
    common::spawn_signer(env, engine, signer_dir.to_path_buf(), addr, Some(code), 2);
    transport.wait_online().await;
    let cache = node_dir.join("remote_channel_keys.json");
    let keys = tokio::task::spawn_blocking(move || RemoteKeys::connect(transport, cache))
        .await
        .expect("join")
        .expect("greet the signer");
    let config = env.node_config(name);
    let node = Arc::new(
        Node::start(config, Arc::new(keys), env.chain.clone())
            .await
            .expect("start the remote-signing node"),
    );
    (node, app)
}

/// The signer's own cost of one keysend approval (µs), without and with an app's signed
/// request to check, each over `n` approvals on a fresh signer.
fn approval_cost(dir: &std::path::Path, n: usize) -> (f64, f64) {
    use micronode_signer_protocol::{Hex, PaymentAuthorization, SignerRequest};
    let payee = bitcoin::secp256k1::PublicKey::from_secret_key(
        &bitcoin::secp256k1::Secp256k1::new(),
        &bitcoin::secp256k1::SecretKey::from_slice(&[3u8; 32]).expect("key"),
    );
    let mut per = Vec::new();
    for app_requests in [false, true] {
        let engine = bench_signer(&dir.join(format!("approvals-{app_requests}")), app_requests);
        let app = engine
            .apps()
            .add_app("bench", &["pay".into()], u64::MAX / 2, 0, None)
            .expect("app");
        let started = std::time::Instant::now();
        for i in 0..n {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let authorization = app_requests.then(|| PaymentAuthorization::Client {
                token: app.credential.token.clone(),
                request: app
                    .credential
                    .sign(AppMethod::Keysend, payee.to_string(), 1_000),
            });
            let response = engine.handle(&SignerRequest::ApproveKeysend {
                payee: Hex(payee.serialize().to_vec()),
                payment_hash: Hex(hash.to_vec()),
                amount_msat: 1_000,
                authorization,
            });
            assert!(
                matches!(
                    response,
                    micronode_signer_protocol::SignerResponse::Ok { .. }
                ),
                "{response:?}"
            );
        }
        per.push(started.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    (per[0], per[1])
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
    // The signer forgets settled payments within about a second, so a run is not bounded by
    // VLS's limit on tracked payments (docs/remote-signer.md, "No daily ceiling").
    let total = env_usize("BENCH_PAYMENTS", 3_000);
    let amount_msat = env_usize("BENCH_AMOUNT_SAT", 1) as u64 * 1_000;
    let env = Env::new("bench-remote").await;
    let signer_dir = match std::env::var_os("BENCH_SIGNER_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => env.dir.0.join("signer"),
    };
    let payee = Arc::new(env.start_node("payee").await);
    let local = Arc::new(env.start_node("local-payer").await);
    let (remote, _) = remote_payer(&env, &signer_dir, "remote-payer", false).await;
    let (bound, app) = remote_payer(&env, &signer_dir.join("bound"), "bound-payer", true).await;
    env.fund(&local, 20_000_000).await;
    env.fund(&remote, 20_000_000).await;
    env.fund(&bound, 20_000_000).await;
    // Both private: the signer's default policy does not route, so its node announces
    // nothing, and the set-ups differ only in where the keys are.
    open_channel_with(&env, &local, &payee, 16_000_000, false).await;
    open_channel_with(&env, &remote, &payee, 16_000_000, false).await;
    open_channel_with(&env, &bound, &payee, 16_000_000, false).await;

    let a = measure_throughput(local.clone(), payee.clone(), workers, total, amount_msat).await;
    let b = measure_throughput(remote.clone(), payee.clone(), workers, total, amount_msat).await;
    let c = measure_throughput_as(
        bound.clone(),
        payee.clone(),
        workers,
        total,
        amount_msat,
        app,
    )
    .await;
    let (plain_us, checked_us) = approval_cost(&env.dir.0, 300);
    println!(
        "remote-signing benchmark: {workers} workers, {total} payments of {} sat per run",
        amount_msat / 1_000
    );
    report("(a) in-process keys", &a);
    report("(b) remote signer", &b);
    report("(c) + app requests", &c);
    println!(
        "  ratio (b)/(a)          {:.2}",
        b.per_second() / a.per_second()
    );
    println!(
        "  ratio (c)/(a)          {:.2}   (c)/(b) {:.2}",
        c.per_second() / a.per_second(),
        c.per_second() / b.per_second()
    );
    println!(
        "  one approval in the signer: {plain_us:.0} µs, {checked_us:.0} µs with the app's request \
         checked ({:+.0} µs)",
        checked_us - plain_us
    );
    println!(
        "  added latency          p50 {:+.1} ms   p99 {:+.1} ms",
        (b.p50.as_secs_f64() - a.p50.as_secs_f64()) * 1000.0,
        (b.p99.as_secs_f64() - a.p99.as_secs_f64()) * 1000.0
    );
    remote.stop().await.expect("stop");
    bound.stop().await.expect("stop");
    local.stop().await.expect("stop");
    payee.stop().await.expect("stop");
}
