//! The wallet and unconfirmed transactions: what bitcoind's mempool holds for it, and what the
//! node broadcasts (its outbox).

use std::sync::Arc;

use bdk_wallet::Wallet;
use bitcoin::{Transaction, Txid};

use super::OnchainWallet;
use crate::error::NodeError;
use crate::outbox::Outbox;

impl OnchainWallet {
    /// What the node broadcast and must get mined.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Whether `tx` spends one of the wallet's outputs or pays one of its scripts (revealed or
    /// within the lookahead of addresses not handed out yet).
    pub fn touches(&self, tx: &Transaction) -> bool {
        touches(&self.lock(), tx)
    }

    /// Applies a mempool change: new transactions that concern the wallet show as pending;
    /// those that left the mempool unmined are dropped from the balance, unless the node still
    /// keeps them to get them mined (a restarted bitcoind may have lost them; they are sent
    /// again).
    pub(crate) fn mempool_update(
        &self,
        added: &[Arc<Transaction>],
        removed: &[Txid],
    ) -> Result<(), NodeError> {
        let now = crate::payments::now_secs();
        let mut w = self.lock();
        let relevant: Vec<Arc<Transaction>> =
            added.iter().filter(|tx| touches(&w, tx)).cloned().collect();
        let evicted: Vec<(Txid, u64)> = removed
            .iter()
            .filter(|txid| {
                w.get_tx(**txid)
                    .is_some_and(|t| !t.chain_position.is_confirmed())
                    && !self.outbox.is_pending(txid)
            })
            .map(|txid| (*txid, now))
            .collect();
        if relevant.is_empty() && evicted.is_empty() {
            return Ok(());
        }
        if !relevant.is_empty() {
            w.apply_unconfirmed_txs(relevant.into_iter().map(|tx| (tx, now)));
        }
        if !evicted.is_empty() {
            w.apply_evicted_txs(evicted);
        }
        self.persist(&mut w)
    }

    /// Drops from the balance transactions that can never be mined (their inputs are spent by
    /// others), and the wallet's unconfirmed transactions that spend them: their coins are the
    /// wallet's to spend again.
    pub(crate) fn evict_impossible(&self, txids: &[Txid]) -> Result<(), NodeError> {
        let now = crate::payments::now_secs();
        let mut w = self.lock();
        let mut gone: Vec<Txid> = txids.to_vec();
        loop {
            let more: Vec<Txid> = w
                .transactions()
                .filter(|t| !t.chain_position.is_confirmed())
                .filter(|t| !gone.contains(&t.tx_node.txid))
                .filter(|t| {
                    t.tx_node
                        .tx
                        .input
                        .iter()
                        .any(|i| gone.contains(&i.previous_output.txid))
                })
                .map(|t| t.tx_node.txid)
                .collect();
            if more.is_empty() {
                break;
            }
            gone.extend(more);
        }
        w.apply_evicted_txs(gone.into_iter().map(|txid| (txid, now)));
        self.persist(&mut w)
    }

    /// Undoes the record of a signed transaction that bitcoind refused outright: its coins are
    /// the wallet's to spend again, and it is no longer kept.
    pub(crate) fn forget_refused(&self, tx: &Transaction) -> Result<(), NodeError> {
        let txid = tx.compute_txid();
        self.outbox.forget(&txid);
        let mut w = self.lock();
        w.cancel_tx(tx);
        w.apply_evicted_txs([(txid, crate::payments::now_secs())]);
        self.persist(&mut w)
    }
}

fn touches(w: &Wallet, tx: &Transaction) -> bool {
    let index = w.spk_index();
    tx.output
        .iter()
        .any(|o| index.index_of_spk(o.script_pubkey.clone()).is_some())
        || tx
            .input
            .iter()
            .any(|i| index.txout(i.previous_output).is_some())
}
