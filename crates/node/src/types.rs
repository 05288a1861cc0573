//! Short names for the long generic LDK types a node is made of. `K` is the keys backend.

use std::sync::{Arc, Mutex};

use lightning::chain::Filter;
use lightning::ln::peer_handler::IgnoringMessageHandler;
use lightning::onion_message::messenger::DefaultMessageRouter;
use lightning::routing::gossip::P2PGossipSync;
use lightning::routing::router::DefaultRouter;
use lightning::routing::scoring::{ProbabilisticScorer, ProbabilisticScoringFeeParameters};
use lightning::sign::SignerProvider;
use micronode_chain::{SharedBroadcaster, SharedFeeEstimator};

use crate::logger::NodeLogger;
use crate::seam::WalletScriptsSignerProvider;
use crate::wallet::OnchainWallet;

/// The node's key-value store.
pub type Store = micronode_store::NodeStore;
/// A chain filter; never set, because the shared feed delivers full blocks.
pub type ChainFilter = dyn Filter + Send + Sync;
/// The channel signer type a keys backend hands out.
pub type ChannelSigner<K> = <K as SignerProvider>::EcdsaSigner;
/// The node's channel monitor set.
pub type ChainMonitor<K> = lightning::chain::chainmonitor::ChainMonitor<
    ChannelSigner<K>,
    Arc<ChainFilter>,
    Arc<SharedBroadcaster>,
    Arc<SharedFeeEstimator>,
    Arc<NodeLogger>,
    Arc<crate::persist::OrderedMonitorPersister>,
    Arc<K>,
>;
/// The gossip network graph, shared by every node in the process.
pub type NetworkGraph = micronode_chain::SharedNetworkGraph;
/// The logger of everything that reads the shared graph.
pub type GraphLogger = micronode_chain::GraphLogger;
/// The payment scorer (one per node: what it learned from its own payments).
pub type Scorer = ProbabilisticScorer<Arc<NetworkGraph>, Arc<GraphLogger>>;
/// The payment router.
pub type Router<K> = DefaultRouter<
    Arc<NetworkGraph>,
    Arc<GraphLogger>,
    Arc<K>,
    Arc<Mutex<Scorer>>,
    ProbabilisticScoringFeeParameters,
    Scorer,
>;
/// The onion message router (required by the channel manager for blinded paths).
pub type MessageRouter<K> = DefaultMessageRouter<Arc<NetworkGraph>, Arc<GraphLogger>, Arc<K>>;
/// The signer provider the channel manager sees: the backend, with close and sweep scripts
/// taken from the node's wallet.
pub type SignerProviderFor<K> = WalletScriptsSignerProvider<K>;
/// The channel manager.
pub type ChannelManager<K> = lightning::ln::channelmanager::ChannelManager<
    Arc<ChainMonitor<K>>,
    Arc<SharedBroadcaster>,
    Arc<K>,
    Arc<K>,
    Arc<SignerProviderFor<K>>,
    Arc<SharedFeeEstimator>,
    Arc<Router<K>>,
    Arc<MessageRouter<K>>,
    Arc<NodeLogger>,
>;
/// Gossip verification against the chain: a channel announcement enters the graph only if its
/// short channel id names an unspent P2WSH 2-of-2 output of the announced funding keys
/// (lightning-block-sync's verifier, over the process's bitcoind).
pub type GossipUtxoLookup = lightning_block_sync::gossip::GossipVerifier<
    lightning_block_sync::gossip::TokioSpawner,
    Arc<micronode_chain::rpc::BitcoindRpc>,
    Arc<GraphLogger>,
>;
/// Gossip sync over the P2P network.
pub type GossipSync = P2PGossipSync<Arc<NetworkGraph>, Arc<GossipUtxoLookup>, Arc<GraphLogger>>;
/// Rapid gossip sync (not used; named for the background processor's types).
pub type RapidSync =
    lightning_rapid_gossip_sync::RapidGossipSync<Arc<NetworkGraph>, Arc<GraphLogger>>;
/// LSPS0/LSPS2 over custom peer messages: JIT channels, served by a gateway and bought by a
/// tenant (`liquidity`).
pub type LiquidityManager<K> = lightning_liquidity::LiquidityManager<
    Arc<K>,
    Arc<K>,
    Arc<ChannelManager<K>>,
    Arc<ChainFilter>,
    lightning::util::persist::KVStoreSyncWrapper<Arc<Store>>,
    lightning_liquidity::utils::time::DefaultTimeProvider,
    Arc<SharedBroadcaster>,
>;
/// The peer manager.
pub type PeerManager<K> = lightning::ln::peer_handler::PeerManager<
    lightning_net_tokio::SocketDescriptor,
    Arc<ChannelManager<K>>,
    Arc<GossipSync>,
    IgnoringMessageHandler,
    Arc<NodeLogger>,
    Arc<LiquidityManager<K>>,
    Arc<K>,
    Arc<ChainMonitor<K>>,
>;
/// The sweeper of spendable outputs (force-close and HTLC claims) back to the wallet.
pub type Sweeper<K> = lightning::util::sweep::OutputSweeperSync<
    Arc<SharedBroadcaster>,
    Arc<OnchainWallet>,
    Arc<SharedFeeEstimator>,
    Arc<ChainFilter>,
    Arc<crate::persist::ProcessorStore>,
    Arc<NodeLogger>,
    Arc<K>,
>;
