//! Follows the tenant's chain source: connects each new block to the signer's view, undoes
//! reorganised ones, broadcasts the watchtower's claims and rebroadcasts them until they
//! confirm.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{ChainError, ChainSource};
use crate::engine::SignerEngine;

/// Fee rate of the signer's own claims when the source has no estimate (regtest), sat/vB.
const FALLBACK_SAT_PER_VB: u64 = 2;

/// Lets blocking code (a request waiting on a chain-dependent check) ask the follower to catch
/// up now and wait for it.
#[derive(Clone)]
pub struct SyncHandle {
    requests: mpsc::UnboundedSender<std::sync::mpsc::Sender<bool>>,
}

impl SyncHandle {
    /// Asks for a sync and waits up to `timeout` for it; `true` if it completed. Call it off
    /// the async runtime.
    pub fn sync_blocking(&self, timeout: Duration) -> bool {
        let (done, wait) = std::sync::mpsc::channel();
        if self.requests.send(done).is_err() {
            return false;
        }
        wait.recv_timeout(timeout).unwrap_or(false)
    }
}

/// Keeps a [`SignerEngine`]'s view of the chain in step with a [`ChainSource`].
pub struct ChainFollower<S> {
    engine: Arc<SignerEngine>,
    source: Arc<S>,
    poll: Duration,
}

impl<S: ChainSource> ChainFollower<S> {
    /// A follower polling `source` every `poll`.
    pub fn new(engine: Arc<SignerEngine>, source: Arc<S>, poll: Duration) -> Self {
        Self {
            engine,
            source,
            poll,
        }
    }

    /// Checks that the source is on the signer's network.
    pub async fn check_network(&self) -> Result<(), ChainError> {
        let source_network = self.source.network().await?;
        let signer = self.engine.network();
        if source_network != signer {
            return Err(ChainError::WrongNetwork {
                source_network,
                signer,
            });
        }
        Ok(())
    }

    /// The fee rate for the signer's own claims: the source's estimate, within the tenant's
    /// sweep ceiling.
    pub async fn claim_fee_rate(&self) -> u64 {
        self.source
            .fee_rate_sat_per_vb(6)
            .await
            .unwrap_or(FALLBACK_SAT_PER_VB)
            .min(self.engine.policy().max_sweep_feerate_sat_per_vb.max(1))
    }

    /// Catches up with the source's best chain; returns the new height.
    pub async fn sync(&self) -> Result<u32, ChainError> {
        let fee = self.claim_fee_rate().await;
        let mut verified_tip = false;
        loop {
            let (height, hash) = self.engine.chain_tip();
            let source_tip = self.source.tip_height().await?;
            if !verified_tip {
                // Our tip must still be on the best chain; if not, step back.
                let on_best = height <= source_tip && self.source.block_hash(height).await? == hash;
                if !on_best {
                    self.disconnect_tip(height, hash).await?;
                    continue;
                }
                verified_tip = true;
            }
            if height >= source_tip {
                self.rebroadcast().await;
                return Ok(height);
            }
            let next = self.source.block_hash(height + 1).await?;
            let block = self.source.block(next).await?;
            if block.header.prev_blockhash != hash {
                verified_tip = false;
                continue;
            }
            let engine = self.engine.clone();
            let events =
                tokio::task::spawn_blocking(move || engine.connect_block(&block, height + 1, fee))
                    .await
                    .map_err(|e| ChainError::Internal(e.to_string()))??;
            for claim in events.claims {
                let txid = claim.tx.compute_txid();
                match self.source.broadcast(claim.tx).await {
                    Ok(()) => {
                        tracing::warn!(%txid, channel = %claim.channel, kind = %claim.kind, amount_sat = claim.amount_sat, "claim broadcast")
                    }
                    Err(e) => {
                        tracing::error!(%txid, error = %e, "claim not accepted yet; it will be rebroadcast")
                    }
                }
            }
        }
    }

    async fn disconnect_tip(
        &self,
        height: u32,
        hash: lightning_signer::bitcoin::BlockHash,
    ) -> Result<(), ChainError> {
        tracing::warn!(height, %hash, "the chain reorganised: undoing the signer's tip");
        let block = self.source.block(hash).await?;
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.disconnect_block(&block, height))
            .await
            .map_err(|e| ChainError::Internal(e.to_string()))?
    }

    /// Rebroadcasts the signer's own claims that have not confirmed.
    async fn rebroadcast(&self) {
        let engine = self.engine.clone();
        let pending = tokio::task::spawn_blocking(move || engine.store.sweeps(false))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        for sweep in pending {
            if let Err(e) = self.source.broadcast(sweep.tx.clone()).await {
                tracing::debug!(txid = %sweep.tx.compute_txid(), error = %e, "rebroadcast refused");
            }
        }
    }

    /// Follows the chain until `stop`: a sync every poll interval, and whenever a request
    /// needs the chain view current (see [`SyncHandle`]). Errors are logged and retried.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let (requests, mut incoming) = mpsc::unbounded_channel();
        let _ = self.engine.chain_sync.set(SyncHandle { requests });
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval(self.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let waiter = tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => None,
                w = incoming.recv() => w,
            };
            let ok = match self.sync().await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow the chain source; retrying");
                    false
                }
            };
            if let Some(waiter) = waiter {
                let _ = waiter.send(ok);
            }
            // Everyone who asked meanwhile is served by this sync too.
            while let Ok(waiter) = incoming.try_recv() {
                let _ = waiter.send(ok);
            }
        }
    }
}
