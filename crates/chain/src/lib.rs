//! Chain access shared by every micronode node in a process: one bitcoind RPC client, one chain
//! feed that fetches each block once and fans it out, one fee estimator and one broadcaster.
#![deny(missing_docs)]

pub mod broadcast;
pub mod feed;
pub mod fees;
pub mod rpc;

pub use broadcast::SharedBroadcaster;
pub use feed::{ChainFeed, FeedConfig, FeedError, ListenerId, SharedListener};
pub use fees::SharedFeeEstimator;
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
}

impl ChainServices {
    /// Connects to bitcoind and starts the feed, the fee refresher and the broadcaster.
    pub async fn start(rpc: Arc<BitcoindRpc>, config: FeedConfig) -> Result<Self, FeedError> {
        let actual = rpc.network().await?;
        if actual != config.network {
            return Err(FeedError::WrongNetwork {
                expected: config.network,
                actual,
            });
        }
        let feed = ChainFeed::start(rpc.clone(), config).await?;
        let fees = SharedFeeEstimator::start(&feed, rpc.clone(), Duration::from_secs(60));
        let broadcaster = SharedBroadcaster::new(rpc.clone(), feed.runtime().clone());
        Ok(Self {
            feed,
            fees,
            broadcaster,
            rpc,
        })
    }
}
