//! Balance accounting with dust: every state the signer signs or validates may lower the
//! tenant's balance only by approved payments, their fee allowance, and a per-channel dust and
//! rounding slack.
//!
//! VLS keeps the accounting (`enforce_balance`): it computes the tenant's claimable balance in
//! every new commitment and requires each decrease to be covered by a node-wide pool of
//! unexplained gains, `excess_amount`; payments it sees as HTLCs of an approved invoice are
//! accounted separately and never touch the pool. What VLS cannot see through LDK's signer
//! interface are dust HTLCs: they are not outputs, their value sits in the commitment's fee.
//! A sub-dust payment therefore looks like an unexplained loss, and with the pool empty the
//! signer would refuse the state and the channel would be force-closed.
//!
//! This layer makes the pool an explicit allowance:
//!
//! - **Credits.** Approving a payment (invoice or keysend) adds its cost to the pool: amount
//!   plus fee allowance, rounded up to whole sat, plus 1 sat for msat rounding. If the payment
//!   turns out to be visible to VLS (a non-dust HTLC on both commitments) the credit is
//!   withdrawn again, since VLS accounts for it itself.
//! - **Dust cap.** The value of a commitment in neither party's output beyond its fee (the
//!   dust in flight, computed from the transaction itself, no word of the node's needed) must
//!   stay within `max_dust_in_flight_sat`; the node limits its dust exposure to the same.
//! - **Ceiling.** After each new state the pool is cut down to the live credits (granted in
//!   the last [`CREDIT_LIFETIME_SECS`], not withdrawn), plus the dust in flight of every
//!   channel, plus [`ROUNDING_SLACK_SAT`] per channel. Gains beyond that (received dust,
//!   rounding in the tenant's favour) stay in the tenant's balance and cannot be spent by an
//!   unexplained decrease.
//!
//! So a compromised node can move, at most: the cost of the payments the signer approved in
//! the last two days (which the velocity limits bound), plus, per channel, the dust in flight
//! (`max_dust_in_flight_sat`) and 2 sat of rounding.

use std::time::{SystemTime, UNIX_EPOCH};

use lightning_signer::lightning::ln::chan_utils::{CommitmentTransaction, HTLCOutputInCommitment};

use crate::engine::SignerEngine;
use crate::outcome::Outcome;

/// How long an approval's credit stays in the pool, in seconds.
pub const CREDIT_LIFETIME_SECS: u64 = 2 * 86_400;
/// Rounding slack per channel, in sat: commitment outputs are whole sat, payments msat.
pub const ROUNDING_SLACK_SAT: u64 = 2;
/// Where the pool's value is kept in the signer's store.
const EXCESS_KEY: &str = "balance_allowance_sat";
/// The rule named when the dust in flight exceeds the cap.
pub const DUST_RULE: &str = "policy-commitment-dust-cap";
/// The rule named when an approved payment's credit was already spent by unexplained losses.
pub const CREDIT_RULE: &str = "policy-routing-balanced";

/// Which commitment a new state is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Ours (validated, signed by the counterparty).
    Holder,
    /// The counterparty's (signed by us).
    Counterparty,
}

impl Side {
    fn bit(self) -> u8 {
        match self {
            Side::Holder => 1,
            Side::Counterparty => 2,
        }
    }

    /// Whether an HTLC of this commitment is one we offered (an outgoing payment).
    pub(crate) fn is_ours_offered(self, htlc: &HTLCOutputInCommitment) -> bool {
        match self {
            Side::Holder => htlc.offered,
            Side::Counterparty => !htlc.offered,
        }
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The value of `commitment` in neither party's output beyond the fee its rate requires:
/// dust HTLCs plus sub-sat remainders.
pub(crate) fn dust_in_flight(
    channel_value_sat: u64,
    anchors: bool,
    commitment: &CommitmentTransaction,
) -> u64 {
    let htlcs = commitment.nondust_htlcs();
    let outputs = commitment
        .to_broadcaster_value_sat()
        .saturating_add(commitment.to_countersignatory_value_sat())
        .saturating_add(htlcs.iter().map(|h| h.amount_msat / 1000).sum::<u64>());
    unexplained_value(
        channel_value_sat,
        anchors,
        commitment.negotiated_feerate_per_kw(),
        outputs,
        htlcs.len() as u64,
    )
}

/// BOLT 3: a commitment weighs 724 weight units plus 172 per non-dust HTLC (1124 with
/// anchors, which also take two 330-sat outputs). What the channel holds beyond its outputs
/// (`outputs_sat`, anchors excluded) and that fee is in no output.
fn unexplained_value(
    channel_value_sat: u64,
    anchors: bool,
    feerate_per_kw: u32,
    outputs_sat: u64,
    nondust_htlcs: u64,
) -> u64 {
    let (base, anchor_outputs) = if anchors { (1124, 660) } else { (724, 0) };
    let fee = u64::from(feerate_per_kw) * (base + 172 * nondust_htlcs) / 1000;
    channel_value_sat
        .saturating_sub(outputs_sat.saturating_add(anchor_outputs))
        .saturating_sub(fee)
}

impl SignerEngine {
    /// Adds the cost of an approved payment to the pool, once per payment hash.
    pub(crate) fn grant_payment_credit(
        &self,
        hash: &[u8; 32],
        amount_msat: u64,
    ) -> Result<(), Outcome> {
        if !self.policy.enforce_balance {
            return Ok(());
        }
        let sat = self.policy.payment_cost_msat(amount_msat).div_ceil(1000) + 1;
        if self.store.grant_credit(hash, sat, now())? {
            self.adjust_excess(|excess| excess.saturating_add(sat))?;
        }
        Ok(())
    }

    /// Checks a new commitment of a channel (of `channel_value_sat`) before VLS sees it: the
    /// dust cap, and the credits of payments VLS is about to account for itself. Returns the
    /// commitment's dust in flight, to record with [`Self::settle_new_commitment`] once the
    /// state is signed or validated.
    pub(crate) fn account_new_commitment(
        &self,
        channel_value_sat: u64,
        anchors: bool,
        side: Side,
        commitment: &CommitmentTransaction,
    ) -> Result<u64, Outcome> {
        let dust = dust_in_flight(channel_value_sat, anchors, commitment);
        if dust
            > self
                .policy
                .max_dust_in_flight_sat
                .saturating_add(ROUNDING_SLACK_SAT)
        {
            return Err(Outcome::refused(
                DUST_RULE,
                format!(
                    "{dust} sat of this commitment is in no output beyond its fee (dust HTLCs); \
                     the cap is {} sat",
                    self.policy.max_dust_in_flight_sat
                ),
            ));
        }
        if !self.policy.enforce_balance {
            return Ok(dust);
        }
        for htlc in commitment.nondust_htlcs() {
            if !side.is_ours_offered(htlc) {
                continue;
            }
            let hash = htlc.payment_hash.0;
            let Some(credit) = self.store.live_credit(&hash)? else {
                continue;
            };
            // VLS accounts for a payment it sees as an HTLC on both commitments; its credit
            // then leaves the pool (keeping 1 sat for rounding). A credit already spent on
            // unexplained losses cannot also pay for the visible HTLC.
            if self.store.credit_seen(&hash, side.bit())? == 3 {
                let back = credit.saturating_sub(1);
                let excess = self.node().get_state().excess_amount;
                if excess < back {
                    return Err(Outcome::refused(
                        CREDIT_RULE,
                        format!(
                            "the approval of payment {} was already used up by balance losses",
                            hex::encode(hash)
                        ),
                    ));
                }
                self.adjust_excess(|e| e.saturating_sub(back))?;
                self.store.withdraw_credit(&hash)?;
            }
        }
        Ok(dust)
    }

    /// After a new state of `channel` was signed or validated: records its dust in flight and
    /// cuts the pool to its ceiling.
    pub(crate) fn settle_new_commitment(
        &self,
        channel: &str,
        side: Side,
        dust: u64,
    ) -> Result<(), Outcome> {
        if !self.policy.enforce_balance {
            return Ok(());
        }
        self.store.set_channel_dust(channel, side.bit(), dust)?;
        self.clamp_excess()
    }

    /// Cuts the pool down to what it may hold: live credits, dust in flight and the rounding
    /// slack. Called after every new state and periodically (credits expire).
    pub(crate) fn clamp_excess(&self) -> Result<(), Outcome> {
        if !self.policy.enforce_balance {
            return Ok(());
        }
        let since = now().saturating_sub(CREDIT_LIFETIME_SECS);
        let channels = self.node().get_channels().len() as u64;
        let ceiling = self
            .store
            .live_credits_since(since)?
            .saturating_add(self.store.total_channel_dust())
            .saturating_add(ROUNDING_SLACK_SAT.saturating_mul(channels));
        self.adjust_excess(|excess| excess.min(ceiling))
    }

    /// Forgets credits long expired (periodically, off the signing path).
    pub(crate) fn prune_credits(&self) -> Result<(), Outcome> {
        let before = now().saturating_sub(2 * CREDIT_LIFETIME_SECS);
        self.store.prune_credits(before)?;
        Ok(())
    }

    /// Changes VLS's pool, and keeps it durable in the signer's store: VLS does not persist
    /// the pool (it restarts at zero), which would make every sub-dust payment in flight across
    /// a signer restart look like a theft.
    fn adjust_excess(&self, f: impl FnOnce(u64) -> u64) -> Result<(), Outcome> {
        let node = self.node();
        let mut state = node.get_state();
        let next = f(state.excess_amount);
        state.excess_amount = next;
        drop(state);
        if self.store.number(EXCESS_KEY)? != Some(next) {
            self.store.set_number(EXCESS_KEY, next)?;
        }
        Ok(())
    }

    /// Restores the pool after a restart (from the signer's store, within the ceiling).
    pub(crate) fn restore_excess(&self) -> Result<(), Outcome> {
        if !self.policy.enforce_balance {
            return Ok(());
        }
        let stored = self.store.number(EXCESS_KEY)?.unwrap_or(0);
        self.adjust_excess(|_| stored)?;
        self.clamp_excess()
    }

    /// The pool of unexplained gains VLS may spend on decreases, in sat (for tests and logs).
    pub fn balance_allowance_sat(&self) -> u64 {
        self.node().get_state().excess_amount
    }
}

#[cfg(test)]
mod tests {
    use super::unexplained_value;

    #[test]
    fn dust_is_what_the_outputs_and_the_fee_do_not_explain() {
        // 1,000,000 sat at 253 sat/kw, no HTLC: fee 183 sat.
        assert_eq!(
            unexplained_value(1_000_000, false, 253, 1_000_000 - 183, 0),
            0
        );
        // Three dust HTLCs of 100 sat each sit in no output.
        assert_eq!(
            unexplained_value(1_000_000, false, 253, 1_000_000 - 183 - 300, 0),
            300
        );
        // A non-dust HTLC is an output and costs 172 weight units of fee.
        let fee = 253 * (724 + 172) / 1000;
        assert_eq!(
            unexplained_value(1_000_000, false, 253, 1_000_000 - fee, 1),
            0
        );
        // Anchors: a heavier commitment and two 330-sat outputs.
        let fee = 253 * 1124 / 1000;
        assert_eq!(
            unexplained_value(1_000_000, true, 253, 1_000_000 - fee - 660 - 5, 0),
            5
        );
        // A commitment paying less fee than its rate requires explains everything.
        assert_eq!(unexplained_value(1_000_000, false, 253, 1_000_000, 0), 0);
    }
}
