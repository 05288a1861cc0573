//! One poll of bitcoind's mempool for the whole process.
//!
//! Every interval the poller asks bitcoind for the mempool's txids (`getrawmempool`), fetches
//! only the transactions it has not seen (`getrawtransaction`, which needs no `-txindex` for
//! mempool transactions), at most [`MAX_FETCH_PER_POLL`] per poll so a large mempool at start-up
//! is taken in over several polls, and hands the difference to the feed thread, which gives it
//! to every node's listener. The cost on bitcoind does not grow with the number of nodes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Transaction, Txid};
use serde_json::json;
use tokio::sync::mpsc;

use crate::rpc::BitcoindRpc;

/// The most transactions fetched in one poll.
pub const MAX_FETCH_PER_POLL: usize = 2000;

/// What changed in the mempool since the last poll.
pub(crate) struct MempoolDiff {
    /// Transactions new to the poller.
    pub(crate) added: Vec<Arc<Transaction>>,
    /// Txids that were in the mempool and are not any more.
    pub(crate) removed: Vec<Txid>,
}

/// Polls the mempool and remembers what it has seen.
pub(crate) struct MempoolPoller {
    rpc: Arc<BitcoindRpc>,
    known: HashSet<Txid>,
}

impl MempoolPoller {
    pub(crate) fn new(rpc: Arc<BitcoindRpc>) -> Self {
        Self {
            rpc,
            known: HashSet::new(),
        }
    }

    /// Polls every `every` and sends each non-empty diff, until the feed goes away.
    pub(crate) async fn run(mut self, every: Duration, diffs: mpsc::Sender<MempoolDiff>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if diffs.is_closed() {
                return;
            }
            match self.poll().await {
                Ok(diff) if diff.added.is_empty() && diff.removed.is_empty() => {}
                Ok(diff) => {
                    if diffs.send(diff).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "mempool poll failed; will retry"),
            }
        }
    }

    async fn poll(&mut self) -> Result<MempoolDiff, crate::rpc::RpcError> {
        let now: HashSet<Txid> = self.rpc.get_raw_mempool().await?.into_iter().collect();
        let removed: Vec<Txid> = self.known.difference(&now).copied().collect();
        for txid in &removed {
            self.known.remove(txid);
        }
        let fresh: Vec<Txid> = now
            .iter()
            .filter(|t| !self.known.contains(*t))
            .take(MAX_FETCH_PER_POLL)
            .copied()
            .collect();
        let mut added = Vec::new();
        for txid in &fresh {
            let hex: String = match self
                .rpc
                .call("getrawtransaction", &[json!(txid.to_string())])
                .await
            {
                Ok(hex) => hex,
                // It left the mempool in between: nothing to tell.
                Err(crate::rpc::RpcError::Rpc { .. }) => continue,
                // Keep what was fetched (and the removals); the rest comes next poll.
                Err(e) => {
                    tracing::debug!(error = %e, "mempool fetch interrupted");
                    break;
                }
            };
            self.known.insert(*txid);
            match bitcoin::consensus::encode::deserialize_hex::<Transaction>(&hex) {
                Ok(tx) if tx.compute_txid() == *txid => added.push(Arc::new(tx)),
                _ => tracing::warn!(%txid, "bitcoind sent a malformed mempool transaction"),
            }
        }
        Ok(MempoolDiff { added, removed })
    }
}
