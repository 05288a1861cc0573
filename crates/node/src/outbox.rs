//! The node's outbox: every transaction the node broadcasts that concerns it, kept in the
//! node's store until it is mined.
//!
//! The process-wide broadcaster offers each transaction to every node
//! ([`micronode_chain::FeedListener::keep_broadcast`]). A node keeps it when it spends or pays
//! its wallet (wallet sends, channel funding, cooperative closes, sweeps, fee bumps), spends one
//! of its channels' funding outputs (commitments), or spends an output of a transaction it
//! already keeps (second-stage HTLC transactions). The record is written before bitcoind is
//! asked, and the broadcaster sends what is kept again on a timer and as soon as bitcoind
//! answers after an outage, until the transaction is six blocks deep, or a conflicting
//! transaction is (then it can never be mined). A newer transaction we broadcast that spends the
//! same input replaces the older one (a fee bump). Transactions that bitcoind has not taken for
//! [`FAILING_AFTER`] attempts in a row are reported by [`Outbox::status`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::consensus::encode;
use bitcoin::{OutPoint, Transaction, Txid};
use lightning::util::persist::KVStoreSync;
use micronode_chain::BroadcastOutcome;
use serde::{Deserialize, Serialize};

use crate::error::NodeError;
use crate::types::Store;

const OUTBOX_NAMESPACE: &str = "outbox";

/// A kept transaction is dropped once it (or a conflicting one) is this many blocks deep.
pub const FINAL_DEPTH: u32 = 6;

/// Failed attempts in a row after which a kept transaction is reported as failing.
pub const FAILING_AFTER: u32 = 3;

/// What is stored per kept transaction.
#[derive(Serialize, Deserialize)]
struct Record {
    /// The transaction, consensus-encoded hex.
    tx: String,
    /// Unix seconds when it was kept.
    kept_at: u64,
    /// Height of the block that mined it or a conflicting spend, if any.
    settled_at: Option<u32>,
}

struct Entry {
    tx: Transaction,
    kept_at: u64,
    settled_at: Option<u32>,
    attempts: u32,
    failures_in_a_row: u32,
    last_error: Option<String>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Txid, Entry>,
    funding: HashSet<OutPoint>,
}

/// The transactions the node is getting mined; see the module documentation.
pub struct Outbox {
    store: Arc<Store>,
    state: Mutex<State>,
}

/// How the node's broadcasts stand.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BroadcastStatus {
    /// Transactions the node broadcast that are not mined yet.
    pub unconfirmed: usize,
    /// Of those, the ones bitcoind has not taken for several attempts in a row.
    pub failing: Vec<FailingBroadcast>,
}

/// A transaction bitcoind keeps not taking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailingBroadcast {
    /// Its txid.
    pub txid: String,
    /// Attempts since the node (re)started.
    pub attempts: u32,
    /// What the last attempt got.
    pub last_error: String,
    /// Unix seconds when it was first broadcast.
    pub since: u64,
}

impl Outbox {
    /// Loads what the node keeps from its store.
    pub(crate) fn load(store: Arc<Store>) -> Result<Self, NodeError> {
        let mut state = State::default();
        for key in store.list(OUTBOX_NAMESPACE, "")? {
            let bytes = store.read(OUTBOX_NAMESPACE, "", &key)?;
            let record: Record = serde_json::from_slice(&bytes)
                .map_err(|e| NodeError::Internal(format!("corrupt outbox record {key}: {e}")))?;
            let tx: Transaction = encode::deserialize_hex(&record.tx).map_err(|e| {
                NodeError::Internal(format!("corrupt outbox transaction {key}: {e}"))
            })?;
            state.entries.insert(
                tx.compute_txid(),
                Entry {
                    tx,
                    kept_at: record.kept_at,
                    settled_at: record.settled_at,
                    attempts: 0,
                    failures_in_a_row: 0,
                    last_error: None,
                },
            );
        }
        Ok(Self {
            store,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, txid: &Txid, entry: &Entry) {
        let record = Record {
            tx: encode::serialize_hex(&entry.tx),
            kept_at: entry.kept_at,
            settled_at: entry.settled_at,
        };
        let written = serde_json::to_vec(&record)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                self.store
                    .write(OUTBOX_NAMESPACE, "", &txid.to_string(), bytes)
                    .map_err(std::io::Error::from)
            });
        if let Err(e) = written {
            tracing::error!(%txid, error = %e, "could not write a kept transaction");
        }
    }

    fn delete(&self, txid: &Txid) {
        if let Err(e) = self
            .store
            .remove(OUTBOX_NAMESPACE, "", &txid.to_string(), false)
        {
            tracing::error!(%txid, error = %e, "could not drop a kept transaction");
        }
    }

    /// Keeps `tx` if it concerns the node: `touches_wallet` says whether it spends or pays the
    /// wallet; spending a channel's funding output or an output of a kept transaction also
    /// counts. Returns whether it is kept (now or from before).
    pub(crate) fn keep_if(
        &self,
        tx: &Transaction,
        touches_wallet: impl FnOnce(&Transaction) -> bool,
    ) -> bool {
        let txid = tx.compute_txid();
        let spends_ours = {
            let state = self.lock();
            if state.entries.contains_key(&txid) {
                return true;
            }
            tx.input.iter().any(|i| {
                state.funding.contains(&i.previous_output)
                    || state.entries.contains_key(&i.previous_output.txid)
            })
        };
        // Not under our lock: the wallet takes its own, and it asks us while holding it.
        if !spends_ours && !touches_wallet(tx) {
            return false;
        }
        let mut state = self.lock();
        if state.entries.contains_key(&txid) {
            return true;
        }
        // A transaction of ours spending the same input as a kept one replaces it.
        let inputs: HashSet<OutPoint> = tx.input.iter().map(|i| i.previous_output).collect();
        let replaced: Vec<Txid> = state
            .entries
            .iter()
            .filter(|(_, e)| e.settled_at.is_none())
            .filter(|(_, e)| {
                e.tx.input
                    .iter()
                    .any(|i| inputs.contains(&i.previous_output))
            })
            .map(|(txid, _)| *txid)
            .collect();
        for old in replaced {
            for gone in with_descendants(&state, old) {
                tracing::debug!(txid = %gone, by = %txid, "kept transaction replaced");
                state.entries.remove(&gone);
                self.delete(&gone);
            }
        }
        let entry = Entry {
            tx: tx.clone(),
            kept_at: crate::payments::now_secs(),
            settled_at: None,
            attempts: 0,
            failures_in_a_row: 0,
            last_error: None,
        };
        self.write(&txid, &entry);
        state.entries.insert(txid, entry);
        true
    }

    /// The kept transactions not mined yet.
    pub(crate) fn pending(&self) -> Vec<Transaction> {
        self.lock()
            .entries
            .values()
            .filter(|e| e.settled_at.is_none())
            .map(|e| e.tx.clone())
            .collect()
    }

    /// Whether `txid` is kept and not mined yet.
    pub(crate) fn is_pending(&self, txid: &Txid) -> bool {
        self.lock()
            .entries
            .get(txid)
            .is_some_and(|e| e.settled_at.is_none())
    }

    /// Records how an attempt to send a kept transaction went. Returns the txids it stopped
    /// keeping because they can never be mined: the transaction, when its inputs are gone and
    /// none comes from a transaction we are still getting mined, and its kept descendants.
    pub(crate) fn outcome(&self, txid: Txid, outcome: &BroadcastOutcome) -> Vec<Txid> {
        let mut state = self.lock();
        if let BroadcastOutcome::InputsGone(reason) = outcome {
            let waits_for_parent = state.entries.get(&txid).is_some_and(|e| {
                e.tx.input.iter().any(|i| {
                    state
                        .entries
                        .get(&i.previous_output.txid)
                        .is_some_and(|p| p.settled_at.is_none())
                })
            });
            if !waits_for_parent && state.entries.contains_key(&txid) {
                let gone = with_descendants(&state, txid);
                for dropped in &gone {
                    tracing::info!(txid = %dropped, %reason, "a kept transaction can never be mined; dropped");
                    state.entries.remove(dropped);
                    self.delete(dropped);
                }
                return gone;
            }
        }
        let Some(entry) = state.entries.get_mut(&txid) else {
            return Vec::new();
        };
        entry.attempts = entry.attempts.saturating_add(1);
        match outcome {
            BroadcastOutcome::Accepted => {
                entry.failures_in_a_row = 0;
                entry.last_error = None;
            }
            BroadcastOutcome::NotFinal(_) => {}
            BroadcastOutcome::Rejected(e)
            | BroadcastOutcome::Unreachable(e)
            | BroadcastOutcome::InputsGone(e) => {
                entry.failures_in_a_row = entry.failures_in_a_row.saturating_add(1);
                entry.last_error = Some(e.clone());
                if entry.failures_in_a_row == FAILING_AFTER {
                    tracing::warn!(%txid, error = %e, "bitcoind keeps not taking a transaction we must get mined");
                }
            }
        }
        Vec::new()
    }

    /// Stops keeping `txid` (a wallet send bitcoind refused outright).
    pub(crate) fn forget(&self, txid: &Txid) {
        if self.lock().entries.remove(txid).is_some() {
            self.delete(txid);
        }
    }

    /// Replaces the set of the node's channel funding outputs.
    pub(crate) fn set_funding_outpoints(&self, funding: HashSet<OutPoint>) {
        self.lock().funding = funding;
    }

    /// Settles what a block mined (or made impossible), and drops what is deep enough.
    pub(crate) fn block_connected<'a>(
        &self,
        txs: impl IntoIterator<Item = &'a Transaction>,
        height: u32,
    ) {
        let mut state = self.lock();
        if state.entries.is_empty() {
            return;
        }
        let spent_by: HashMap<OutPoint, Txid> = state
            .entries
            .iter()
            .filter(|(_, e)| e.settled_at.is_none())
            .flat_map(|(txid, e)| e.tx.input.iter().map(|i| (i.previous_output, *txid)))
            .collect();
        let mut settled: Vec<Txid> = Vec::new();
        for tx in txs {
            let txid = tx.compute_txid();
            if state.entries.contains_key(&txid) {
                settled.push(txid);
                continue;
            }
            for input in &tx.input {
                if let Some(kept) = spent_by.get(&input.previous_output) {
                    tracing::info!(%kept, by = %txid, "a kept transaction was conflicted");
                    settled.extend(with_descendants(&state, *kept));
                }
            }
        }
        for txid in settled {
            if let Some(entry) = state.entries.get_mut(&txid) {
                if entry.settled_at.is_none() {
                    entry.settled_at = Some(height);
                    self.write(&txid, entry);
                }
            }
        }
        let deep: Vec<Txid> = state
            .entries
            .iter()
            .filter(|(_, e)| e.settled_at.is_some_and(|h| height + 1 >= h + FINAL_DEPTH))
            .map(|(txid, _)| *txid)
            .collect();
        for txid in deep {
            state.entries.remove(&txid);
            self.delete(&txid);
        }
    }

    /// Un-settles what was settled above `fork_height` (a reorganisation).
    pub(crate) fn blocks_disconnected(&self, fork_height: u32) {
        let mut state = self.lock();
        let mut changed = Vec::new();
        for (txid, entry) in state.entries.iter_mut() {
            if entry.settled_at.is_some_and(|h| h > fork_height) {
                entry.settled_at = None;
                changed.push(*txid);
            }
        }
        for txid in changed {
            if let Some(entry) = state.entries.get(&txid) {
                self.write(&txid, entry);
            }
        }
    }

    /// How the node's broadcasts stand.
    pub fn status(&self) -> BroadcastStatus {
        let state = self.lock();
        let mut failing: Vec<FailingBroadcast> = state
            .entries
            .iter()
            .filter(|(_, e)| e.settled_at.is_none() && e.failures_in_a_row >= FAILING_AFTER)
            .map(|(txid, e)| FailingBroadcast {
                txid: txid.to_string(),
                attempts: e.attempts,
                last_error: e.last_error.clone().unwrap_or_default(),
                since: e.kept_at,
            })
            .collect();
        failing.sort_by(|a, b| (a.since, &a.txid).cmp(&(b.since, &b.txid)));
        BroadcastStatus {
            unconfirmed: state
                .entries
                .values()
                .filter(|e| e.settled_at.is_none())
                .count(),
            failing,
        }
    }
}

/// `txid` and every kept transaction that spends it, directly or not.
fn with_descendants(state: &State, txid: Txid) -> Vec<Txid> {
    let mut found = vec![txid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (child, entry) in &state.entries {
            if !found.contains(child)
                && entry
                    .tx
                    .input
                    .iter()
                    .any(|inp| inp.previous_output.txid == parent)
            {
                found.push(*child);
            }
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{absolute, transaction, Amount, ScriptBuf, Sequence, TxIn, TxOut, Witness};

    fn temp_store() -> (Arc<Store>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mn-outbox-{}", rand::random::<u64>()));
        (Arc::new(Store::open(&dir).expect("store")), dir)
    }

    fn outpoint(n: u8) -> OutPoint {
        OutPoint::new(Txid::from_byte_array([n; 32]), 0)
    }

    fn spend(inputs: &[OutPoint], value: u64) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: inputs
                .iter()
                .map(|o| TxIn {
                    previous_output: *o,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::new(),
                })
                .collect(),
            output: vec![TxOut {
                value: Amount::from_sat(value),
                script_pubkey: ScriptBuf::new(),
            }],
        }
    }

    #[test]
    fn keeps_what_concerns_the_node_until_six_deep() {
        let (store, dir) = temp_store();
        let outbox = Outbox::load(store.clone()).expect("load");
        let wallet_coin = outpoint(1);
        let funding = outpoint(2);
        outbox.set_funding_outpoints([funding].into());

        // Someone else's transaction is not kept; a wallet spend and a commitment are.
        assert!(!outbox.keep_if(&spend(&[outpoint(9)], 1), |_| false));
        let send = spend(&[wallet_coin], 1_000);
        assert!(outbox.keep_if(&send, |_| true));
        let commitment = spend(&[funding], 5_000);
        assert!(outbox.keep_if(&commitment, |_| false));
        // A child of a kept transaction is kept too.
        let child = spend(&[OutPoint::new(send.compute_txid(), 0)], 900);
        assert!(outbox.keep_if(&child, |_| false));
        assert_eq!(outbox.status().unconfirmed, 3);

        // Three failed attempts in a row make it failing; an acceptance clears that.
        let down = BroadcastOutcome::Unreachable("refused".into());
        for _ in 0..FAILING_AFTER {
            outbox.outcome(commitment.compute_txid(), &down);
        }
        outbox.outcome(
            send.compute_txid(),
            &BroadcastOutcome::NotFinal("non-final".into()),
        );
        let status = outbox.status();
        assert_eq!(status.failing.len(), 1);
        assert_eq!(
            status.failing[0].txid,
            commitment.compute_txid().to_string()
        );
        assert_eq!(status.failing[0].last_error, "refused");

        // A fee bump of the send replaces it and its child.
        let bump = spend(&[wallet_coin], 800);
        assert!(outbox.keep_if(&bump, |_| true));
        let mut pending: Vec<Txid> = outbox.pending().iter().map(|t| t.compute_txid()).collect();
        pending.sort();
        let mut expected = vec![bump.compute_txid(), commitment.compute_txid()];
        expected.sort();
        assert_eq!(pending, expected);

        // The bump is mined; the counterparty's commitment conflicts ours.
        outbox.block_connected([&bump], 100);
        outbox.block_connected([&spend(&[funding], 4_000)], 101);
        assert!(outbox.pending().is_empty());
        assert_eq!(outbox.status(), BroadcastStatus::default());

        // A reorganisation below the bump's block un-settles it; it is sent again.
        outbox.blocks_disconnected(99);
        assert_eq!(outbox.pending().len(), 2);
        outbox.block_connected([&bump, &spend(&[funding], 4_000)], 100);

        // A transaction whose inputs are gone is dropped with its children, unless it waits
        // for a parent we are still getting mined.
        let stale = spend(&[outpoint(5)], 10);
        let stale_child = spend(&[OutPoint::new(stale.compute_txid(), 0)], 5);
        assert!(outbox.keep_if(&stale, |_| true));
        assert!(outbox.keep_if(&stale_child, |_| false));
        let gone = BroadcastOutcome::InputsGone("missingorspent".into());
        assert!(outbox.outcome(stale_child.compute_txid(), &gone).is_empty());
        let mut dropped = outbox.outcome(stale.compute_txid(), &gone);
        dropped.sort();
        let mut expected = vec![stale.compute_txid(), stale_child.compute_txid()];
        expected.sort();
        assert_eq!(dropped, expected);

        // Durable: a reload has both, settled, and drops each once six deep.
        drop(outbox);
        let outbox = Outbox::load(store.clone()).expect("reload");
        assert!(outbox.pending().is_empty());
        outbox.block_connected(std::iter::empty(), 104);
        assert_eq!(store.list(OUTBOX_NAMESPACE, "").expect("list").len(), 2);
        outbox.block_connected([&spend(&[outpoint(7)], 1)], 105);
        assert!(store.list(OUTBOX_NAMESPACE, "").expect("list").is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
