//! Fee bumping for anchor channels: LDK's `BumpTransaction` events answered with CPFP from the
//! node's on-chain wallet.
//!
//! LDK's handler selects the wallet's confirmed coins, builds the child (an anchor spend, or
//! zero-fee HTLC transactions aggregated with wallet inputs) and asks the wallet to sign its
//! inputs ([`BumpWallet::sign_psbt`]); the anchor and HTLC inputs are signed by the channel
//! signer. Both go through the signing seam, so a validating signer checks the child like any
//! other wallet spend (its destinations and its fee). The shared broadcaster sends a package's
//! transactions in order and keeps them until they are mined.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bitcoin::{Psbt, ScriptBuf, Transaction, Txid};
use lightning::chain::chaininterface::BroadcasterInterface;
use lightning::events::bump_transaction::sync::{
    BumpTransactionEventHandlerSync, WalletSourceSync, WalletSync,
};
use lightning::events::bump_transaction::{BumpTransactionEvent, Utxo};
use micronode_chain::SharedBroadcaster;

use crate::keys::KeysBackend;
use crate::logger::NodeLogger;
use crate::wallet::OnchainWallet;

/// The wallet as LDK's fee-bumping coin source.
pub(crate) struct BumpWallet {
    wallet: Arc<OnchainWallet>,
    /// Transactions whose outputs a bump spends (the commitment being bumped), by txid, so the
    /// signer gets every input's full previous transaction.
    parents: Mutex<HashMap<Txid, Transaction>>,
}

impl BumpWallet {
    fn parents(&self) -> std::sync::MutexGuard<'_, HashMap<Txid, Transaction>> {
        self.parents.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl WalletSourceSync for BumpWallet {
    fn list_confirmed_utxos(&self) -> Result<Vec<Utxo>, ()> {
        Ok(self.wallet.confirmed_utxos())
    }

    fn get_change_script(&self) -> Result<ScriptBuf, ()> {
        self.wallet.new_change_script().map_err(|e| {
            tracing::error!(error = %e, "no change address for a fee bump");
        })
    }

    fn sign_psbt(&self, psbt: Psbt) -> Result<Transaction, ()> {
        let parents = self.parents().clone();
        self.wallet
            .sign_with_foreign_inputs(psbt, &parents)
            .map_err(|e| {
                tracing::error!(error = %e, "the signer did not sign a fee bump");
            })
    }
}

type Handler<K> = BumpTransactionEventHandlerSync<
    Arc<SharedBroadcaster>,
    Arc<WalletSync<Arc<BumpWallet>, Arc<NodeLogger>>>,
    Arc<K>,
    Arc<NodeLogger>,
>;

/// Answers LDK's `BumpTransaction` events. Coins a bump spends stay reserved for its claim
/// across events (LDK's `WalletSync` keeps the locks), so concurrent claims never double-spend.
pub(crate) struct Bumper<K: KeysBackend> {
    handler: Handler<K>,
    wallet: Arc<BumpWallet>,
    broadcaster: Arc<SharedBroadcaster>,
}

impl<K: KeysBackend> Bumper<K> {
    /// A bumper paying from `wallet`, signing channel inputs with `keys`.
    pub(crate) fn new(
        wallet: Arc<OnchainWallet>,
        keys: Arc<K>,
        broadcaster: Arc<SharedBroadcaster>,
        logger: Arc<NodeLogger>,
    ) -> Self {
        let wallet = Arc::new(BumpWallet {
            wallet,
            parents: Mutex::new(HashMap::new()),
        });
        let coins = Arc::new(WalletSync::new(wallet.clone(), logger.clone()));
        Self {
            handler: BumpTransactionEventHandlerSync::new(broadcaster.clone(), coins, keys, logger),
            wallet,
            broadcaster,
        }
    }

    /// Handles one event. Blocking: the signer is asked to sign; call it off the async runtime.
    pub(crate) fn handle(&self, event: &BumpTransactionEvent) {
        if let BumpTransactionEvent::ChannelClose { commitment_tx, .. } = event {
            // The commitment goes out on its own first: it needs no wallet coins, so a close
            // happens even when the wallet cannot pay for the bump (the child follows when it
            // can).
            self.broadcaster.broadcast_transactions(&[commitment_tx]);
            self.wallet
                .parents()
                .insert(commitment_tx.compute_txid(), commitment_tx.clone());
        }
        self.handler.handle_event(event);
        if let BumpTransactionEvent::ChannelClose { commitment_tx, .. } = event {
            self.wallet.parents().remove(&commitment_tx.compute_txid());
        }
    }
}
