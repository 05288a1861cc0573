//! NWC `pay_invoice` round trip through a local relay: from publishing the request event to
//! receiving the response event, for sequential and concurrent requests. The wallet is a real
//! regtest node paying a second node over a direct channel; the relay is nostr-relay-builder in
//! process on 127.0.0.1. A baseline of the same payments made directly on the node shows what
//! NWC adds.
//!
//! `cargo bench -p micronode-nwc --bench nwc_roundtrip`; `BENCH_SEQUENTIAL` (200),
//! `BENCH_CONCURRENT` (50), `BENCH_HTLC_INTERVAL_MS` (0: LDK's randomized HTLC batching delay),
//! `BENCH_SCHEME` (`nip44` or `nip04`), `BENCH_RELAY` (`plain`: a relay without `TCP_NODELAY`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{pool, test_config, wait_for_info, RawApp, RawOpts, TestRelay};
use micronode_nwc::crypto::Scheme;
use micronode_nwc::protocol::KIND_RESPONSE;
use micronode_nwc::{ConnectionSpec, NodeBackend, NwcService};
use micronode_testenv::nodes::{open_channel, Env, TestNode};
use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};
use nostr_sdk::prelude::{EventId, Filter, Kind, RelayPoolNotification};
use serde_json::json;
use tokio::sync::oneshot;

/// The relay of the run, kept alive until the end.
#[allow(dead_code)]
enum Relay {
    Ours(TestRelay),
    Plain(LocalRelay),
}

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

fn report(what: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<34} n={:<4} p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  ({:.1} req/s)",
        lat.len(),
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
        lat.len() as f64 / wall.as_secs_f64()
    );
}

type Waiters = Arc<Mutex<HashMap<EventId, oneshot::Sender<Instant>>>>;

/// One request: publish, then wait for the response the listener hands over.
async fn round_trip(raw: &RawApp, waiters: &Waiters, invoice: &str, opts: &RawOpts) -> Duration {
    let body = json!({"method": "pay_invoice", "params": {"invoice": invoice}}).to_string();
    request(raw, waiters, &body, opts).await
}

async fn request(raw: &RawApp, waiters: &Waiters, body: &str, opts: &RawOpts) -> Duration {
    let event = raw.event(body, opts);
    let (tx, rx) = oneshot::channel();
    waiters.lock().expect("waiters").insert(event.id, tx);
    let start = Instant::now();
    raw.pool.send_event(&event).await.expect("publish");
    let got = tokio::time::timeout(Duration::from_secs(120), rx)
        .await
        .expect("response in time")
        .expect("listener alive");
    got - start
}

async fn invoices(bob: &TestNode, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            bob.create_invoice(Some(10_000_000), format!("bench {i}"), 3600)
                .expect("invoice")
                .invoice
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sequential = env_usize("BENCH_SEQUENTIAL", 200);
    let concurrent = env_usize("BENCH_CONCURRENT", 50);
    let interval_ms = env_usize("BENCH_HTLC_INTERVAL_MS", 0);
    let opts = match std::env::var("BENCH_SCHEME").as_deref() {
        Ok("nip04") => RawOpts::nip04(),
        _ => RawOpts::nip44(),
    };

    let env = Env::new("bench-nwc").await;
    let start = |name: &'static str| {
        let mut config = env.node_config(name);
        config.htlc_processing_interval =
            (interval_ms > 0).then(|| Duration::from_millis(interval_ms as u64));
        env.start_node_with(config)
    };
    let alice = Arc::new(start("alice").await);
    let bob = start("bob").await;
    env.fund(&alice, 10_000_000).await;
    open_channel(&env, &alice, &bob, 8_000_000).await;

    // BENCH_RELAY=plain: nostr-relay-builder's own listener, which leaves Nagle's algorithm
    // on (what every relay connection had before crates/nwc/src/transport.rs); the app's
    // and the service's sockets set TCP_NODELAY either way.
    let plain_relay = std::env::var("BENCH_RELAY").as_deref() == Ok("plain");
    let (relay_url, _relay) = if plain_relay {
        let relay = LocalRelay::new(RelayBuilder::default().rate_limit(RateLimit {
            max_reqs: 1_000,
            notes_per_minute: 1_000_000,
        }));
        relay.run().await.expect("relay");
        (relay.url().await.to_string(), Relay::Plain(relay))
    } else {
        let relay = TestRelay::start().await;
        (relay.url.clone(), Relay::Ours(relay))
    };
    let mut config = test_config(&env.dir.0.join("nwc"), &relay_url);
    config.max_concurrent_requests = 256;
    let service = NwcService::start(config, NodeBackend::new(alice.clone()))
        .await
        .expect("service");
    let conn = service
        .create_connection(&ConnectionSpec::full("bench"))
        .expect("connection");
    let watcher = pool(&relay_url).await;
    wait_for_info(&watcher, conn.connection.wallet_pubkey).await;
    let raw = RawApp::new(&relay_url, &conn).await;

    // One long-lived subscription to all responses; a listener stamps each on arrival.
    let waiters: Waiters = Arc::default();
    raw.pool
        .subscribe(
            Filter::new()
                .kind(Kind::from(KIND_RESPONSE))
                .author(raw.wallet)
                .pubkey(raw.app.public_key()),
            Default::default(),
        )
        .await
        .expect("subscribe");
    {
        let mut rx = raw.pool.notifications();
        let waiters = waiters.clone();
        tokio::spawn(async move {
            while let Ok(n) = rx.recv().await {
                if let RelayPoolNotification::Event { event, .. } = n {
                    let now = Instant::now();
                    for id in event.tags.event_ids() {
                        if let Some(tx) = waiters.lock().expect("waiters").remove(id) {
                            let _ = tx.send(now);
                        }
                    }
                }
            }
        });
    }

    // Warm-up (LDK's first HTLC batch waits its initial forwarding delay); checks answers.
    for invoice in invoices(&bob, 3).await {
        let ev = raw.event(
            &json!({"method": "pay_invoice", "params": {"invoice": invoice}}).to_string(),
            &opts,
        );
        let answer = raw
            .send(&ev, Duration::from_secs(60))
            .await
            .expect("answer");
        let v = raw.open(&answer, opts.scheme);
        assert!(v["result"]["preimage"].is_string(), "warm-up failed: {v}");
    }

    println!(
        "NWC pay_invoice round trip ({} relay, {}, HTLC interval {}):",
        if plain_relay {
            "plain (Nagle on)"
        } else {
            "embedded (TCP_NODELAY)"
        },
        if opts.scheme == Scheme::Nip44V2 {
            "NIP-44"
        } else {
            "NIP-04"
        },
        if interval_ms == 0 {
            "LDK default".to_string()
        } else {
            format!("{interval_ms} ms")
        }
    );

    // Baseline: the same payments on the node directly.
    let base = invoices(&bob, 50).await;
    let t0 = Instant::now();
    let mut lat = Vec::new();
    for invoice in &base {
        let s = Instant::now();
        let id = alice.pay_invoice(invoice, None, None).expect("pay");
        alice
            .wait_payment(&id, Duration::from_secs(60))
            .await
            .expect("paid");
        lat.push(s.elapsed());
    }
    report("direct on the node, sequential", lat, t0.elapsed());

    // The transport alone: a request that does not touch the node's payment path.
    let t0 = Instant::now();
    let mut lat = Vec::new();
    for _ in 0..100 {
        lat.push(request(&raw, &waiters, r#"{"method":"get_balance"}"#, &opts).await);
    }
    report("NWC get_balance, sequential", lat, t0.elapsed());

    let seq = invoices(&bob, sequential).await;
    let t0 = Instant::now();
    let mut lat = Vec::with_capacity(sequential);
    for invoice in &seq {
        lat.push(round_trip(&raw, &waiters, invoice, &opts).await);
    }
    report("NWC, sequential", lat, t0.elapsed());

    let conc = invoices(&bob, concurrent).await;
    let conc_copy = conc.clone();
    let raw = Arc::new(raw);
    let t0 = Instant::now();
    let tasks: Vec<_> = conc
        .into_iter()
        .map(|invoice| {
            let raw = raw.clone();
            let waiters = waiters.clone();
            let opts = opts.clone();
            tokio::spawn(async move { round_trip(&raw, &waiters, &invoice, &opts).await })
        })
        .collect();
    let mut lat = Vec::with_capacity(concurrent);
    for t in tasks {
        lat.push(t.await.expect("task"));
    }
    report(&format!("NWC, {concurrent} concurrent"), lat, t0.elapsed());

    // Every timed request must have paid: latencies of errors would flatter the figures.
    let failed = seq
        .iter()
        .chain(conc_copy.iter())
        .filter(|inv| {
            let hash = inv
                .parse::<lightning_invoice::Bolt11Invoice>()
                .map(|i| *i.payment_hash().as_ref())
                .unwrap_or([0; 32]);
            alice
                .payment_in(micronode_node::PaymentDirection::Outbound, &hash)
                .map(|p| p.status)
                != Some(micronode_node::PaymentStatus::Succeeded)
        })
        .count();
    assert_eq!(failed, 0, "{failed} NWC payments did not succeed");

    service.stop().await;
    let _ = alice.stop().await;
    let _ = bob.stop().await;
}
