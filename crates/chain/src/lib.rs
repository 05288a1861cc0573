//! Chain access shared by every micronode node in a process: one bitcoind RPC client, one chain
//! feed that fetches each block once and fans it out (with one mempool poll), one fee estimator
//! and one broadcaster that keeps sending what the nodes broadcast until it is mined.
#![deny(missing_docs)]

pub mod broadcast;
pub mod endpoint;
pub mod feed;
pub mod fees;
pub mod graph;
pub mod listener;
pub mod logger;
mod mempool;
pub mod rpc;

pub use broadcast::SharedBroadcaster;
pub use endpoint::{EndpointError, RpcEndpoint};
pub use feed::{ChainFeed, FeedConfig, FeedError, ListenerId, SharedListener};
pub use fees::SharedFeeEstimator;
pub use graph::{GraphLogger, SharedNetworkGraph};
pub use listener::{BroadcastOutcome, FeedListener};
pub use logger::LdkLogger;
pub use mempool::MAX_FETCH_PER_POLL;
pub use rpc::{BitcoindRpc, RpcAuth, RpcError};

use std::sync::Arc;
use std::time::Duration;

/// The chain services every node in a process shares.
#[derive(Clone)]
pub struct ChainServices {
    /// The block feed.
    pub feed: ChainFeed,
    /// The fee estimator.
    pub fees: Arc<SharedFeeEstimator>,
    /// The broadcaster.
    pub broadcaster: Arc<SharedBroadcaster>,
    /// The RPC client everything above uses.
    pub rpc: Arc<BitcoindRpc>,
    /// The Lightning network graph, shared by every node (gossip is public).
    pub graph: Arc<SharedNetworkGraph>,
    graph_file: Option<std::path::PathBuf>,
}

impl ChainServices {
    /// Connects to bitcoind and starts the feed, the fee refresher and the broadcaster, with a
    /// network graph that lives in memory only.
    pub async fn start(rpc: Arc<BitcoindRpc>, config: FeedConfig) -> Result<Self, FeedError> {
        Self::start_with_graph_file(rpc, config, None).await
    }

    /// Like [`ChainServices::start`], with the network graph loaded from and persisted to
    /// `graph_file` (written every few minutes; call [`ChainServices::save_graph`] at shutdown).
    pub async fn start_with_graph_file(
        rpc: Arc<BitcoindRpc>,
        config: FeedConfig,
        graph_file: Option<std::path::PathBuf>,
    ) -> Result<Self, FeedError> {
        let actual = rpc.network().await?;
        if actual != config.network {
            return Err(FeedError::WrongNetwork {
                expected: config.network,
                actual,
            });
        }
        let rebroadcast_interval = config.rebroadcast_interval;
        let feed = ChainFeed::start(rpc.clone(), config).await?;
        let fees = SharedFeeEstimator::start(&feed, rpc.clone(), Duration::from_secs(60));
        let broadcaster = SharedBroadcaster::start(rpc.clone(), &feed, rebroadcast_interval);
        let graph = graph::load_graph(graph_file.as_deref(), feed.network());
        graph::spawn_graph_maintenance(&graph, graph_file.clone(), feed.runtime());
        Ok(Self {
            feed,
            fees,
            broadcaster,
            rpc,
            graph,
            graph_file,
        })
    }

    /// Writes the network graph to its file now, if it has one.
    pub fn save_graph(&self) -> std::io::Result<()> {
        match &self.graph_file {
            Some(path) => graph::save_graph(&self.graph, path),
            None => Ok(()),
        }
    }
}
