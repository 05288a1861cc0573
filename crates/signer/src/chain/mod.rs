//! The tenant's own view of the chain.
//!
//! The signer never takes the operator's word for what is on chain. It follows blocks from a
//! source the tenant chooses ([`ChainSource`]; today a bitcoind the tenant trusts, reached over
//! RPC), and with them:
//!
//! - feeds VLS's chain tracker, so VLS knows which funding outputs are buried and which
//!   channels closed on chain (a channel whose funding is not confirmed cannot move past its
//!   first state: `policy-commitment-spends-active-utxo`);
//! - records every transaction that touches one of its channels, so sweep and justice fees are
//!   computed from amounts the signer has seen itself ([`crate::fees`]);
//! - records where each funding transaction confirmed, to check channel announcements
//!   ([`crate::gossip`]);
//! - watches for revoked states and punishes them ([`crate::watchtower`]), whether or not the
//!   operator's node is alive.
//!
//! The signer attests each block to VLS's tracker with a key of its own ([`oracle`]): the
//! tracker's oracle model exists for signers that cannot fetch blocks, and here the block
//! comes from the tenant's own source.

mod bitcoind;
mod connect;
pub mod follower;
pub(crate) mod oracle;

use std::future::Future;

use lightning_signer::bitcoin::{Block, BlockHash, Network, OutPoint, Transaction, TxOut};

pub use bitcoind::{BitcoindSource, BitcoindSourceConfig};
pub use connect::BlockEvents;
pub use follower::{ChainFollower, SyncHandle};

/// Why the chain source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The source failed (unreachable, refused, malformed answer).
    #[error("chain source: {0}")]
    Source(#[from] micronode_chain::RpcError),
    /// The source is on another network than the signer's keys.
    #[error("the chain source is on {source_network}, the signer's keys are for {signer}")]
    WrongNetwork {
        /// The source's network.
        source_network: Network,
        /// The signer's network.
        signer: Network,
    },
    /// VLS's tracker refused a block (bad chain, bad proof).
    #[error("the chain tracker refused block {height}: {reason}")]
    Tracker {
        /// The block's height.
        height: u32,
        /// Why.
        reason: String,
    },
    /// The signer's store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A blocking task died.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A coin of the tenant's on-chain wallet, found on chain.
#[derive(Clone, Debug)]
pub struct WalletUtxo {
    /// Where it is.
    pub outpoint: OutPoint,
    /// What it holds.
    pub output: TxOut,
    /// Its path under the wallet's account key, `[chain, index]`.
    pub path: Vec<u32>,
}

/// Where the signer reads the chain from and broadcasts to. Implementations must be a source
/// the tenant trusts: its answers decide which states are safe to sign.
pub trait ChainSource: Send + Sync + 'static {
    /// The source's network.
    fn network(&self) -> impl Future<Output = Result<Network, ChainError>> + Send;
    /// The height of the best chain's tip.
    fn tip_height(&self) -> impl Future<Output = Result<u32, ChainError>> + Send;
    /// The hash of the best chain's block at `height`.
    fn block_hash(&self, height: u32)
        -> impl Future<Output = Result<BlockHash, ChainError>> + Send;
    /// A whole block.
    fn block(&self, hash: BlockHash) -> impl Future<Output = Result<Block, ChainError>> + Send;
    /// Broadcasts `tx`; a transaction the source already has counts as broadcast.
    fn broadcast(&self, tx: Transaction) -> impl Future<Output = Result<(), ChainError>> + Send;
    /// A fee rate for confirmation within `blocks`, in sat/vB, if the source has an estimate.
    fn fee_rate_sat_per_vb(&self, blocks: u16) -> impl Future<Output = Option<u64>> + Send;
    /// The unspent output at `outpoint` with its confirmations (0 in the mempool), or `None`
    /// when it is spent or unknown.
    fn unspent(
        &self,
        outpoint: OutPoint,
        include_mempool: bool,
    ) -> impl Future<Output = Result<Option<(TxOut, u32)>, ChainError>> + Send;
    /// The confirmed coins paying the wallet's descriptors (receive and change), indexes
    /// `0..=range.0` on the receive chain and `0..=range.1` on the change chain.
    fn wallet_coins(
        &self,
        receive_descriptor: String,
        change_descriptor: String,
        range: (u32, u32),
    ) -> impl Future<Output = Result<Vec<WalletUtxo>, ChainError>> + Send;
}
