//! What a node's live listener on the shared feed receives besides blocks: unconfirmed
//! transactions from bitcoind's mempool, and the transactions the process broadcasts.
//!
//! One [`FeedListener`] per node joins the feed ([`crate::ChainFeed::register`]). The feed polls
//! bitcoind's mempool once for the whole process and hands each listener the new transactions;
//! the [`crate::SharedBroadcaster`] offers every transaction it broadcasts to every listener, so
//! the node(s) it concerns keep it in their own durable storage until it is mined, and asks them
//! again on a timer (and when bitcoind comes back) what is still waiting.

use std::sync::Arc;

use bitcoin::{Transaction, Txid};
use lightning::chain::Listen;

use crate::rpc::RpcError;

/// bitcoind's `RPC_VERIFY_REJECTED`.
const RPC_VERIFY_REJECTED: i64 = -26;

/// A node's listener on the shared [`crate::ChainFeed`]: blocks through LDK's [`Listen`], and
/// the optional hooks below. All hooks have do-nothing defaults.
///
/// Block, mempool and rebroadcast callbacks run on the feed's thread; `keep_broadcast` runs on
/// whichever thread broadcasts, so implementations must be cheap and must not call back into
/// LDK objects that may be locked by the broadcasting caller (a chain monitor rebroadcasting
/// claims holds its monitors' lock).
pub trait FeedListener: Listen + Send + Sync {
    /// Transactions that entered bitcoind's mempool since the last call (`added`), and txids
    /// that left it without being mined in a block the feed has delivered (`removed`: evicted,
    /// replaced or expired). Only called when mempool polling is on.
    fn mempool_update(&self, added: &[Arc<Transaction>], removed: &[Txid]) {
        let _ = (added, removed);
    }

    /// The process is about to broadcast `tx`: keep it (durably, before returning) if it
    /// concerns this node, so it is sent again until it is mined. Returns whether it was kept.
    fn keep_broadcast(&self, tx: &Transaction) -> bool {
        let _ = tx;
        false
    }

    /// The kept transactions that are not mined yet, to send again.
    fn pending_broadcasts(&self) -> Vec<Transaction> {
        Vec::new()
    }

    /// How sending one of the kept transactions went.
    fn broadcast_outcome(&self, txid: Txid, outcome: &BroadcastOutcome) {
        let _ = (txid, outcome);
    }
}

/// How one attempt to hand a transaction to bitcoind went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BroadcastOutcome {
    /// bitcoind accepted it (or already had it).
    Accepted,
    /// bitcoind refused it for now because it is not final yet (a timelocked claim): not a
    /// failure, it is sent again later.
    NotFinal(String),
    /// bitcoind refused it.
    Rejected(String),
    /// bitcoind refused it because an input is spent or does not exist, and none of its
    /// inputs is in bitcoind's UTXO set or mempool any more: it can never be mined unless a
    /// missing parent comes back (the keeper knows whether it is sending one).
    InputsGone(String),
    /// bitcoind did not answer (down, hung, or refusing our credentials).
    Unreachable(String),
}

impl BroadcastOutcome {
    /// The outcome of a `sendrawtransaction` call.
    pub fn of(result: &Result<Txid, RpcError>) -> Self {
        match result {
            Ok(_) => BroadcastOutcome::Accepted,
            Err(e) if e.is_warming_up() => BroadcastOutcome::Unreachable(e.to_string()),
            Err(RpcError::Rpc { code, message })
                if *code == RPC_VERIFY_REJECTED
                    && (message.contains("non-final") || message.contains("non-BIP68-final")) =>
            {
                BroadcastOutcome::NotFinal(message.clone())
            }
            Err(RpcError::Rpc { code, message }) => {
                BroadcastOutcome::Rejected(format!("bitcoind error {code}: {message}"))
            }
            Err(e @ RpcError::Decode { .. }) => BroadcastOutcome::Rejected(e.to_string()),
            Err(e) => BroadcastOutcome::Unreachable(e.to_string()),
        }
    }

    /// Whether bitcoind has the transaction now.
    pub fn accepted(&self) -> bool {
        matches!(self, BroadcastOutcome::Accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_tell_waiting_from_failing() {
        let rpc = |code, message: &str| {
            Err(RpcError::Rpc {
                code,
                message: message.into(),
            })
        };
        assert!(
            BroadcastOutcome::of(&Ok(Txid::from_raw_hash(bitcoin::hashes::Hash::all_zeros())))
                .accepted()
        );
        assert!(matches!(
            BroadcastOutcome::of(&rpc(-26, "non-final")),
            BroadcastOutcome::NotFinal(_)
        ));
        assert!(matches!(
            BroadcastOutcome::of(&rpc(-26, "min relay fee not met")),
            BroadcastOutcome::Rejected(_)
        ));
        let down = Err(RpcError::Unreachable {
            url: "http://127.0.0.1:1/".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        });
        assert!(matches!(
            BroadcastOutcome::of(&down),
            BroadcastOutcome::Unreachable(_)
        ));
    }
}
