//! The node's one listener on the shared chain feed: blocks for its LDK parts and wallet,
//! mempool transactions for its wallet, and the broadcasts it keeps in its outbox.

use std::collections::HashSet;
use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::{Block, Transaction, Txid};
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};
use micronode_chain::{BroadcastOutcome, FeedListener};

use crate::keys::KeysBackend;
use crate::types::{ChainMonitor, ChannelManager, Sweeper};
use crate::wallet::OnchainWallet;

/// Hands each block to the node's chain monitor, channel manager, sweeper and wallet, in that
/// order (monitors first, so they see a block before the manager acts on it).
pub struct NodeChainListener<K: KeysBackend> {
    chain_monitor: Arc<ChainMonitor<K>>,
    channel_manager: Arc<ChannelManager<K>>,
    sweeper: Arc<Sweeper<K>>,
    wallet: Arc<OnchainWallet>,
}

impl<K: KeysBackend> NodeChainListener<K> {
    /// A listener over the node's parts.
    pub fn new(
        chain_monitor: Arc<ChainMonitor<K>>,
        channel_manager: Arc<ChannelManager<K>>,
        sweeper: Arc<Sweeper<K>>,
        wallet: Arc<OnchainWallet>,
    ) -> Self {
        let this = Self {
            chain_monitor,
            channel_manager,
            sweeper,
            wallet,
        };
        this.refresh_funding_outpoints();
        this
    }

    /// Tells the outbox which outputs fund the node's channels (their spends are ours to get
    /// mined). Called between blocks, never from a broadcast: LDK may hold its monitors' lock
    /// while it broadcasts.
    fn refresh_funding_outpoints(&self) {
        let funding: HashSet<bitcoin::OutPoint> = self
            .chain_monitor
            .list_monitors()
            .into_iter()
            .filter_map(|id| self.chain_monitor.get_monitor(id).ok())
            .map(|m| m.get_funding_txo().into_bitcoin_outpoint())
            .collect();
        self.wallet.outbox().set_funding_outpoints(funding);
    }

    fn after_block<'a>(&self, txs: impl IntoIterator<Item = &'a Transaction>, height: u32) {
        self.wallet.outbox().block_connected(txs, height);
        self.refresh_funding_outpoints();
    }
}

impl<K: KeysBackend> Listen for NodeChainListener<K> {
    fn filtered_block_connected(&self, header: &Header, txdata: &TransactionData, height: u32) {
        self.chain_monitor
            .filtered_block_connected(header, txdata, height);
        self.channel_manager
            .filtered_block_connected(header, txdata, height);
        self.sweeper
            .filtered_block_connected(header, txdata, height);
        self.wallet.filtered_block_connected(header, txdata, height);
        self.after_block(txdata.iter().map(|(_, tx)| *tx), height);
    }

    fn block_connected(&self, block: &Block, height: u32) {
        self.chain_monitor.block_connected(block, height);
        self.channel_manager.block_connected(block, height);
        self.sweeper.block_connected(block, height);
        self.wallet.block_connected(block, height);
        self.after_block(&block.txdata, height);
    }

    fn blocks_disconnected(&self, fork_point: BestBlock) {
        self.chain_monitor.blocks_disconnected(fork_point);
        self.channel_manager.blocks_disconnected(fork_point);
        self.sweeper.blocks_disconnected(fork_point);
        self.wallet.blocks_disconnected(fork_point);
        self.wallet.outbox().blocks_disconnected(fork_point.height);
    }
}

impl<K: KeysBackend> FeedListener for NodeChainListener<K> {
    fn mempool_update(&self, added: &[Arc<Transaction>], removed: &[Txid]) {
        if let Err(e) = self.wallet.mempool_update(added, removed) {
            tracing::error!(error = %e, "wallet could not record mempool transactions");
        }
    }

    fn keep_broadcast(&self, tx: &Transaction) -> bool {
        self.wallet
            .outbox()
            .keep_if(tx, |tx| self.wallet.touches(tx))
    }

    fn pending_broadcasts(&self) -> Vec<Transaction> {
        self.wallet.outbox().pending()
    }

    fn broadcast_outcome(&self, txid: Txid, outcome: &BroadcastOutcome) {
        let dropped = self.wallet.outbox().outcome(txid, outcome);
        if !dropped.is_empty() {
            if let Err(e) = self.wallet.evict_impossible(&dropped) {
                tracing::error!(error = %e, "wallet could not drop transactions that cannot be mined");
            }
        }
    }
}
