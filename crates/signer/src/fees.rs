//! Fee ceilings on sweeps, computed from amounts the signer knows.
//!
//! A segwit v0 signature commits to the amount of the input it signs, but not to the amounts
//! of the other inputs. VLS therefore checks the fee only of single-input sweeps (its
//! TODO(522)); for a sweep, justice or HTLC-claim transaction with several inputs, a node that
//! lies about a different input in each of several requests collects one valid signature per
//! input and combines them into a transaction that pays the tenant's funds to miners. Here
//! every input of such a transaction must be an output the signer saw on chain itself (a
//! transaction its chain view recorded), each amount the node names must match it, and the fee
//! rate computed from those amounts must be under the tenant's sweep ceiling.

use lightning_signer::bitcoin::{Amount, OutPoint, Transaction};

use crate::engine::SignerEngine;
use crate::outcome::Outcome;

/// Weight assumed for each input's witness when the transaction is unsigned: VLS's own
/// middle estimate across sweep kinds (to_local ~157, HTLC timeout ~220, preimage ~248 WU).
const SWEEP_WITNESS_WEIGHT: u64 = 220;

/// The rule named when a sweep's fee rate is over the ceiling.
pub const SWEEP_FEE_RULE: &str = "policy-sweep-fee-cap";
/// The rule named when an input of a sweep is not an output the signer has seen on chain.
pub const UNKNOWN_INPUT_RULE: &str = "policy-sweep-input-unknown";

impl SignerEngine {
    /// The value of `outpoint` as the signer's chain view has it, or a (temporary) refusal:
    /// the chain view may simply not have seen the block yet.
    pub(crate) fn known_prevout_value(&self, outpoint: &OutPoint) -> Result<Amount, Outcome> {
        match self.store.prevout(outpoint)? {
            Some(out) => Ok(out.value),
            None => Err(Outcome::temporarily_refused(
                UNKNOWN_INPUT_RULE,
                format!(
                    "input {outpoint} is not an output of this tenant's channels that the \
                     signer has seen on chain"
                ),
            )),
        }
    }

    /// Checks a sweep-type transaction: `claimed` (input index, amount the node named) must
    /// match the chain view, and the fee rate, computed from the chain view's amounts, must be
    /// under the sweep ceiling. Returns the fee in sat.
    pub(crate) fn check_sweep_fee(
        &self,
        tx: &Transaction,
        claimed: &[(usize, u64)],
    ) -> Result<u64, Outcome> {
        let mut inputs = 0u64;
        for (index, input) in tx.input.iter().enumerate() {
            let value = self.known_prevout_value(&input.previous_output)?.to_sat();
            if let Some((_, amount)) = claimed.iter().find(|(i, _)| *i == index) {
                if *amount != value {
                    return Err(Outcome::refused(
                        SWEEP_FEE_RULE,
                        format!(
                            "input {index} holds {value} sat on chain, the request says {amount}"
                        ),
                    ));
                }
            }
            inputs = inputs.saturating_add(value);
        }
        let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        let fee = inputs.checked_sub(outputs).ok_or_else(|| {
            Outcome::refused(
                SWEEP_FEE_RULE,
                format!("the outputs ({outputs} sat) exceed the inputs ({inputs} sat)"),
            )
        })?;
        let unsigned_inputs = tx.input.iter().filter(|i| i.witness.is_empty()).count() as u64;
        let weight = tx.weight().to_wu() + unsigned_inputs * SWEEP_WITNESS_WEIGHT;
        let per_kw = fee.saturating_mul(1000) / weight.max(1);
        let cap = self.policy.max_sweep_feerate_per_kw();
        if per_kw > cap {
            return Err(Outcome::refused(
                SWEEP_FEE_RULE,
                format!(
                    "fee {fee} sat is {} sat/vB, over the sweep ceiling of {} sat/vB",
                    per_kw / 250,
                    self.policy.max_sweep_feerate_sat_per_vb
                ),
            ));
        }
        Ok(fee)
    }
}
