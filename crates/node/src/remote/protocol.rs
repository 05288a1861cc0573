//! The node ↔ signer request protocol.
//!
//! The node is the caller: it sends one [`SignerRequest`] per signing operation and the signer
//! answers with a [`SignerResponse`]. Messages are JSON (one per link frame); LDK values travel
//! as their own LDK serialization (`Writeable`), Bitcoin values as consensus encoding, both as
//! hex. The link under it (`micronode-link`) provides authentication, encryption and replay
//! protection; this module only defines meaning.
//!
//! Commitment numbers are sent exactly as LDK gives them (counting down from 2^48 - 1); the
//! signer converts them for VLS.

use serde::{Deserialize, Serialize};

/// Version of this protocol. The signer refuses a node that speaks another one.
pub const PROTOCOL_VERSION: u32 = 1;

/// Bytes that travel as a hex string.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Hex(pub Vec<u8>);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map(Hex).map_err(serde::de::Error::custom)
    }
}

impl From<Vec<u8>> for Hex {
    fn from(v: Vec<u8>) -> Self {
        Hex(v)
    }
}

/// A `u128` as a decimal string: JSON numbers that large do not survive the internally tagged
/// enums serde buffers through.
mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One request with its correlation id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// Chosen by the node, echoed in the response.
    pub id: u64,
    /// What is asked.
    pub request: SignerRequest,
}

/// One response with the id of its request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    /// The request's id.
    pub id: u64,
    /// The answer.
    pub response: SignerResponse,
}

/// A request from the node to the signer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum SignerRequest {
    /// First message on every connection: protocol check and the node's public material.
    Hello {
        /// The node's [`PROTOCOL_VERSION`].
        version: u32,
    },
    /// ECDH with the node key (peer handshakes, onion decoding).
    Ecdh {
        /// The other party's public key (33 bytes).
        other_key: Hex,
        /// Optional tweak applied to the node secret first (32 bytes).
        tweak: Option<Hex>,
    },
    /// Sign a BOLT 11 invoice we issue.
    SignInvoice {
        /// The unsigned invoice as a BOLT 11 string whose signature field is a placeholder;
        /// the signer parses it, ignores the placeholder and signs the raw invoice.
        invoice: String,
    },
    /// Sign a gossip message with the node key.
    SignGossip {
        /// The message, LDK-encoded, including its 2-byte type.
        message: Hex,
    },
    /// Sign a message with the node key (lightning "signmessage" format).
    SignMessage {
        /// The message bytes.
        message: Hex,
    },
    /// Create keys for a new channel.
    NewChannel {
        /// Whether the counterparty opened the channel.
        inbound: bool,
        /// LDK's user channel id (a decimal string on the wire).
        #[serde(with = "u128_string")]
        user_channel_id: u128,
    },
    /// The public keys of an existing channel.
    ChannelPubkeys {
        /// LDK's channel keys id.
        keys_id: Hex,
    },
    /// An operation on one channel.
    Channel {
        /// LDK's channel keys id.
        keys_id: Hex,
        /// The operation.
        op: ChannelOp,
    },
    /// Sign a sweep of outputs LDK handed us after a close.
    SpendOutputs {
        /// Each descriptor, LDK-encoded.
        descriptors: Vec<Hex>,
        /// Extra outputs (consensus-encoded `Vec<TxOut>`).
        outputs: Hex,
        /// Where the change goes.
        change_script: Hex,
        /// The wallet path of `change_script` (e.g. `[1, 7]`), so the signer can check it is ours.
        change_path: Vec<u32>,
        /// Fee rate, sat per 1000 weight.
        feerate_sat_per_kw: u32,
        /// Optional absolute locktime.
        locktime: Option<u32>,
    },
    /// Sign the wallet inputs of an on-chain transaction (PSBT, base64 is not used: raw bytes).
    SignWalletPsbt {
        /// The serialized PSBT.
        psbt: Hex,
    },
    /// Ask to pay an invoice; the signer checks its payment policy (velocity) and records the
    /// approval, which the commitment checks then require.
    ApproveInvoice {
        /// The BOLT 11 invoice.
        invoice: String,
        /// The amount when the invoice has none, in msat.
        amount_msat: Option<u64>,
    },
    /// Ask to send a spontaneous (keysend) payment.
    ApproveKeysend {
        /// The payee's node id (33 bytes).
        payee: Hex,
        /// The payment hash (32 bytes).
        payment_hash: Hex,
        /// The amount in msat.
        amount_msat: u64,
    },
}

/// An operation on one channel's keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelOp {
    /// The per-commitment point at `idx`.
    PerCommitmentPoint {
        /// LDK's commitment number.
        idx: u64,
    },
    /// Release the secret of our commitment `idx` (revoking it).
    ReleaseSecret {
        /// LDK's commitment number.
        idx: u64,
    },
    /// Validate a holder commitment the counterparty signed.
    ValidateHolder {
        /// The `HolderCommitmentTransaction`, LDK-encoded.
        tx: Hex,
        /// Preimages of fulfilled outbound HTLCs.
        preimages: Vec<Hex>,
    },
    /// Validate the counterparty's revocation secret.
    ValidateRevocation {
        /// LDK's commitment number.
        idx: u64,
        /// The secret (32 bytes).
        secret: Hex,
    },
    /// Sign the counterparty's next commitment.
    SignCounterparty {
        /// `ChannelTransactionParameters`, LDK-encoded.
        params: Hex,
        /// `CommitmentTransaction`, LDK-encoded.
        tx: Hex,
        /// Preimages of fulfilled inbound HTLCs.
        inbound_preimages: Vec<Hex>,
        /// Preimages of fulfilled outbound HTLCs.
        outbound_preimages: Vec<Hex>,
    },
    /// Sign our latest commitment for broadcast (a force close).
    SignHolder {
        /// `ChannelTransactionParameters`, LDK-encoded.
        params: Hex,
        /// `HolderCommitmentTransaction`, LDK-encoded.
        tx: Hex,
    },
    /// Sign a justice transaction input spending a revoked `to_local` output.
    SignJusticeOutput {
        /// The justice transaction (consensus).
        tx: Hex,
        /// The input index.
        input: u32,
        /// The input's value in sat.
        amount: u64,
        /// The revealed per-commitment secret (32 bytes).
        per_commitment_key: Hex,
        /// The wallet path of the justice output.
        wallet_path: Vec<u32>,
    },
    /// Sign a justice transaction input spending a revoked HTLC output.
    SignJusticeHtlc {
        /// The justice transaction (consensus).
        tx: Hex,
        /// The input index.
        input: u32,
        /// The input's value in sat.
        amount: u64,
        /// The revealed per-commitment secret (32 bytes).
        per_commitment_key: Hex,
        /// The HTLC, LDK-encoded.
        htlc: Hex,
        /// The wallet path of the justice output.
        wallet_path: Vec<u32>,
    },
    /// Sign our second-stage HTLC transaction.
    SignHolderHtlc {
        /// The HTLC transaction (consensus).
        tx: Hex,
        /// The input index.
        input: u32,
        /// The `HTLCDescriptor`, LDK-encoded.
        descriptor: Hex,
    },
    /// Sign a claim of an HTLC output on the counterparty's commitment.
    SignCounterpartyHtlc {
        /// The claiming transaction (consensus).
        tx: Hex,
        /// The input index.
        input: u32,
        /// The input's value in sat.
        amount: u64,
        /// The counterparty's per-commitment point (33 bytes).
        per_commitment_point: Hex,
        /// The HTLC, LDK-encoded.
        htlc: Hex,
        /// The wallet path of the claim output.
        wallet_path: Vec<u32>,
    },
    /// Sign a cooperative closing transaction.
    SignClosing {
        /// `ChannelTransactionParameters`, LDK-encoded.
        params: Hex,
        /// Our output value, sat.
        to_holder_sat: u64,
        /// Their output value, sat.
        to_counterparty_sat: u64,
        /// Our output script.
        holder_script: Hex,
        /// Their output script.
        counterparty_script: Hex,
        /// The wallet path of `holder_script`, empty if it is not a wallet script.
        holder_wallet_path: Vec<u32>,
    },
    /// Sign a channel announcement with the funding key.
    SignAnnouncement {
        /// `ChannelTransactionParameters`, LDK-encoded.
        params: Hex,
        /// The `UnsignedChannelAnnouncement`, LDK-encoded.
        message: Hex,
    },
}

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
    /// Answer to [`SignerRequest::Hello`].
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
    /// The signer's [`PROTOCOL_VERSION`].
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
}

/// Public material a watch-only node needs before its signer first connects, produced by
/// `micronode signer export-public`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerPublicInfo {
    /// The Lightning node id, hex.
    pub node_id: String,
    /// The network name (`regtest`, `signet`, `testnet`, `bitcoin`).
    pub network: String,
    /// The wallet account xpub.
    pub wallet_xpub: String,
    /// Receive descriptor, `wpkh(xpub/0/*)`.
    pub external_descriptor: String,
    /// Change descriptor, `wpkh(xpub/1/*)`.
    pub internal_descriptor: String,
}

impl SignerPublicInfo {
    /// Builds the descriptors from an account xpub.
    pub fn from_xpub(node_id: String, network: String, wallet_xpub: String) -> Self {
        let descriptors = wallet_descriptors(&wallet_xpub);
        Self {
            external_descriptor: descriptors.external,
            internal_descriptor: descriptors.internal,
            node_id,
            network,
            wallet_xpub,
        }
    }
}

/// The watch-only wallet of a remote signer: receive keys at `xpub/0/*`, change at `xpub/1/*`
/// (the signer checks every wallet path it is given against the same layout).
pub fn wallet_descriptors(wallet_xpub: &str) -> crate::keys::WalletDescriptors {
    crate::keys::WalletDescriptors {
        external: format!("wpkh({wallet_xpub}/0/*)"),
        internal: format!("wpkh({wallet_xpub}/1/*)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json() {
        let req = RequestEnvelope {
            id: 7,
            request: SignerRequest::Channel {
                keys_id: Hex(vec![1; 32]),
                op: ChannelOp::ValidateRevocation {
                    idx: 281474976710654,
                    secret: Hex(vec![2; 32]),
                },
            },
        };
        let json = serde_json::to_string(&req).unwrap();
        let back: RequestEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back.id, 7);
        match back.request {
            SignerRequest::Channel {
                keys_id,
                op: ChannelOp::ValidateRevocation { idx, secret },
            } => {
                assert_eq!(keys_id.0, vec![1; 32]);
                assert_eq!(idx, 281474976710654);
                assert_eq!(secret.0, vec![2; 32]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn full_width_user_channel_ids_round_trip() {
        let req = RequestEnvelope {
            id: 1,
            request: SignerRequest::NewChannel {
                inbound: true,
                user_channel_id: u128::MAX - 5,
            },
        };
        let json = serde_json::to_string(&req).unwrap();
        let back: RequestEnvelope = serde_json::from_str(&json).unwrap();
        match back.request {
            SignerRequest::NewChannel {
                inbound,
                user_channel_id,
            } => {
                assert!(inbound);
                assert_eq!(user_channel_id, u128::MAX - 5);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bad_hex_is_an_error_not_a_panic() {
        let bad = r#"{"id":1,"request":{"method":"sign_message","message":"zz"}}"#;
        assert!(serde_json::from_str::<RequestEnvelope>(bad).is_err());
    }
}
