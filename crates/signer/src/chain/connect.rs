//! One block into the signer's view of the chain: VLS's tracker, the chain view in the store,
//! wallet deposits, and the watchtower. Blocking (VLS, SQLite): run it off the async workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lightning_signer::bitcoin::{Block, OutPoint, Transaction, Txid};
use lightning_signer::channel::ChannelSlot;

use super::ChainError;
use crate::engine::SignerEngine;
use crate::store::{OwnSweep, SignerStore};

/// Writes VLS's tracker after a block was added or removed.
fn persist_tracker(
    node: &lightning_signer::node::Node,
    tracker: &lightning_signer::chain::tracker::ChainTracker<
        lightning_signer::monitor::ChainMonitor,
    >,
    height: u32,
) -> Result<(), ChainError> {
    node.get_persister()
        .update_tracker(&node.get_id(), tracker)
        .map_err(|e| ChainError::Tracker {
            height,
            reason: format!("cannot persist the tracker: {e:?}"),
        })
}

/// What a block meant for the tenant.
#[derive(Debug, Default)]
pub struct BlockEvents {
    /// Justice transactions the watchtower built; broadcast them.
    pub claims: Vec<OwnSweep>,
    /// Transactions of the tenant's channels confirmed in the block.
    pub channel_txs: Vec<Txid>,
}

impl SignerEngine {
    /// Funding outpoints of every channel VLS has set up, with their slots.
    fn fundings(&self) -> HashMap<OutPoint, Arc<Mutex<ChannelSlot>>> {
        self.ready_channels()
            .into_iter()
            .filter_map(|(_, slot)| {
                let funding = match &*slot.lock().unwrap_or_else(|p| p.into_inner()) {
                    ChannelSlot::Ready(chan) => chan.setup.funding_outpoint,
                    ChannelSlot::Stub(_) => return None,
                };
                Some((funding, slot))
            })
            .collect()
    }

    /// The tracker's tip: (height, block hash).
    pub fn chain_tip(&self) -> (u32, lightning_signer::bitcoin::BlockHash) {
        let node = self.node();
        let tracker = node.get_tracker();
        (tracker.height(), tracker.tip().0.block_hash())
    }

    /// Adds `block`, the successor of the tracker's tip at `height`. Claims are built at
    /// `sat_per_vb`.
    pub fn connect_block(
        &self,
        block: &Block,
        height: u32,
        sat_per_vb: u64,
    ) -> Result<BlockEvents, ChainError> {
        let node = self.node();
        {
            let mut tracker = node.get_tracker();
            if tracker.height() + 1 != height
                || tracker.tip().0.block_hash() != block.header.prev_blockhash
            {
                return Err(ChainError::Tracker {
                    height,
                    reason: "the block does not extend the tracker's tip".into(),
                });
            }
            self.oracle
                .add_block(&mut tracker, block, height)
                .map_err(|reason| ChainError::Tracker { height, reason })?;
            persist_tracker(&node, &tracker, height)?;
        }
        let fundings = self.fundings();
        let own_sweeps: HashMap<Txid, ()> = self
            .store
            .sweeps(false)?
            .into_iter()
            .map(|s| (s.tx.compute_txid(), ()))
            .collect();
        let mut events = BlockEvents::default();
        let mut funding_spends: Vec<(Transaction, Arc<Mutex<ChannelSlot>>)> = Vec::new();
        for (index, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            for (vout, _) in tx.output.iter().enumerate() {
                let outpoint = OutPoint::new(txid, vout as u32);
                if fundings.contains_key(&outpoint) {
                    self.store.record_funding(&outpoint, height, index as u32)?;
                }
            }
            let spends_funding = tx
                .input
                .iter()
                .find_map(|i| fundings.get(&i.previous_output).cloned());
            let depth = if spends_funding.is_some() {
                Some(1)
            } else {
                tx.input
                    .iter()
                    .filter_map(|i| self.store.recorded_depth(&i.previous_output.txid))
                    .min()
                    .map(|d| d + 1)
                    .filter(|d| *d <= SignerStore::MAX_DEPTH)
            };
            if let Some(depth) = depth {
                self.store.record_tx(tx, height, depth)?;
                events.channel_txs.push(txid);
            }
            if let Some(slot) = spends_funding {
                funding_spends.push((tx.clone(), slot));
            }
            if own_sweeps.contains_key(&txid) {
                self.store.sweep_confirmed(&txid)?;
                tracing::info!(%txid, height, "a sweep of the signer's confirmed");
            }
            // Deposits to the wallet keep its scan window ahead of use.
            for output in &tx.output {
                if let Some((chain, index)) = self.wallet.lookup(&output.script_pubkey) {
                    self.wallet.note_used(&self.store, chain, index)?;
                }
            }
        }
        for (tx, slot) in funding_spends {
            match self.watch_spend(&slot, &tx, sat_per_vb) {
                Ok(claims) => events.claims.extend(claims),
                Err(e) => tracing::error!(error = ?e, "the watchtower could not build a claim"),
            }
        }
        Ok(events)
    }

    /// Removes the tracker's tip, `block` at `height` (a reorganisation), and forgets what the
    /// chain view learned from it.
    pub fn disconnect_block(&self, block: &Block, height: u32) -> Result<(), ChainError> {
        let node = self.node();
        let mut tracker = node.get_tracker();
        if tracker.height() != height || tracker.tip().0.block_hash() != block.block_hash() {
            return Err(ChainError::Tracker {
                height,
                reason: "the block is not the tracker's tip".into(),
            });
        }
        self.oracle
            .remove_block(&mut tracker, block, height)
            .map_err(|reason| ChainError::Tracker { height, reason })?;
        persist_tracker(&node, &tracker, height)?;
        drop(tracker);
        self.store.disconnect_from(height)?;
        Ok(())
    }
}
