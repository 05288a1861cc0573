//! `recover`: the tenant leaves without the operator. From the signer's own state and a chain
//! source the tenant trusts, every channel is closed with the latest state the signer
//! validated (or, when the counterparty already closed, claimed: a revoked state is punished,
//! a current one gives back the tenant's `to_remote`), the delayed outputs are swept to the
//! tenant's address after the contest delay, and the on-chain wallet follows, scanned up to
//! its high-water mark. See `docs/recovery.md`.

mod exits;
mod run;

use serde::Serialize;

pub use exits::ChannelExit;
pub use run::{recover, RecoverOptions};

/// Why a recovery step failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// VLS could not produce the channel's latest commitment.
    #[error("channel {channel}: cannot sign its latest commitment: {message}")]
    Commitment {
        /// The channel (hex id).
        channel: String,
        /// VLS's reason.
        message: String,
    },
    /// A signature could not be made.
    #[error("signing a sweep: {0}")]
    Signing(String),
    /// The on-chain wallet's coins could not be signed.
    #[error("wallet sweep: {0}")]
    Wallet(String),
    /// The output is too small to pay for its own sweep.
    #[error("{value_sat} sat cannot pay the {fee_sat} sat fee of its sweep")]
    Dust {
        /// The output's value.
        value_sat: u64,
        /// The fee the sweep needs.
        fee_sat: u64,
    },
    /// The fee rate asked for is above the tenant's sweep ceiling.
    #[error("{requested} sat/vB is above the sweep fee ceiling of {ceiling} sat/vB (max_sweep_feerate_sat_per_vb in signer.toml)")]
    FeeAboveCeiling {
        /// What was asked.
        requested: u64,
        /// The ceiling.
        ceiling: u64,
    },
    /// The chain source failed.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    /// The signer's state could not be changed.
    #[error(transparent)]
    Engine(#[from] crate::EngineError),
    /// The signer refused or failed a step.
    #[error("{0}")]
    Step(String),
}

impl From<crate::outcome::Outcome> for RecoverError {
    fn from(o: crate::outcome::Outcome) -> Self {
        RecoverError::Step(format!("{o:?}"))
    }
}

impl From<crate::store::StoreError> for RecoverError {
    fn from(e: crate::store::StoreError) -> Self {
        RecoverError::Chain(e.into())
    }
}

/// One step of a recovery, as the tenant sees it (the CLI prints each as a JSON line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RecoverEvent {
    /// The operator gets no signature from here on.
    OperatorRevoked,
    /// The signer's view of the chain is current.
    ChainSynced {
        /// Its height.
        height: u32,
    },
    /// A channel's latest commitment was broadcast.
    CommitmentBroadcast {
        /// The channel.
        channel: String,
        /// The commitment.
        commitment_txid: String,
        /// Blocks our output stays locked after it confirms.
        to_self_delay: u16,
        /// The channel's value.
        capacity_sat: u64,
        /// Our output in it.
        our_output_sat: u64,
    },
    /// Dry run: the commitment that would be broadcast.
    WouldBroadcastCommitment {
        /// The channel.
        channel: String,
        /// The commitment.
        commitment_txid: String,
        /// Our output in it.
        our_output_sat: u64,
    },
    /// Our commitment is already on chain.
    CommitmentOnChain {
        /// The channel.
        channel: String,
        /// The commitment.
        commitment_txid: String,
        /// Blocks our output stays locked.
        to_self_delay: u16,
        /// Our output in it.
        our_output_sat: u64,
    },
    /// The counterparty had broadcast a revoked state: everything in it was claimed into the
    /// tenant's wallet.
    BreachPunished {
        /// The channel.
        channel: String,
        /// The revoked commitment.
        commitment_txid: String,
        /// The justice transaction.
        txid: String,
        /// What it pays the tenant.
        amount_sat: u64,
    },
    /// The counterparty had force-closed with its current state: our output was swept.
    ToRemoteBroadcast {
        /// The channel.
        channel: String,
        /// The sweep.
        txid: String,
        /// What it pays the tenant.
        amount_sat: u64,
    },
    /// Nothing to do for a channel.
    ChannelSkipped {
        /// The channel.
        channel: String,
        /// Why.
        reason: String,
    },
    /// A channel could not be recovered.
    ChannelFailed {
        /// Why.
        error: String,
    },
    /// Waiting for the contest delay.
    Waiting {
        /// The channel.
        channel: String,
        /// Confirmations so far.
        confirmations: u32,
        /// Blocks left.
        blocks_left: u32,
    },
    /// A delayed output's sweep was broadcast.
    SweepBroadcast {
        /// The channel.
        channel: String,
        /// The sweep.
        txid: String,
        /// What it pays the tenant.
        amount_sat: u64,
    },
    /// A sweep or claim confirmed.
    Swept {
        /// The channel.
        channel: String,
        /// The transaction.
        txid: String,
        /// What it paid the tenant's address (claims into the wallet are counted with the
        /// wallet sweep).
        amount_sat: u64,
    },
    /// Dry run: the wallet coins that would be swept.
    WouldSweepWallet {
        /// How many.
        coins: usize,
        /// Their total.
        amount_sat: u64,
    },
    /// The wallet's sweep was broadcast.
    WalletSweepBroadcast {
        /// The sweep.
        txid: String,
        /// How many coins.
        coins: usize,
        /// What it pays the tenant.
        amount_sat: u64,
    },
    /// The wallet's sweep confirmed.
    WalletSwept {
        /// The sweep.
        txid: String,
        /// What it paid.
        amount_sat: u64,
    },
    /// Everything reached the tenant's address.
    Recovered {
        /// The total paid to it.
        total_sat: u64,
    },
}
