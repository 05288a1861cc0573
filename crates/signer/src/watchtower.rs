//! The tenant's watchtower: a transaction spending a channel's funding output is classified,
//! and a revoked counterparty state is punished — its `to_local` and every HTLC output are
//! claimed with the revocation key, together with the tenant's own `to_remote`, into the
//! tenant's wallet — whether or not the operator's node is alive. `recover` uses the same
//! pieces.
//!
//! Both channel types are handled: `static_remote_key` (our `to_remote` is P2WPKH) and anchors
//! (our `to_remote` is P2WSH with a one-block CSV). HTLC outputs the counterparty already moved into second-stage transactions are left to the
//! node (a tenant node does not route, so such HTLCs are its own payments in flight).

use lightning_signer::bitcoin::absolute::LockTime;
use lightning_signer::bitcoin::bip32::DerivationPath;
use lightning_signer::bitcoin::secp256k1::{Message, PublicKey, Secp256k1, SecretKey};
use lightning_signer::bitcoin::sighash::{EcdsaSighashType, SighashCache};
use lightning_signer::bitcoin::transaction::Version;
use lightning_signer::bitcoin::{
    Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};
use lightning_signer::channel::{Channel, ChannelBase, ChannelSlot};
use lightning_signer::lightning::ln::chan_utils::{self, HTLCOutputInCommitment};
use lightning_signer::lightning::ln::channel_keys::{DelayedPaymentKey, RevocationKey};
use lightning_signer::util::INITIAL_COMMITMENT_NUMBER;

use crate::engine::{channel_name, SignerEngine};
use crate::outcome::Outcome;
use crate::store::OwnSweep;

/// What spent a channel's funding output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FundingSpend {
    /// One of our own commitments (VLS numbering).
    Holder {
        /// Its commitment number.
        number: u64,
    },
    /// One of the counterparty's commitments; `revoked` when the signer holds its revocation
    /// secret (the counterparty cheated).
    Counterparty {
        /// Its commitment number.
        number: u64,
        /// Whether it is an old, revoked state.
        revoked: bool,
    },
    /// Not a commitment: a cooperative close.
    Other,
}

/// Where a claim pays.
pub(crate) struct Destination {
    /// The output script.
    pub script: ScriptBuf,
    /// Its wallet path, when it is the tenant's wallet (required for revocation claims, which
    /// VLS signs only to the wallet or the allow-list).
    pub wallet_path: Option<DerivationPath>,
}

enum ClaimInput {
    /// The counterparty's revoked `to_local`: the revocation branch of the revokeable script.
    RevokedToLocal(ScriptBuf),
    /// A revoked HTLC output: the revocation key on the HTLC script.
    RevokedHtlc(ScriptBuf, PublicKey),
    /// Our `to_remote` on the counterparty's commitment (P2WPKH of our payment key).
    ToRemote,
}

/// Witness weight assumed per claim input when sizing the fee (the largest: an HTLC script).
const CLAIM_WITNESS_WEIGHT: u64 = 330;
/// The smallest output worth creating (P2WSH dust limit).
const DUST_SAT: u64 = 330;

/// The `to_remote` output paying `payment_point` on a commitment of `chan`, and, for anchor
/// channels, the witness script behind it (spendable one block after the commitment confirms).
fn to_remote(chan: &Channel, payment_point: &PublicKey) -> (ScriptBuf, Option<ScriptBuf>) {
    if chan.setup.is_anchors() {
        let script = chan_utils::get_to_countersigner_keyed_anchor_redeemscript(payment_point);
        (script.to_p2wsh(), Some(script))
    } else {
        let script = ScriptBuf::new_p2wpkh(&CompressedPublicKey(*payment_point).wpubkey_hash());
        (script, None)
    }
}

fn der_all(sig: &lightning_signer::bitcoin::secp256k1::ecdsa::Signature) -> Vec<u8> {
    let mut bytes = sig.serialize_der().to_vec();
    bytes.push(EcdsaSighashType::All as u8);
    bytes
}

/// The (obscured) commitment number encoded in a commitment transaction's locktime and
/// sequence, or `None` if `tx` is not shaped like a commitment.
fn obscured_number(tx: &Transaction) -> Option<u64> {
    let input = tx.input.first()?;
    let sequence = input.sequence.0;
    let locktime = tx.lock_time.to_consensus_u32();
    if tx.input.len() != 1 || sequence >> 24 != 0x80 || locktime >> 24 != 0x20 {
        return None;
    }
    Some((u64::from(sequence & 0xff_ffff) << 24) | u64::from(locktime & 0xff_ffff))
}

impl SignerEngine {
    /// Classifies `tx`, which spends `chan`'s funding output.
    pub(crate) fn classify_spend(&self, chan: &Channel, tx: &Transaction) -> FundingSpend {
        let Some(obscured) = obscured_number(tx) else {
            return FundingSpend::Other;
        };
        let ours = chan.get_channel_basepoints();
        let theirs = &chan.setup.counterparty_points;
        let (funder, fundee) = if chan.setup.is_outbound {
            (&ours.payment_point, &theirs.payment_point)
        } else {
            (&theirs.payment_point, &ours.payment_point)
        };
        let factor =
            chan_utils::get_commitment_transaction_number_obscure_factor(funder, fundee, true);
        // BOLT 3: the obscured number counts up from 0, as VLS counts (LDK counts down).
        let number = obscured ^ factor;
        let pays = |script: &ScriptBuf| tx.output.iter().any(|o| o.script_pubkey == *script);
        if pays(&to_remote(chan, &theirs.payment_point).0) {
            return FundingSpend::Holder { number };
        }
        let revoked = number < chan.enforcement_state.next_counterparty_revoke_num;
        if pays(&to_remote(chan, &ours.payment_point).0) {
            return FundingSpend::Counterparty { number, revoked };
        }
        // Neither side has a to_remote: look for the counterparty's to_local of that state.
        if let Some(pcp) = self.counterparty_point(chan, number) {
            if pays(&self.their_to_local(chan, &pcp).to_p2wsh()) {
                return FundingSpend::Counterparty { number, revoked };
            }
        }
        FundingSpend::Holder { number }
    }

    /// The revocation secret of counterparty commitment `number`, if it was revoked.
    fn revocation_secret(&self, chan: &Channel, number: u64) -> Option<SecretKey> {
        if number >= chan.enforcement_state.next_counterparty_revoke_num {
            return None;
        }
        let secrets = chan.enforcement_state.counterparty_secrets.as_ref()?;
        let secret = secrets.get_secret(INITIAL_COMMITMENT_NUMBER - number)?;
        SecretKey::from_slice(&secret).ok()
    }

    fn counterparty_point(&self, chan: &Channel, number: u64) -> Option<PublicKey> {
        let secp = Secp256k1::new();
        let estate = &chan.enforcement_state;
        if let Some(secret) = self.revocation_secret(chan, number) {
            return Some(PublicKey::from_secret_key(&secp, &secret));
        }
        if number + 1 == estate.next_counterparty_commit_num {
            return estate.current_counterparty_point;
        }
        if number + 2 == estate.next_counterparty_commit_num {
            return estate.previous_counterparty_point;
        }
        None
    }

    fn their_to_local(&self, chan: &Channel, pcp: &PublicKey) -> ScriptBuf {
        let secp = Secp256k1::new();
        let revocation = RevocationKey::from_basepoint(
            &secp,
            &chan.get_channel_basepoints().revocation_basepoint,
            pcp,
        );
        let delayed = DelayedPaymentKey::from_basepoint(
            &secp,
            &chan.setup.counterparty_points.delayed_payment_basepoint,
            pcp,
        );
        chan_utils::get_revokeable_redeemscript(
            &revocation,
            chan.setup.holder_selected_contest_delay,
            &delayed,
        )
    }

    /// Builds and signs the claim of what `commitment` (the counterparty's, `spend`) owes the
    /// tenant: with `punish`, every output of a revoked state; otherwise only our `to_remote`.
    /// Outputs already claimed by a sweep of ours are left out. `None` when there is nothing
    /// worth claiming.
    pub(crate) fn build_claim(
        &self,
        chan: &Channel,
        commitment: &Transaction,
        spend: FundingSpend,
        destination: &Destination,
        sat_per_vb: u64,
    ) -> Result<Option<OwnSweep>, Outcome> {
        let FundingSpend::Counterparty { number, revoked } = spend else {
            return Ok(None);
        };
        let secp = Secp256k1::new();
        let name = channel_name(chan);
        let txid = commitment.compute_txid();
        let secret = if revoked {
            self.revocation_secret(chan, number)
        } else {
            None
        };
        let ours = chan.get_channel_basepoints();
        let (to_remote, to_remote_witness_script) = to_remote(chan, &ours.payment_point);
        let (to_local, htlc_scripts, revocation_key) = match &secret {
            Some(secret) => {
                let pcp = PublicKey::from_secret_key(&secp, secret);
                let keys = chan.make_counterparty_tx_keys(&pcp);
                let htlcs: Vec<HTLCOutputInCommitment> =
                    self.store.counterparty_htlcs(&name, number)?;
                let scripts: Vec<ScriptBuf> = htlcs
                    .iter()
                    .map(|h| chan_utils::get_htlc_redeemscript(h, &chan.setup.features(), &keys))
                    .collect();
                (
                    Some(self.their_to_local(chan, &pcp)),
                    scripts,
                    Some(keys.revocation_key.to_public_key()),
                )
            }
            None => (None, Vec::new(), None),
        };
        let mut inputs: Vec<(OutPoint, TxOut, ClaimInput)> = Vec::new();
        for (vout, output) in commitment.output.iter().enumerate() {
            let outpoint = OutPoint::new(txid, vout as u32);
            if self.store.swept(&outpoint)? {
                continue;
            }
            // VLS signs revocation claims only with final sequences, and an anchor channel's
            // `to_remote` needs `1 OP_CSV`: there it is claimed in a transaction of its own
            // (`build_claims`).
            let to_remote_here = secret.is_none() || to_remote_witness_script.is_none();
            let kind = if output.script_pubkey == to_remote && to_remote_here {
                Some(ClaimInput::ToRemote)
            } else if to_local
                .as_ref()
                .is_some_and(|s| s.to_p2wsh() == output.script_pubkey)
            {
                to_local.clone().map(ClaimInput::RevokedToLocal)
            } else {
                htlc_scripts
                    .iter()
                    .find(|s| s.to_p2wsh() == output.script_pubkey)
                    .zip(revocation_key)
                    .map(|(s, key)| ClaimInput::RevokedHtlc(s.clone(), key))
            };
            if let Some(kind) = kind {
                inputs.push((outpoint, output.clone(), kind));
            }
        }
        if inputs.is_empty() {
            return Ok(None);
        }
        let total: u64 = inputs.iter().map(|(_, o, _)| o.value.to_sat()).sum();
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: inputs
                .iter()
                .map(|(outpoint, _, kind)| TxIn {
                    previous_output: *outpoint,
                    // An anchor channel's `to_remote` is spendable one block after the
                    // commitment (`1 OP_CSV`).
                    sequence: match (kind, &to_remote_witness_script) {
                        (ClaimInput::ToRemote, Some(_)) => Sequence(1),
                        _ => Sequence::ENABLE_RBF_NO_LOCKTIME,
                    },
                    ..Default::default()
                })
                .collect(),
            output: vec![TxOut {
                value: Amount::from_sat(total),
                script_pubkey: destination.script.clone(),
            }],
        };
        let weight = tx.weight().to_wu() + CLAIM_WITNESS_WEIGHT * inputs.len() as u64;
        let fee = sat_per_vb.max(1) * weight.div_ceil(4);
        if total <= fee + DUST_SAT {
            tracing::warn!(channel = %name, total, fee, "outputs owed to the tenant are too small to claim at this fee rate");
            return Ok(None);
        }
        tx.output[0].value = Amount::from_sat(total - fee);
        let mut witnesses = Vec::with_capacity(inputs.len());
        for (index, (_, output, kind)) in inputs.iter().enumerate() {
            let amount = output.value.to_sat();
            let witness = match kind {
                ClaimInput::ToRemote => {
                    let (key, _) = chan
                        .get_unilateral_close_key(&None, &None)
                        .map_err(Outcome::from_status)?;
                    let mut cache = SighashCache::new(&tx);
                    let sighash = match &to_remote_witness_script {
                        Some(script) => cache
                            .p2wsh_signature_hash(
                                index,
                                script,
                                output.value,
                                EcdsaSighashType::All,
                            )
                            .map_err(|e| Outcome::bad(format!("sighash: {e}")))?,
                        None => cache
                            .p2wpkh_signature_hash(
                                index,
                                &to_remote,
                                output.value,
                                EcdsaSighashType::All,
                            )
                            .map_err(|e| Outcome::bad(format!("sighash: {e}")))?,
                    };
                    let sig = secp.sign_ecdsa(&Message::from(sighash), &key);
                    match &to_remote_witness_script {
                        Some(script) => Witness::from_slice(&[der_all(&sig), script.to_bytes()]),
                        None => Witness::from_slice(&[
                            der_all(&sig),
                            ours.payment_point.serialize().to_vec(),
                        ]),
                    }
                }
                ClaimInput::RevokedToLocal(script) | ClaimInput::RevokedHtlc(script, _) => {
                    let (secret, path) = match (&secret, &destination.wallet_path) {
                        (Some(s), Some(p)) => (s, p),
                        _ => {
                            return Err(Outcome::bad(
                                "a revocation claim must pay the tenant's wallet",
                            ))
                        }
                    };
                    let sig = chan
                        .sign_justice_sweep(&tx, index, secret, script, amount, path)
                        .map_err(Outcome::from_status)?;
                    let middle = match kind {
                        ClaimInput::RevokedHtlc(_, key) => key.serialize().to_vec(),
                        _ => vec![1],
                    };
                    Witness::from_slice(&[der_all(&sig), middle, script.to_bytes()])
                }
            };
            witnesses.push(witness);
        }
        for (input, witness) in tx.input.iter_mut().zip(witnesses) {
            input.witness = witness;
        }
        let amount_sat = tx.output[0].value.to_sat();
        Ok(Some(OwnSweep {
            tx,
            channel: name,
            kind: if secret.is_some() {
                "justice"
            } else {
                "to_remote"
            }
            .to_string(),
            amount_sat,
        }))
    }

    pub(crate) fn with_funding_channel<T>(
        &self,
        funding: &OutPoint,
        f: impl FnOnce(&Channel) -> T,
    ) -> Option<T> {
        for (_, slot) in self.ready_channels() {
            let guard = slot.lock().unwrap_or_else(|p| p.into_inner());
            if let ChannelSlot::Ready(chan) = &*guard {
                if chan.setup.funding_outpoint == *funding {
                    return Some(f(chan));
                }
            }
        }
        None
    }

    /// Classifies `tx`, which spends the funding output `funding` of one of the signer's
    /// channels (`None` if no channel has that funding output).
    pub(crate) fn classify_funding_spend(
        &self,
        funding: &OutPoint,
        tx: &Transaction,
    ) -> Option<FundingSpend> {
        self.with_funding_channel(funding, |chan| self.classify_spend(chan, tx))
    }

    /// Every claim of what `commitment` owes the tenant: [`Self::build_claim`], and for an
    /// anchor channel's revoked state also the `to_remote` claim, which cannot share the
    /// justice transaction.
    pub(crate) fn build_claims(
        &self,
        chan: &Channel,
        commitment: &Transaction,
        spend: FundingSpend,
        destination: &Destination,
        sat_per_vb: u64,
    ) -> Result<Vec<OwnSweep>, Outcome> {
        let mut claims: Vec<OwnSweep> = self
            .build_claim(chan, commitment, spend, destination, sat_per_vb)?
            .into_iter()
            .collect();
        if let FundingSpend::Counterparty {
            number,
            revoked: true,
        } = spend
        {
            if chan.setup.is_anchors() {
                let to_remote = FundingSpend::Counterparty {
                    number,
                    revoked: false,
                };
                claims.extend(self.build_claim(
                    chan,
                    commitment,
                    to_remote,
                    destination,
                    sat_per_vb,
                )?);
            }
        }
        Ok(claims)
    }

    /// [`Self::build_claims`] for the channel with funding output `funding`.
    pub(crate) fn claim_funding_spend(
        &self,
        funding: &OutPoint,
        commitment: &Transaction,
        spend: FundingSpend,
        destination: &Destination,
        sat_per_vb: u64,
    ) -> Result<Vec<OwnSweep>, Outcome> {
        self.with_funding_channel(funding, |chan| {
            self.build_claims(chan, commitment, spend, destination, sat_per_vb)
        })
        .unwrap_or(Ok(Vec::new()))
    }

    /// The watchtower's answer to a transaction spending a funding output, for a channel
    /// whose slot is `slot`: a justice transaction paying the tenant's wallet if it is a
    /// revoked counterparty state, recorded so it is rebroadcast until it confirms.
    pub(crate) fn watch_spend(
        &self,
        slot: &std::sync::Mutex<ChannelSlot>,
        tx: &Transaction,
        sat_per_vb: u64,
    ) -> Result<Vec<OwnSweep>, Outcome> {
        let guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        let ChannelSlot::Ready(chan) = &*guard else {
            return Ok(Vec::new());
        };
        let spend = self.classify_spend(chan, tx);
        let name = channel_name(chan);
        tracing::info!(channel = %name, txid = %tx.compute_txid(), ?spend, "a channel's funding output was spent");
        if !matches!(spend, FundingSpend::Counterparty { revoked: true, .. }) {
            return Ok(Vec::new());
        }
        tracing::warn!(channel = %name, ?spend, "BREACH: the counterparty broadcast a revoked state; punishing it");
        let (script, path) = self.wallet.next_change(&self.store)?;
        let destination = Destination {
            script,
            wallet_path: Some(path),
        };
        let claims = self.build_claims(chan, tx, spend, &destination, sat_per_vb)?;
        for claim in &claims {
            self.store.record_sweep(claim)?;
            tracing::warn!(channel = %name, txid = %claim.tx.compute_txid(), kind = %claim.kind, amount_sat = claim.amount_sat, "justice transaction built");
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::obscured_number;
    use lightning_signer::bitcoin::absolute::LockTime;
    use lightning_signer::bitcoin::transaction::Version;
    use lightning_signer::bitcoin::{Sequence, Transaction, TxIn};

    #[test]
    fn commitment_numbers_are_read_from_locktime_and_sequence() {
        let tx = |sequence: u32, locktime: u32| Transaction {
            version: Version::TWO,
            lock_time: LockTime::from_consensus(locktime),
            input: vec![TxIn {
                sequence: Sequence(sequence),
                ..Default::default()
            }],
            output: vec![],
        };
        assert_eq!(
            obscured_number(&tx(0x80_00_00_01, 0x20_00_00_02)),
            Some((1 << 24) | 2)
        );
        // A cooperative close (final sequence, no locktime) is not a commitment.
        assert_eq!(obscured_number(&tx(0xffff_ffff, 0)), None);
    }
}
