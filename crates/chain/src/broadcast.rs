//! A transaction broadcaster shared by every node in the process.
//!
//! Every transaction is first offered to the nodes' feed listeners
//! ([`FeedListener::keep_broadcast`]): the nodes it concerns keep it in their own durable
//! storage, before bitcoind is asked, until it is mined. The broadcaster then sends it and tells
//! them how that went. Every [`FeedConfig::rebroadcast_interval`](crate::FeedConfig), and as
//! soon as bitcoind answers again after an outage (or a node joins the feed), it asks the nodes
//! for what they still keep and sends it again, parents before children. A transaction is never
//! lost because bitcoind was away when it was first sent.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bitcoin::{Transaction, Txid};
use lightning::chain::chaininterface::BroadcasterInterface;
use tokio::sync::broadcast;

use crate::feed::{ChainFeed, FanOut, Health};
use crate::listener::{BroadcastOutcome, FeedListener};
use crate::rpc::BitcoindRpc;

/// Sends transactions to bitcoind with `sendrawtransaction`, off the caller's thread, and
/// again until they are mined.
pub struct SharedBroadcaster {
    rpc: Arc<BitcoindRpc>,
    runtime: tokio::runtime::Handle,
    sent: broadcast::Sender<Txid>,
    fanout: Arc<FanOut>,
}

/// The listeners that keep one transaction.
type Keepers = Vec<Arc<dyn FeedListener>>;

impl SharedBroadcaster {
    /// Creates the broadcaster of `feed`'s listeners, running its RPC calls on the feed's
    /// runtime, and starts sending kept transactions again every `rebroadcast_interval`.
    pub fn start(
        rpc: Arc<BitcoindRpc>,
        feed: &ChainFeed,
        rebroadcast_interval: Duration,
    ) -> Arc<Self> {
        let (sent, _) = broadcast::channel(1024);
        let this = Arc::new(Self {
            rpc,
            runtime: feed.runtime().clone(),
            sent,
            fanout: feed.fanout().clone(),
        });
        this.runtime.spawn(rebroadcast_loop(
            Arc::downgrade(&this),
            feed.health().clone(),
            rebroadcast_interval,
        ));
        this
    }

    /// Txids of transactions that bitcoind accepted, as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<Txid> {
        self.sent.subscribe()
    }

    /// Broadcasts one transaction and waits for bitcoind's answer. The nodes it concerns keep
    /// it first, so it is sent again later whatever the answer.
    pub async fn broadcast_now(&self, tx: &Transaction) -> Result<Txid, crate::rpc::RpcError> {
        let keepers = {
            let fanout = self.fanout.clone();
            let tx = tx.clone();
            // Keeping writes to the nodes' stores: not on an async worker.
            tokio::task::spawn_blocking(move || keep(&fanout, &tx))
                .await
                .unwrap_or_default()
        };
        let result = self.rpc.send_raw_transaction(tx).await;
        let outcome = outcome_of(&self.rpc, tx, &result).await;
        settle(
            &self.sent,
            tx.compute_txid(),
            &keepers,
            &outcome,
            "broadcast",
        );
        result
    }
}

impl BroadcasterInterface for SharedBroadcaster {
    fn broadcast_transactions(&self, txs: &[&Transaction]) {
        // One call may be a package (a commitment and the child paying for it, parent
        // first): its transactions are sent one after the other, in order, so a child never
        // reaches bitcoind before its parent (and is never taken for one whose inputs are gone).
        let package: Vec<(Transaction, Keepers)> = txs
            .iter()
            .map(|tx| ((*tx).clone(), keep(&self.fanout, tx)))
            .collect();
        let rpc = self.rpc.clone();
        let sent = self.sent.clone();
        self.runtime.spawn(async move {
            for (tx, keepers) in package {
                let result = rpc.send_raw_transaction(&tx).await;
                let outcome = outcome_of(&rpc, &tx, &result).await;
                settle(&sent, tx.compute_txid(), &keepers, &outcome, "broadcast");
            }
        });
    }
}

/// Offers `tx` to every listener; returns those that kept it.
fn keep(fanout: &FanOut, tx: &Transaction) -> Keepers {
    fanout
        .snapshot()
        .into_iter()
        .filter(|l| l.keep_broadcast(tx))
        .collect()
}

/// bitcoind's `RPC_VERIFY_ERROR`: `bad-txns-inputs-missingorspent`, `missing-inputs`.
const RPC_VERIFY_ERROR: i64 = -25;

/// The outcome of sending `tx`; a refusal for missing or spent inputs is checked against the
/// UTXO set and mempool (`gettxout`), to tell a transaction that can never be mined.
async fn outcome_of(
    rpc: &BitcoindRpc,
    tx: &Transaction,
    result: &Result<Txid, crate::rpc::RpcError>,
) -> BroadcastOutcome {
    let outcome = BroadcastOutcome::of(result);
    let Err(crate::rpc::RpcError::Rpc {
        code: RPC_VERIFY_ERROR,
        message,
    }) = result
    else {
        return outcome;
    };
    for input in &tx.input {
        let o = input.previous_output;
        let params = [
            serde_json::json!(o.txid.to_string()),
            serde_json::json!(o.vout),
            serde_json::json!(true),
        ];
        match rpc.call::<serde_json::Value>("gettxout", &params).await {
            Ok(serde_json::Value::Null) => {}
            // An input is still there (or bitcoind cannot say): not gone.
            _ => return outcome,
        }
    }
    BroadcastOutcome::InputsGone(format!("bitcoind error {RPC_VERIFY_ERROR}: {message}"))
}

/// Tells the keepers how sending went, and logs it.
fn settle(
    sent: &broadcast::Sender<Txid>,
    txid: Txid,
    keepers: &Keepers,
    outcome: &BroadcastOutcome,
    what: &str,
) {
    match outcome {
        BroadcastOutcome::Accepted => {
            tracing::debug!(%txid, "{what}: bitcoind accepted the transaction");
            let _ = sent.send(txid);
        }
        // LDK hands over timelocked claims before they are final; it is sent again later.
        BroadcastOutcome::NotFinal(reason) => {
            tracing::debug!(%txid, %reason, "{what}: not final yet")
        }
        BroadcastOutcome::Rejected(reason)
        | BroadcastOutcome::Unreachable(reason)
        | BroadcastOutcome::InputsGone(reason) => {
            tracing::warn!(%txid, error = %reason, kept = keepers.len(), "{what} failed; will retry")
        }
    }
    for keeper in keepers {
        keeper.broadcast_outcome(txid, outcome);
    }
}

async fn rebroadcast_loop(this: Weak<SharedBroadcaster>, health: Arc<Health>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = health.rebroadcast_now.notified() => {}
        }
        let Some(this) = this.upgrade() else { return };
        this.rebroadcast_round().await;
    }
}

impl SharedBroadcaster {
    /// Sends every kept transaction again, parents first. Stops at the first sign that bitcoind
    /// is away (the rest is told so without a call).
    async fn rebroadcast_round(&self) {
        let mut by_txid: HashMap<Txid, (Transaction, Keepers)> = HashMap::new();
        for listener in self.fanout.snapshot() {
            for tx in listener.pending_broadcasts() {
                by_txid
                    .entry(tx.compute_txid())
                    .or_insert_with(|| (tx, Vec::new()))
                    .1
                    .push(listener.clone());
            }
        }
        if by_txid.is_empty() {
            return;
        }
        tracing::debug!(count = by_txid.len(), "sending kept transactions again");
        let mut away: Option<BroadcastOutcome> = None;
        for txid in parents_first(&by_txid) {
            let Some((tx, keepers)) = by_txid.get(&txid) else {
                continue;
            };
            if let Some(outcome) = &away {
                for keeper in keepers {
                    keeper.broadcast_outcome(txid, outcome);
                }
                continue;
            }
            let result = self.rpc.send_raw_transaction(tx).await;
            let outcome = outcome_of(&self.rpc, tx, &result).await;
            settle(&self.sent, txid, keepers, &outcome, "rebroadcast");
            if let BroadcastOutcome::Unreachable(_) = outcome {
                away = Some(outcome);
            }
        }
    }
}

/// The txids in an order where a transaction comes after every one of its parents in the set.
fn parents_first(txs: &HashMap<Txid, (Transaction, Keepers)>) -> Vec<Txid> {
    let mut order = Vec::with_capacity(txs.len());
    let mut done: HashSet<Txid> = HashSet::new();
    let mut left: Vec<Txid> = txs.keys().copied().collect();
    left.sort();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|txid| {
            let ready = txs[txid].0.input.iter().all(|i| {
                let parent = i.previous_output.txid;
                !txs.contains_key(&parent) || done.contains(&parent)
            });
            if ready {
                done.insert(*txid);
                order.push(*txid);
            }
            !ready
        });
        if left.len() == before {
            // Only a cycle could do this, and transactions cannot form one.
            order.append(&mut left);
        }
    }
    order
}
