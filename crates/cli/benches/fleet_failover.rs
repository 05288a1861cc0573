//! Failover time of a node on the fleet store: `kill -9` of the process that runs it, until
//! the next process (already started, waiting for the lease) serves it: its `ready` line.
//!
//! Each round starts the next process right after the kill, as a standby supervisor would; the
//! time is then the lease's remaining time to live plus the node's start from the database.
//!
//! Run: `cargo bench -p micronode --bench fleet_failover` (env: BENCH_KILLS, default 20;
//! BENCH_LEASE_MS, default 2000; the PostgreSQL server is `MICRONODE_TEST_DATABASE_URL`, or
//! 127.0.0.1:5432 as user postgres).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use micronode_node::store::testing::TestDatabase;
use micronode_testenv::bench::percentile;
use micronode_testenv::nodes::Env;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts `node run` for the fleet's node "alice" as `holder`, in its own directory with
/// alice's keys, and returns it once it printed its ready line.
fn run_alice(env: &Env, db: &TestDatabase, key: &str, holder: &str, lease_ms: &str) -> Child {
    let dir = env.dir.0.join(holder);
    std::fs::create_dir_all(&dir).expect("dir");
    let first = env.dir.0.join("holder-0").join("keys_seed");
    if first.exists() {
        std::fs::copy(&first, dir.join("keys_seed")).expect("keys");
    }
    let mut child = env
        .bitcoind
        .point_daemon(
            Command::new(env!("CARGO_BIN_EXE_micronode"))
                .args(["node", "run", "--network", "regtest"])
                .arg("--data-dir")
                .arg(&dir)
                .args(["--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
                .args(["--poll-interval-ms", "100"]),
        )
        .args(["--fleet-database", &db.url, "--fleet-tenant", "alice"])
        .args(["--fleet-holder", holder, "--fleet-key-file", key])
        .args(["--fleet-lease-ms", lease_ms])
        .env("MICRONODE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn micronode");
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines() {
        if line.expect("line").contains("\"event\":\"ready\"") {
            return child;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{holder} exited before serving");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let kills = env_usize("BENCH_KILLS", 20);
    let lease_ms = env_usize("BENCH_LEASE_MS", 2000).to_string();
    let env = Env::new("bench-failover").await;
    let db = TestDatabase::new("bench_failover");
    let key = env.dir.0.join("fleet.key");
    std::fs::write(&key, "17".repeat(32)).expect("key");
    let key = key.display().to_string();

    let mut running = run_alice(&env, &db, &key, "holder-0", &lease_ms);
    let mut times = Vec::new();
    for round in 1..=kills {
        running.kill().expect("kill -9");
        let killed = Instant::now();
        running.wait().expect("reap");
        running = run_alice(&env, &db, &key, &format!("holder-{round}"), &lease_ms);
        times.push(killed.elapsed());
    }
    running.kill().expect("kill");
    let _ = running.wait();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("fleet failover: {kills} kill -9 rounds, lease {lease_ms} ms, one node, no channel");
    println!(
        "  kill -9 to serving  p50 {:.0} ms",
        ms(percentile(&times, 0.5))
    );
    println!(
        "  kill -9 to serving  p99 {:.0} ms",
        ms(percentile(&times, 0.99))
    );
    println!(
        "  min {:.0} ms, max {:.0} ms",
        ms(times[0]),
        ms(times[times.len() - 1])
    );
}
