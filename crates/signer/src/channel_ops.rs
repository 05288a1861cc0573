//! Per-channel requests, validated by VLS and by this crate's accounting.
//!
//! Channel setup is lazy (LDK 0.2 has no "provide parameters" hook): the first signing call
//! that carries the channel parameters sets the channel up in VLS. A holder-commitment
//! validation that arrives before that (inbound channels) is kept and replayed right after.

use lightning_signer::bitcoin::bip32::DerivationPath;
use lightning_signer::bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use lightning_signer::bitcoin::{ScriptBuf, Transaction};
use lightning_signer::channel::{ChannelBase, ChannelId, ChannelSetup, CommitmentType};
use lightning_signer::lightning::ln::chan_utils::{
    self, ChannelTransactionParameters, CommitmentTransaction, HTLCOutputInCommitment,
    HolderCommitmentTransaction, TxCreationKeys,
};
use lightning_signer::lightning::ln::channel_keys::{DelayedPaymentKey, RevocationKey};
use lightning_signer::lightning::ln::msgs::UnsignedChannelAnnouncement;
use lightning_signer::lightning::sign::HTLCDescriptor;
use lightning_signer::lightning::types::payment::PaymentPreimage;
use lightning_signer::lightning::util::ser::{LengthReadable, Readable, ReadableArgs, Writeable};
use lightning_signer::util::status::Status;
use lightning_signer::util::INITIAL_COMMITMENT_NUMBER;
use micronode_signer_protocol::{ChannelOp, Hex, SignerReply};

use crate::dispatch::sig_reply;
use crate::engine::SignerEngine;
use crate::outcome::Outcome;

fn decode<T: Readable>(bytes: &Hex, what: &str) -> Result<T, Outcome> {
    T::read(&mut &bytes.0[..]).map_err(|e| Outcome::bad(format!("bad {what}: {e:?}")))
}

fn params(bytes: &Hex) -> Result<ChannelTransactionParameters, Outcome> {
    ChannelTransactionParameters::read(&mut &bytes.0[..], None)
        .map_err(|e| Outcome::bad(format!("bad channel parameters: {e:?}")))
}

fn tx(bytes: &Hex) -> Result<Transaction, Outcome> {
    lightning_signer::bitcoin::consensus::deserialize(&bytes.0)
        .map_err(|e| Outcome::bad(format!("bad transaction: {e}")))
}

fn secret(bytes: &Hex) -> Result<SecretKey, Outcome> {
    SecretKey::from_slice(&bytes.0).map_err(|e| Outcome::bad(format!("bad secret: {e}")))
}

fn point(bytes: &Hex) -> Result<PublicKey, Outcome> {
    PublicKey::from_slice(&bytes.0).map_err(|e| Outcome::bad(format!("bad point: {e}")))
}

pub(crate) fn preimages(list: &[Hex]) -> Result<Vec<PaymentPreimage>, Outcome> {
    list.iter()
        .map(|p| {
            <[u8; 32]>::try_from(p.0.as_slice())
                .map(PaymentPreimage)
                .map_err(|_| Outcome::bad("preimage must be 32 bytes"))
        })
        .collect()
}

/// A VLS commitment number from LDK's (which counts down).
pub(crate) fn forward(idx: u64) -> Result<u64, Outcome> {
    INITIAL_COMMITMENT_NUMBER
        .checked_sub(idx)
        .ok_or_else(|| Outcome::bad("commitment number out of range"))
}

/// The rule for a claim transaction paying somewhere other than the wallet or allow-list.
const SWEEP_DESTINATION_RULE: &str = "policy-sweep-destination-allowlisted";

impl SignerEngine {
    pub(crate) fn with_channel<T>(
        &self,
        id: &ChannelId,
        f: impl Fn(&mut lightning_signer::channel::Channel) -> Result<T, Status>,
    ) -> Result<T, Outcome> {
        self.multi
            .with_channel(&self.node_id(), id, f)
            .map_err(Outcome::from_status)
    }

    pub(crate) fn with_base<T>(
        &self,
        id: &ChannelId,
        f: impl Fn(&mut dyn ChannelBase) -> Result<T, Status>,
    ) -> Result<T, Outcome> {
        self.multi
            .with_channel_base(&self.node_id(), id, f)
            .map_err(Outcome::from_status)
    }

    /// Sets the channel up in VLS from LDK's parameters, once. `first` is the counterparty's
    /// first commitment when the setup comes with it: for an inbound channel, what it gives us
    /// is the counterparty's push, which becomes our starting balance (so it is not counted as
    /// a gain that could pay for losses elsewhere). An outbound channel starts with the whole
    /// channel value: a first state that gives any of it away is a balance loss.
    fn ensure_setup(
        &self,
        keys_id: [u8; 32],
        id: &ChannelId,
        params: &ChannelTransactionParameters,
        first: Option<&CommitmentTransaction>,
    ) -> Result<(), Outcome> {
        if self.with_base(id, |base| Ok(base.is_ready()))? {
            return self.replay_deferred(keys_id, id);
        }
        let funding = params
            .funding_outpoint
            .ok_or_else(|| Outcome::bad("channel parameters lack the funding outpoint"))?
            .into_bitcoin_outpoint();
        let counterparty = params
            .counterparty_parameters
            .as_ref()
            .ok_or_else(|| Outcome::bad("channel parameters lack the counterparty"))?;
        let features = &params.channel_type_features;
        let commitment_type = if features.supports_anchors_zero_fee_htlc_tx() {
            CommitmentType::AnchorsZeroFeeHtlc
        } else if features.supports_anchors_nonzero_fee_htlc_tx() {
            CommitmentType::Anchors
        } else {
            CommitmentType::StaticRemoteKey
        };
        let push_value_msat = match first {
            Some(c)
                if !params.is_outbound_from_holder
                    && c.commitment_number() == INITIAL_COMMITMENT_NUMBER =>
            {
                c.to_countersignatory_value_sat().saturating_mul(1000)
            }
            _ => 0,
        };
        let setup = ChannelSetup {
            is_outbound: params.is_outbound_from_holder,
            channel_value_sat: params.channel_value_satoshis,
            push_value_msat,
            funding_outpoint: funding,
            holder_selected_contest_delay: params.holder_selected_contest_delay,
            holder_shutdown_script: None,
            counterparty_points: counterparty.pubkeys.clone(),
            counterparty_selected_contest_delay: counterparty.selected_contest_delay,
            counterparty_shutdown_script: None,
            commitment_type,
        };
        self.node()
            .setup_channel(id.clone(), None, setup, &DerivationPath::master())
            .map_err(Outcome::from_status)?;
        self.replay_deferred(keys_id, id)
    }

    fn replay_deferred(&self, keys_id: [u8; 32], id: &ChannelId) -> Result<(), Outcome> {
        let deferred = self
            .deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&keys_id);
        if let Some((holder, preimages)) = deferred {
            self.validate_holder(id, &holder, preimages)?;
        }
        Ok(())
    }

    /// Handles one channel operation.
    pub(crate) fn channel_op(
        &self,
        keys_id: [u8; 32],
        op: &ChannelOp,
    ) -> Result<SignerReply, Outcome> {
        // An unknown channel fails in VLS's lookup below, with a typed error.
        let id = ChannelId::new(&keys_id);
        let secp = Secp256k1::new();
        match op {
            ChannelOp::PerCommitmentPoint { idx } => {
                let n = forward(*idx)?;
                let key = self.with_base(&id, |base| base.get_per_commitment_point(n))?;
                Ok(SignerReply::PublicKey {
                    key: Hex(key.serialize().to_vec()),
                })
            }
            ChannelOp::ReleaseSecret { idx } => {
                let n = forward(*idx)?;
                let secret = self.with_base(&id, |base| base.get_per_commitment_secret(n))?;
                Ok(SignerReply::Secret32 {
                    bytes: Hex(secret.secret_bytes().to_vec()),
                })
            }
            ChannelOp::ValidateHolder { tx, preimages: p } => {
                let holder: HolderCommitmentTransaction = decode(tx, "holder commitment")?;
                let fulfilled = preimages(p)?;
                if !self.with_base(&id, |base| Ok(base.is_ready()))? {
                    // Inbound channel, not set up yet: keep it for right after setup.
                    self.deferred
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(keys_id, (holder, fulfilled));
                    return Ok(SignerReply::Done);
                }
                self.validate_holder(&id, &holder, fulfilled)?;
                Ok(SignerReply::Done)
            }
            ChannelOp::ValidateRevocation { idx, secret: s } => {
                let n = forward(*idx)?;
                let s = secret(s)?;
                self.with_channel(&id, |chan| chan.validate_counterparty_revocation(n, &s))?;
                Ok(SignerReply::Done)
            }
            ChannelOp::SignCounterparty {
                params: p,
                tx: t,
                inbound_preimages,
                outbound_preimages,
            } => {
                let params = params(p)?;
                let commitment: CommitmentTransaction = decode(t, "commitment")?;
                self.ensure_setup(keys_id, &id, &params, Some(&commitment))?;
                let inbound = preimages(inbound_preimages)?;
                let outbound = preimages(outbound_preimages)?;
                self.sign_counterparty(&id, &commitment, inbound, outbound)
            }
            ChannelOp::SignHolder { params: p, tx: t } => {
                let params = params(p)?;
                self.ensure_setup(keys_id, &id, &params, None)?;
                let holder: HolderCommitmentTransaction = decode(t, "holder commitment")?;
                let n = forward(holder.commitment_number())?;
                // VLS signs only the latest holder state it validated; an older number is a
                // revoked state, the one thing that would hand the counterparty all funds.
                let sig = self
                    .with_channel(&id, |chan| chan.sign_holder_commitment_tx_phase2(n))
                    .map_err(|o| o.naming_unnamed("policy-holder-commitment-revoked"))?;
                Ok(sig_reply(&sig))
            }
            ChannelOp::SignJusticeOutput {
                tx: t,
                input,
                amount,
                per_commitment_key,
                wallet_path,
            } => {
                let tx = tx(t)?;
                let key = secret(per_commitment_key)?;
                let pcp = PublicKey::from_secret_key(&secp, &key);
                let input = *input as usize;
                let wallet = self.check_claim(&tx, input, *amount, wallet_path)?;
                let sig = self.with_channel(&id, |chan| {
                    let ours = chan.get_channel_basepoints();
                    let theirs = &chan.setup.counterparty_points;
                    let revocation =
                        RevocationKey::from_basepoint(&secp, &ours.revocation_basepoint, &pcp);
                    let delayed = DelayedPaymentKey::from_basepoint(
                        &secp,
                        &theirs.delayed_payment_basepoint,
                        &pcp,
                    );
                    let script = chan_utils::get_revokeable_redeemscript(
                        &revocation,
                        chan.setup.holder_selected_contest_delay,
                        &delayed,
                    );
                    chan.sign_justice_sweep(&tx, input, &key, &script, *amount, &wallet)
                })?;
                Ok(sig_reply(&sig))
            }
            ChannelOp::SignJusticeHtlc {
                tx: t,
                input,
                amount,
                per_commitment_key,
                htlc,
                wallet_path,
            } => {
                let tx = tx(t)?;
                let key = secret(per_commitment_key)?;
                let htlc: HTLCOutputInCommitment = decode(htlc, "htlc")?;
                let pcp = PublicKey::from_secret_key(&secp, &key);
                let input = *input as usize;
                let wallet = self.check_claim(&tx, input, *amount, wallet_path)?;
                let sig = self.with_channel(&id, |chan| {
                    let keys = chan.make_counterparty_tx_keys(&pcp);
                    let script =
                        chan_utils::get_htlc_redeemscript(&htlc, &chan.setup.features(), &keys);
                    chan.sign_justice_sweep(&tx, input, &key, &script, *amount, &wallet)
                })?;
                Ok(sig_reply(&sig))
            }
            ChannelOp::SignHolderAnchor { tx: t, input } => {
                self.sign_holder_anchor(&id, &tx(t)?, *input as usize)
            }
            ChannelOp::SignHolderHtlc {
                tx: t,
                input,
                descriptor,
            } => {
                let tx = tx(t)?;
                let descriptor: HTLCDescriptor = decode(descriptor, "HTLC descriptor")?;
                if self.with_channel(&id, |chan| Ok(chan.setup.is_anchors()))? {
                    return self.sign_holder_htlc_anchors(&id, &tx, *input as usize, &descriptor);
                }
                // Our second-stage HTLC transaction: VLS rebuilds it from the channel's state,
                // its fee pre-agreed in the commitment.
                let sig = self.with_channel(&id, |chan| {
                    let pcp = descriptor.per_commitment_point;
                    let keys = TxCreationKeys::from_channel_static_keys(
                        &pcp,
                        &chan.get_channel_basepoints(),
                        &chan.setup.counterparty_points,
                        &secp,
                    );
                    let witness = descriptor.witness_script(&secp);
                    let redeem = chan_utils::get_htlc_redeemscript(
                        &descriptor.htlc,
                        &chan.setup.features(),
                        &keys,
                    );
                    chan.sign_htlc_tx(
                        &tx,
                        &pcp,
                        &redeem,
                        descriptor.htlc.amount_msat / 1000,
                        &witness,
                        false,
                        keys,
                    )
                })?;
                Ok(sig_reply(&sig.sig))
            }
            ChannelOp::SignCounterpartyHtlc {
                tx: t,
                input,
                amount,
                per_commitment_point,
                htlc,
                wallet_path,
            } => {
                let tx = tx(t)?;
                let pcp = point(per_commitment_point)?;
                let htlc: HTLCOutputInCommitment = decode(htlc, "htlc")?;
                let input = *input as usize;
                let wallet = self.check_claim(&tx, input, *amount, wallet_path)?;
                let sig = self.with_channel(&id, |chan| {
                    let keys = chan.make_counterparty_tx_keys(&pcp);
                    let script =
                        chan_utils::get_htlc_redeemscript(&htlc, &chan.setup.features(), &keys);
                    chan.sign_counterparty_htlc_sweep(&tx, input, &pcp, &script, *amount, &wallet)
                })?;
                Ok(sig_reply(&sig))
            }
            ChannelOp::SignClosing {
                params: p,
                to_holder_sat,
                to_counterparty_sat,
                holder_script,
                counterparty_script,
                holder_wallet_path,
            } => {
                let params = params(p)?;
                self.ensure_setup(keys_id, &id, &params, None)?;
                let our_script = ScriptBuf::from_bytes(holder_script.0.clone());
                let hint = if *to_holder_sat > 0 {
                    self.check_destination(
                        holder_wallet_path,
                        &our_script,
                        "policy-mutual-destination-allowlisted",
                    )?
                } else {
                    DerivationPath::master()
                };
                let ours = Some(our_script);
                let theirs = Some(ScriptBuf::from_bytes(counterparty_script.0.clone()));
                let sig = self
                    .with_channel(&id, |chan| {
                        chan.sign_mutual_close_tx_phase2(
                            *to_holder_sat,
                            *to_counterparty_sat,
                            &ours,
                            &theirs,
                            &hint,
                        )
                    })
                    .map_err(|o| o.naming_unnamed("policy-mutual-destination-allowlisted"))?;
                Ok(sig_reply(&sig))
            }
            ChannelOp::SignAnnouncement { params: p, message } => {
                let params = params(p)?;
                self.ensure_setup(keys_id, &id, &params, None)?;
                let msg =
                    UnsignedChannelAnnouncement::read_from_fixed_length_buffer(&mut &message.0[..])
                        .map_err(|e| {
                            Outcome::refused(
                                crate::gossip::GOSSIP_RULE,
                                format!("not a channel announcement: {e:?}"),
                            )
                        })?;
                let (our_funding, their_funding, funding) = self.with_channel(&id, |chan| {
                    Ok((
                        chan.get_channel_basepoints().funding_pubkey,
                        chan.setup.counterparty_points.funding_pubkey,
                        chan.setup.funding_outpoint,
                    ))
                })?;
                self.check_channel_announcement(&our_funding, &their_funding, &funding, &msg)?;
                let sig = self.with_channel(&id, |chan| {
                    Ok(chan.sign_channel_announcement_with_funding_key(&msg.encode()))
                })?;
                Ok(sig_reply(&sig))
            }
        }
    }

    /// Checks a claim (justice, HTLC claim) before VLS signs input `input` of `tx`: every
    /// output pays the wallet layout or the allow-list, every input's amount comes from the
    /// chain view and matches what the node says for this one, and the fee is under the sweep
    /// ceiling. Returns the wallet path for VLS.
    fn check_claim(
        &self,
        tx: &Transaction,
        input: usize,
        amount: u64,
        wallet_path: &[u32],
    ) -> Result<DerivationPath, Outcome> {
        if input >= tx.input.len() {
            return Err(Outcome::bad("input index out of range"));
        }
        let mut path = DerivationPath::master();
        for output in &tx.output {
            // The node names one wallet path per transaction (LDK claims pay one script).
            path =
                self.check_destination(wallet_path, &output.script_pubkey, SWEEP_DESTINATION_RULE)?;
        }
        self.check_sweep_fee(tx, &[(input, amount)])?;
        Ok(path)
    }
}
