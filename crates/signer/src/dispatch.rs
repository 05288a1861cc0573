//! Answers the node's requests: every one is checked by VLS or by our policy layer before
//! anything is signed, and every refusal is logged with the rule that fired.

use std::str::FromStr;

use lightning_signer::bitcoin::bip32::DerivationPath;
use lightning_signer::bitcoin::secp256k1::ecdsa::Signature;
use lightning_signer::bitcoin::secp256k1::{PublicKey, Scalar};
use lightning_signer::bitcoin::{Psbt, ScriptBuf, TxOut, Witness};
use lightning_signer::channel::ChannelId;
use lightning_signer::invoice::Invoice;
use lightning_signer::lightning::ln::msgs::{
    UnsignedChannelAnnouncement, UnsignedChannelUpdate, UnsignedGossipMessage,
    UnsignedNodeAnnouncement,
};
use lightning_signer::lightning::sign::{
    NodeSigner, Recipient, SignerProvider, SpendableOutputDescriptor,
};
use lightning_signer::lightning::types::payment::PaymentHash;
use lightning_signer::lightning::util::ser::{LengthReadable, Readable, Writeable};
use lightning_signer::lightning_invoice::{Bolt11Invoice, SignedRawBolt11Invoice};
use lightning_signer::util::status::Status;
use lightning_signer::wallet::Wallet;
use micronode_node::remote::protocol::{
    Hex, SignerHello, SignerReply, SignerRequest, SignerResponse, PROTOCOL_VERSION,
};

use crate::engine::SignerEngine;

/// The rule reported for a VLS policy failure that carries no rule name.
pub const UNNAMED_POLICY_RULE: &str = "policy-violation";

/// A request's outcome before it becomes a [`SignerResponse`].
#[derive(Debug)]
pub enum Outcome {
    /// Refused by a rule.
    Refused {
        /// The rule.
        rule: String,
        /// Why.
        message: String,
    },
    /// Malformed or impossible request.
    Failed(String),
}

impl Outcome {
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Outcome::Failed(message.into())
    }

    pub(crate) fn refused(rule: &str, message: impl Into<String>) -> Self {
        Outcome::Refused {
            rule: rule.to_string(),
            message: message.into(),
        }
    }

    /// VLS reports policy violations as statuses whose message names the rule
    /// (`policy-...`); a few of its checks say "policy failure" without a name, and count as
    /// [`UNNAMED_POLICY_RULE`]; anything else is a plain failure.
    pub(crate) fn from_status(status: Status) -> Self {
        let message = status.message().to_string();
        match message
            .split(|c: char| c.is_whitespace() || c == ':' || c == '"')
            .find(|w| w.starts_with("policy-"))
        {
            Some(rule) => Outcome::refused(rule, message.clone()),
            // VLS tracks at most `max_invoices` outgoing payments until they are pruned (a day
            // after their invoice expires): a limit on the tenant's payment rate.
            None if message.contains("too many invoices") => {
                Outcome::refused("policy-max-invoices", message)
            }
            None if message.contains("policy failure") => {
                Outcome::refused(UNNAMED_POLICY_RULE, message)
            }
            None => Outcome::Failed(message),
        }
    }

    /// Names a refusal VLS left unnamed, for the request it answers.
    pub(crate) fn naming_unnamed(self, rule: &str) -> Self {
        match self {
            Outcome::Refused { rule: r, message } if r == UNNAMED_POLICY_RULE => {
                Outcome::refused(rule, message)
            }
            other => other,
        }
    }
}

pub(crate) fn sig_reply(sig: &Signature) -> SignerReply {
    SignerReply::Signature {
        sig: Hex(sig.serialize_compact().to_vec()),
    }
}

fn key32(bytes: &Hex, what: &str) -> Result<[u8; 32], Outcome> {
    bytes
        .0
        .as_slice()
        .try_into()
        .map_err(|_| Outcome::bad(format!("{what} must be 32 bytes")))
}

impl SignerEngine {
    /// Answers one request. Never panics on bad input; a refusal is logged with its rule.
    pub fn handle(&self, request: &SignerRequest) -> SignerResponse {
        if self.is_revoked() {
            tracing::warn!("request refused: the operator's access is revoked");
            return SignerResponse::Revoked;
        }
        let name = request_name(request);
        // VLS asserts on a few internal invariants; a panic must not take the signer down.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.answer(request)))
                .unwrap_or_else(|_| Err(Outcome::bad("internal signer error")));
        match result {
            Ok(reply) => SignerResponse::Ok { reply },
            Err(Outcome::Refused { rule, message }) => {
                tracing::warn!(request = name, %rule, %message, "REFUSED");
                SignerResponse::Refused { rule, message }
            }
            Err(Outcome::Failed(message)) => {
                tracing::warn!(request = name, %message, "request failed");
                SignerResponse::Failed { message }
            }
        }
    }

    fn answer(&self, request: &SignerRequest) -> Result<SignerReply, Outcome> {
        match request {
            SignerRequest::Hello { version } => {
                if *version != PROTOCOL_VERSION {
                    return Err(Outcome::bad(format!(
                        "node speaks protocol {version}, signer {PROTOCOL_VERSION}"
                    )));
                }
                let node = self.node();
                Ok(SignerReply::Hello(SignerHello {
                    version: PROTOCOL_VERSION,
                    node_id: Hex(self.node_id().serialize().to_vec()),
                    wallet_xpub: node.get_account_extended_pubkey().to_string(),
                    inbound_payment_key: Hex(node.get_inbound_payment_key_bytes().to_vec()),
                    peer_storage_key: Hex(node.get_peer_storage_key_bytes().to_vec()),
                    receive_auth_key: Hex(self.keys.get_receive_auth_key().0.to_vec()),
                }))
            }
            SignerRequest::Ecdh { other_key, tweak } => {
                let other = PublicKey::from_slice(&other_key.0)
                    .map_err(|e| Outcome::bad(format!("bad key: {e}")))?;
                let tweak = match tweak {
                    Some(t) => Some(
                        Scalar::from_be_bytes(key32(t, "tweak")?)
                            .map_err(|_| Outcome::bad("tweak out of range"))?,
                    ),
                    None => None,
                };
                let secret = self
                    .keys
                    .ecdh(Recipient::Node, &other, tweak.as_ref())
                    .map_err(|_| Outcome::bad("ecdh failed"))?;
                Ok(SignerReply::Secret32 {
                    bytes: Hex(secret.secret_bytes().to_vec()),
                })
            }
            SignerRequest::SignInvoice { invoice } => {
                let signed = SignedRawBolt11Invoice::from_str(invoice)
                    .map_err(|e| Outcome::bad(format!("bad invoice: {e}")))?;
                let sig = self
                    .node()
                    .sign_bolt11_invoice(signed.raw_invoice().clone())
                    .map_err(Outcome::from_status)?;
                let (id, compact) = sig.serialize_compact();
                let mut bytes = vec![u8::try_from(id.to_i32()).unwrap_or(0)];
                bytes.extend_from_slice(&compact);
                Ok(SignerReply::RecoverableSignature { sig: Hex(bytes) })
            }
            SignerRequest::SignGossip { message } => {
                let owned = OwnedGossip::parse(&message.0)?;
                let sig = self
                    .node()
                    .sign_gossip_message(&owned.as_message())
                    .map_err(Outcome::from_status)?;
                Ok(sig_reply(&sig))
            }
            SignerRequest::SignMessage { message } => {
                let signature = self
                    .keys
                    .sign_message(&message.0)
                    .map_err(|_| Outcome::bad("cannot sign message"))?;
                Ok(SignerReply::MessageSignature { signature })
            }
            SignerRequest::NewChannel {
                inbound,
                user_channel_id,
            } => {
                let keys_id = self
                    .keys
                    .generate_channel_keys_id(*inbound, *user_channel_id);
                self.channel_keys(keys_id)
            }
            SignerRequest::ChannelPubkeys { keys_id } => {
                self.channel_keys(key32(keys_id, "keys id")?)
            }
            SignerRequest::Channel { keys_id, op } => {
                self.channel_op(key32(keys_id, "keys id")?, op)
            }
            SignerRequest::SpendOutputs {
                descriptors,
                outputs,
                change_script,
                change_path,
                feerate_sat_per_kw,
                locktime: _,
            } => self.spend_outputs(
                descriptors,
                outputs,
                change_script,
                change_path,
                *feerate_sat_per_kw,
            ),
            SignerRequest::SignWalletPsbt { psbt } => self.sign_wallet_psbt(&psbt.0),
            SignerRequest::ApproveInvoice {
                invoice,
                amount_msat,
            } => self.approve_invoice(invoice, *amount_msat),
            SignerRequest::ApproveKeysend {
                payee,
                payment_hash,
                amount_msat,
            } => {
                let payee = PublicKey::from_slice(&payee.0)
                    .map_err(|e| Outcome::bad(format!("bad payee: {e}")))?;
                let hash = key32(payment_hash, "payment hash")?;
                self.check_velocity(&hex::encode(hash), *amount_msat)?;
                let added = self
                    .node()
                    .add_keysend(payee, PaymentHash(hash), *amount_msat)
                    .map_err(Outcome::from_status)?;
                if !added {
                    return Err(Outcome::refused(
                        "policy-commitment-payment-velocity",
                        "the signer's payment velocity limit would be exceeded",
                    ));
                }
                Ok(SignerReply::Done)
            }
        }
    }

    fn channel_keys(&self, keys_id: [u8; 32]) -> Result<SignerReply, Outcome> {
        let pubkeys = self.channel_pubkeys(keys_id)?;
        Ok(SignerReply::ChannelKeys {
            keys_id: Hex(keys_id.to_vec()),
            pubkeys: Hex(pubkeys.encode()),
        })
    }

    fn check_velocity(&self, payment_hash: &str, amount_msat: u64) -> Result<(), Outcome> {
        self.velocity
            .approve(payment_hash, amount_msat)
            .map_err(|e| match e {
                crate::velocity::VelocityError::Storage(m) => Outcome::bad(m),
                other => Outcome::refused("velocity-limit", other.to_string()),
            })
    }

    fn approve_invoice(
        &self,
        invoice: &str,
        amount_msat: Option<u64>,
    ) -> Result<SignerReply, Outcome> {
        let parsed = Bolt11Invoice::from_str(invoice)
            .map_err(|e| Outcome::bad(format!("bad invoice: {e}")))?;
        let amount = parsed
            .amount_milli_satoshis()
            .or(amount_msat)
            .ok_or_else(|| Outcome::bad("the invoice has no amount"))?;
        self.check_velocity(
            &hex::encode(parsed.payment_hash().as_ref() as &[u8]),
            amount,
        )?;
        let added = self
            .node()
            .add_invoice(Invoice::Bolt11(parsed))
            .map_err(Outcome::from_status)?;
        if !added {
            return Err(Outcome::refused(
                "policy-commitment-payment-velocity",
                "the signer's payment velocity limit would be exceeded",
            ));
        }
        Ok(SignerReply::Done)
    }

    /// An output is acceptable if it pays our wallet at `path` or an allow-listed address.
    fn output_allowed(&self, script: &ScriptBuf, path: &DerivationPath) -> bool {
        let node = self.node();
        if node.can_spend(path, script).unwrap_or(false) {
            return true;
        }
        lightning_signer::bitcoin::Address::from_script(script, self.network)
            .map(|a| self.policy.allowlist.iter().any(|x| *x == a.to_string()))
            .unwrap_or(false)
    }

    fn spend_outputs(
        &self,
        descriptors: &[Hex],
        outputs: &Hex,
        change_script: &Hex,
        change_path: &[u32],
        feerate: u32,
    ) -> Result<SignerReply, Outcome> {
        let descriptors = descriptors
            .iter()
            .map(|d| {
                SpendableOutputDescriptor::read(&mut &d.0[..])
                    .map_err(|e| Outcome::bad(format!("bad descriptor: {e:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outputs: Vec<TxOut> = lightning_signer::bitcoin::consensus::deserialize(&outputs.0)
            .map_err(|e| Outcome::bad(format!("bad outputs: {e}")))?;
        let change = ScriptBuf::from_bytes(change_script.0.clone());
        let path = wallet_path(change_path)?;
        if !self.output_allowed(&change, &path) {
            return Err(Outcome::refused(
                "policy-sweep-destination-allowlisted",
                "sweep destination is neither the tenant's wallet nor allow-listed",
            ));
        }
        if outputs
            .iter()
            .any(|o| !self.output_allowed(&o.script_pubkey, &DerivationPath::master()))
        {
            return Err(Outcome::refused(
                "policy-sweep-destination-allowlisted",
                "an extra sweep output is not allow-listed",
            ));
        }
        let descriptors = descriptors
            .into_iter()
            .map(|d| self.with_derivation_keys_id(d))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&SpendableOutputDescriptor> = descriptors.iter().collect();
        let tx = self
            .node()
            .spend_spendable_outputs(&refs, outputs, change, feerate)
            .map_err(|_| Outcome::bad("cannot build the sweep"))?;
        Ok(SignerReply::Transaction {
            tx: Hex(lightning_signer::bitcoin::consensus::serialize(&tx)),
        })
    }

    /// LDK names a channel by the id the signer gave it (a VLS channel id), but VLS derives a
    /// sweep's keys from the channel's *derivation* keys id: swap one for the other. Static
    /// outputs pay the wallet's own scripts and are spent as wallet inputs instead.
    fn with_derivation_keys_id(
        &self,
        descriptor: SpendableOutputDescriptor,
    ) -> Result<SpendableOutputDescriptor, Outcome> {
        let derivation_id = |id: &[u8; 32]| {
            self.node()
                .with_channel_base(&ChannelId::new(id), |base| Ok(base.get_channel_keys_id()))
                .map_err(|_| Outcome::bad("the sweep names a channel this signer does not know"))
        };
        match descriptor {
            SpendableOutputDescriptor::DelayedPaymentOutput(mut d) => {
                d.channel_keys_id = derivation_id(&d.channel_keys_id)?;
                Ok(SpendableOutputDescriptor::DelayedPaymentOutput(d))
            }
            SpendableOutputDescriptor::StaticPaymentOutput(mut d) => {
                d.channel_keys_id = derivation_id(&d.channel_keys_id)?;
                Ok(SpendableOutputDescriptor::StaticPaymentOutput(d))
            }
            SpendableOutputDescriptor::StaticOutput { .. } => Err(Outcome::bad(
                "static outputs belong to the wallet; spend them as wallet inputs",
            )),
        }
    }

    fn sign_wallet_psbt(&self, bytes: &[u8]) -> Result<SignerReply, Outcome> {
        let mut psbt =
            Psbt::deserialize(bytes).map_err(|e| Outcome::bad(format!("bad PSBT: {e}")))?;
        let node = self.node();
        let tx = psbt.unsigned_tx.clone();
        let mut ipaths = Vec::new();
        let mut prev_outs = Vec::new();
        for input in &psbt.inputs {
            let prev = input
                .witness_utxo
                .clone()
                .ok_or_else(|| Outcome::bad("every input needs its witness UTXO"))?;
            let path = input
                .bip32_derivation
                .values()
                .next()
                .map(|(_, path)| path.clone())
                .unwrap_or_else(DerivationPath::master);
            if !node.can_spend(&path, &prev.script_pubkey).unwrap_or(false) {
                return Err(Outcome::bad("an input is not the tenant's wallet"));
            }
            ipaths.push(path);
            prev_outs.push(prev);
        }
        let opaths: Vec<DerivationPath> = psbt
            .outputs
            .iter()
            .map(|o| {
                o.bip32_derivation
                    .values()
                    .next()
                    .map(|(_, path)| path.clone())
                    .unwrap_or_else(DerivationPath::master)
            })
            .collect();
        let segwit = vec![true; tx.input.len()];
        let unicloses = vec![None; tx.input.len()];
        node.check_onchain_tx(&tx, &segwit, &prev_outs, &unicloses, &opaths)
            .map_err(|e| Outcome::refused(&e.tag.clone(), format!("{e:?}")))?;
        let witnesses = node
            .unchecked_sign_onchain_tx(&tx, &ipaths, &prev_outs, unicloses)
            .map_err(Outcome::from_status)?;
        for (input, witness) in psbt.inputs.iter_mut().zip(witnesses) {
            if !witness.is_empty() {
                input.final_script_witness = Some(Witness::from_slice(&witness));
            }
        }
        Ok(SignerReply::Psbt {
            psbt: Hex(psbt.serialize()),
        })
    }
}

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

enum OwnedGossip {
    Announcement(UnsignedChannelAnnouncement),
    Node(UnsignedNodeAnnouncement),
    Update(UnsignedChannelUpdate),
}

impl OwnedGossip {
    fn parse(bytes: &[u8]) -> Result<Self, Outcome> {
        let (kind, body) = bytes
            .split_at_checked(2)
            .ok_or_else(|| Outcome::bad("gossip message too short"))?;
        let bad = |e| Outcome::bad(format!("bad gossip message: {e:?}"));
        let mut body = body;
        match u16::from_be_bytes([kind[0], kind[1]]) {
            256 => Ok(Self::Announcement(
                UnsignedChannelAnnouncement::read_from_fixed_length_buffer(&mut body)
                    .map_err(bad)?,
            )),
            257 => Ok(Self::Node(
                UnsignedNodeAnnouncement::read_from_fixed_length_buffer(&mut body).map_err(bad)?,
            )),
            258 => Ok(Self::Update(
                UnsignedChannelUpdate::read_from_fixed_length_buffer(&mut body).map_err(bad)?,
            )),
            other => Err(Outcome::bad(format!("unknown gossip type {other}"))),
        }
    }

    fn as_message(&self) -> UnsignedGossipMessage<'_> {
        match self {
            Self::Announcement(m) => UnsignedGossipMessage::ChannelAnnouncement(m),
            Self::Node(m) => UnsignedGossipMessage::NodeAnnouncement(m),
            Self::Update(m) => UnsignedGossipMessage::ChannelUpdate(m),
        }
    }
}

fn request_name(request: &SignerRequest) -> &'static str {
    match request {
        SignerRequest::Hello { .. } => "hello",
        SignerRequest::Ecdh { .. } => "ecdh",
        SignerRequest::SignInvoice { .. } => "sign_invoice",
        SignerRequest::SignGossip { .. } => "sign_gossip",
        SignerRequest::SignMessage { .. } => "sign_message",
        SignerRequest::NewChannel { .. } => "new_channel",
        SignerRequest::ChannelPubkeys { .. } => "channel_pubkeys",
        SignerRequest::Channel { .. } => "channel",
        SignerRequest::SpendOutputs { .. } => "spend_outputs",
        SignerRequest::SignWalletPsbt { .. } => "sign_wallet_psbt",
        SignerRequest::ApproveInvoice { .. } => "approve_invoice",
        SignerRequest::ApproveKeysend { .. } => "approve_keysend",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(outcome: Outcome) -> Option<String> {
        match outcome {
            Outcome::Refused { rule, .. } => Some(rule),
            Outcome::Failed(_) => None,
        }
    }

    #[test]
    fn vls_statuses_become_typed_refusals_or_failures() {
        let named = Status::failed_precondition(
            "policy failure: validate_onchain_tx: ValidationError { tag: \"policy-onchain-fee-range\" }",
        );
        assert_eq!(
            rule_of(Outcome::from_status(named)).as_deref(),
            Some("policy-onchain-fee-range")
        );
        let unnamed = Status::failed_precondition("policy failure: holder output not to wallet");
        let outcome = Outcome::from_status(unnamed);
        assert_eq!(rule_of(outcome).as_deref(), Some(UNNAMED_POLICY_RULE));
        let renamed = Outcome::from_status(Status::failed_precondition("policy failure: x"))
            .naming_unnamed("policy-mutual-destination-allowlisted");
        assert_eq!(
            rule_of(renamed).as_deref(),
            Some("policy-mutual-destination-allowlisted")
        );
        let full = Status::failed_precondition("too many invoices (1000 >= 1000)");
        assert_eq!(
            rule_of(Outcome::from_status(full)).as_deref(),
            Some("policy-max-invoices")
        );
        let plain = Status::invalid_argument("no such channel: 00");
        assert_eq!(rule_of(Outcome::from_status(plain)), None);
        // A named rule is never renamed.
        let kept = Outcome::refused("velocity-limit", "over").naming_unnamed("other");
        assert_eq!(rule_of(kept).as_deref(), Some("velocity-limit"));
    }
}
