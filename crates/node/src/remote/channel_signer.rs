//! [`RemoteChannelSigner`]: LDK's per-channel signer, forwarded to the tenant's signer.
//!
//! Offline behaviour follows LDK's async-signing contract: signing methods return `Err`
//! (LDK waits and retries after `signer_unblocked`), validations are queued and answered `Ok`
//! (LDK would close the channel on `Err`; the queue is replayed before any later signature, so
//! the signer still sees every state in order), and per-commitment points already seen are
//! answered from memory. A refusal the signer marks temporary (its chain view is behind the
//! node's) is treated the same way, and the node retries shortly after.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::{All, PublicKey, Secp256k1, SecretKey};
use bitcoin::{Transaction, Txid};
use lightning::ln::chan_utils::{
    ChannelPublicKeys, ChannelTransactionParameters, ClosingTransaction, CommitmentTransaction,
    HTLCOutputInCommitment, HolderCommitmentTransaction,
};
use lightning::ln::msgs::UnsignedChannelAnnouncement;
use lightning::sign::ecdsa::EcdsaChannelSigner;
use lightning::sign::{ChannelSigner, HTLCDescriptor};
use lightning::types::payment::PaymentPreimage;
use lightning::util::ser::{Writeable, Writer};

use super::keys::{log_failure, RemoteCore};
use super::protocol::{ChannelOp, Hex, SignerReply, SignerRequest};
use super::transport::RemoteError;

/// Per-channel public state shared by every copy of a channel's signer.
pub struct ChannelShared {
    pub(crate) pubkeys: ChannelPublicKeys,
    points: Mutex<BTreeMap<u64, PublicKey>>,
}

impl ChannelShared {
    pub(crate) fn new(pubkeys: ChannelPublicKeys) -> Self {
        Self {
            pubkeys,
            points: Mutex::new(BTreeMap::new()),
        }
    }
}

/// LDK's channel signer for a channel whose keys live in the remote signer.
#[derive(Clone)]
pub struct RemoteChannelSigner {
    keys_id: [u8; 32],
    shared: Arc<ChannelShared>,
    core: Arc<RemoteCore>,
}

impl RemoteChannelSigner {
    pub(crate) fn new(
        keys_id: [u8; 32],
        shared: Arc<ChannelShared>,
        core: Arc<RemoteCore>,
    ) -> Self {
        Self {
            keys_id,
            shared,
            core,
        }
    }

    fn call(&self, what: &str, op: ChannelOp) -> Result<SignerReply, ()> {
        self.core
            .call(SignerRequest::Channel {
                keys_id: Hex(self.keys_id.to_vec()),
                op,
            })
            .map_err(|e| log_failure(what, &e))
    }

    fn signature(&self, what: &str, op: ChannelOp) -> Result<Signature, ()> {
        match self.call(what, op)? {
            SignerReply::Signature { sig } => Signature::from_compact(&sig.0).map_err(|_| ()),
            _ => Err(()),
        }
    }

    /// Validations must not fail because the signer is away: queue them instead.
    fn validate(&self, what: &str, op: ChannelOp) -> Result<(), ()> {
        let request = SignerRequest::Channel {
            keys_id: Hex(self.keys_id.to_vec()),
            op: op.clone(),
        };
        match self.core.call(request) {
            Ok(_) => Ok(()),
            Err(RemoteError::Offline) => {
                tracing::info!(op = what, "signer offline; validation queued");
                self.core.queue_validation(self.keys_id, op);
                Ok(())
            }
            // The signer's view of the chain is behind the node's: LDK would close the channel
            // on an error, so the validation waits in the queue like an offline one.
            Err(RemoteError::Refused {
                temporary: true,
                rule,
                ..
            }) => {
                tracing::info!(op = what, %rule, "signer not ready for this state yet; validation queued");
                self.core.queue_validation(self.keys_id, op);
                Ok(())
            }
            Err(e) => {
                log_failure(what, &e);
                Err(())
            }
        }
    }

    fn wallet_path_of(&self, tx: &Transaction) -> Vec<u32> {
        tx.output
            .iter()
            .map(|o| self.core.wallet_path(&o.script_pubkey))
            .find(|p| !p.is_empty())
            .unwrap_or_default()
    }
}

fn preimages(list: Vec<PaymentPreimage>) -> Vec<Hex> {
    list.into_iter().map(|p| Hex(p.0.to_vec())).collect()
}

fn tx_hex(tx: &Transaction) -> Hex {
    Hex(bitcoin::consensus::serialize(tx))
}

impl Writeable for RemoteChannelSigner {
    fn write<W: Writer>(&self, writer: &mut W) -> Result<(), lightning::io::Error> {
        // LDK 0.2 re-derives signers from the keys id; this is for trait bounds only.
        self.keys_id.write(writer)
    }
}

impl ChannelSigner for RemoteChannelSigner {
    fn get_per_commitment_point(&self, idx: u64, _: &Secp256k1<All>) -> Result<PublicKey, ()> {
        if let Some(point) = self
            .shared
            .points
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&idx)
        {
            return Ok(*point);
        }
        let point = match self.call(
            "per_commitment_point",
            ChannelOp::PerCommitmentPoint { idx },
        )? {
            SignerReply::PublicKey { key } => PublicKey::from_slice(&key.0).map_err(|_| ())?,
            _ => return Err(()),
        };
        let mut points = self.shared.points.lock().unwrap_or_else(|p| p.into_inner());
        points.insert(idx, point);
        // Keep the few most recent: LDK asks for the current and the next ones.
        while points.len() > 8 {
            points.pop_last();
        }
        Ok(point)
    }

    fn release_commitment_secret(&self, idx: u64) -> Result<[u8; 32], ()> {
        match self.call("release_secret", ChannelOp::ReleaseSecret { idx })? {
            SignerReply::Secret32 { bytes } => bytes.0.try_into().map_err(|_| ()),
            _ => Err(()),
        }
    }

    fn validate_holder_commitment(
        &self,
        holder_tx: &HolderCommitmentTransaction,
        outbound_htlc_preimages: Vec<PaymentPreimage>,
    ) -> Result<(), ()> {
        self.validate(
            "validate_holder",
            ChannelOp::ValidateHolder {
                tx: Hex(holder_tx.encode()),
                preimages: preimages(outbound_htlc_preimages),
            },
        )
    }

    fn validate_counterparty_revocation(&self, idx: u64, secret: &SecretKey) -> Result<(), ()> {
        self.validate(
            "validate_revocation",
            ChannelOp::ValidateRevocation {
                idx,
                secret: Hex(secret.secret_bytes().to_vec()),
            },
        )
    }

    fn pubkeys(&self, _: &Secp256k1<All>) -> ChannelPublicKeys {
        self.shared.pubkeys.clone()
    }

    fn new_funding_pubkey(&self, _: Txid, _: &Secp256k1<All>) -> PublicKey {
        // Splicing is not negotiated by this node, so LDK never asks for a new funding key.
        tracing::error!("splicing is not supported with a remote signer");
        self.shared.pubkeys.funding_pubkey
    }

    fn channel_keys_id(&self) -> [u8; 32] {
        self.keys_id
    }
}

impl EcdsaChannelSigner for RemoteChannelSigner {
    fn sign_counterparty_commitment(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        commitment_tx: &CommitmentTransaction,
        inbound_htlc_preimages: Vec<PaymentPreimage>,
        outbound_htlc_preimages: Vec<PaymentPreimage>,
        _: &Secp256k1<All>,
    ) -> Result<(Signature, Vec<Signature>), ()> {
        let reply = self.call(
            "sign_counterparty_commitment",
            ChannelOp::SignCounterparty {
                params: Hex(channel_parameters.encode()),
                tx: Hex(commitment_tx.encode()),
                inbound_preimages: preimages(inbound_htlc_preimages),
                outbound_preimages: preimages(outbound_htlc_preimages),
            },
        )?;
        let SignerReply::CommitmentSignatures { sig, htlc_sigs } = reply else {
            return Err(());
        };
        let sig = Signature::from_compact(&sig.0).map_err(|_| ())?;
        let htlc_sigs = htlc_sigs
            .iter()
            .map(|s| Signature::from_compact(&s.0).map_err(|_| ()))
            .collect::<Result<Vec<_>, ()>>()?;
        Ok((sig, htlc_sigs))
    }

    fn sign_holder_commitment(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        commitment_tx: &HolderCommitmentTransaction,
        _: &Secp256k1<All>,
    ) -> Result<Signature, ()> {
        self.signature(
            "sign_holder_commitment",
            ChannelOp::SignHolder {
                params: Hex(channel_parameters.encode()),
                tx: Hex(commitment_tx.encode()),
            },
        )
    }

    fn unsafe_sign_holder_commitment(
        &self,
        _: &ChannelTransactionParameters,
        _: &HolderCommitmentTransaction,
        _: &Secp256k1<All>,
    ) -> Result<Signature, ()> {
        // A validating signer never signs a possibly-revoked state on request.
        Err(())
    }

    fn sign_justice_revoked_output(
        &self,
        _: &ChannelTransactionParameters,
        justice_tx: &Transaction,
        input: usize,
        amount: u64,
        per_commitment_key: &SecretKey,
        _: &Secp256k1<All>,
    ) -> Result<Signature, ()> {
        self.signature(
            "sign_justice_output",
            ChannelOp::SignJusticeOutput {
                tx: tx_hex(justice_tx),
                input: u32::try_from(input).map_err(|_| ())?,
                amount,
                per_commitment_key: Hex(per_commitment_key.secret_bytes().to_vec()),
                wallet_path: self.wallet_path_of(justice_tx),
            },
        )
    }

    fn sign_justice_revoked_htlc(
        &self,
        _: &ChannelTransactionParameters,
        justice_tx: &Transaction,
        input: usize,
        amount: u64,
        per_commitment_key: &SecretKey,
        htlc: &HTLCOutputInCommitment,
        _: &Secp256k1<All>,
    ) -> Result<Signature, ()> {
        self.signature(
            "sign_justice_htlc",
            ChannelOp::SignJusticeHtlc {
                tx: tx_hex(justice_tx),
                input: u32::try_from(input).map_err(|_| ())?,
                amount,
                per_commitment_key: Hex(per_commitment_key.secret_bytes().to_vec()),
                htlc: Hex(htlc.encode()),
                wallet_path: self.wallet_path_of(justice_tx),
            },
        )
    }

    fn sign_holder_htlc_transaction(
        &self,
        htlc_tx: &Transaction,
        input: usize,
        htlc_descriptor: &HTLCDescriptor,
        _: &Secp256k1<All>,
    ) -> Result<Signature, ()> {
        self.signature(
            "sign_holder_htlc",
            ChannelOp::SignHolderHtlc {
                tx: tx_hex(htlc_tx),
                input: u32::try_from(input).map_err(|_| ())?,
                descriptor: Hex(htlc_descriptor.encode()),
            },
        )
    }

    fn sign_counterparty_htlc_transaction(
        &self,
        _: &ChannelTransactionParameters,
        htlc_tx: &Transaction,
        input: usize,
        amount: u64,
        per_commitment_point: &PublicKey,
        htlc: &HTLCOutputInCommitment,
        _: &Secp256k1<All>,
    ) -> Result<Signature, ()> {
        self.signature(
            "sign_counterparty_htlc",
            ChannelOp::SignCounterpartyHtlc {
                tx: tx_hex(htlc_tx),
                input: u32::try_from(input).map_err(|_| ())?,
                amount,
                per_commitment_point: Hex(per_commitment_point.serialize().to_vec()),
                htlc: Hex(htlc.encode()),
                wallet_path: self.wallet_path_of(htlc_tx),
            },
        )
    }

    fn sign_closing_transaction(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        closing_tx: &ClosingTransaction,
        _: &Secp256k1<All>,
    ) -> Result<Signature, ()> {
        let holder_script = closing_tx.to_holder_script().to_owned();
        self.signature(
            "sign_closing",
            ChannelOp::SignClosing {
                params: Hex(channel_parameters.encode()),
                to_holder_sat: closing_tx.to_holder_value_sat(),
                to_counterparty_sat: closing_tx.to_counterparty_value_sat(),
                holder_wallet_path: self.core.wallet_path(&holder_script),
                holder_script: Hex(holder_script.to_bytes()),
                counterparty_script: Hex(closing_tx.to_counterparty_script().to_bytes()),
            },
        )
    }

    fn sign_holder_keyed_anchor_input(
        &self,
        _: &ChannelTransactionParameters,
        anchor_tx: &Transaction,
        input: usize,
        _: &Secp256k1<All>,
    ) -> Result<Signature, ()> {
        self.signature(
            "sign_holder_anchor",
            ChannelOp::SignHolderAnchor {
                tx: tx_hex(anchor_tx),
                input: u32::try_from(input).map_err(|_| ())?,
            },
        )
    }

    fn sign_channel_announcement_with_funding_key(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        msg: &UnsignedChannelAnnouncement,
        _: &Secp256k1<All>,
    ) -> Result<Signature, ()> {
        self.signature(
            "sign_announcement",
            ChannelOp::SignAnnouncement {
                params: Hex(channel_parameters.encode()),
                message: Hex(msg.encode()),
            },
        )
    }

    fn sign_splice_shared_input(
        &self,
        _: &ChannelTransactionParameters,
        _: &Transaction,
        _: usize,
        _: &Secp256k1<All>,
    ) -> Signature {
        // Splicing is not negotiated by this node. An invalid signature makes any splice fail
        // rather than panicking the node.
        tracing::error!("splicing is not supported with a remote signer");
        let secp = Secp256k1::new();
        let (throwaway, _) = secp.generate_keypair(&mut rand::thread_rng());
        let digest = bitcoin::secp256k1::Message::from_digest([0u8; 32]);
        secp.sign_ecdsa(&digest, &throwaway)
    }
}
