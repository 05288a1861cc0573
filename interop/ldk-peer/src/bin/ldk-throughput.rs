//! `ldk-throughput`: ldk-node 0.7.1's payment throughput, measured with micronode's method, for
//! the side-by-side comparison in `docs/benchmarks.md` (`scripts/bench-vs-ldk-node.sh` runs it
//! right after micronode's own benchmark and prints the ratio).
//!
//! Method (the one `micronode_testenv::bench` uses): two nodes in one process, one 16,000,000 sat
//! channel from the payer to the payee, `BENCH_WORKERS` (100) workers. Each worker loops: the
//! payee creates an invoice for `BENCH_AMOUNT_SAT` (1), the payer pays it, the worker waits until
//! the payer sees it settle. `BENCH_PAYMENTS` (3,000) payments after three untimed warm-up ones.
//! Both nodes run ldk-node's defaults (anchor channels, SQLite storage), on a regtest bitcoind
//! this program starts (`BITCOIND_EXE`, with `bitcoin-cli` beside it), with all data in a fresh
//! directory on `/dev/shm` (as micronode's benchmark) that is removed at the end.
//!
//! ldk-node keeps LDK's default of at most 50 HTLCs in flight per channel (micronode raises it
//! to 483) and does not expose it: a payment beyond that is refused at once. So the workers
//! share `BENCH_LDK_SLOTS` (50) slots for the paying step, as an application using ldk-node
//! would, and an attempt still refused for want of a slot is retried after 5 ms with the same
//! invoice. A payment's latency runs from its invoice, waiting for a slot included. The count of retried attempts is printed.
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
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ldk_node::bitcoin::{Address, Network};
use ldk_node::config::Config;
use ldk_node::lightning::events::PaymentFailureReason;
use ldk_node::lightning::ln::channelmanager::PaymentId;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use ldk_node::{Builder, Event, Node, NodeError};

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
        // On /dev/shm when there is one, as micronode's benchmark keeps its nodes' data.
        let base = Some(Path::new("/dev/shm"))
            .filter(|shm| shm.is_dir())
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("ldk-throughput-{}", std::process::id()));
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

/// How a payment ended.
#[derive(Clone)]
enum Outcome {
    Settled,
    Failed(Option<PaymentFailureReason>),
}

/// A payment's outcome, or the worker waiting for it.
enum Slot {
    Waiting(SyncSender<Outcome>),
    Done(Outcome),
}

/// Hands each payment's outcome from the payer's event loop to the worker that sent it.
#[derive(Default)]
struct Outcomes(Mutex<HashMap<PaymentId, Slot>>);

impl Outcomes {
    fn finish(&self, id: PaymentId, outcome: Outcome) {
        let mut slots = self.0.lock().expect("outcomes");
        match slots.remove(&id) {
            Some(Slot::Waiting(tx)) => {
                let _ = tx.send(outcome);
            }
            _ => {
                slots.insert(id, Slot::Done(outcome));
            }
        }
    }

    fn wait(&self, id: PaymentId, timeout: Duration) -> Outcome {
        let (tx, rx) = sync_channel(1);
        {
            let mut slots = self.0.lock().expect("outcomes");
            if let Some(Slot::Done(outcome)) = slots.remove(&id) {
                return outcome;
            }
            slots.insert(id, Slot::Waiting(tx));
        }
        rx.recv_timeout(timeout).unwrap_or(Outcome::Failed(None))
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
                } => outcomes.finish(id, Outcome::Settled),
                Event::PaymentFailed {
                    payment_id: Some(id),
                    reason,
                    ..
                } => outcomes.finish(id, Outcome::Failed(reason)),
                _ => {}
            }
        }
        if node.event_handled().is_err() {
            return;
        }
    });
}

/// What became of one attempt at a payment.
enum Attempt {
    Settled,
    /// Refused before any HTLC left: every HTLC slot of the channel is taken (ldk-node keeps
    /// LDK's default of at most 50 in flight, which it does not expose).
    NoSlot,
    Failed(String),
}

/// A counting semaphore: at most as many payments in flight as the channel has HTLC slots.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn new(count: usize) -> Slots {
        Slots {
            free: Mutex::new(count),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) {
        let mut free = self.free.lock().expect("slots");
        while *free == 0 {
            free = self.freed.wait(free).expect("slots");
        }
        *free -= 1;
    }

    fn release(&self) {
        *self.free.lock().expect("slots") += 1;
        self.freed.notify_one();
    }
}

/// Pays `invoice` from `payer` once and waits for the outcome.
fn attempt(payer: &Node, invoice: &Bolt11Invoice, outcomes: &Outcomes) -> Attempt {
    let id = match payer.bolt11_payment().send(invoice, None) {
        Ok(id) => id,
        Err(NodeError::PaymentSendingFailed) => return Attempt::NoSlot,
        Err(e) => return Attempt::Failed(format!("pay: {e}")),
    };
    match outcomes.wait(id, Duration::from_secs(120)) {
        Outcome::Settled => Attempt::Settled,
        Outcome::Failed(Some(PaymentFailureReason::RouteNotFound)) => Attempt::NoSlot,
        Outcome::Failed(reason) => Attempt::Failed(format!("payment failed: {reason:?}")),
    }
}

/// One payment: the payee creates an invoice and the payer pays it, trying again after 5 ms
/// while it is refused for want of an HTLC slot. Its latency runs from the invoice.
fn pay_once(
    payer: &Node,
    payee: &Node,
    outcomes: &Outcomes,
    slots: &Slots,
    amount_msat: u64,
) -> PayResult {
    let description = Bolt11InvoiceDescription::Direct(
        Description::new("bench".to_string()).expect("description"),
    );
    let invoice = match payee
        .bolt11_payment()
        .receive(amount_msat, &description, 600)
    {
        Ok(invoice) => invoice,
        Err(e) => {
            eprintln!("ldk-throughput: invoice: {e}");
            return PayResult {
                ok: false,
                retries: 0,
            };
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut retries = 0;
    loop {
        slots.acquire();
        let result = attempt(payer, &invoice, outcomes);
        slots.release();
        match result {
            Attempt::Settled => return PayResult { ok: true, retries },
            Attempt::NoSlot if Instant::now() < deadline => {
                retries += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Attempt::NoSlot => return PayResult { ok: false, retries },
            Attempt::Failed(why) => {
                eprintln!("ldk-throughput: {why}");
                return PayResult { ok: false, retries };
            }
        }
    }
}

/// The outcome of one payment.
struct PayResult {
    ok: bool,
    /// Attempts refused for want of an HTLC slot before the one that counted.
    retries: usize,
}

/// The `p` quantile (0..=1) of sorted durations, nearest rank: the definition
/// `micronode_testenv::bench` uses (this project cannot depend on the workspace).
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
    let slots = Arc::new(Slots::new(setting("BENCH_LDK_SLOTS", 50) as usize));

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
            pay_once(&payer, &payee, &outcomes, &slots, 1_000).ok,
            "warm-up payment failed"
        );
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let (payer, payee, outcomes, slots, next) = (
                payer.clone(),
                payee.clone(),
                outcomes.clone(),
                slots.clone(),
                next.clone(),
            );
            std::thread::spawn(move || {
                let (mut latencies, mut failed, mut retries) = (Vec::new(), 0usize, 0usize);
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let t0 = Instant::now();
                    let result = pay_once(&payer, &payee, &outcomes, &slots, amount_msat);
                    retries += result.retries;
                    if result.ok {
                        latencies.push(t0.elapsed());
                    } else {
                        failed += 1;
                    }
                }
                (latencies, failed, retries)
            })
        })
        .collect();
    let (mut latencies, mut failed, mut retries) = (Vec::new(), 0, 0);
    for thread in threads {
        let (l, f, r) = thread.join().expect("worker");
        latencies.extend(l);
        failed += f;
        retries += r;
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
    println!("  retried attempts  {retries} (refused at once: no free HTLC slot)");
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
