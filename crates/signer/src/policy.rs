//! The tenant's signing policy, as set in the signer's config, and its mapping onto VLS.
//!
//! VLS enforces the Lightning-level rules (never sign a revoked state, closes and sweeps only
//! to the wallet or the allow-list, commitment fee rates, outgoing HTLCs only for approved
//! payments, routing fee per payment). On top of it, [`crate::velocity`] enforces the hourly
//! and daily payment limits at approval time.
//!
//! Fee-rate cap trade-off: a cap protects against a compromised node burning the channel into
//! fees, but a cap below what the market pays in a fee spike makes the signer refuse the
//! counterparty's fee updates, and the counterparty then force-closes at a time when closing
//! is most expensive. The default cap is therefore generous (500 sat/vB) and the real bound on
//! losses to fees is VLS's fee *velocity* control (a budget per period), which absorbs a spike
//! without refusing it. See `docs/remote-signer.md`.

use lightning_signer::bitcoin::Network;
use lightning_signer::policy::simple_validator::{make_default_simple_policy, SimplePolicy};
use lightning_signer::util::velocity::{VelocityControlIntervalType, VelocityControlSpec};
use serde::{Deserialize, Serialize};

/// The tenant's policy knobs (the `[policy]` table of `signer.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// On-chain destinations allowed besides the signer's own wallet (addresses, or
    /// `xpub:<xpub>` / `payee:<node id>` in VLS's allow-list syntax).
    pub allowlist: Vec<String>,
    /// Outgoing Lightning payments per rolling hour, in sat (0 = unlimited).
    pub max_sat_per_hour: u64,
    /// Outgoing Lightning payments per rolling day, in sat (0 = unlimited).
    pub max_sat_per_day: u64,
    /// Highest fee rate the signer signs, in sat/vB (commitments, closes, on-chain sends).
    pub max_feerate_sat_per_vb: u64,
    /// Highest routing fee per payment, in msat.
    pub max_routing_fee_msat: u64,
    /// VLS's whole-channel balance accounting (`enforce_balance`): every decrease of our
    /// balance must be matched by an approved payment. Off by default: VLS sees only the
    /// non-dust HTLCs LDK shows it, so payments below the dust limit (about 354 sat) look like
    /// unexplained losses once they settle, the signer refuses the state and the channel is
    /// force-closed. Per-payment checks (every non-dust outgoing HTLC needs an approved
    /// invoice) apply either way.
    pub enforce_balance: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            allowlist: Vec::new(),
            max_sat_per_hour: 1_000_000,
            max_sat_per_day: 5_000_000,
            max_feerate_sat_per_vb: 500,
            max_routing_fee_msat: 50_000,
            enforce_balance: false,
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
        // Non-dust outgoing HTLCs always need approved payments (VLS's per-payment check);
        // whole-channel accounting only when the tenant asks (see `enforce_balance`).
        policy.enforce_balance = self.enforce_balance;
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
    fn hourly_limit_maps_to_vls_velocity() {
        let vls = PolicyConfig::default().to_vls(Network::Regtest);
        assert_eq!(vls.global_velocity_control.limit_msat, 1_000_000_000);
        assert!(!vls.enforce_balance, "off by default (sub-dust payments)");
        let strict = PolicyConfig {
            enforce_balance: true,
            ..Default::default()
        };
        assert!(strict.to_vls(Network::Regtest).enforce_balance);
    }

    #[test]
    fn unknown_policy_keys_are_rejected() {
        let err = toml::from_str::<PolicyConfig>("max_sat_per_week = 3").unwrap_err();
        assert!(err.to_string().contains("max_sat_per_week"));
    }
}
