//! Payment throughput between two nodes over one channel, on a real regtest bitcoind.
//!
//! Method (after the well-known 2021 Lightning node benchmark): `WORKERS` concurrent workers,
//! each in a loop creating an invoice on the receiver and paying it from the sender, waiting for
//! the payer to see it settle. Reports settled payments per second and p50/p99 latency of one
//! create+pay+settle round.
//!
//! Run: `cargo bench -p micronode-node --bench throughput` (env: BENCH_WORKERS, BENCH_PAYMENTS,
//! BENCH_AMOUNT_SAT, default 1).

use std::sync::Arc;
use std::time::Duration;

use micronode_testenv::bench::measure_throughput;
use micronode_testenv::nodes::{open_channel, Env};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let workers = env_usize("BENCH_WORKERS", 100);
    let total = env_usize("BENCH_PAYMENTS", 3000);
    let interval_ms = env_usize("BENCH_HTLC_INTERVAL_MS", 0);
    let amount_sat = env_usize("BENCH_AMOUNT_SAT", 1) as u64;
    let env = Env::new("bench-tput").await;
    let start = |name: &'static str| {
        let mut config = env.node_config(name);
        config.htlc_processing_interval =
            (interval_ms > 0).then(|| Duration::from_millis(interval_ms as u64));
        env.start_node_with(config)
    };
    let a = Arc::new(start("payer").await);
    let b = Arc::new(start("payee").await);
    env.fund(&a, 20_000_000).await;
    open_channel(&env, &a, &b, 16_000_000).await;

    let run = measure_throughput(a.clone(), b.clone(), workers, total, amount_sat * 1000).await;
    let cadence = match interval_ms {
        0 => "LDK's randomized HTLC batching delay".to_string(),
        ms => format!("HTLC processing every {ms} ms"),
    };
    println!(
        "throughput benchmark: {workers} workers, {total} payments of {amount_sat} sat, one \
         channel (anchors), {cadence}"
    );
    println!(
        "  settled           {} ({} failed) in {:.2} s",
        run.settled,
        run.failed,
        run.elapsed.as_secs_f64()
    );
    println!("  payments/s        {:.1}", run.per_second());
    println!(
        "  latency p50       {:.1} ms",
        run.p50.as_secs_f64() * 1000.0
    );
    println!(
        "  latency p99       {:.1} ms",
        run.p99.as_secs_f64() * 1000.0
    );
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}
