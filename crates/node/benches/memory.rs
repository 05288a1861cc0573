//! Resident memory per idle node with 1, 10, 100 and 500 nodes in one process, sharing one
//! chain feed, on a real regtest bitcoind.
//!
//! Nodes are started in steps (1, then up to 10, 100, 500); after each step the process's RSS
//! (from /proc/self/status, after a settle pause) is compared with the RSS before the first
//! node. Run: `cargo bench -p micronode-node --bench memory` (env: BENCH_MAX_NODES).

use std::time::Duration;

use micronode_testenv::nodes::Env;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let max: usize = std::env::var("BENCH_MAX_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let env = Env::new("bench-mem").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = rss_kib();
    let mut nodes = Vec::new();
    println!(
        "memory benchmark: idle nodes in one process (baseline RSS {} MiB)",
        base / 1024
    );
    println!(
        "  {:>6}  {:>12}  {:>16}",
        "nodes", "RSS (MiB)", "per node (MiB)"
    );
    for step in [1usize, 10, 100, 500].into_iter().filter(|s| *s <= max) {
        while nodes.len() < step {
            let mut config = env.node_config(&format!("n{}", nodes.len()));
            config.listen_addr = None;
            nodes.push(env.start_node_with(config).await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = rss_kib();
        let per_node = (rss.saturating_sub(base)) as f64 / 1024.0 / step as f64;
        println!(
            "  {:>6}  {:>12.1}  {:>16.3}",
            step,
            rss as f64 / 1024.0,
            per_node
        );
    }
    for n in &nodes {
        n.stop().await.expect("stop");
    }
}
