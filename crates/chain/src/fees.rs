//! A fee estimator shared by every node in the process.
//!
//! Estimates come from bitcoind's `estimatesmartfee` and are refreshed in the background, so LDK's
//! synchronous `get_est_sat_per_1000_weight` never waits on the network. Where bitcoind has no
//! estimate (always on a fresh regtest chain), documented fallbacks are used.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lightning::chain::chaininterface::{
    ConfirmationTarget, FeeEstimator, FEERATE_FLOOR_SATS_PER_KW,
};

use crate::feed::ChainFeed;
use crate::rpc::BitcoindRpc;

/// The confirmation targets we keep an estimate for, with bitcoind's block target, its estimate
/// mode, and the fallback in sat per 1000 weight units when bitcoind has none.
const TARGETS: [(ConfirmationTarget, u16, &str, u32); 6] = [
    (
        ConfirmationTarget::MaximumFeeEstimate,
        1,
        "CONSERVATIVE",
        5_000,
    ),
    (
        ConfirmationTarget::UrgentOnChainSweep,
        6,
        "CONSERVATIVE",
        5_000,
    ),
    (
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee,
        1008,
        "ECONOMICAL",
        FEERATE_FLOOR_SATS_PER_KW,
    ),
    (
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee,
        144,
        "ECONOMICAL",
        FEERATE_FLOOR_SATS_PER_KW,
    ),
    (
        ConfirmationTarget::AnchorChannelFee,
        1008,
        "ECONOMICAL",
        FEERATE_FLOOR_SATS_PER_KW,
    ),
    (
        ConfirmationTarget::NonAnchorChannelFee,
        12,
        "ECONOMICAL",
        2_000,
    ),
];
/// Fallback for the targets not listed above (sweeps and output spends).
const DEFAULT_FALLBACK: u32 = 2_000;

/// Shared fee estimator.
pub struct SharedFeeEstimator {
    rates: [AtomicU32; TARGETS.len()],
    fallback: AtomicU32,
}

impl Default for SharedFeeEstimator {
    fn default() -> Self {
        Self {
            rates: std::array::from_fn(|i| AtomicU32::new(TARGETS[i].3)),
            fallback: AtomicU32::new(DEFAULT_FALLBACK),
        }
    }
}

impl SharedFeeEstimator {
    /// Creates an estimator seeded with the fallbacks and starts refreshing it from bitcoind every
    /// `interval` on the feed's runtime.
    pub fn start(feed: &ChainFeed, rpc: Arc<BitcoindRpc>, interval: Duration) -> Arc<Self> {
        let estimator = Arc::new(Self::default());
        let weak = Arc::downgrade(&estimator);
        feed.runtime().spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let Some(est) = weak.upgrade() else { break };
                est.refresh(&rpc).await;
            }
        });
        estimator
    }

    /// Asks bitcoind for fresh estimates; keeps the previous value for any target it cannot
    /// estimate.
    pub async fn refresh(&self, rpc: &BitcoindRpc) {
        for (i, (_, blocks, mode, _)) in TARGETS.iter().enumerate() {
            match rpc.estimate_smart_fee(*blocks, mode).await {
                Ok(Some(btc_per_kvb)) => {
                    // BTC/kvB -> sat/kvB -> sat/kWU (1 vbyte = 4 weight units).
                    let sat_per_kw = (btc_per_kvb * 100_000_000.0 / 4.0).round() as u32;
                    self.rates[i]
                        .store(sat_per_kw.max(FEERATE_FLOOR_SATS_PER_KW), Ordering::Relaxed);
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "fee estimate refresh failed"),
            }
        }
    }

    /// Overrides every estimate (tests and benchmarks).
    pub fn set_all(&self, sat_per_kw: u32) {
        for r in &self.rates {
            r.store(sat_per_kw.max(FEERATE_FLOOR_SATS_PER_KW), Ordering::Relaxed);
        }
        self.fallback
            .store(sat_per_kw.max(FEERATE_FLOOR_SATS_PER_KW), Ordering::Relaxed);
    }
}

impl FeeEstimator for SharedFeeEstimator {
    fn get_est_sat_per_1000_weight(&self, target: ConfirmationTarget) -> u32 {
        TARGETS
            .iter()
            .position(|(t, ..)| *t == target)
            .map(|i| self.rates[i].load(Ordering::Relaxed))
            .unwrap_or_else(|| self.fallback.load(Ordering::Relaxed))
    }
}
