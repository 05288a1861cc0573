//! The peer's answers, decoded: one type per answer shape of `interop/ldk-peer`'s protocol.

use std::fmt;
use std::str::FromStr;

use bitcoin::secp256k1::PublicKey;
use bitcoin::OutPoint;
use serde::{Deserialize, Deserializer};

/// The `u128` ldk-node gives each channel, written as a decimal string on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct UserChannelId(pub u128);

impl TryFrom<String> for UserChannelId {
    type Error = std::num::ParseIntError;
    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        s.parse().map(UserChannelId)
    }
}

impl fmt::Display for UserChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub(super) fn de_str<'de, D: Deserializer<'de>, T: FromStr>(
    d: D,
) -> std::result::Result<T, D::Error>
where
    T::Err: fmt::Display,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn de_opt_str<'de, D: Deserializer<'de>, T: FromStr>(
    d: D,
) -> std::result::Result<Option<T>, D::Error>
where
    T::Err: fmt::Display,
{
    match Option::<String>::deserialize(d)? {
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
        None => Ok(None),
    }
}

/// The answer to [`LdkPeer::info`](super::LdkPeer::info).
#[derive(Clone, Debug, Deserialize)]
pub struct PeerInfo {
    /// The node id.
    #[serde(deserialize_with = "de_str")]
    pub node_id: PublicKey,
    /// Where it listens.
    pub listening_addresses: Vec<String>,
    /// Its alias.
    pub alias: Option<String>,
    /// Whether the node runs.
    pub is_running: bool,
    /// The height of its best block.
    pub best_block_height: u32,
    /// The hash of its best block.
    pub best_block_hash: String,
    /// The anchor reserve it keeps per anchor channel (sat).
    pub anchor_reserve_per_channel_sat: u64,
    /// When the on-chain wallet last synced (Unix seconds).
    pub latest_onchain_wallet_sync_timestamp: Option<u64>,
    /// When the channels last synced (Unix seconds).
    pub latest_lightning_wallet_sync_timestamp: Option<u64>,
    /// When the fee-rate cache was last refreshed (Unix seconds).
    pub latest_fee_rate_cache_update_timestamp: Option<u64>,
}

/// The answer to [`LdkPeer::balances`](super::LdkPeer::balances): ldk-node's `BalanceDetails`.
#[derive(Clone, Debug, Deserialize)]
pub struct PeerBalances {
    /// Everything in the on-chain wallet (sat).
    pub total_onchain_sat: u64,
    /// What may be spent: the total less the anchor reserve (sat).
    pub spendable_onchain_sat: u64,
    /// The reserve kept for anchor channels (sat): per-channel reserve times anchor channels,
    /// at most the on-chain total.
    pub total_anchor_channels_reserve_sat: u64,
    /// The sum of all Lightning balances' amounts (sat).
    pub total_lightning_sat: u64,
    /// Each Lightning balance, from the channel monitors.
    pub lightning_balances: Vec<PeerLightningBalance>,
    /// Outputs from closed channels the sweeper is handling.
    pub pending_sweep_balances: Vec<PeerPendingSweep>,
}

/// One of ldk-node's `LightningBalance`s; the fields the kind lacks are `None`.
#[derive(Clone, Debug, Deserialize)]
pub struct PeerLightningBalance {
    /// The variant: `ClaimableOnChannelClose`, `ClaimableAwaitingConfirmations`,
    /// `ContentiousClaimable`, `MaybeTimeoutClaimableHTLC`, `MaybePreimageClaimableHTLC` or
    /// `CounterpartyRevokedOutputClaimable`.
    pub kind: String,
    /// The channel (hex).
    pub channel_id: String,
    /// The counterparty.
    pub counterparty_node_id: String,
    /// The amount (sat).
    pub amount_sat: u64,
    /// `ClaimableOnChannelClose`: the commitment fee the funder pays, not in `amount_sat`.
    pub transaction_fee_sat: Option<u64>,
    /// `ClaimableOnChannelClose`: msat of outbound payment HTLCs rounded away.
    pub outbound_payment_htlc_rounded_msat: Option<u64>,
    /// `ClaimableOnChannelClose`: msat of forwarded HTLCs rounded away.
    pub outbound_forwarded_htlc_rounded_msat: Option<u64>,
    /// `ClaimableOnChannelClose`: msat of inbound HTLCs being claimed, rounded away.
    pub inbound_claiming_htlc_rounded_msat: Option<u64>,
    /// `ClaimableOnChannelClose`: msat of other inbound HTLCs rounded away.
    pub inbound_htlc_rounded_msat: Option<u64>,
    /// `ClaimableAwaitingConfirmations`: the height at which it becomes spendable.
    pub confirmation_height: Option<u32>,
    /// `ClaimableAwaitingConfirmations`: `HolderForceClosed`, `CounterpartyForceClosed`,
    /// `CoopClose` or `Htlc`.
    pub source: Option<String>,
    /// `ContentiousClaimable`: the HTLC's timeout height.
    pub timeout_height: Option<u32>,
    /// `MaybeTimeoutClaimableHTLC`: when it may be claimed back.
    pub claimable_height: Option<u32>,
    /// `MaybePreimageClaimableHTLC`: the HTLC's expiry.
    pub expiry_height: Option<u32>,
    /// The HTLC's payment hash, for HTLC kinds.
    pub payment_hash: Option<String>,
    /// `MaybeTimeoutClaimableHTLC`: whether it is our outbound payment.
    pub outbound_payment: Option<bool>,
}

/// One of ldk-node's `PendingSweepBalance`s.
#[derive(Clone, Debug, Deserialize)]
pub struct PeerPendingSweep {
    /// `PendingBroadcast`, `BroadcastAwaitingConfirmation` or `AwaitingThresholdConfirmations`.
    pub kind: String,
    /// The channel it comes from (hex), if known.
    pub channel_id: Option<String>,
    /// The output's value (sat).
    pub amount_sat: u64,
    /// The latest sweep transaction, once broadcast.
    pub latest_spending_txid: Option<String>,
    /// When the sweep was last broadcast.
    pub latest_broadcast_height: Option<u32>,
    /// When the sweep confirmed.
    pub confirmation_height: Option<u32>,
}

/// One channel from [`LdkPeer::channels`](super::LdkPeer::channels).
#[derive(Clone, Debug, Deserialize)]
pub struct PeerChannel {
    /// The channel id (hex).
    pub channel_id: String,
    /// ldk-node's id for it, used to close it.
    pub user_channel_id: UserChannelId,
    /// The counterparty.
    #[serde(deserialize_with = "de_str")]
    pub counterparty_node_id: PublicKey,
    /// The channel's value (sat).
    pub value_sat: u64,
    /// What we can send now (msat).
    pub outbound_capacity_msat: u64,
    /// What we can receive now (msat).
    pub inbound_capacity_msat: u64,
    /// The funding outpoint, once known.
    #[serde(deserialize_with = "de_opt_str")]
    pub funding_txo: Option<OutPoint>,
    /// The short channel id, once confirmed.
    pub short_channel_id: Option<u64>,
    /// Whether we opened it.
    pub is_outbound: bool,
    /// Whether both sides sent `channel_ready`.
    pub is_channel_ready: bool,
    /// Whether it can carry payments now.
    pub is_usable: bool,
    /// Whether it is announced.
    pub is_announced: bool,
    /// Confirmations of the funding transaction.
    pub confirmations: Option<u32>,
    /// The commitment transactions' fee rate (sat per 1000 weight).
    pub feerate_sat_per_kw: u32,
    /// The reserve our counterparty requires us to keep (sat).
    pub unspendable_punishment_reserve_sat: Option<u64>,
    /// Whether the channel type has anchors, inferred from ldk-node's anchor reserve (ldk-node
    /// 0.7.1 does not expose channel types); `None` when that cannot tell.
    pub anchors: Option<bool>,
}

/// A peer from [`LdkPeer::peers`](super::LdkPeer::peers).
#[derive(Clone, Debug, Deserialize)]
pub struct PeerConnection {
    /// Its node id.
    #[serde(deserialize_with = "de_str")]
    pub node_id: PublicKey,
    /// Its address.
    pub address: String,
    /// Whether it is connected now.
    pub is_connected: bool,
    /// Whether ldk-node reconnects to it after a restart.
    pub is_persisted: bool,
}

/// An invoice from [`LdkPeer::invoice`](super::LdkPeer::invoice).
#[derive(Clone, Debug, Deserialize)]
pub struct PeerInvoice {
    /// The BOLT11 string.
    pub bolt11: String,
    /// Its payment hash (hex).
    pub payment_hash: String,
}

/// A payment from [`LdkPeer::payment`](super::LdkPeer::payment).
#[derive(Clone, Debug, Deserialize)]
pub struct PeerPayment {
    /// The payment id (hex).
    pub payment_id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// `bolt11`, `spontaneous`, `onchain`, `bolt11_jit`, `bolt12_offer` or `bolt12_refund`.
    pub kind: String,
    /// The amount (msat), when known.
    pub amount_msat: Option<u64>,
    /// Routing fees paid (msat), for outbound payments that succeeded.
    pub fee_paid_msat: Option<u64>,
    /// The payment hash (hex).
    pub payment_hash: Option<String>,
    /// The preimage (hex), once known.
    pub preimage: Option<String>,
    /// The transaction, for on-chain payments.
    pub txid: Option<String>,
}

/// An ldk-node event, as the peer reports it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type")]
#[allow(missing_docs)] // The fields are ldk-node's, named as there.
pub enum PeerEvent {
    /// The funding transaction is broadcast.
    ChannelPending {
        channel_id: String,
        user_channel_id: UserChannelId,
        former_temporary_channel_id: String,
        counterparty_node_id: String,
        funding_txo: String,
    },
    /// The channel can be used.
    ChannelReady {
        channel_id: String,
        user_channel_id: UserChannelId,
        counterparty_node_id: Option<String>,
        funding_txo: Option<String>,
    },
    /// The channel closed; `reason_kind` is LDK's `ClosureReason` variant.
    ChannelClosed {
        channel_id: String,
        user_channel_id: UserChannelId,
        counterparty_node_id: Option<String>,
        reason_kind: Option<String>,
        reason: Option<String>,
    },
    /// An outbound payment succeeded.
    PaymentSuccessful {
        payment_id: Option<String>,
        payment_hash: String,
        payment_preimage: Option<String>,
        fee_paid_msat: Option<u64>,
    },
    /// An outbound payment failed.
    PaymentFailed {
        payment_id: Option<String>,
        payment_hash: Option<String>,
        reason: Option<String>,
    },
    /// An inbound payment was claimed.
    PaymentReceived {
        payment_id: Option<String>,
        payment_hash: String,
        amount_msat: u64,
    },
    /// An inbound payment for a hash-only invoice waits to be claimed.
    PaymentClaimable {
        payment_id: String,
        payment_hash: String,
        claimable_amount_msat: u64,
    },
    /// A payment was forwarded.
    PaymentForwarded {
        prev_channel_id: String,
        next_channel_id: String,
        total_fee_earned_msat: Option<u64>,
        outbound_amount_forwarded_msat: Option<u64>,
    },
    /// A splice is negotiated.
    SplicePending {
        channel_id: String,
        user_channel_id: UserChannelId,
        counterparty_node_id: String,
        new_funding_txo: String,
    },
    /// A splice failed.
    SpliceFailed {
        channel_id: String,
        user_channel_id: UserChannelId,
        counterparty_node_id: String,
    },
}
