//! Answers the node's requests: every one is checked by VLS or by our policy layer before
//! anything is signed, and every refusal is logged with the rule that fired.

use std::str::FromStr;
use std::time::Duration;

use lightning_signer::bitcoin::secp256k1::ecdsa::Signature;
use lightning_signer::bitcoin::secp256k1::{PublicKey, Scalar};
use lightning_signer::invoice::Invoice;
use lightning_signer::lightning::ln::msgs::{
    UnsignedChannelAnnouncement, UnsignedChannelUpdate, UnsignedGossipMessage,
    UnsignedNodeAnnouncement,
};
use lightning_signer::lightning::sign::{NodeSigner, Recipient, SignerProvider};
use lightning_signer::lightning::types::payment::PaymentHash;
use lightning_signer::lightning::util::ser::{LengthReadable, Writeable};
use lightning_signer::lightning_invoice::{Bolt11Invoice, SignedRawBolt11Invoice};
use micronode_signer_protocol::{
    AppMethod, Hex, PaymentAuthorization, SignerHello, SignerReply, SignerRequest, SignerResponse,
    PROTOCOL_VERSION,
};

use crate::apps::PaymentClaim;
use crate::engine::SignerEngine;
use crate::outcome::Outcome;

/// How long a request waits for the chain view to catch up before a temporary refusal stands.
const CHAIN_CATCH_UP: Duration = Duration::from_secs(10);

pub(crate) fn sig_reply(sig: &Signature) -> SignerReply {
    SignerReply::Signature {
        sig: Hex(sig.serialize_compact().to_vec()),
    }
}

pub(crate) fn key32(bytes: &Hex, what: &str) -> Result<[u8; 32], Outcome> {
    bytes
        .0
        .as_slice()
        .try_into()
        .map_err(|_| Outcome::bad(format!("{what} must be 32 bytes")))
}

impl SignerEngine {
    /// Answers one request. Never panics on bad input; a refusal is logged with its rule. A
    /// refusal that may clear once the signer's chain view catches up (a funding output the
    /// node already sees confirmed) waits for one sync and is tried once more.
    pub fn handle(&self, request: &SignerRequest) -> SignerResponse {
        if self.is_revoked() {
            tracing::warn!("request refused: the operator's access is revoked");
            return SignerResponse::Revoked;
        }
        let name = request_name(request);
        let mut result = self.answer_guarded(request);
        if matches!(&result, Err(o) if o.is_temporary()) && self.sync_chain_now() {
            result = self.answer_guarded(request);
        }
        match result {
            Ok(reply) => SignerResponse::Ok { reply },
            Err(outcome) => {
                match &outcome {
                    Outcome::Refused {
                        rule,
                        message,
                        temporary,
                    } => {
                        tracing::warn!(request = name, %rule, %message, temporary, "REFUSED")
                    }
                    Outcome::Failed(message) => {
                        tracing::warn!(request = name, %message, "request failed")
                    }
                }
                outcome.into_response()
            }
        }
    }

    fn answer_guarded(&self, request: &SignerRequest) -> Result<SignerReply, Outcome> {
        // VLS asserts on a few internal invariants; a panic must not take the signer down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.answer(request)))
            .unwrap_or_else(|_| Err(Outcome::bad("internal signer error")))
    }

    /// Asks the chain follower, if one runs, to catch up now; `true` once it has.
    fn sync_chain_now(&self) -> bool {
        self.chain_sync
            .get()
            .is_some_and(|sync| sync.sync_blocking(CHAIN_CATCH_UP))
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
                    state_key: Hex(self.state_key.to_vec()),
                    allow_routing: self.policy.allow_routing,
                    fee_allowance: self.policy.fee_allowance(),
                    max_dust_in_flight_sat: self.policy.max_dust_in_flight_sat,
                    app_token_root: self.apps.root_public_key(),
                    requires_app_requests: self.policy.require_app_requests,
                }))
            }
            SignerRequest::Ecdh { other_key, tweak } => {
                // The node key is in no script: ECDH with it (peer handshakes, onions) can
                // reveal no fund key. Only a valid point and tweak are required.
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
                self.check_invoice(signed.raw_invoice())?;
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
                match &owned {
                    OwnedGossip::Announcement(m) => self.check_node_channel_announcement(m)?,
                    OwnedGossip::Node(m) => self.check_node_announcement(m)?,
                    OwnedGossip::Update(m) => self.check_channel_update(m)?,
                }
                let sig = self
                    .node()
                    .sign_gossip_message(&owned.as_message())
                    .map_err(Outcome::from_status)?;
                Ok(sig_reply(&sig))
            }
            SignerRequest::SignMessage { message } => {
                // Signed as sha256d("Lightning Signed Message:" || message): the fixed prefix
                // keeps it from ever being a transaction digest.
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
            SignerRequest::SignWalletPsbt {
                psbt,
                authorization,
            } => self.sign_wallet_psbt(&psbt.0, authorization.as_ref()),
            SignerRequest::ApproveInvoice {
                invoice,
                amount_msat,
                authorization,
            } => self.approve_invoice(invoice, *amount_msat, authorization.as_ref()),
            SignerRequest::ApproveKeysend {
                payee,
                payment_hash,
                amount_msat,
                authorization,
            } => {
                let payee = PublicKey::from_slice(&payee.0)
                    .map_err(|e| Outcome::bad(format!("bad payee: {e}")))?;
                let hash = key32(payment_hash, "payment hash")?;
                let claim = PaymentClaim {
                    method: AppMethod::Keysend,
                    target: hex::encode(payee.serialize()),
                    payment_hash: hex::encode(hash),
                    amount_msat: *amount_msat,
                    cost_msat: self.policy.payment_cost_msat(*amount_msat),
                    sends_everything: false,
                };
                self.approve_bound(hash, &claim, authorization.as_ref(), || {
                    self.node()
                        .add_keysend(payee, PaymentHash(hash), *amount_msat)
                        .map_err(Outcome::from_status)
                })
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

    /// Charges a payment's cost (amount plus fee allowance) to the velocity limits.
    fn check_velocity(&self, payment_hash: &str, amount_msat: u64) -> Result<(), Outcome> {
        self.velocity
            .approve(payment_hash, self.policy.payment_cost_msat(amount_msat))
            .map_err(|e| match e {
                crate::velocity::VelocityError::Storage(m) => Outcome::bad(m),
                crate::velocity::VelocityError::Unreadable { .. } => {
                    Outcome::refused("velocity-log-unreadable", e.to_string())
                }
                other => Outcome::refused("velocity-limit", other.to_string()),
            })
    }

    fn approve_invoice(
        &self,
        invoice: &str,
        amount_msat: Option<u64>,
        authorization: Option<&PaymentAuthorization>,
    ) -> Result<SignerReply, Outcome> {
        let parsed = Bolt11Invoice::from_str(invoice)
            .map_err(|e| Outcome::bad(format!("bad invoice: {e}")))?;
        // What is paid: the node's amount when it gives one (never below the invoice's).
        let amount = match (parsed.amount_milli_satoshis(), amount_msat) {
            (Some(asked), Some(paid)) if paid < asked => {
                return Err(Outcome::bad(format!(
                    "{paid} msat is below the invoice's {asked} msat"
                )))
            }
            (_, Some(paid)) => paid,
            (Some(asked), None) => asked,
            (None, None) => return Err(Outcome::bad("the invoice has no amount")),
        };
        let hash: [u8; 32] = *parsed.payment_hash().as_ref();
        let claim = PaymentClaim {
            method: AppMethod::PayInvoice,
            target: hex::encode(hash),
            payment_hash: hex::encode(hash),
            amount_msat: amount,
            cost_msat: self.policy.payment_cost_msat(amount),
            sends_everything: false,
        };
        self.approve_bound(hash, &claim, authorization, || {
            if parsed.amount_milli_satoshis().is_some() {
                self.node()
                    .add_invoice(Invoice::Bolt11(parsed))
                    .map_err(Outcome::from_status)
            } else {
                // VLS takes an any-amount invoice's amount as 0 and would refuse every HTLC
                // of it; the payment is recorded with the amount approved above instead
                // (VLS's keysend record: payee, hash and amount).
                let payee = parsed.recover_payee_pub_key();
                self.node()
                    .add_keysend(payee, PaymentHash(hash), amount)
                    .map_err(Outcome::from_status)
            }
        })
    }

    /// Approves a payment: never one that already settled ([`crate::settled`]), then the
    /// app's request (unless the policy lets the node pay on its own), then the velocity limits, then VLS (`add_to_vls`), then the balance credit.
    /// An app approval whose payment a later rule refuses is taken back.
    fn approve_bound(
        &self,
        hash: [u8; 32],
        claim: &PaymentClaim,
        authorization: Option<&PaymentAuthorization>,
        add_to_vls: impl FnOnce() -> Result<bool, Outcome>,
    ) -> Result<SignerReply, Outcome> {
        self.refuse_settled(&hash)?;
        let recorded =
            self.apps
                .authorize(authorization, claim, self.policy.require_app_requests)?;
        let rest = (|| {
            self.check_velocity(&claim.payment_hash, claim.amount_msat)?;
            if !add_to_vls()? {
                return Err(velocity_refusal());
            }
            self.grant_payment_credit(&hash, claim.amount_msat)
        })();
        match rest {
            Ok(()) => Ok(SignerReply::Done),
            Err(refusal) => {
                if let Some(recorded) = &recorded {
                    self.apps.forget(recorded);
                }
                Err(refusal)
            }
        }
    }
}

fn velocity_refusal() -> Outcome {
    Outcome::refused(
        "policy-commitment-payment-velocity",
        "the signer's payment velocity limit would be exceeded",
    )
}

enum OwnedGossip {
    Announcement(UnsignedChannelAnnouncement),
    Node(UnsignedNodeAnnouncement),
    Update(UnsignedChannelUpdate),
}

impl OwnedGossip {
    /// Parses a 2-byte type and the message. Bytes that are not a gossip message are refused
    /// (not merely failed): a node asking to sign them is up to no good.
    fn parse(bytes: &[u8]) -> Result<Self, Outcome> {
        let refuse = |what: String| Outcome::refused(crate::gossip::GOSSIP_RULE, what);
        let (kind, body) = bytes
            .split_at_checked(2)
            .ok_or_else(|| refuse("gossip message too short".into()))?;
        let bad = |e| refuse(format!("not a gossip message: {e:?}"));
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
            other => Err(refuse(format!("unknown gossip type {other}"))),
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
