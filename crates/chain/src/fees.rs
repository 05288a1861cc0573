//! A fee estimator shared by every node in the process.
//!
//! Estimates come from bitcoind's `estimatesmartfee` and are refreshed in the background, so LDK's
//! synchronous `get_est_sat_per_1000_weight` never waits on the network. Every one of LDK's
//! confirmation targets has its own rule ([`rule`]): a block target and estimate mode chosen
//! for the purpose, and a fallback for when bitcoind has no estimate (always on a fresh regtest
//! chain, and for a while after a node starts). No estimate is ever below bitcoind's mempool
//! minimum, so what we sign can enter the mempool. `docs/fees.md` gives the table.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lightning::chain::chaininterface::{
    ConfirmationTarget, FeeEstimator, FEERATE_FLOOR_SATS_PER_KW,
};

use crate::feed::ChainFeed;
use crate::rpc::BitcoindRpc;

/// How the estimate for one confirmation target is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetRule {
    /// bitcoind's confirmation target, in blocks; 0 asks bitcoind for no estimate (the target
    /// is the mempool minimum).
    pub blocks: u16,
    /// bitcoind's estimate mode.
    pub mode: &'static str,
    /// Added to bitcoind's estimate, in sat per 1000 weight units.
    pub margin_sat_per_kw: u32,
    /// Used while bitcoind has no estimate, in sat per 1000 weight units.
    pub fallback_sat_per_kw: u32,
}

/// Every confirmation target LDK asks about, in a fixed order (the estimator's slots).
pub const TARGETS: [ConfirmationTarget; 8] = [
    ConfirmationTarget::MaximumFeeEstimate,
    ConfirmationTarget::UrgentOnChainSweep,
    ConfirmationTarget::MinAllowedAnchorChannelRemoteFee,
    ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee,
    ConfirmationTarget::AnchorChannelFee,
    ConfirmationTarget::NonAnchorChannelFee,
    ConfirmationTarget::ChannelCloseMinimum,
    ConfirmationTarget::OutputSpendingFee,
];

/// The rule for each target. The match is exhaustive, so a target added by a new LDK version
/// does not compile until it has a rule of its own.
pub fn rule(target: ConfirmationTarget) -> TargetRule {
    const FLOOR: u32 = FEERATE_FLOOR_SATS_PER_KW;
    let (blocks, mode, margin_sat_per_kw, fallback_sat_per_kw) = match target {
        // Only a sanity bound on the peer's fee rate: the next block, conservatively, plus a
        // margin so an honest peer with a more cautious estimator is never taken for an attack.
        ConfirmationTarget::MaximumFeeEstimate => (1, "CONSERVATIVE", 2_500, 25_000),
        // Funds a peer could take after a timeout: high priority.
        ConfirmationTarget::UrgentOnChainSweep => (6, "CONSERVATIVE", 0, 5_000),
        // The peer's commitment must only enter the mempool: anchors bump it later. No
        // estimate (block target 0): the mempool minimum alone, or a peer whose estimator
        // reads a sat/kWU lower than ours would be refused (LDK checks this bound exactly).
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee => (0, "", 0, FLOOR),
        // A day's estimate, economical, for the lowest rate we let a peer pick in a channel
        // without anchors.
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => (144, "ECONOMICAL", 0, FLOOR),
        // Our anchor commitments: the mempool minimum over a week, bumped with CPFP if needed.
        ConfirmationTarget::AnchorChannelFee => (1008, "ECONOMICAL", 0, FLOOR),
        // Commitments that cannot be bumped, and the top of our cooperative-close range.
        ConfirmationTarget::NonAnchorChannelFee => (12, "ECONOMICAL", 0, 2_000),
        // The lowest cooperative-close rate we accept or propose: what confirms within about a
        // day. Before this rule the target fell through to the 2,000 sat/kWU default, so a peer
        // offering a normal closing range (1-5 sat/vB) was refused and the channel force-closed.
        ConfirmationTarget::ChannelCloseMinimum => (144, "ECONOMICAL", 0, FLOOR),
        // Sweeps without a deadline; a dozen blocks gets the tenant's funds back soon enough.
        ConfirmationTarget::OutputSpendingFee => (12, "ECONOMICAL", 0, 2_000),
    };
    TargetRule {
        blocks,
        mode,
        margin_sat_per_kw,
        fallback_sat_per_kw,
    }
}

fn slot(target: ConfirmationTarget) -> usize {
    // Every target is in TARGETS (see `every_target_has_a_slot_and_a_rule`).
    TARGETS.iter().position(|t| *t == target).unwrap_or(0)
}

/// BTC per kvB, as bitcoind gives fee rates, to sat per 1000 weight units (1 vB = 4 WU).
fn btc_per_kvb_to_sat_per_kw(btc_per_kvb: f64) -> u32 {
    let sat_per_kw = (btc_per_kvb * 100_000_000.0 / 4.0).round();
    if sat_per_kw.is_finite() && sat_per_kw >= 0.0 {
        sat_per_kw.min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

/// Shared fee estimator.
pub struct SharedFeeEstimator {
    rates: [AtomicU32; TARGETS.len()],
    /// bitcoind's mempool minimum, the floor under every estimate.
    mempool_floor: AtomicU32,
}

impl Default for SharedFeeEstimator {
    fn default() -> Self {
        Self {
            rates: std::array::from_fn(|i| AtomicU32::new(rule(TARGETS[i]).fallback_sat_per_kw)),
            mempool_floor: AtomicU32::new(FEERATE_FLOOR_SATS_PER_KW),
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

    /// Asks bitcoind for fresh estimates (one call per distinct block target and mode); keeps
    /// the previous value for any target it cannot estimate.
    pub async fn refresh(&self, rpc: &BitcoindRpc) {
        match rpc.get_mempool_min_fee().await {
            Ok(min) => self
                .mempool_floor
                .store(btc_per_kvb_to_sat_per_kw(min), Ordering::Relaxed),
            Err(e) => tracing::debug!(error = %e, "mempool minimum fee refresh failed"),
        }
        let mut asked: Vec<((u16, &str), Option<u32>)> = Vec::new();
        for target in TARGETS {
            let r = rule(target);
            if r.blocks == 0 {
                continue;
            }
            let key = (r.blocks, r.mode);
            let estimate = match asked.iter().find(|(k, _)| *k == key) {
                Some((_, estimate)) => *estimate,
                None => {
                    let estimate = match rpc.estimate_smart_fee(r.blocks, r.mode).await {
                        Ok(estimate) => estimate.map(btc_per_kvb_to_sat_per_kw),
                        Err(e) => {
                            tracing::debug!(error = %e, "fee estimate refresh failed");
                            None
                        }
                    };
                    asked.push((key, estimate));
                    estimate
                }
            };
            if let Some(sat_per_kw) = estimate {
                self.rates[slot(target)].store(
                    sat_per_kw.saturating_add(r.margin_sat_per_kw),
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Overrides every estimate (tests and benchmarks).
    pub fn set_all(&self, sat_per_kw: u32) {
        for r in &self.rates {
            r.store(sat_per_kw, Ordering::Relaxed);
        }
    }

    /// Overrides one target's estimate (tests).
    pub fn set(&self, target: ConfirmationTarget, sat_per_kw: u32) {
        self.rates[slot(target)].store(sat_per_kw, Ordering::Relaxed);
    }
}

impl FeeEstimator for SharedFeeEstimator {
    fn get_est_sat_per_1000_weight(&self, target: ConfirmationTarget) -> u32 {
        self.rates[slot(target)]
            .load(Ordering::Relaxed)
            .max(self.mempool_floor.load(Ordering::Relaxed))
            .max(FEERATE_FLOOR_SATS_PER_KW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_a_slot_and_a_rule() {
        for (i, target) in TARGETS.iter().enumerate() {
            assert_eq!(slot(*target), i);
            let r = rule(*target);
            assert!(r.blocks <= 1008, "{target:?}");
            assert!(
                r.fallback_sat_per_kw >= FEERATE_FLOOR_SATS_PER_KW,
                "{target:?}"
            );
        }
    }

    /// The cooperative-close floor LDK derives from `ChannelCloseMinimum` must accept a peer
    /// offering 1 sat/vB. The close that failed against Core Lightning was a P2WSH-funded close
    /// of ~722 weight units; the peer's range started at 183 sat.
    #[test]
    fn the_closing_floor_accepts_a_one_sat_per_vbyte_peer() {
        let estimator = SharedFeeEstimator::default();
        let floor = estimator.get_est_sat_per_1000_weight(ConfirmationTarget::ChannelCloseMinimum);
        let min_fee_sat = u64::from(floor) * 722 / 1000;
        assert!(
            min_fee_sat <= 183,
            "our minimum closing fee is {min_fee_sat} sat"
        );
        // The top of our range stays at a normal rate, well above the floor.
        let top = estimator.get_est_sat_per_1000_weight(ConfirmationTarget::NonAnchorChannelFee);
        assert!(top >= 4 * floor);
    }

    #[test]
    fn the_mempool_minimum_is_a_floor_under_every_target() {
        let estimator = SharedFeeEstimator::default();
        estimator.set_all(FEERATE_FLOOR_SATS_PER_KW);
        estimator.mempool_floor.store(1_000, Ordering::Relaxed);
        for target in TARGETS {
            assert_eq!(estimator.get_est_sat_per_1000_weight(target), 1_000);
        }
        estimator.set(ConfirmationTarget::UrgentOnChainSweep, 7_000);
        assert_eq!(
            estimator.get_est_sat_per_1000_weight(ConfirmationTarget::UrgentOnChainSweep),
            7_000
        );
    }

    #[test]
    fn bitcoind_rates_convert_to_sat_per_kw() {
        // 0.00001 BTC/kvB = 1 sat/vB = 250 sat/kWU.
        assert_eq!(btc_per_kvb_to_sat_per_kw(0.00001), 250);
        assert_eq!(btc_per_kvb_to_sat_per_kw(0.0002), 5_000);
        assert_eq!(btc_per_kvb_to_sat_per_kw(f64::NAN), 0);
        assert_eq!(btc_per_kvb_to_sat_per_kw(-1.0), 0);
    }
}
