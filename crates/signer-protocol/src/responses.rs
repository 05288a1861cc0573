//! What the signer answers.

use serde::{Deserialize, Serialize};

use crate::Hex;

/// The signer's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignerResponse {
    /// Done.
    Ok {
        /// The result.
        reply: SignerReply,
    },
    /// Refused by policy: signing this would be unsafe for the key owner.
    Refused {
        /// The rule that fired, e.g. `policy-commitment-payment-velocity`.
        rule: String,
        /// Why, in words.
        message: String,
        /// Whether the same request may succeed later (the signer's view of the chain is
        /// behind, a funding output is not buried yet): the node retries after a while
        /// instead of giving up.
        #[serde(default)]
        temporary: bool,
    },
    /// The signer could not do it (bad input, unknown channel, internal error).
    Failed {
        /// Why, in words.
        message: String,
    },
    /// The tenant revoked this node: the signer signs nothing for it any more.
    Revoked,
}

/// The successful result of a request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignerReply {
    /// Answer to [`crate::SignerRequest::Hello`].
    Hello(SignerHello),
    /// A 33-byte public key.
    PublicKey {
        /// The key.
        key: Hex,
    },
    /// 32 bytes of secret output (ECDH, released commitment secret).
    Secret32 {
        /// The bytes.
        bytes: Hex,
    },
    /// A compact ECDSA signature (64 bytes).
    Signature {
        /// The signature.
        sig: Hex,
    },
    /// A commitment signature with its HTLC signatures.
    CommitmentSignatures {
        /// The commitment signature.
        sig: Hex,
        /// One per non-dust HTLC, in LDK's order.
        htlc_sigs: Vec<Hex>,
    },
    /// A recoverable signature (65 bytes: recovery id, then compact).
    RecoverableSignature {
        /// The signature.
        sig: Hex,
    },
    /// A zbase32 message signature.
    MessageSignature {
        /// The signature text.
        signature: String,
    },
    /// Keys of a (new) channel.
    ChannelKeys {
        /// LDK's channel keys id.
        keys_id: Hex,
        /// `ChannelPublicKeys`, LDK-encoded.
        pubkeys: Hex,
    },
    /// A signed transaction (consensus).
    Transaction {
        /// The transaction.
        tx: Hex,
    },
    /// A signed PSBT.
    Psbt {
        /// The PSBT.
        psbt: Hex,
    },
    /// Done, nothing to return.
    Done,
}

/// What the signer tells a node when it connects.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignerHello {
    /// The signer's [`crate::PROTOCOL_VERSION`].
    pub version: u32,
    /// The Lightning node id (33 bytes).
    pub node_id: Hex,
    /// The on-chain wallet's account xpub (layer-1 keys derive as `xpub/<chain>/<index>`).
    pub wallet_xpub: String,
    /// Key material for inbound payment secrets (LDK `ExpandedKey`, 32 bytes). It protects the
    /// node against forged payment secrets; it cannot move funds. Kept in memory only.
    pub inbound_payment_key: Hex,
    /// LDK peer-storage key (32 bytes); encrypts backups held by peers. Memory only.
    pub peer_storage_key: Hex,
    /// LDK receive-auth key (32 bytes); authenticates blinded-path receives. Memory only.
    pub receive_auth_key: Hex,
    /// The key that seals the node's state in a fleet's database (32 bytes), derived from the
    /// seed: the operator's database then holds nothing it can read, and the state opens
    /// only while this signer is connected. It cannot move funds. Memory only.
    pub state_key: Hex,
    /// Whether the tenant lets this node forward payments. When false the signer refuses
    /// every outgoing HTLC that is not one of the tenant's own approved payments, so the node
    /// must not announce channels or accept forwards.
    pub allow_routing: bool,
    /// The most a payment may spend in routing fees: the signer refuses a payment whose
    /// HTLCs exceed its amount plus this, so the node limits its routes to it.
    pub fee_allowance: FeeAllowance,
    /// The most value a channel may hold in dust HTLCs at once, in sat: the signer refuses a
    /// state with more, so the node caps its dust exposure to it.
    pub max_dust_in_flight_sat: u64,
    /// The public key (`ed25519/<hex>`) of the tenant's capability-token root, derived from
    /// the seed: the node verifies tokens with it and can never mint one.
    pub app_token_root: String,
    /// Whether the signer approves only payments an app of the tenant signed a request for
    /// (a payment the node starts on its own is refused).
    pub requires_app_requests: bool,
}

/// The routing-fee allowance of one payment: `min(max_msat, base_msat + amount ×
/// proportional_millionths / 1,000,000)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeAllowance {
    /// Fixed part, msat.
    pub base_msat: u64,
    /// Proportional part, millionths of the amount.
    pub proportional_millionths: u64,
    /// Ceiling, msat.
    pub max_msat: u64,
}

impl FeeAllowance {
    /// The allowance for a payment of `amount_msat`.
    pub fn for_amount(&self, amount_msat: u64) -> u64 {
        let proportional =
            (u128::from(amount_msat) * u128::from(self.proportional_millionths) / 1_000_000) as u64;
        self.base_msat
            .saturating_add(proportional)
            .min(self.max_msat)
    }
}
