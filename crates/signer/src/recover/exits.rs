//! Unilateral exit without the operator: from the signer's own validated state, the latest
//! holder commitment of every channel (signed, ready to broadcast), sweeps of our delayed
//! outputs to an address of the tenant's once the contest delay has passed, and the sweep of
//! the on-chain wallet. This module only builds and signs; [`super::run`] drives it.

use std::fmt;

use lightning_signer::bitcoin::absolute::LockTime;
use lightning_signer::bitcoin::bip32::{ChildNumber, DerivationPath};
use lightning_signer::bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use lightning_signer::bitcoin::sighash::{EcdsaSighashType, SighashCache};
use lightning_signer::bitcoin::transaction::Version;
use lightning_signer::bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};
use lightning_signer::channel::ChannelSlot;
use lightning_signer::wallet::Wallet;
use zeroize::Zeroizing;

use super::RecoverError;
use crate::chain::WalletUtxo;
use crate::engine::SignerEngine;

/// Everything needed to close one channel unilaterally and sweep our side of it.
pub struct ChannelExit {
    /// The channel (hex of the signer's channel id).
    pub channel: String,
    /// The channel's funding output.
    pub funding: OutPoint,
    /// The channel's value.
    pub capacity_sat: u64,
    /// Our latest holder commitment, fully signed.
    pub commitment: Transaction,
    /// Our HTLC transactions on it that can be claimed now, fully signed.
    pub htlc_txs: Vec<Transaction>,
    /// Blocks our outputs stay locked after the commitment confirms.
    pub to_self_delay: u16,
    /// The script of our delayed outputs (on the commitment and the HTLC transactions).
    pub delayed_script: ScriptBuf,
    delayed_key: Zeroizing<[u8; 32]>,
    witness_script: ScriptBuf,
}

impl fmt::Debug for ChannelExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelExit")
            .field("channel", &self.channel)
            .field("funding", &self.funding)
            .field("commitment", &self.commitment.compute_txid())
            .field("to_self_delay", &self.to_self_delay)
            .finish_non_exhaustive()
    }
}

impl ChannelExit {
    /// Our delayed outputs among `tx`'s outputs, as (outpoint, output).
    pub fn delayed_outputs(&self, tx: &Transaction) -> Vec<(OutPoint, TxOut)> {
        let txid = tx.compute_txid();
        tx.output
            .iter()
            .enumerate()
            .filter(|(_, o)| o.script_pubkey == self.delayed_script)
            .map(|(vout, o)| (OutPoint::new(txid, vout as u32), o.clone()))
            .collect()
    }

    /// Signs a transaction sweeping `outputs` (our delayed outputs, past their delay) to
    /// `destination` at `sat_per_vb`.
    pub fn sweep(
        &self,
        outputs: &[(OutPoint, TxOut)],
        destination: &ScriptBuf,
        sat_per_vb: u64,
    ) -> Result<Transaction, RecoverError> {
        let sizing =
            Witness::from_slice(&[vec![0u8; 73], Vec::new(), self.witness_script.to_bytes()]);
        let inputs = outputs
            .iter()
            .map(|(outpoint, output)| {
                let input = TxIn {
                    previous_output: *outpoint,
                    sequence: Sequence::from_height(self.to_self_delay),
                    witness: sizing.clone(),
                    ..Default::default()
                };
                (input, output.value)
            })
            .collect();
        let mut tx = single_output_spend(inputs, destination, sat_per_vb)?;
        let secp = Secp256k1::signing_only();
        let key = SecretKey::from_slice(&self.delayed_key[..])
            .map_err(|e| RecoverError::Signing(e.to_string()))?;
        let mut witnesses = Vec::with_capacity(outputs.len());
        {
            let mut cache = SighashCache::new(&tx);
            for (index, (_, output)) in outputs.iter().enumerate() {
                let sighash = cache
                    .p2wsh_signature_hash(
                        index,
                        &self.witness_script,
                        output.value,
                        EcdsaSighashType::All,
                    )
                    .map_err(|e| RecoverError::Signing(e.to_string()))?;
                let sig = secp.sign_ecdsa(&Message::from(sighash), &key);
                let mut sig = sig.serialize_der().to_vec();
                sig.push(EcdsaSighashType::All as u8);
                witnesses.push(Witness::from_slice(&[
                    sig,
                    Vec::new(),
                    self.witness_script.to_bytes(),
                ]));
            }
        }
        for (input, witness) in tx.input.iter_mut().zip(witnesses) {
            input.witness = witness;
        }
        Ok(tx)
    }
}

/// A version-2 transaction spending `inputs` (each with its value and a worst-case witness for
/// sizing) to one output paying `destination` everything less the fee at `sat_per_vb`; the
/// witnesses are cleared for signing. Refuses when the fee would leave dust.
fn single_output_spend(
    inputs: Vec<(TxIn, Amount)>,
    destination: &ScriptBuf,
    sat_per_vb: u64,
) -> Result<Transaction, RecoverError> {
    let total: u64 = inputs.iter().map(|(_, v)| v.to_sat()).sum();
    let mut tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs.into_iter().map(|(input, _)| input).collect(),
        output: vec![TxOut {
            value: Amount::from_sat(total),
            script_pubkey: destination.clone(),
        }],
    };
    let fee_sat = tx.vsize() as u64 * sat_per_vb.max(1);
    if total <= fee_sat + DUST_SAT {
        return Err(RecoverError::Dust {
            value_sat: total,
            fee_sat,
        });
    }
    tx.output[0].value = Amount::from_sat(total - fee_sat);
    for input in &mut tx.input {
        input.witness = Witness::new();
    }
    Ok(tx)
}

/// The smallest output worth creating (P2WSH dust limit).
const DUST_SAT: u64 = 330;

impl SignerEngine {
    /// Signs a transaction moving every `utxo` of the tenant's wallet to `destination` at
    /// `sat_per_vb`. The tenant asked for it with their passphrase, so no destination policy
    /// applies; each input is checked to be the wallet's own.
    pub fn sweep_wallet(
        &self,
        utxos: &[WalletUtxo],
        destination: &ScriptBuf,
        sat_per_vb: u64,
    ) -> Result<Transaction, RecoverError> {
        let node = self.node();
        let inputs = utxos
            .iter()
            .map(|u| {
                let input = TxIn {
                    previous_output: u.outpoint,
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    // Worst-case P2WPKH witness, for sizing.
                    witness: Witness::from_slice(&[vec![0u8; 73], vec![0u8; 33]]),
                    ..Default::default()
                };
                (input, u.output.value)
            })
            .collect();
        let mut tx = single_output_spend(inputs, destination, sat_per_vb)?;
        let paths: Vec<DerivationPath> = utxos
            .iter()
            .map(|u| {
                u.path
                    .iter()
                    .map(|i| ChildNumber::from_normal_idx(*i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(DerivationPath::from)
                    .map_err(|_| RecoverError::Wallet(format!("bad wallet path {:?}", u.path)))
            })
            .collect::<Result<_, _>>()?;
        for (utxo, path) in utxos.iter().zip(&paths) {
            if !node
                .can_spend(path, &utxo.output.script_pubkey)
                .unwrap_or(false)
            {
                return Err(RecoverError::Wallet(format!(
                    "{} is not the wallet's output at {:?}",
                    utxo.outpoint, utxo.path
                )));
            }
        }
        let prev_outs: Vec<TxOut> = utxos.iter().map(|u| u.output.clone()).collect();
        let witnesses = node
            .unchecked_sign_onchain_tx(&tx, &paths, &prev_outs, vec![None; utxos.len()])
            .map_err(|e| RecoverError::Wallet(e.message().to_string()))?;
        for (input, witness) in tx.input.iter_mut().zip(witnesses) {
            input.witness = Witness::from_slice(&witness);
        }
        Ok(tx)
    }

    /// The exit of the channel funded by `funding`, built from the latest state the signer
    /// validated (`None` if no funded channel has that output). With `close`, the channel is
    /// also marked closed in the signer's durable state, so it never signs a newer state for
    /// the operator again; without, nothing is persisted (a dry run).
    pub fn channel_exit(
        &self,
        funding: &OutPoint,
        close: bool,
    ) -> Option<Result<ChannelExit, RecoverError>> {
        let (channel, slot) = self.ready_channels().into_iter().find(|(_, slot)| {
            matches!(&*slot.lock().unwrap_or_else(|e| e.into_inner()),
                ChannelSlot::Ready(chan) if chan.setup.funding_outpoint == *funding)
        })?;
        let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
        let ChannelSlot::Ready(chan) = &mut *guard else {
            return None;
        };
        let signed = if close {
            chan.sign_holder_commitment_tx_for_recovery(&[], None)
        } else {
            chan.sign_holder_commitment_tx_for_recovery_dry_run(&[], None)
        };
        Some(match signed {
            Ok((commitment, htlc_txs, delayed_script, (key, prefix), _)) => {
                // VLS gives the witness as [<empty>, witness script] after the signature.
                let witness_script =
                    ScriptBuf::from_bytes(prefix.last().cloned().unwrap_or_default());
                if witness_script.to_p2wsh() != delayed_script {
                    return Some(Err(RecoverError::Commitment {
                        channel,
                        message: "the delayed output's script does not match its key".into(),
                    }));
                }
                Ok(ChannelExit {
                    channel,
                    funding: chan.setup.funding_outpoint,
                    capacity_sat: chan.setup.channel_value_sat,
                    commitment,
                    htlc_txs,
                    to_self_delay: chan.setup.counterparty_selected_contest_delay,
                    delayed_script,
                    delayed_key: Zeroizing::new(key.secret_bytes()),
                    witness_script,
                })
            }
            Err(status) => Err(RecoverError::Commitment {
                channel,
                message: status.message().to_string(),
            }),
        })
    }

    /// Every funded channel: its name and funding output.
    pub fn funded_channels(&self) -> Vec<(String, OutPoint)> {
        self.ready_channels()
            .into_iter()
            .filter_map(
                |(name, slot)| match &*slot.lock().unwrap_or_else(|e| e.into_inner()) {
                    ChannelSlot::Ready(chan) => Some((name, chan.setup.funding_outpoint)),
                    ChannelSlot::Stub(_) => None,
                },
            )
            .collect()
    }
}
