//! `ldk-throughput`: ldk-node 0.7.1's payment throughput, measured with micronode's method, for
//! the side-by-side comparison in `docs/benchmarks.md` (`scripts/bench-vs-ldk-node.sh` runs it
//! right after micronode's own benchmark and prints the ratio).
//!
//! Method (the one `micronode_testenv::bench` uses): two nodes in one process, one 16,000,000 sat
//! channel from the payer to the payee, `BENCH_WORKERS` (100) workers. Each worker loops: the
//! payee creates an invoice for `BENCH_AMOUNT_SAT` (1), the payer pays it, the worker waits until
//! the payer sees it settle. `BENCH_PAYMENTS` (3,000) payments after three untimed warm-up ones.
//! Both nodes run ldk-node's defaults (anchor channels, SQLite storage), on a regtest bitcoind
//! this program starts (`BITCOIND_EXE`, with `bitcoin-cli` beside it) in a fresh temporary
//! directory and stops at the end.
//!
//! The last line of output is machine-readable: `RESULT settled=N failed=N per_second=X
//! p50_ms=X p99_ms=X`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldk_node::bitcoin::{Address, Network};
use ldk_node::config::Config;
use ldk_node::lightning::ln::channelmanager::PaymentId;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::lightning_invoice::{Bolt11InvoiceDescription, Description};
use ldk_node::{Builder, Event, Node};

/// A setting from the environment, or its default.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// A regtest bitcoind in its own directory, killed (and its directory removed) on drop.
struct Bitcoind {
    child: Child,
    dir: PathBuf,
    cli: PathBuf,
    rpc_port: u16,
}

const RPC_USER: &str = "bench";
const RPC_PASSWORD: &str = "bench";

impl Bitcoind {
    fn start() -> Bitcoind {
        let exe =
            PathBuf::from(std::env::var("BITCOIND_EXE").unwrap_or_else(|_| "bitcoind".into()));
        let cli = exe.with_file_name("bitcoin-cli");
        let dir = std::env::temp_dir().join(format!("ldk-throughput-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("bitcoind directory");
        let rpc_port = free_port();
        let child = Command::new(&exe)
            .arg("-regtest")
            .arg(format!("-datadir={}", dir.display()))
            .arg(format!("-rpcport={rpc_port}"))
            .arg(format!("-port={}", free_port()))
            .arg(format!("-rpcuser={RPC_USER}"))
            .arg(format!("-rpcpassword={RPC_PASSWORD}"))
            .args([
                "-listen=0",
                "-txindex=0",
                "-fallbackfee=0.0002",
                "-server=1",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let bitcoind = Bitcoind {
            child,
            dir,
            cli,
            rpc_port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while bitcoind.try_cli(&["getblockchaininfo"]).is_err() {
            assert!(Instant::now() < deadline, "bitcoind did not answer in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        bitcoind.cli(&["createwallet", "miner"]);
        bitcoind
    }

    fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.cli)
            .arg("-regtest")
            .arg(format!("-datadir={}", self.dir.display()))
            .arg(format!("-rpcport={}", self.rpc_port))
            .arg(format!("-rpcuser={RPC_USER}"))
            .arg(format!("-rpcpassword={RPC_PASSWORD}"))
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.cli.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("bitcoin-cli {args:?}: {e}"))
    }

    fn mine(&self, blocks: u32) {
        let address = self.cli(&["-rpcwallet=miner", "getnewaddress"]);
        self.cli(&["generatetoaddress", &blocks.to_string(), &address]);
    }
}

impl Drop for Bitcoind {
    fn drop(&mut self) {
        let _ = self.try_cli(&["stop"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One ldk-node node with ldk-node's defaults, on `bitcoind`, listening on a free port.
fn start_node(bitcoind: &Bitcoind, dir: &Path, name: &str) -> (Arc<Node>, SocketAddress) {
    let listen = SocketAddress::from_str(&format!("127.0.0.1:{}", free_port())).expect("address");
    let config = Config {
        network: Network::Regtest,
        storage_dir_path: dir.join(name).display().to_string(),
        ..Config::default()
    };
    let mut builder = Builder::from_config(config);
    builder.set_chain_source_bitcoind_rpc(
        "127.0.0.1".into(),
        bitcoind.rpc_port,
        RPC_USER.into(),
        RPC_PASSWORD.into(),
    );
    builder.set_filesystem_logger(None, None);
    builder
        .set_listening_addresses(vec![listen.clone()])
        .expect("listening address");
    let node = builder.build().expect("build the node");
    node.start().expect("start the node");
    (Arc::new(node), listen)
}

/// A payment's outcome, or the worker waiting for it.
enum Slot {
    Waiting(SyncSender<bool>),
    Done(bool),
}

/// Hands each payment's outcome from the payer's event loop to the worker that sent it.
#[derive(Default)]
struct Outcomes(Mutex<HashMap<PaymentId, Slot>>);

impl Outcomes {
    fn finish(&self, id: PaymentId, ok: bool) {
        let mut slots = self.0.lock().expect("outcomes");
        match slots.remove(&id) {
            Some(Slot::Waiting(tx)) => {
                let _ = tx.send(ok);
            }
            _ => {
                slots.insert(id, Slot::Done(ok));
            }
        }
    }

    fn wait(&self, id: PaymentId, timeout: Duration) -> bool {
        let (tx, rx) = sync_channel(1);
        {
            let mut slots = self.0.lock().expect("outcomes");
            if let Some(Slot::Done(ok)) = slots.remove(&id) {
                return ok;
            }
            slots.insert(id, Slot::Waiting(tx));
        }
        rx.recv_timeout(timeout).unwrap_or(false)
    }
}

/// Drains `node`'s events for as long as the process runs; payment outcomes go to `outcomes`.
fn run_events(node: Arc<Node>, outcomes: Option<Arc<Outcomes>>) {
    std::thread::spawn(move || loop {
        let event = node.wait_next_event();
        if let Some(outcomes) = &outcomes {
            match event {
                Event::PaymentSuccessful {
                    payment_id: Some(id),
                    ..
                } => outcomes.finish(id, true),
                Event::PaymentFailed {
                    payment_id: Some(id),
                    ..
                } => outcomes.finish(id, false),
                _ => {}
            }
        }
        if node.event_handled().is_err() {
            return;
        }
    });
}

/// Creates an invoice on `payee`, pays it from `payer`, and waits for the outcome.
fn pay_once(payer: &Node, payee: &Node, outcomes: &Outcomes, amount_msat: u64) -> bool {
    let description = Bolt11InvoiceDescription::Direct(
        Description::new("bench".to_string()).expect("description"),
    );
    let Ok(invoice) = payee
        .bolt11_payment()
        .receive(amount_msat, &description, 600)
    else {
        return false;
    };
    let Ok(id) = payer.bolt11_payment().send(&invoice, None) else {
        return false;
    };
    outcomes.wait(id, Duration::from_secs(120))
}

/// The `p` quantile (0..=1) of sorted durations, nearest rank.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let workers = setting("BENCH_WORKERS", 100) as usize;
    let total = setting("BENCH_PAYMENTS", 3000) as usize;
    let amount_msat = setting("BENCH_AMOUNT_SAT", 1) * 1000;

    let bitcoind = Bitcoind::start();
    bitcoind.mine(101);
    let dir = bitcoind.dir.join("nodes");
    let (payer, _) = start_node(&bitcoind, &dir, "payer");
    let (payee, payee_addr) = start_node(&bitcoind, &dir, "payee");
    let outcomes = Arc::new(Outcomes::default());
    run_events(payer.clone(), Some(outcomes.clone()));
    run_events(payee.clone(), None);

    let funding: Address = payer
        .onchain_payment()
        .new_address()
        .expect("payer's address");
    bitcoind.cli(&[
        "-rpcwallet=miner",
        "sendtoaddress",
        &funding.to_string(),
        "0.2",
    ]);
    bitcoind.mine(6);
    wait_until("the payer's funds", || {
        let _ = payer.sync_wallets();
        payer.list_balances().spendable_onchain_balance_sats >= 20_000_000
    });
    payer
        .open_channel(payee.node_id(), payee_addr, 16_000_000, None, None)
        .expect("open the channel");
    wait_until("the funding transaction", || {
        bitcoind.cli(&["getrawmempool"]).contains('"')
    });
    bitcoind.mine(6);
    wait_until("a usable channel", || {
        let _ = payer.sync_wallets();
        let _ = payee.sync_wallets();
        payer.list_channels().iter().any(|c| c.is_usable)
    });

    for _ in 0..3 {
        assert!(
            pay_once(&payer, &payee, &outcomes, 1_000),
            "warm-up payment failed"
        );
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let (payer, payee, outcomes, next) =
                (payer.clone(), payee.clone(), outcomes.clone(), next.clone());
            std::thread::spawn(move || {
                let (mut latencies, mut failed) = (Vec::new(), 0usize);
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let t0 = Instant::now();
                    if pay_once(&payer, &payee, &outcomes, amount_msat) {
                        latencies.push(t0.elapsed());
                    } else {
                        failed += 1;
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let (mut latencies, mut failed) = (Vec::new(), 0);
    for thread in threads {
        let (l, f) = thread.join().expect("worker");
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let per_second = latencies.len() as f64 / elapsed.as_secs_f64();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "ldk-node 0.7.1 throughput: {workers} workers, {total} payments of {} sat, one channel",
        amount_msat / 1000
    );
    println!(
        "  settled           {} ({failed} failed) in {:.2} s",
        latencies.len(),
        elapsed.as_secs_f64()
    );
    println!("  payments/s        {per_second:.1}");
    println!("  latency p50       {:.1} ms", p50.as_secs_f64() * 1000.0);
    println!("  latency p99       {:.1} ms", p99.as_secs_f64() * 1000.0);
    println!(
        "RESULT settled={} failed={failed} per_second={per_second:.1} p50_ms={:.1} p99_ms={:.1}",
        latencies.len(),
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
    let _ = payer.stop();
    let _ = payee.stop();
}

/// Polls `done` every 200 ms for up to two minutes.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
