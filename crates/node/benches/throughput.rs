//! Payment throughput between two nodes over one channel, on a real regtest bitcoind.
//!
//! Method (after the well-known 2021 Lightning node benchmark): `WORKERS` concurrent workers,
//! each in a loop creating an invoice on the receiver and paying it from the sender, waiting for
//! the payer to see it settle. Reports settled payments per second and p50/p99 latency of one
//! create+pay+settle round.
//!
//! Run: `cargo bench -p micronode-node --bench throughput` (env: BENCH_WORKERS, BENCH_PAYMENTS).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use micronode_node::PaymentStatus;
use micronode_testenv::nodes::{open_channel, Env};

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
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let workers = env_usize("BENCH_WORKERS", 100);
    let total = env_usize("BENCH_PAYMENTS", 3000);
    let interval_ms = env_usize("BENCH_HTLC_INTERVAL_MS", 0);
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

    // Warm up: the first HTLC batch waits LDK's initial 2 s forward delay, and routes and
    // caches get built. Not timed.
    for _ in 0..3 {
        let inv = b
            .create_invoice(Some(1_000), "warm-up", 600)
            .expect("invoice");
        let id = a.pay_invoice(&inv.invoice, None, None).expect("pay");
        a.wait_payment(&id, Duration::from_secs(60))
            .await
            .expect("warm-up payment");
    }

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (a, b, next) = (a.clone(), b.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t0 = Instant::now();
                let ok = async {
                    let inv = b.create_invoice(Some(1_000), "bench", 600).ok()?;
                    let id = a.pay_invoice(&inv.invoice, None, None).ok()?;
                    let rec = a.wait_payment(&id, Duration::from_secs(60)).await.ok()?;
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
    let settled = latencies.len();
    let cadence = match interval_ms {
        0 => "LDK's randomized HTLC batching delay".to_string(),
        ms => format!("HTLC processing every {ms} ms"),
    };
    println!("throughput benchmark: {workers} workers, {total} payments of 1 sat, one channel, {cadence}");
    println!(
        "  settled           {settled} ({failed} failed) in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!(
        "  payments/s        {:.1}",
        settled as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency p50       {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0
    );
    println!(
        "  latency p99       {:.1} ms",
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}
