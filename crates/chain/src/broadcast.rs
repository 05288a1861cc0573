//! A transaction broadcaster shared by every node in the process.

use std::sync::Arc;

use bitcoin::Transaction;
use lightning::chain::chaininterface::BroadcasterInterface;
use tokio::sync::broadcast;

use crate::rpc::BitcoindRpc;

/// Sends transactions to bitcoind with `sendrawtransaction`, off the caller's thread.
pub struct SharedBroadcaster {
    rpc: Arc<BitcoindRpc>,
    runtime: tokio::runtime::Handle,
    sent: broadcast::Sender<bitcoin::Txid>,
}

impl SharedBroadcaster {
    /// Creates a broadcaster that runs its RPC calls on `runtime`.
    pub fn new(rpc: Arc<BitcoindRpc>, runtime: tokio::runtime::Handle) -> Arc<Self> {
        let (sent, _) = broadcast::channel(1024);
        Arc::new(Self { rpc, runtime, sent })
    }

    /// Txids of transactions that bitcoind accepted, as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<bitcoin::Txid> {
        self.sent.subscribe()
    }

    /// Broadcasts one transaction and waits for bitcoind's answer.
    pub async fn broadcast_now(
        &self,
        tx: &Transaction,
    ) -> Result<bitcoin::Txid, crate::rpc::RpcError> {
        let txid = self.rpc.send_raw_transaction(tx).await?;
        let _ = self.sent.send(txid);
        Ok(txid)
    }
}

impl BroadcasterInterface for SharedBroadcaster {
    fn broadcast_transactions(&self, txs: &[&Transaction]) {
        for tx in txs {
            let tx = (*tx).clone();
            let rpc = self.rpc.clone();
            let sent = self.sent.clone();
            self.runtime.spawn(async move {
                let txid = tx.compute_txid();
                match rpc.send_raw_transaction(&tx).await {
                    Ok(_) => {
                        tracing::debug!(%txid, "broadcast transaction");
                        let _ = sent.send(txid);
                    }
                    // LDK rebroadcasts as needed; a rejected broadcast (e.g. a timelocked claim
                    // that is not final yet) is expected and only worth a debug line.
                    Err(e) => tracing::debug!(%txid, error = %e, "broadcast rejected"),
                }
            });
        }
    }
}
