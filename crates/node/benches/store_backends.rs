//! The embedded SQLite store against the fleet's PostgreSQL store, in one run: payment
//! throughput between two nodes, and a node's wake-up time (its start from a stored state
//! with a channel and the payments' history).
//!
//! Run: `cargo bench -p micronode-node --bench store_backends` (env: BENCH_WORKERS, default
//! 100; BENCH_PAYMENTS, default 1000; BENCH_WAKEUPS, default 10; the PostgreSQL server is
//! `MICRONODE_TEST_DATABASE_URL`, or 127.0.0.1:5432 as user postgres).

use std::sync::Arc;
use std::time::{Duration, Instant};

use micronode_node::store::testing::TestDatabase;
use micronode_node::store::{DataKey, NodeStore, PgDatabase};
use micronode_node::{NodeConfig, StoreChoice};
use micronode_testenv::bench::{measure_throughput, percentile, ThroughputRun};
use micronode_testenv::nodes::{open_channel, Env};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A node's config on `fleet` (under a lease of its own), or on SQLite without one.
fn on(env: &Env, name: &str, fleet: Option<&PgDatabase>) -> NodeConfig {
    let mut config = env.node_config(name);
    if let Some(fleet) = fleet {
        let lease = fleet
            .acquire_lease(name, "bench-host", Duration::from_secs(3600))
            .expect("lease");
        let store = fleet.tenant_store(&lease, &DataKey::random());
        config.store = StoreChoice::Given(Arc::new(NodeStore::from(store)));
    }
    config
}

struct Measured {
    run: ThroughputRun,
    wake_p50: Duration,
    wake_p99: Duration,
}

async fn measure(env: &Env, tag: &str, fleet: Option<&PgDatabase>) -> Measured {
    let workers = env_usize("BENCH_WORKERS", 100);
    let total = env_usize("BENCH_PAYMENTS", 1000);
    let wakeups = env_usize("BENCH_WAKEUPS", 10);
    let payer_config = on(env, &format!("{tag}_payer"), fleet);
    let a = Arc::new(env.start_node_with(payer_config.clone()).await);
    let b = Arc::new(
        env.start_node_with(on(env, &format!("{tag}_payee"), fleet))
            .await,
    );
    env.fund(&a, 20_000_000).await;
    open_channel(env, &a, &b, 16_000_000).await;
    let run = measure_throughput(a.clone(), b.clone(), workers, total, 1000).await;

    // Wake-up: stop the payer and start it again from its store, `wakeups` times.
    let mut config = payer_config;
    config.listen_addr = a.listen_addr();
    a.stop().await.expect("stop");
    drop(a);
    let mut times = Vec::new();
    for _ in 0..wakeups {
        let started = Instant::now();
        let node = env.start_node_with(config.clone()).await;
        times.push(started.elapsed());
        assert_eq!(node.list_channels().len(), 1, "the channel is loaded");
        node.stop().await.expect("stop");
    }
    times.sort();
    b.stop().await.expect("stop");
    Measured {
        run,
        wake_p50: percentile(&times, 0.5),
        wake_p99: percentile(&times, 0.99),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let env = Env::new("bench-stores").await;
    let sqlite = measure(&env, "sqlite", None).await;
    let db = TestDatabase::new("bench");
    let fleet =
        PgDatabase::connect(&db.url, micronode_node::store::DEFAULT_CONNECTIONS).expect("connect");
    let postgres = measure(&env, "pg", Some(&fleet)).await;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("store backends: one run, two nodes per backend, one channel, 1 sat payments");
    println!("| store | payments/s | p50 | p99 | wake-up p50 | wake-up p99 |");
    println!("|---|---|---|---|---|---|");
    for (name, m) in [("SQLite", &sqlite), ("PostgreSQL", &postgres)] {
        println!(
            "| {name} | {:.1} ({} failed) | {:.0} ms | {:.0} ms | {:.1} ms | {:.1} ms |",
            m.run.per_second(),
            m.run.failed,
            ms(m.run.p50),
            ms(m.run.p99),
            ms(m.wake_p50),
            ms(m.wake_p99)
        );
    }
    println!(
        "PostgreSQL / SQLite: throughput {:.2}x, wake-up p50 {:.2}x",
        postgres.run.per_second() / sqlite.run.per_second(),
        ms(postgres.wake_p50) / ms(sqlite.wake_p50)
    );
}
