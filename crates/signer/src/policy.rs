//! The tenant's signing policy, as set in the signer's config, and its mapping onto VLS.
//!
//! VLS enforces the Lightning-level rules (never sign a revoked state, closes and sweeps only
//! to the wallet or the allow-list, commitment fee rates, outgoing HTLCs only for approved
//! payments, whole-channel balance accounting, funding buried before a channel moves). On top
//! of it this crate adds what VLS leaves open: the daily limit and the fee allowance in the
//! velocity limits ([`crate::velocity`]), dust accounting ([`crate::balance`]), no forwarding
//! unless the tenant allows it, fee ceilings on every sweep computed from amounts the signer
//! knows ([`crate::fees`]), one wallet layout ([`crate::wallet_layout`]) and checked gossip
//! ([`crate::gossip`]). See `docs/remote-signer.md` for the threat model.
//!
//! Fee-rate cap trade-off: a cap protects against a compromised node burning the channel into
//! fees, but a cap below what the market pays in a fee spike makes the signer refuse the
//! counterparty's fee updates, and the counterparty then force-closes at a time when closing
//! is most expensive. The commitment cap is therefore generous (500 sat/vB); sweeps, which can
//! wait, have their own lower ceiling.

use lightning_signer::bitcoin::Network;
use lightning_signer::policy::simple_validator::{make_default_simple_policy, SimplePolicy};
use lightning_signer::util::velocity::{VelocityControlIntervalType, VelocityControlSpec};
use micronode_signer_protocol::FeeAllowance;
use serde::{Deserialize, Serialize};

/// The tenant's policy knobs (the `[policy]` table of `signer.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// On-chain destinations allowed besides the signer's own wallet (addresses, or
    /// `xpub:<xpub>` / `payee:<node id>` in VLS's allow-list syntax).
    pub allowlist: Vec<String>,
    /// Outgoing Lightning payments per rolling hour, in sat, fee allowance included
    /// (0 = unlimited).
    pub max_sat_per_hour: u64,
    /// Outgoing Lightning payments per rolling day, in sat, fee allowance included
    /// (0 = unlimited).
    pub max_sat_per_day: u64,
    /// Highest fee rate the signer signs for commitments, closes and wallet spends, in sat/vB.
    pub max_feerate_sat_per_vb: u64,
    /// Highest fee rate of a sweep, justice or HTLC claim transaction, in sat/vB, computed
    /// from input amounts the signer knows itself (never from the node's word).
    pub max_sweep_feerate_sat_per_vb: u64,
    /// Routing-fee allowance of one payment: this much...
    pub routing_fee_base_msat: u64,
    /// ...plus this many millionths of the amount...
    pub routing_fee_proportional_millionths: u64,
    /// ...and never more than this, in msat.
    pub max_routing_fee_msat: u64,
    /// The most value a channel may hold in dust HTLCs (in neither party's output) at once,
    /// in sat. Dust is invisible to VLS's HTLC checks, so this bounds what a compromised node
    /// can move or burn through it per channel; the node limits its dust exposure to it.
    pub max_dust_in_flight_sat: u64,
    /// Whether the node may forward payments for others. Off: every outgoing HTLC must be one
    /// of the tenant's own approved payments.
    pub allow_routing: bool,
    /// VLS's whole-channel balance accounting: every decrease of the tenant's balance must be
    /// matched by an approved payment (dust included, see [`crate::balance`]). Turning it off
    /// lets a compromised node move the tenant's balance to its counterparty, bounded only by
    /// the per-HTLC checks: the signer logs a warning at every start.
    pub enforce_balance: bool,
    /// Approve only payments one of the tenant's apps signed a request for (see
    /// [`crate::apps`]): a payment the node starts on its own is refused, whatever the
    /// velocity limits allow. Turning it off lets the operator pay its own invoices up to
    /// those limits.
    pub require_app_requests: bool,
    /// The most payments VLS tracks at once, outgoing and (separately) incoming. A payment
    /// is forgotten soon after it settles ([`crate::settled`]), so this bounds the payments in
    /// flight, failed in the last day, or settled in the last second or so; not a day's
    /// payments. VLS rewrites every tracked payment on each approval, so a larger bound costs
    /// more per approval when it fills.
    pub max_tracked_payments: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            allowlist: Vec::new(),
            max_sat_per_hour: 10_000,
            max_sat_per_day: 25_000,
            max_feerate_sat_per_vb: 500,
            max_sweep_feerate_sat_per_vb: 100,
            routing_fee_base_msat: 5_000,
            routing_fee_proportional_millionths: 10_000,
            max_routing_fee_msat: 50_000,
            max_dust_in_flight_sat: 10_000,
            allow_routing: false,
            enforce_balance: true,
            require_app_requests: true,
            max_tracked_payments: 2_000,
        }
    }
}

impl PolicyConfig {
    /// The VLS policy for this config on `network`.
    pub fn to_vls(&self, network: Network) -> SimplePolicy {
        let mut policy = make_default_simple_policy(network);
        // 1 sat/vB = 250 sat per 1000 weight units.
        let cap = self.max_feerate_sat_per_vb.saturating_mul(250);
        policy.max_feerate_per_kw = u32::try_from(cap)
            .unwrap_or(u32::MAX)
            .max(policy.min_feerate_per_kw);
        policy.max_routing_fee_msat = self.max_routing_fee_msat;
        policy.enforce_balance = self.enforce_balance;
        policy.max_invoices = self.max_tracked_payments;
        policy.global_velocity_control = if self.max_sat_per_hour == 0 {
            VelocityControlSpec::UNLIMITED
        } else {
            VelocityControlSpec {
                limit_msat: self.max_sat_per_hour.saturating_mul(1000),
                interval_type: VelocityControlIntervalType::Hourly,
            }
        };
        policy
    }

    /// The routing-fee allowance of a payment, as the node is told it.
    pub fn fee_allowance(&self) -> FeeAllowance {
        FeeAllowance {
            base_msat: self.routing_fee_base_msat,
            proportional_millionths: self.routing_fee_proportional_millionths,
            max_msat: self.max_routing_fee_msat,
        }
    }

    /// What a payment of `amount_msat` may cost at most, fees included, in msat.
    pub fn payment_cost_msat(&self, amount_msat: u64) -> u64 {
        amount_msat.saturating_add(self.fee_allowance().for_amount(amount_msat))
    }

    /// The sweep fee ceiling in sat per 1000 weight units.
    pub fn max_sweep_feerate_per_kw(&self) -> u64 {
        self.max_sweep_feerate_sat_per_vb.saturating_mul(250)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_cap_converts_to_per_kw_and_never_drops_below_the_floor() {
        let config = PolicyConfig {
            max_feerate_sat_per_vb: 10,
            ..Default::default()
        };
        let vls = config.to_vls(Network::Regtest);
        assert_eq!(vls.max_feerate_per_kw, 2_500);
        let tiny = PolicyConfig {
            max_feerate_sat_per_vb: 0,
            ..Default::default()
        };
        assert!(tiny.to_vls(Network::Regtest).max_feerate_per_kw >= 253);
    }

    #[test]
    fn defaults_enforce_balance_and_bound_a_day_of_payments() {
        let policy = PolicyConfig::default();
        let vls = policy.to_vls(Network::Regtest);
        assert_eq!(vls.global_velocity_control.limit_msat, 10_000_000);
        assert!(vls.enforce_balance, "balance accounting is on by default");
        assert!(
            !policy.allow_routing,
            "tenant nodes do not route by default"
        );
        // A tenant holding 50,000 sat cannot lose it all to a day of payments it did not make.
        assert!(policy.max_sat_per_day < 50_000);
        // A payment costs its amount plus its fee allowance.
        assert_eq!(policy.payment_cost_msat(1_000), 1_000 + 5_010);
        assert_eq!(policy.payment_cost_msat(10_000_000), 10_000_000 + 50_000);
    }

    #[test]
    fn unknown_policy_keys_are_rejected() {
        let err = toml::from_str::<PolicyConfig>("max_sat_per_week = 3").unwrap_err();
        assert!(err.to_string().contains("max_sat_per_week"));
    }
}
