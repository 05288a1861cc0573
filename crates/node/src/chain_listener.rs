//! The node's one listener on the shared chain feed.

use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::Block;
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};

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
        Self {
            chain_monitor,
            channel_manager,
            sweeper,
            wallet,
        }
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
    }

    fn block_connected(&self, block: &Block, height: u32) {
        self.chain_monitor.block_connected(block, height);
        self.channel_manager.block_connected(block, height);
        self.sweeper.block_connected(block, height);
        self.wallet.block_connected(block, height);
    }

    fn blocks_disconnected(&self, fork_point: BestBlock) {
        self.chain_monitor.blocks_disconnected(fork_point);
        self.channel_manager.blocks_disconnected(fork_point);
        self.sweeper.blocks_disconnected(fork_point);
        self.wallet.blocks_disconnected(fork_point);
    }
}
