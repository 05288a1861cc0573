//! New channel states: the counterparty's commitments we sign and our own we validate. Each
//! goes through the dust and credit accounting ([`crate::balance`]), the no-forwarding rule and
//! VLS (balance, HTLCs, revocation order, funding buried), in that order.

use lightning_signer::channel::ChannelId;
use lightning_signer::lightning::ln::chan_utils::{
    CommitmentTransaction, HTLCOutputInCommitment, HolderCommitmentTransaction,
};
use lightning_signer::lightning::types::payment::PaymentPreimage;
use lightning_signer::tx::tx::HTLCInfo2;
use micronode_signer_protocol::{Hex, SignerReply};

use crate::balance::Side;
use crate::channel_ops::forward;
use crate::engine::{channel_name, SignerEngine};
use crate::outcome::Outcome;

/// The rule named when an outgoing HTLC is not one of the tenant's approved payments.
pub const ROUTING_RULE: &str = "policy-routing-disabled";
/// The rule named when a channel would move while its funding is not buried (or after it
/// closed on chain), as VLS's on-chain validator names it.
pub const FUNDING_RULE: &str = "policy-commitment-spends-active-utxo";
/// Confirmations the funding needs, in the signer's own view of the chain, before a channel
/// moves past its first state.
pub const MIN_FUNDING_DEPTH: u32 = 1;

fn htlc_infos(htlcs: &[HTLCOutputInCommitment]) -> (Vec<HTLCInfo2>, Vec<HTLCInfo2>) {
    let info = |h: &HTLCOutputInCommitment| HTLCInfo2 {
        value_sat: h.amount_msat / 1000,
        payment_hash: h.payment_hash,
        cltv_expiry: h.cltv_expiry,
    };
    let offered = htlcs.iter().filter(|h| h.offered).map(info).collect();
    let received = htlcs.iter().filter(|h| !h.offered).map(info).collect();
    (offered, received)
}

impl SignerEngine {
    /// The channel's name, value and whether it has anchors.
    fn channel_facts(&self, id: &ChannelId) -> Result<(String, u64, bool), Outcome> {
        self.with_channel(id, |chan| {
            Ok((
                channel_name(chan),
                chan.setup.channel_value_sat,
                chan.setup.is_anchors(),
            ))
        })
    }

    /// A channel moves past its first state only once its funding output is buried in the
    /// signer's own view of the chain, never after it was double-spent or closed there: the
    /// operator cannot credit the tenant with payments in a channel that does not exist.
    /// (The check of VLS's `OnchainValidator`, which this signer cannot use: see `engine`.)
    fn check_funding_buried(&self, id: &ChannelId, number: u64) -> Result<(), Outcome> {
        if number == 0 {
            return Ok(());
        }
        let state = self.with_channel(id, |chan| Ok(chan.monitor.as_chain_state()))?;
        if state.closing_depth > 0 || state.funding_double_spent_depth > 0 {
            return Err(Outcome::refused(
                FUNDING_RULE,
                format!(
                    "state {number}: the channel is closed (or its funding double-spent) on chain"
                ),
            ));
        }
        if state.funding_depth < MIN_FUNDING_DEPTH {
            return Err(Outcome::temporarily_refused(
                FUNDING_RULE,
                format!(
                    "state {number}: the funding is not buried in the signer's view of the chain \
                     (depth {}, height {})",
                    state.funding_depth, state.current_height
                ),
            ));
        }
        Ok(())
    }

    /// Unless the tenant allows routing, every HTLC we offer must be an approved payment of
    /// the tenant's: a forward (an outgoing HTLC paid for by an incoming one) is refused.
    fn check_no_forwarding(
        &self,
        side: Side,
        htlcs: &[HTLCOutputInCommitment],
    ) -> Result<(), Outcome> {
        if self.policy.allow_routing {
            return Ok(());
        }
        let node = self.node();
        let state = node.get_state();
        for htlc in htlcs.iter().filter(|h| side.is_ours_offered(h)) {
            if !state.invoices.contains_key(&htlc.payment_hash) {
                return Err(Outcome::refused(
                    ROUTING_RULE,
                    format!(
                        "an outgoing HTLC of {} msat (hash {}) is not a payment the tenant \
                         approved, and routing is off",
                        htlc.amount_msat,
                        hex::encode(htlc.payment_hash.0)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Validates a holder commitment the counterparty signed.
    pub(crate) fn validate_holder(
        &self,
        id: &ChannelId,
        holder: &HolderCommitmentTransaction,
        fulfilled: Vec<PaymentPreimage>,
    ) -> Result<(), Outcome> {
        let number = forward(holder.commitment_number())?;
        let (name, value, anchors) = self.channel_facts(id)?;
        self.check_funding_buried(id, number)?;
        self.check_no_forwarding(Side::Holder, holder.nondust_htlcs())?;
        let dust = self.account_new_commitment(value, anchors, Side::Holder, holder)?;
        let (offered, received) = htlc_infos(holder.nondust_htlcs());
        self.with_channel(id, |chan| {
            chan.htlcs_fulfilled(fulfilled.clone());
            chan.validate_holder_commitment_tx_phase2(
                number,
                holder.negotiated_feerate_per_kw(),
                holder.to_broadcaster_value_sat(),
                holder.to_countersignatory_value_sat(),
                offered.clone(),
                received.clone(),
                &holder.counterparty_sig,
                &holder.counterparty_htlc_sigs,
            )?;
            chan.revoke_previous_holder_commitment(number)?;
            Ok(())
        })?;
        self.settle_new_commitment(&name, Side::Holder, dust)
    }

    /// Signs the counterparty's next commitment.
    pub(crate) fn sign_counterparty(
        &self,
        id: &ChannelId,
        commitment: &CommitmentTransaction,
        inbound: Vec<PaymentPreimage>,
        outbound: Vec<PaymentPreimage>,
    ) -> Result<SignerReply, Outcome> {
        let trusted = commitment.trust();
        let pcp = trusted.keys().per_commitment_point;
        let n = forward(commitment.commitment_number())?;
        let (name, value, anchors) = self.channel_facts(id)?;
        self.check_funding_buried(id, n)?;
        self.check_no_forwarding(Side::Counterparty, commitment.nondust_htlcs())?;
        let dust = self.account_new_commitment(value, anchors, Side::Counterparty, commitment)?;
        let (offered, received) = htlc_infos(commitment.nondust_htlcs());
        let (sig, htlc_sigs) = self.with_channel(id, |chan| {
            chan.htlcs_fulfilled(inbound.clone());
            chan.htlcs_fulfilled(outbound.clone());
            chan.sign_counterparty_commitment_tx_phase2(
                &pcp,
                n,
                commitment.negotiated_feerate_per_kw(),
                commitment.to_countersignatory_value_sat(),
                commitment.to_broadcaster_value_sat(),
                offered.clone(),
                received.clone(),
            )
        })?;
        // The watchtower needs this state's HTLCs if it is ever broadcast after revocation.
        self.store
            .record_counterparty_htlcs(&name, n, commitment.nondust_htlcs())?;
        self.settle_new_commitment(&name, Side::Counterparty, dust)?;
        Ok(SignerReply::CommitmentSignatures {
            sig: Hex(sig.serialize_compact().to_vec()),
            htlc_sigs: htlc_sigs
                .iter()
                .map(|s| Hex(s.serialize_compact().to_vec()))
                .collect(),
        })
    }
}
