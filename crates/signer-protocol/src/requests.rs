//! What the node asks of the signer.

use serde::{Deserialize, Serialize};

use crate::Hex;

/// A request from the node to the signer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum SignerRequest {
    /// First message on every connection: protocol check and the node's public material.
    Hello {
        /// The node's [`crate::PROTOCOL_VERSION`].
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
        #[serde(with = "crate::u128_string")]
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
        /// For an on-chain send an app asked for: its signed request, which lets the one
        /// output it names pay outside the wallet and the allow-list.
        #[serde(default)]
        authorization: Option<crate::PaymentAuthorization>,
    },
    /// Ask to pay an invoice; the signer checks its payment policy (velocity) and records the
    /// approval, which the commitment checks then require.
    ApproveInvoice {
        /// The BOLT 11 invoice.
        invoice: String,
        /// The amount when the invoice has none, in msat.
        amount_msat: Option<u64>,
        /// The app's signed request for this payment, when an app asked for it.
        #[serde(default)]
        authorization: Option<crate::PaymentAuthorization>,
    },
    /// Ask to send a spontaneous (keysend) payment.
    ApproveKeysend {
        /// The payee's node id (33 bytes).
        payee: Hex,
        /// The payment hash (32 bytes).
        payment_hash: Hex,
        /// The amount in msat.
        amount_msat: u64,
        /// The app's signed request for this payment, when an app asked for it.
        #[serde(default)]
        authorization: Option<crate::PaymentAuthorization>,
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
    /// Sign the input spending our anchor output of our own commitment (a CPFP fee bump).
    SignHolderAnchor {
        /// The spending transaction (consensus).
        tx: Hex,
        /// The anchor input's index.
        input: u32,
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
