//! The JSON-lines protocol: commands in, answers out.
//!
//! A command is an object whose `cmd` names it, e.g. `{"cmd":"open_channel","node_id":"02..",
//! "addr":"127.0.0.1:9735","sat":100000}`. Unknown fields are errors. Amounts are integers in
//! sat or msat as their names say; ids are lowercase hex; `user_channel_id` is a decimal string
//! (it is a u128, beyond what JSON numbers carry safely).
//!
//! Commands without arguments are empty struct variants (`Info {}`), so that serde rejects
//! unknown fields for them too.

use serde::{Deserialize, Serialize};

/// One command, read from one stdin line.
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// The node's id, listening addresses, best block and sync timestamps.
    Info {},
    /// `Node::sync_wallets`: refresh fee rates, catch the wallets and channels up with the chain.
    Sync {},
    /// A fresh on-chain address of the node's wallet.
    NewAddress {},
    /// Every balance ldk-node knows.
    Balances {},
    /// Connects to a peer (and remembers it).
    Connect { node_id: String, addr: String },
    /// The peers ldk-node knows, connected or not.
    Peers {},
    /// Opens a channel of `sat` to `node_id` at `addr`; `announce` opens an announced one.
    OpenChannel {
        node_id: String,
        addr: String,
        sat: u64,
        #[serde(default)]
        push_msat: u64,
        #[serde(default)]
        announce: bool,
    },
    /// Every channel.
    Channels {},
    /// A BOLT11 invoice for `amount_msat`.
    Invoice {
        amount_msat: u64,
        #[serde(default)]
        description: String,
        #[serde(default = "default_expiry")]
        expiry_secs: u32,
    },
    /// A BOLT11 invoice for `amount_msat` whose preimage only the caller knows (a hold
    /// invoice): a payment to it waits (`PaymentClaimable`) until `claim_for_hash` or
    /// `fail_for_hash`.
    HoldInvoice {
        amount_msat: u64,
        payment_hash: String,
        #[serde(default)]
        description: String,
        #[serde(default = "default_expiry")]
        expiry_secs: u32,
    },
    /// Claims a held payment with its preimage (also after its channel closed: on chain).
    ClaimForHash {
        payment_hash: String,
        claimable_amount_msat: u64,
        preimage: String,
    },
    /// Fails a held payment back.
    FailForHash { payment_hash: String },
    /// Pays a BOLT11 invoice (returns at once with the payment id; see `payment` and events).
    Pay { bolt11: String },
    /// Sends a spontaneous payment.
    Keysend { node_id: String, amount_msat: u64 },
    /// One payment by id.
    Payment { payment_id: String },
    /// Pays on chain from the wallet; `sat_per_vb` of `None` uses ldk-node's estimate.
    SendOnchain {
        address: String,
        sat: u64,
        #[serde(default)]
        sat_per_vb: Option<u64>,
    },
    /// Closes a channel cooperatively.
    Close {
        user_channel_id: String,
        counterparty: String,
    },
    /// Force-closes a channel, broadcasting our commitment.
    ForceClose {
        user_channel_id: String,
        counterparty: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// The next event without waiting (`null` if there is none); it stays queued until
    /// `event_handled`.
    NextEvent {},
    /// Like `next_event`, waiting up to `timeout_ms` for one.
    WaitEvent { timeout_ms: u64 },
    /// Drops the current event from the queue.
    EventHandled {},
    /// Stops the node and exits after answering.
    Stop {},
}

fn default_expiry() -> u32 {
    3600
}

/// The line printed once the node runs: `{"ready": Ready}`.
#[derive(Debug, Serialize)]
pub struct Ready {
    pub node_id: String,
    pub listen: String,
    pub alias: String,
    pub anchor_reserve_per_channel_sat: u64,
    pub best_block_height: u32,
}

/// Answer to `info`.
#[derive(Debug, Serialize)]
pub struct Info {
    pub node_id: String,
    pub listening_addresses: Vec<String>,
    pub alias: Option<String>,
    pub is_running: bool,
    pub best_block_height: u32,
    pub best_block_hash: String,
    pub anchor_reserve_per_channel_sat: u64,
    pub latest_onchain_wallet_sync_timestamp: Option<u64>,
    pub latest_lightning_wallet_sync_timestamp: Option<u64>,
    pub latest_fee_rate_cache_update_timestamp: Option<u64>,
}

/// Answer to `balances`.
#[derive(Debug, Serialize)]
pub struct Balances {
    pub total_onchain_sat: u64,
    pub spendable_onchain_sat: u64,
    pub total_anchor_channels_reserve_sat: u64,
    pub total_lightning_sat: u64,
    pub lightning_balances: Vec<LightningBalance>,
    pub pending_sweep_balances: Vec<PendingSweep>,
}

/// One of ldk-node's `LightningBalance`s, flattened: `kind` is the variant's name, the fields
/// that variant lacks are `null`.
#[derive(Debug, Default, Serialize)]
pub struct LightningBalance {
    pub kind: &'static str,
    pub channel_id: String,
    pub counterparty_node_id: String,
    pub amount_sat: u64,
    /// `ClaimableOnChannelClose`: the commitment transaction's fee, paid by the funder (0 if
    /// the counterparty funded the channel); not included in `amount_sat`.
    pub transaction_fee_sat: Option<u64>,
    pub outbound_payment_htlc_rounded_msat: Option<u64>,
    pub outbound_forwarded_htlc_rounded_msat: Option<u64>,
    pub inbound_claiming_htlc_rounded_msat: Option<u64>,
    pub inbound_htlc_rounded_msat: Option<u64>,
    pub confirmation_height: Option<u32>,
    /// `ClaimableAwaitingConfirmations`: where it comes from (`HolderForceClosed`, ...).
    pub source: Option<String>,
    pub timeout_height: Option<u32>,
    pub claimable_height: Option<u32>,
    pub expiry_height: Option<u32>,
    pub payment_hash: Option<String>,
    pub outbound_payment: Option<bool>,
}

/// One of ldk-node's `PendingSweepBalance`s, flattened like [`LightningBalance`].
#[derive(Debug, Default, Serialize)]
pub struct PendingSweep {
    pub kind: &'static str,
    pub channel_id: Option<String>,
    pub amount_sat: u64,
    pub latest_spending_txid: Option<String>,
    pub latest_broadcast_height: Option<u32>,
    pub confirmation_height: Option<u32>,
}

/// One channel in the answer to `channels`.
#[derive(Debug, Serialize)]
pub struct Channel {
    pub channel_id: String,
    pub user_channel_id: String,
    pub counterparty_node_id: String,
    pub value_sat: u64,
    pub outbound_capacity_msat: u64,
    pub inbound_capacity_msat: u64,
    pub funding_txo: Option<String>,
    pub short_channel_id: Option<u64>,
    pub is_outbound: bool,
    pub is_channel_ready: bool,
    pub is_usable: bool,
    pub is_announced: bool,
    pub confirmations: Option<u32>,
    pub feerate_sat_per_kw: u32,
    /// Our reserve the counterparty requires (sat), once known.
    pub unspendable_punishment_reserve_sat: Option<u64>,
    /// Whether the channel type has anchors. ldk-node 0.7.1 does not expose channel types,
    /// so this is inferred from the anchor reserve ldk-node keeps (it counts anchor channels);
    /// `null` when that cannot tell (see the README).
    pub anchors: Option<bool>,
}

/// One peer in the answer to `peers`.
#[derive(Debug, Serialize)]
pub struct Peer {
    pub node_id: String,
    pub address: String,
    pub is_connected: bool,
    pub is_persisted: bool,
}

/// Answer to `payment`.
#[derive(Debug, Serialize)]
pub struct Payment {
    pub payment_id: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// `pending`, `succeeded` or `failed`.
    pub status: &'static str,
    /// `bolt11`, `spontaneous`, `onchain`, ...
    pub kind: &'static str,
    pub amount_msat: Option<u64>,
    pub fee_paid_msat: Option<u64>,
    pub payment_hash: Option<String>,
    pub preimage: Option<String>,
    pub txid: Option<String>,
}

/// An ldk-node event, tagged by `type`.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    ChannelPending {
        channel_id: String,
        user_channel_id: String,
        former_temporary_channel_id: String,
        counterparty_node_id: String,
        funding_txo: String,
    },
    ChannelReady {
        channel_id: String,
        user_channel_id: String,
        counterparty_node_id: Option<String>,
        funding_txo: Option<String>,
    },
    ChannelClosed {
        channel_id: String,
        user_channel_id: String,
        counterparty_node_id: Option<String>,
        /// The `ClosureReason` variant, e.g. `CounterpartyInitiatedCooperativeClosure`.
        reason_kind: Option<String>,
        /// The reason as LDK words it.
        reason: Option<String>,
    },
    PaymentSuccessful {
        payment_id: Option<String>,
        payment_hash: String,
        payment_preimage: Option<String>,
        fee_paid_msat: Option<u64>,
    },
    PaymentFailed {
        payment_id: Option<String>,
        payment_hash: Option<String>,
        reason: Option<String>,
    },
    PaymentReceived {
        payment_id: Option<String>,
        payment_hash: String,
        amount_msat: u64,
    },
    PaymentClaimable {
        payment_id: String,
        payment_hash: String,
        claimable_amount_msat: u64,
    },
    PaymentForwarded {
        prev_channel_id: String,
        next_channel_id: String,
        total_fee_earned_msat: Option<u64>,
        outbound_amount_forwarded_msat: Option<u64>,
    },
    SplicePending {
        channel_id: String,
        user_channel_id: String,
        counterparty_node_id: String,
        new_funding_txo: String,
    },
    SpliceFailed {
        channel_id: String,
        user_channel_id: String,
        counterparty_node_id: String,
    },
}
