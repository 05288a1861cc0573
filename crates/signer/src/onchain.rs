//! On-chain signing: the wallet's PSBTs and LDK's sweeps of closed-channel outputs.
//!
//! Every destination is the wallet layout or the allow-list ([`SignerEngine::check_destination`]),
//! every amount comes from data the signer can verify (a PSBT input's full previous
//! transaction; a sweep input's transaction in the signer's chain view), and sweep fees stay
//! under the tenant's ceiling ([`crate::fees`]).

use lightning_signer::bitcoin::bip32::DerivationPath;
use lightning_signer::bitcoin::{Psbt, ScriptBuf, TxOut, Witness};
use lightning_signer::channel::ChannelId;
use lightning_signer::lightning::sign::SpendableOutputDescriptor;
use lightning_signer::lightning::util::ser::Readable;
use lightning_signer::wallet::Wallet;
use micronode_signer_protocol::{AppMethod, Hex, PaymentAuthorization, SignerReply};

use crate::apps::PaymentClaim;
use crate::engine::SignerEngine;
use crate::fees::SWEEP_FEE_RULE;
use crate::outcome::Outcome;
use crate::wallet_layout::LAYOUT_RULE;

/// A wallet derivation path from the node; hardened or out-of-range steps are refused.
pub(crate) fn wallet_path(items: &[u32]) -> Result<DerivationPath, Outcome> {
    items
        .iter()
        .map(|i| {
            lightning_signer::bitcoin::bip32::ChildNumber::from_normal_idx(*i)
                .map_err(|_| Outcome::bad(format!("wallet path step {i} is not a normal index")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(DerivationPath::from)
}

fn psbt_path(
    derivations: &std::collections::BTreeMap<
        lightning_signer::bitcoin::secp256k1::PublicKey,
        (
            lightning_signer::bitcoin::bip32::Fingerprint,
            DerivationPath,
        ),
    >,
) -> Vec<u32> {
    derivations
        .values()
        .next()
        .map(|(_, path)| path.into_iter().map(|c| u32::from(*c)).collect())
        .unwrap_or_default()
}

impl SignerEngine {
    /// Where an output may pay: the tenant's wallet within its layout (`path` names the key),
    /// or the allow-list. An output paying one of the tenant's own keys outside the layout is
    /// refused with [`LAYOUT_RULE`] (funds `recover` would never find); anything else with
    /// `foreign_rule`. Returns the path VLS is given.
    pub(crate) fn check_destination(
        &self,
        path: &[u32],
        script: &ScriptBuf,
        foreign_rule: &str,
    ) -> Result<DerivationPath, Outcome> {
        let layout = self.wallet.accept(&self.store, path, script);
        if layout.is_ok() {
            return layout;
        }
        let vls_path = wallet_path(path)?;
        let node = self.node();
        if node.can_spend(&vls_path, script).unwrap_or(false) {
            return Err(Outcome::refused(
                LAYOUT_RULE,
                format!(
                    "the output pays the tenant's key at {vls_path} outside the wallet layout; \
                     recovery would not find it"
                ),
            ));
        }
        // VLS's own allow-list check: addresses, and xpub or payee entries.
        if node.allowlist_contains(script, &vls_path) {
            return Ok(vls_path);
        }
        Err(Outcome::refused(
            foreign_rule,
            "the output pays neither the tenant's wallet nor an allow-listed destination",
        ))
    }

    pub(crate) fn spend_outputs(
        &self,
        descriptors: &[Hex],
        outputs: &Hex,
        change_script: &Hex,
        change_path: &[u32],
        feerate: u32,
    ) -> Result<SignerReply, Outcome> {
        const RULE: &str = "policy-sweep-destination-allowlisted";
        let descriptors = descriptors
            .iter()
            .map(|d| {
                SpendableOutputDescriptor::read(&mut &d.0[..])
                    .map_err(|e| Outcome::bad(format!("bad descriptor: {e:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outputs: Vec<TxOut> = lightning_signer::bitcoin::consensus::deserialize(&outputs.0)
            .map_err(|e| Outcome::bad(format!("bad outputs: {e}")))?;
        if u64::from(feerate) > self.policy.max_sweep_feerate_per_kw() {
            return Err(Outcome::refused(
                SWEEP_FEE_RULE,
                format!(
                    "the sweep asks for {} sat/vB, over the ceiling of {} sat/vB",
                    u64::from(feerate) / 250,
                    self.policy.max_sweep_feerate_sat_per_vb
                ),
            ));
        }
        let change = ScriptBuf::from_bytes(change_script.0.clone());
        self.check_destination(change_path, &change, RULE)?;
        for output in &outputs {
            self.check_destination(&[], &output.script_pubkey, RULE)?;
        }
        let descriptors = descriptors
            .into_iter()
            .map(|d| self.checked_descriptor(d))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&SpendableOutputDescriptor> = descriptors.iter().collect();
        let tx = self
            .node()
            .spend_spendable_outputs(&refs, outputs, change, feerate)
            .map_err(|_| Outcome::bad("cannot build the sweep"))?;
        // The descriptors' amounts were checked against the chain view, and so is the fee of
        // the transaction VLS built from them.
        self.check_sweep_fee(&tx, &[])?;
        Ok(SignerReply::Transaction {
            tx: Hex(lightning_signer::bitcoin::consensus::serialize(&tx)),
        })
    }

    /// A descriptor whose output the chain view confirms (amount included), with LDK's channel
    /// keys id (a VLS channel id) swapped for the channel's derivation keys id, from which VLS
    /// derives the sweep keys. Static outputs pay the wallet's own scripts and are spent as
    /// wallet inputs instead.
    fn checked_descriptor(
        &self,
        descriptor: SpendableOutputDescriptor,
    ) -> Result<SpendableOutputDescriptor, Outcome> {
        let derivation_id = |id: &[u8; 32]| {
            self.node()
                .with_channel_base(&ChannelId::new(id), |base| Ok(base.get_channel_keys_id()))
                .map_err(|_| Outcome::bad("the sweep names a channel this signer does not know"))
        };
        let check = |outpoint: &lightning_signer::lightning::chain::transaction::OutPoint,
                     output: &TxOut| {
            let outpoint = outpoint.into_bitcoin_outpoint();
            let known = self.known_prevout_value(&outpoint)?;
            if known != output.value {
                return Err(Outcome::refused(
                    SWEEP_FEE_RULE,
                    format!(
                        "{outpoint} holds {} sat on chain, the request says {}",
                        known.to_sat(),
                        output.value.to_sat()
                    ),
                ));
            }
            Ok(())
        };
        match descriptor {
            SpendableOutputDescriptor::DelayedPaymentOutput(mut d) => {
                check(&d.outpoint, &d.output)?;
                d.channel_keys_id = derivation_id(&d.channel_keys_id)?;
                Ok(SpendableOutputDescriptor::DelayedPaymentOutput(d))
            }
            SpendableOutputDescriptor::StaticPaymentOutput(mut d) => {
                check(&d.outpoint, &d.output)?;
                d.channel_keys_id = derivation_id(&d.channel_keys_id)?;
                Ok(SpendableOutputDescriptor::StaticPaymentOutput(d))
            }
            SpendableOutputDescriptor::StaticOutput { .. } => Err(Outcome::bad(
                "static outputs belong to the wallet; spend them as wallet inputs",
            )),
        }
    }

    pub(crate) fn sign_wallet_psbt(
        &self,
        bytes: &[u8],
        authorization: Option<&PaymentAuthorization>,
    ) -> Result<SignerReply, Outcome> {
        const UNKNOWN: &str = "policy-onchain-no-unknown-outputs";
        let psbt = Psbt::deserialize(bytes).map_err(|e| Outcome::bad(format!("bad PSBT: {e}")))?;
        let node = self.node();
        let tx = psbt.unsigned_tx.clone();
        if psbt.inputs.len() != tx.input.len() || psbt.outputs.len() != tx.output.len() {
            return Err(Outcome::bad("the PSBT's maps do not match its transaction"));
        }
        let mut ipaths = Vec::new();
        let mut prev_outs = Vec::new();
        // Inputs that are not the wallet's: an anchor or HTLC outputs, in a fee bump.
        let mut foreign = Vec::new();
        let mut htlc_pairs = Vec::new();
        let mut inputs_sat = 0u64;
        for (index, (input, txin)) in psbt.inputs.iter().zip(&tx.input).enumerate() {
            if input.bip32_derivation.is_empty() {
                let checked =
                    self.check_foreign_input(&tx, index, input.non_witness_utxo.as_ref())?;
                if checked.paired {
                    htlc_pairs.push(index);
                }
                inputs_sat = inputs_sat.saturating_add(checked.value.to_sat());
                let script = input
                    .witness_utxo
                    .as_ref()
                    .map(|w| w.script_pubkey.clone())
                    .unwrap_or_default();
                prev_outs.push(TxOut {
                    value: checked.value,
                    script_pubkey: script,
                });
                ipaths.push(DerivationPath::master());
                foreign.push(checked);
                continue;
            }
            // A segwit v0 signature commits only to its own input's amount: take every amount
            // from the full previous transaction, never from `witness_utxo` alone, or two
            // requests lying about different inputs would yield one transaction whose fee
            // takes the wallet.
            let prev_tx = input.non_witness_utxo.as_ref().ok_or_else(|| {
                Outcome::refused(
                    "policy-onchain-input-unverified",
                    format!("input {index} does not carry its previous transaction"),
                )
            })?;
            if prev_tx.compute_txid() != txin.previous_output.txid {
                return Err(Outcome::refused(
                    "policy-onchain-input-unverified",
                    format!("input {index}'s previous transaction is not the one it spends"),
                ));
            }
            let prev = prev_tx
                .output
                .get(txin.previous_output.vout as usize)
                .cloned()
                .ok_or_else(|| Outcome::bad(format!("input {index} spends a missing output")))?;
            if input.witness_utxo.as_ref().is_some_and(|w| *w != prev) {
                return Err(Outcome::refused(
                    "policy-onchain-input-unverified",
                    format!("input {index}'s witness UTXO contradicts its previous transaction"),
                ));
            }
            let items = psbt_path(&input.bip32_derivation);
            let path = wallet_path(&items)?;
            if !node.can_spend(&path, &prev.script_pubkey).unwrap_or(false) {
                return Err(Outcome::bad(format!(
                    "input {index} is not the tenant's wallet"
                )));
            }
            if let [chain, i] = items[..] {
                // A coin of the wallet in use: the scan window follows it.
                if chain <= 1 {
                    self.wallet.note_used(&self.store, chain, i)?;
                }
            }
            inputs_sat = inputs_sat.saturating_add(prev.value.to_sat());
            ipaths.push(path);
            prev_outs.push(prev);
        }
        let mut opaths = Vec::new();
        // Outputs paying neither the wallet nor a fee bump's HTLC: channel funding, the
        // allow-list, or an app's on-chain send.
        let mut external = Vec::new();
        for (index, (output, txout)) in psbt.outputs.iter().zip(&tx.output).enumerate() {
            let items = psbt_path(&output.bip32_derivation);
            if items.is_empty() && !foreign.is_empty() {
                // In a fee bump: an HTLC transaction's output (paired with its input and
                // checked with it), or LDK's zero-value OP_RETURN when there is no change.
                let op_return = txout.script_pubkey.is_op_return() && txout.value.to_sat() == 0;
                if !op_return && !htlc_pairs.contains(&index) {
                    return Err(Outcome::refused(
                        UNKNOWN,
                        format!("output {index} of a fee bump pays neither the wallet nor an HTLC"),
                    ));
                }
                opaths.push(DerivationPath::master());
            } else if items.is_empty() {
                // A channel funding output or an allow-listed one, for VLS to decide (or an
                // app's send, checked below).
                external.push(index);
                opaths.push(DerivationPath::master());
            } else {
                opaths.push(self.check_destination(&items, &txout.script_pubkey, UNKNOWN)?);
            }
        }
        let segwit = vec![true; tx.input.len()];
        let unicloses = vec![None; tx.input.len()];
        let app_send = if foreign.is_empty() {
            self.check_app_send(&tx, &external, inputs_sat, authorization)?
        } else {
            None
        };
        if let Some(claim) = &app_send {
            // The one output outside the wallet is the app's; the rest were checked above
            // (wallet layout), and the fee against the tenant's cap here. VLS would refuse the
            // output as unknown, so its check is not asked.
            self.check_send_fee(&tx, inputs_sat)?;
            let recorded = self.apps.authorize(authorization, claim, true)?;
            let signed = node.unchecked_sign_onchain_tx(&tx, &ipaths, &prev_outs, unicloses);
            if signed.is_err() {
                if let Some(recorded) = &recorded {
                    self.apps.forget(recorded);
                }
            }
            return finish(psbt, signed.map_err(Outcome::from_status)?);
        }
        if foreign.is_empty() {
            node.check_onchain_tx(&tx, &segwit, &prev_outs, &unicloses, &opaths)
                .map_err(|e| Outcome::refused(&e.tag.clone(), format!("{e:?}")))?;
        } else {
            // VLS refuses inputs and outputs it does not know; ours are checked above, and
            // the fee over the whole package here.
            self.check_package_fee(&tx, inputs_sat, &foreign)?;
        }
        let witnesses = node
            .unchecked_sign_onchain_tx(&tx, &ipaths, &prev_outs, unicloses)
            .map_err(Outcome::from_status)?;
        finish(psbt, witnesses)
    }

    /// What an on-chain send asks of the tenant's apps: with an app's request, the claim its
    /// one external output makes (to check against the request); without one, nothing, unless
    /// an output pays the allow-list while the tenant requires app requests (then refused).
    fn check_app_send(
        &self,
        tx: &lightning_signer::bitcoin::Transaction,
        external: &[usize],
        inputs_sat: u64,
        authorization: Option<&PaymentAuthorization>,
    ) -> Result<Option<PaymentClaim>, Outcome> {
        let node = self.node();
        let Some(_) = authorization else {
            let allowlisted = external.iter().any(|&i| {
                node.allowlist_contains(&tx.output[i].script_pubkey, &DerivationPath::master())
            });
            if allowlisted && self.policy.require_app_requests {
                return Err(Outcome::refused(
                    crate::apps::rules::MISSING,
                    "an on-chain send outside the wallet needs a request from an app of the tenant",
                ));
            }
            return Ok(None);
        };
        let [index] = external[..] else {
            return Err(Outcome::refused(
                crate::apps::rules::MISMATCH,
                format!(
                    "an app's send pays one output outside the wallet; this one pays {}",
                    external.len()
                ),
            ));
        };
        let output = &tx.output[index];
        let outputs_sat: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        let fee_sat = inputs_sat.saturating_sub(outputs_sat);
        Ok(Some(PaymentClaim {
            method: AppMethod::SendOnchain,
            target: hex::encode(output.script_pubkey.as_bytes()),
            payment_hash: tx.compute_txid().to_string(),
            amount_msat: output.value.to_sat().saturating_mul(1000),
            cost_msat: output
                .value
                .to_sat()
                .saturating_add(fee_sat)
                .saturating_mul(1000),
            sends_everything: tx.output.len() == 1,
        }))
    }

    /// Refuses a wallet spend whose fee rate, once signed, would exceed the tenant's cap.
    fn check_send_fee(
        &self,
        tx: &lightning_signer::bitcoin::Transaction,
        inputs_sat: u64,
    ) -> Result<(), Outcome> {
        // A P2WPKH input's witness: about 108 weight units (signature, key, counts).
        const WITNESS_WU: u64 = 108;
        let outputs_sat: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        let fee_sat = inputs_sat.checked_sub(outputs_sat).ok_or_else(|| {
            Outcome::refused("policy-onchain-fee-range", "the outputs exceed the inputs")
        })?;
        let weight = tx.weight().to_wu() + WITNESS_WU * tx.input.len() as u64;
        let vbytes = weight.div_ceil(4).max(1);
        let cap = self.policy.max_feerate_sat_per_vb;
        if fee_sat > cap.saturating_mul(vbytes) {
            return Err(Outcome::refused(
                "policy-onchain-fee-range",
                format!(
                    "a fee of {fee_sat} sat for about {vbytes} vB is over the tenant's cap of \
                     {cap} sat/vB"
                ),
            ));
        }
        Ok(())
    }
}

/// The signed PSBT: each input's witness in place.
fn finish(mut psbt: Psbt, witnesses: Vec<Vec<Vec<u8>>>) -> Result<SignerReply, Outcome> {
    for (input, witness) in psbt.inputs.iter_mut().zip(witnesses) {
        if !witness.is_empty() {
            input.final_script_witness = Some(Witness::from_slice(&witness));
        }
    }
    Ok(SignerReply::Psbt {
        psbt: Hex(psbt.serialize()),
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use lightning_signer::bitcoin::bip32::{ChildNumber, Xpriv, Xpub};
    use lightning_signer::bitcoin::secp256k1::Secp256k1;
    use lightning_signer::bitcoin::{Address, CompressedPublicKey, Network, ScriptBuf};

    use crate::outcome::Outcome;
    use crate::wallet_layout::LAYOUT_RULE;
    use crate::{PolicyConfig, SignerEngine};

    fn rule(result: Result<impl std::fmt::Debug, Outcome>) -> String {
        match result {
            Err(Outcome::Refused { rule, .. }) => rule,
            other => panic!("not refused: {other:?}"),
        }
    }

    /// The allow-list is VLS's own: an address in any case VLS reads, an `address:` entry and
    /// an `xpub:` entry (any key of it at the given path) all count; string comparison of
    /// addresses refused some of these.
    #[test]
    fn destinations_are_the_layout_or_vls_allow_list() {
        let secp = Secp256k1::new();
        let outside = Xpub::from_priv(
            &secp,
            &Xpriv::new_master(Network::Regtest, &[5; 32]).unwrap(),
        );
        let key = |xpub: &Xpub, path: &[u32]| {
            let steps: Vec<ChildNumber> = path
                .iter()
                .map(|i| ChildNumber::Normal { index: *i })
                .collect();
            CompressedPublicKey(xpub.derive_pub(&secp, &steps).unwrap().public_key)
        };
        let listed = Address::p2wpkh(&key(&outside, &[9]), Network::Regtest);
        let also_listed = Address::p2wpkh(&key(&outside, &[10]), Network::Regtest);
        let policy = PolicyConfig {
            allowlist: vec![
                listed.to_string().to_uppercase(),
                format!("address:{also_listed}"),
                format!("xpub:{outside}"),
            ],
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let engine = SignerEngine::open(
            dir.path(),
            zeroize::Zeroizing::new([3; 32]),
            Network::Regtest,
            policy,
        )
        .unwrap();
        const FOREIGN: &str = "policy-test-foreign";
        engine
            .check_destination(&[], &listed.script_pubkey(), FOREIGN)
            .expect("an upper-case allow-listed address");
        engine
            .check_destination(&[], &also_listed.script_pubkey(), FOREIGN)
            .expect("an address: entry");
        let from_xpub = ScriptBuf::new_p2wpkh(&key(&outside, &[0, 4]).wpubkey_hash());
        engine
            .check_destination(&[0, 4], &from_xpub, FOREIGN)
            .expect("a key of an allow-listed xpub");
        let stranger = Address::p2wpkh(&key(&outside, &[11]), Network::Regtest);
        assert_eq!(
            rule(engine.check_destination(&[], &stranger.script_pubkey(), FOREIGN)),
            FOREIGN
        );
        // The tenant's own wallet: in the layout yes, elsewhere never.
        let account =
            Xpub::from_str(&engine.node().get_account_extended_pubkey().to_string()).unwrap();
        let own = |path: &[u32]| ScriptBuf::new_p2wpkh(&key(&account, path).wpubkey_hash());
        engine
            .check_destination(&[1, 3], &own(&[1, 3]), FOREIGN)
            .expect("change in the layout");
        assert_eq!(
            rule(engine.check_destination(&[1, 3, 0], &own(&[1, 3, 0]), FOREIGN)),
            LAYOUT_RULE
        );
        assert_eq!(
            rule(engine.check_destination(&[7], &own(&[7]), FOREIGN)),
            LAYOUT_RULE
        );
    }
}
