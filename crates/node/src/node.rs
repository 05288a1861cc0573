//! The node value: its parts, its lifecycle and its read-only views.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bitcoin::secp256k1::PublicKey;
use micronode_chain::{ChainServices, ListenerId};
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::events::NodeEvent;
use crate::keys::KeysBackend;
use crate::payments::PaymentStore;
use crate::peers::PeerStore;
use crate::types::{ChainMonitor, ChannelManager, NetworkGraph, PeerManager, Scorer, Sweeper};
use crate::wallet::OnchainWallet;

/// The parts of a running node, shared by its tasks.
pub(crate) struct NodeInner<K: KeysBackend> {
    pub(crate) config: NodeConfig,
    pub(crate) node_id: PublicKey,
    pub(crate) logger_label: String,
    pub(crate) logger: Arc<crate::logger::NodeLogger>,
    pub(crate) chain: ChainServices,
    pub(crate) wallet: Arc<OnchainWallet>,
    pub(crate) chain_monitor: Arc<ChainMonitor<K>>,
    pub(crate) channel_manager: Arc<ChannelManager<K>>,
    pub(crate) peer_manager: Arc<PeerManager<K>>,
    pub(crate) sweeper: Arc<Sweeper<K>>,
    pub(crate) bumper: Arc<crate::bump::Bumper<K>>,
    pub(crate) gossip_sync: Arc<crate::types::GossipSync>,
    pub(crate) network_graph: Arc<NetworkGraph>,
    pub(crate) scorer: Arc<Mutex<Scorer>>,
    pub(crate) payments: PaymentStore,
    pub(crate) peers: PeerStore,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) monitor_persister: Arc<crate::persist::OrderedMonitorPersister>,
    pub(crate) manager_writer: Arc<crate::persist::ManagerWriter<K>>,
    pub(crate) processor_store: Arc<crate::persist::ProcessorStore>,
    pub(crate) keys: Arc<K>,
    pub(crate) store: Arc<crate::types::Store>,
    pub(crate) liquidity: crate::liquidity::Liquidity<K>,
}

/// Background work of a running node.
pub(crate) struct Running {
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
    pub(crate) background: JoinHandle<Result<(), std::io::Error>>,
    pub(crate) feed_listener: ListenerId,
    /// Held while the node runs, so a second process cannot open the same directory.
    pub(crate) _dir_lock: std::fs::File,
}

/// One Lightning node. Many can live in one process; they share the chain services they were
/// started with.
pub struct Node<K: KeysBackend> {
    pub(crate) inner: Arc<NodeInner<K>>,
    pub(crate) running: Mutex<Option<Running>>,
    pub(crate) listen_addr: Option<SocketAddr>,
}

/// A summary of the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// The node's public key.
    pub node_id: String,
    /// The node's alias.
    pub alias: String,
    /// The Bitcoin network.
    pub network: String,
    /// Height of the best block the node has processed.
    pub block_height: u32,
    /// Hash of that block.
    pub block_hash: String,
    /// Connected peers.
    pub num_peers: usize,
    /// All channels.
    pub num_channels: usize,
    /// Channels ready to carry payments.
    pub num_usable_channels: usize,
    /// Where the node accepts peers, if it does.
    pub listen_addr: Option<String>,
    /// Channels the node knows of in the network graph (its own announced ones included).
    pub graph_channels: usize,
    /// Nodes the node knows of in the network graph.
    pub graph_nodes: usize,
    /// Whether bitcoind answered the chain feed's last poll.
    pub bitcoind_reachable: bool,
    /// Transactions the node broadcast that are not mined yet, and those bitcoind keeps not
    /// taking.
    pub broadcasts: crate::outbox::BroadcastStatus,
}

impl<K: KeysBackend> Node<K> {
    /// The node's public key.
    pub fn node_id(&self) -> PublicKey {
        self.inner.node_id
    }

    /// The node's keys backend.
    pub fn keys(&self) -> &Arc<K> {
        &self.inner.keys
    }

    /// The public key of the tenant's app-token root when the tenant's signer holds it (see
    /// [`crate::keys::WalletSigner::app_token_root`]).
    pub fn keys_app_token_root(&self) -> Option<String> {
        self.inner.keys.app_token_root()
    }

    /// The address the node listens on for peers, if any.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// A summary of the node.
    pub fn info(&self) -> NodeInfo {
        let best = self.inner.channel_manager.current_best_block();
        let channels = self.inner.channel_manager.list_channels();
        NodeInfo {
            node_id: self.inner.node_id.to_string(),
            alias: self.inner.config.alias.clone(),
            network: self.inner.config.network.to_string(),
            block_height: best.height,
            block_hash: best.block_hash.to_string(),
            num_peers: self.inner.peer_manager.list_peers().len(),
            num_channels: channels.len(),
            num_usable_channels: channels.iter().filter(|c| c.is_usable).count(),
            listen_addr: self.listen_addr.map(|a| a.to_string()),
            graph_channels: self.inner.network_graph.read_only().channels().len(),
            graph_nodes: self.inner.network_graph.read_only().nodes().len(),
            bitcoind_reachable: self.inner.chain.feed.bitcoind_reachable(),
            broadcasts: self.inner.wallet.outbox().status(),
        }
    }

    /// Subscribes to the node's events.
    pub fn subscribe_events(&self) -> broadcast::Receiver<NodeEvent> {
        self.inner.events.subscribe()
    }

    /// Whether the node is running.
    pub fn is_running(&self) -> bool {
        self.running.lock().map(|r| r.is_some()).unwrap_or(false)
    }

    pub(crate) fn ensure_running(&self) -> Result<(), NodeError> {
        if self.is_running() {
            Ok(())
        } else {
            Err(NodeError::NotRunning)
        }
    }

    /// Fails fast with [`NodeError::SignerOffline`] when the keys backend cannot sign now.
    pub(crate) fn ensure_signer(&self) -> Result<(), NodeError> {
        if self.inner.keys.signer_online() {
            Ok(())
        } else {
            Err(NodeError::SignerOffline)
        }
    }

    /// Whether the node's signer can sign now (always true for in-process keys).
    pub fn signer_online(&self) -> bool {
        self.inner.keys.signer_online()
    }

    /// Whether the tenant's signer said it revoked this node (never, for in-process keys).
    pub fn signer_revoked(&self) -> bool {
        self.inner.keys.signer_revoked()
    }

    /// Whether another host took over this node's lease, so its store refuses every write
    /// (fleet tenants only). A fenced node has left its peers and accepts none; its owner must
    /// stop it.
    pub fn is_fenced(&self) -> bool {
        self.inner.store.is_fenced()
    }

    /// Stops the node: disconnects peers, stops background work and persists the channel
    /// manager one last time. Idempotent.
    pub async fn stop(&self) -> Result<(), NodeError> {
        let running = self.running.lock().map(|mut r| r.take()).unwrap_or(None);
        let Some(running) = running else {
            return Ok(());
        };
        self.inner.chain.feed.unregister(running.feed_listener);
        let _ = running.stop.send(true);
        for task in &running.tasks {
            task.abort();
        }
        self.inner.peer_manager.disconnect_all_peers();
        // The gossip verifier and the gossip sync hold each other (see the builder).
        self.inner.gossip_sync.add_utxo_lookup(None);
        let result = running
            .background
            .await
            .map_err(|e| NodeError::Internal(format!("background task panicked: {e}")))?;
        result.map_err(NodeError::Storage)?;
        // Whatever monitor updates are still queued go to disk, after the manager.
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner.manager_writer.flush(
                &inner.monitor_persister,
                &inner.chain_monitor,
                &inner.payments,
            )
        })
        .await
        .map_err(|e| NodeError::Internal(format!("final flush failed: {e}")))?;
        // The liquidity manager's event queue and state, so no handled event replays.
        self.inner
            .liquidity
            .manager
            .persist()
            .await
            .map_err(|e| NodeError::Storage(std::io::Error::other(e.to_string())))?;
        tracing::info!(node = %self.inner.logger_label, "node stopped");
        Ok(())
    }
}

impl<K: KeysBackend> Drop for Node<K> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.lock() {
            if let Some(running) = running.take() {
                self.inner.chain.feed.unregister(running.feed_listener);
                let _ = running.stop.send(true);
                for task in &running.tasks {
                    task.abort();
                }
            }
        }
    }
}
