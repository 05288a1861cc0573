//! The payment-throughput measurement the benchmarks share.
//!
//! Method (after the well-known 2021 Lightning node benchmark): `workers` concurrent workers,
//! each in a loop creating a 1-sat invoice on the payee and paying it from the payer, waiting
//! for the payer to see it settle, until `total` payments were attempted. Three untimed
//! warm-up payments come first (LDK's first HTLC batch waits its initial forwarding delay).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use micronode_node::{KeysBackend, Node, PaymentStatus};
use micronode_signer_protocol::{AppCredential, AppMethod};

/// What one throughput run measured.
#[derive(Debug, Clone)]
pub struct ThroughputRun {
    /// Payments that settled.
    pub settled: usize,
    /// Payments that failed.
    pub failed: usize,
    /// Wall time of the timed part.
    pub elapsed: Duration,
    /// Median create+pay+settle time.
    pub p50: Duration,
    /// 99th percentile of the same.
    pub p99: Duration,
}

impl ThroughputRun {
    /// Settled payments per second.
    pub fn per_second(&self) -> f64 {
        self.settled as f64 / self.elapsed.as_secs_f64()
    }
}

/// The `p` quantile (0..=1) of sorted durations, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs the measurement from `payer` to `payee` (which must share a usable channel), each
/// payment of `amount_msat`, started by the node itself.
pub async fn measure_throughput<A: KeysBackend, B: KeysBackend>(
    payer: Arc<Node<A>>,
    payee: Arc<Node<B>>,
    workers: usize,
    total: usize,
    amount_msat: u64,
) -> ThroughputRun {
    measure_throughput_as(payer, payee, workers, total, amount_msat, None).await
}

/// The request `app` signs for paying `invoice` (`None`: the node pays on its own).
fn authorization(
    app: Option<&AppCredential>,
    invoice: &str,
) -> Option<micronode_signer_protocol::PaymentAuthorization> {
    let app = app?;
    let parsed = micronode_node::pay::parse_invoice(invoice).ok()?;
    let hash: &[u8] = parsed.payment_hash().as_ref();
    let amount = parsed.amount_milli_satoshis()?;
    Some(micronode_signer_protocol::PaymentAuthorization::Client {
        token: app.token.clone(),
        request: app.sign(AppMethod::PayInvoice, hex::encode(hash), amount),
    })
}

/// [`measure_throughput`] with every payment (warm-up included) asked for by `app`, whose
/// signed request goes to the payer's signer with it; the signing is inside the timed part.
pub async fn measure_throughput_as<A: KeysBackend, B: KeysBackend>(
    payer: Arc<Node<A>>,
    payee: Arc<Node<B>>,
    workers: usize,
    total: usize,
    amount_msat: u64,
    app: Option<Arc<AppCredential>>,
) -> ThroughputRun {
    for _ in 0..3 {
        let inv = payee
            .create_invoice(Some(1_000), "warm-up", 600)
            .expect("invoice");
        let auth = authorization(app.as_deref(), &inv.invoice);
        let id = payer
            .pay_invoice_for_app(&inv.invoice, None, None, auth)
            .expect("pay");
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
        let (a, b, next, app) = (payer.clone(), payee.clone(), next.clone(), app.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t0 = Instant::now();
                let ok = async {
                    let inv = b.create_invoice(Some(amount_msat), "bench", 600).ok()?;
                    let auth = authorization(app.as_deref(), &inv.invoice);
                    let id = a.pay_invoice_for_app(&inv.invoice, None, None, auth).ok()?;
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
    ThroughputRun {
        settled: latencies.len(),
        failed,
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}
