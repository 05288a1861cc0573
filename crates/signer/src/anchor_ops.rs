//! Anchor channels: the anchor input of a CPFP child, our zero-fee HTLC transactions, and the
//! inputs a wallet spend may take that are not the wallet's.
//!
//! VLS 1.0.0-rc.1 signs the anchor input without looking at the transaction, and validates a
//! holder HTLC transaction only in its stand-alone form (one input, one output, the
//! counterparty's `SINGLE|ANYONECANPAY` sighash), while LDK aggregates anchor HTLC
//! transactions with wallet inputs and signs them `ALL`. The checks here close that gap:
//!
//! - an anchor signature covers only the 330-sat anchor script of this channel's funding key,
//!   so it is worth nothing on any other output;
//! - a holder HTLC input is signed only when the output at the same index pays exactly the
//!   HTLC's amount to our own delayed, revocable script (what the zero-fee HTLC transaction
//!   pays, with the counterparty's signature committing to that pair);
//! - a wallet spend may take a foreign input only if it is our anchor of a commitment of one
//!   of our channels (its previous transaction given in full) or an output the signer's chain
//!   view saw, paired with an output of equal value at the same index (the HTLC pair above). The
//!   wallet's own value can then only go back to the wallet or to the miner, and the fee,
//!   counted over the child and the commitment it pays for, stays under the sweep ceiling.

use lightning_signer::bitcoin::secp256k1::Secp256k1;
use lightning_signer::bitcoin::{Amount, OutPoint, Transaction, TxOut};
use lightning_signer::channel::{ChannelBase, ChannelId};
use lightning_signer::lightning::ln::chan_utils::{self, TxCreationKeys};
use lightning_signer::lightning::sign::HTLCDescriptor;
use micronode_signer_protocol::SignerReply;

use crate::channel_ops::forward;
use crate::dispatch::sig_reply;
use crate::engine::SignerEngine;
use crate::fees::SWEEP_FEE_RULE;
use crate::outcome::Outcome;

/// The rule named when an anchor or HTLC transaction does not have the shape it must have.
pub const ANCHOR_SPEND_RULE: &str = "policy-anchor-spend-shape";

/// A foreign input of a wallet spend, checked.
pub(crate) struct ForeignInput {
    /// Its value.
    pub value: Amount,
    /// Whether it is paired with the output at its own index (an HTLC transaction's input);
    /// otherwise it is an anchor, paired with nothing.
    pub paired: bool,
    /// The weight of the parent the child pays for (an anchor's commitment), else 0.
    pub parent_weight: u64,
    /// The parent's own fee, when the child pays for it.
    pub parent_fee: u64,
}

impl SignerEngine {
    /// Signs the anchor input `input` of `tx` for channel `id`.
    pub(crate) fn sign_holder_anchor(
        &self,
        id: &ChannelId,
        tx: &Transaction,
        input: usize,
    ) -> Result<SignerReply, Outcome> {
        if input >= tx.input.len() {
            return Err(Outcome::bad("input index out of range"));
        }
        let anchors = self.with_channel(id, |chan| Ok(chan.setup.is_anchors()))?;
        if !anchors {
            return Err(Outcome::refused(
                ANCHOR_SPEND_RULE,
                "the channel has no anchor outputs",
            ));
        }
        let sig = self.with_channel(id, |chan| chan.sign_holder_anchor_input(tx, input))?;
        Ok(sig_reply(&sig))
    }

    /// Signs input `input` of an aggregated, zero-fee HTLC transaction on our commitment.
    pub(crate) fn sign_holder_htlc_anchors(
        &self,
        id: &ChannelId,
        tx: &Transaction,
        input: usize,
        descriptor: &HTLCDescriptor,
    ) -> Result<SignerReply, Outcome> {
        let (Some(txin), Some(output)) = (tx.input.get(input), tx.output.get(input)) else {
            return Err(Outcome::refused(
                ANCHOR_SPEND_RULE,
                "an HTLC input needs the output at its own index",
            ));
        };
        let htlc = &descriptor.htlc;
        let vout = htlc
            .transaction_output_index
            .ok_or_else(|| Outcome::bad("the HTLC has no output on the commitment"))?;
        if txin.previous_output != OutPoint::new(descriptor.commitment_txid, vout) {
            return Err(Outcome::refused(
                ANCHOR_SPEND_RULE,
                "the input does not spend the HTLC's output",
            ));
        }
        let n = forward(descriptor.per_commitment_number)?;
        let expected = self.with_channel(id, |chan| {
            let point = chan.get_per_commitment_point(n)?;
            let keys = TxCreationKeys::from_channel_static_keys(
                &point,
                &chan.get_channel_basepoints(),
                &chan.setup.counterparty_points,
                &Secp256k1::new(),
            );
            Ok(chan_utils::get_revokeable_redeemscript(
                &keys.revocation_key,
                chan.setup.counterparty_selected_contest_delay,
                &keys.broadcaster_delayed_payment_key,
            )
            .to_p2wsh())
        })?;
        let amount = Amount::from_sat(htlc.amount_msat / 1000);
        if output.script_pubkey != expected || output.value != amount {
            return Err(Outcome::refused(
                ANCHOR_SPEND_RULE,
                format!(
                    "output {input} must pay the HTLC's {} sat to our delayed script",
                    amount.to_sat()
                ),
            ));
        }
        let cltv = if htlc.offered { htlc.cltv_expiry } else { 0 };
        let sig = self.with_channel(id, |chan| {
            chan.sign_holder_htlc_tx_phase2(
                tx,
                u32::try_from(input).unwrap_or(u32::MAX),
                n,
                htlc.offered,
                cltv,
                htlc.amount_msat,
                htlc.payment_hash,
            )
        })?;
        Ok(sig_reply(&sig.sig))
    }

    /// Checks input `index` of a wallet spend that is not the wallet's (see the module docs).
    pub(crate) fn check_foreign_input(
        &self,
        tx: &Transaction,
        index: usize,
        prev_tx: Option<&Transaction>,
    ) -> Result<ForeignInput, Outcome> {
        let outpoint = tx.input[index].previous_output;
        if let Some(parent) = prev_tx {
            if parent.compute_txid() != outpoint.txid {
                return Err(Outcome::refused(
                    "policy-onchain-input-unverified",
                    format!("input {index}'s previous transaction is not the one it spends"),
                ));
            }
            let spent = parent
                .output
                .get(outpoint.vout as usize)
                .ok_or_else(|| Outcome::bad(format!("input {index} spends a missing output")))?;
            if let Some(foreign) = self.our_anchor(parent, spent)? {
                return Ok(foreign);
            }
        }
        // Otherwise an output of our commitment the chain view saw (an HTLC output), paired
        // with the HTLC transaction's output of the same value.
        let value = self.known_prevout_value(&outpoint)?;
        let paired = tx.output.get(index).map(|o| o.value);
        if paired != Some(value) {
            return Err(Outcome::refused(
                "policy-onchain-no-unknown-outputs",
                format!("input {index} is not the wallet's, nor an anchor or HTLC of our channels"),
            ));
        }
        Ok(ForeignInput {
            value,
            paired: true,
            parent_weight: 0,
            parent_fee: 0,
        })
    }

    /// `spent` as our anchor output of `commitment`, a commitment of one of our channels.
    fn our_anchor(
        &self,
        commitment: &Transaction,
        spent: &TxOut,
    ) -> Result<Option<ForeignInput>, Outcome> {
        let [funding_input] = &commitment.input[..] else {
            return Ok(None);
        };
        let found = self.with_funding_channel(&funding_input.previous_output, |chan| {
            (
                chan.setup.is_anchors(),
                chan.get_keyed_anchor_redeemscript().to_p2wsh(),
                chan.setup.channel_value_sat,
            )
        });
        let Some((true, anchor_script, channel_value)) = found else {
            return Ok(None);
        };
        if spent.script_pubkey != anchor_script {
            return Ok(None);
        }
        let paid: u64 = commitment.output.iter().map(|o| o.value.to_sat()).sum();
        Ok(Some(ForeignInput {
            value: spent.value,
            paired: false,
            parent_weight: commitment.weight().to_wu(),
            parent_fee: channel_value.saturating_sub(paid),
        }))
    }

    /// The fee check of a wallet spend with foreign inputs: the child and the parents it pays
    /// for, together, under the sweep ceiling.
    pub(crate) fn check_package_fee(
        &self,
        tx: &Transaction,
        inputs_sat: u64,
        foreign: &[ForeignInput],
    ) -> Result<(), Outcome> {
        let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        let fee = inputs_sat.checked_sub(outputs).ok_or_else(|| {
            Outcome::refused(
                SWEEP_FEE_RULE,
                format!("the outputs ({outputs} sat) exceed the inputs ({inputs_sat} sat)"),
            )
        })?;
        // Unsigned inputs: a wallet input's witness is ~108 WU, an anchor's ~116, an HTLC's
        // up to ~330; count the largest for every input so the estimate never undercounts.
        const WITNESS_WEIGHT: u64 = 330;
        let weight = tx.weight().to_wu() + tx.input.len() as u64 * WITNESS_WEIGHT;
        let parent_weight: u64 = foreign.iter().map(|f| f.parent_weight).sum();
        let parent_fee: u64 = foreign.iter().map(|f| f.parent_fee).sum();
        let package_fee = fee.saturating_add(parent_fee);
        let per_kw = package_fee.saturating_mul(1000) / (weight + parent_weight).max(1);
        if per_kw > self.policy.max_sweep_feerate_per_kw() {
            return Err(Outcome::refused(
                SWEEP_FEE_RULE,
                format!(
                    "the fee bump pays {} sat/vB for its package, over the ceiling of {} sat/vB",
                    per_kw / 250,
                    self.policy.max_sweep_feerate_sat_per_vb
                ),
            ));
        }
        Ok(())
    }
}
