//! The node's on-chain wallet: a watch-only BDK wallet built from public descriptors.
//!
//! The wallet follows the chain through the shared feed ([`Listen`]), persists its BDK change
//! sets in the node's store, and asks the [`WalletSigner`] to sign every transaction it builds.

use std::sync::{Arc, Mutex, MutexGuard};

use bdk_wallet::chain::{BlockId, CheckPoint, Merge};
use bdk_wallet::{Balance, ChangeSet, KeychainKind, Update, Wallet};
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::Psbt;
use bitcoin::{Address, Amount, Block, FeeRate, Network, ScriptBuf, Transaction, Txid};
use lightning::chain::{BestBlock, Listen};
use lightning::util::persist::KVStoreSync;

use crate::error::NodeError;
use crate::keys::WalletSigner;
use crate::outbox::Outbox;
use crate::types::Store;

mod unconfirmed;

const WALLET_NAMESPACE: &str = "bdk_wallet";

/// What to send on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendAmount {
    /// Exactly this many satoshis; the fee comes on top.
    Sats(u64),
    /// Everything the wallet holds, less the fee.
    All,
}

/// The on-chain wallet.
pub struct OnchainWallet {
    inner: Mutex<Wallet>,
    signer: Arc<dyn WalletSigner>,
    store: Arc<Store>,
    next_seq: Mutex<u64>,
    network: Network,
    /// What the node broadcast and must get mined (see [`crate::outbox`]).
    outbox: Outbox,
}

impl OnchainWallet {
    /// Loads the wallet from the store, or creates it with its birthday at `birth`.
    pub fn load_or_create(
        signer: Arc<dyn WalletSigner>,
        store: Arc<Store>,
        network: Network,
        birth: BestBlock,
    ) -> Result<Self, NodeError> {
        let descriptors = signer.wallet_descriptors()?;
        let (changeset, next_seq) = load_changesets(&store)?;
        let wallet = match changeset {
            Some(cs) => Wallet::load()
                .descriptor(KeychainKind::External, Some(descriptors.external.clone()))
                .descriptor(KeychainKind::Internal, Some(descriptors.internal.clone()))
                .check_network(network)
                .load_wallet_no_persist(cs)
                .map_err(|e| NodeError::Wallet(format!("cannot load the wallet: {e}")))?
                .ok_or_else(|| NodeError::Wallet("stored wallet is empty".into()))?,
            None => {
                let mut w = Wallet::create(descriptors.external, descriptors.internal)
                    .network(network)
                    .create_wallet_no_persist()
                    .map_err(|e| NodeError::Wallet(format!("bad wallet descriptors: {e}")))?;
                let genesis = genesis_block(network).block_hash();
                let mut ids = vec![BlockId {
                    height: 0,
                    hash: genesis,
                }];
                if birth.height > 0 {
                    ids.push(BlockId {
                        height: birth.height,
                        hash: birth.block_hash,
                    });
                }
                let chain = CheckPoint::from_block_ids(ids)
                    .map_err(|_| NodeError::Wallet("bad wallet birthday".into()))?;
                w.apply_update(Update {
                    chain: Some(chain),
                    ..Default::default()
                })
                .map_err(|e| NodeError::Wallet(format!("cannot set wallet birthday: {e}")))?;
                w
            }
        };
        let this = Self {
            inner: Mutex::new(wallet),
            signer,
            outbox: Outbox::load(store.clone())?,
            store,
            next_seq: Mutex::new(next_seq),
            network,
        };
        this.persist(&mut this.lock())?;
        Ok(this)
    }

    fn lock(&self) -> MutexGuard<'_, Wallet> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes whatever the wallet has staged as a new change set.
    fn persist(&self, wallet: &mut Wallet) -> Result<(), NodeError> {
        let Some(cs) = wallet.take_staged() else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&cs)
            .map_err(|e| NodeError::Wallet(format!("cannot encode wallet changes: {e}")))?;
        let mut seq = self.next_seq.lock().unwrap_or_else(|p| p.into_inner());
        self.store
            .write(WALLET_NAMESPACE, "", &format!("cs{:020}", *seq), bytes)?;
        *seq += 1;
        Ok(())
    }

    /// The best block the wallet has seen.
    pub fn best_block(&self) -> BestBlock {
        let tip = self.lock().latest_checkpoint();
        BestBlock::new(tip.hash(), tip.height())
    }

    /// Reveals a fresh receive address.
    pub fn new_address(&self) -> Result<Address, NodeError> {
        let mut w = self.lock();
        let info = w.reveal_next_address(KeychainKind::External);
        self.persist(&mut w)?;
        Ok(info.address)
    }

    /// Reveals a fresh change script (for channel closes and sweeps).
    pub fn new_change_script(&self) -> Result<ScriptBuf, NodeError> {
        let mut w = self.lock();
        let info = w.reveal_next_address(KeychainKind::Internal);
        self.persist(&mut w)?;
        Ok(info.address.script_pubkey())
    }

    /// The wallet's balance.
    pub fn balance(&self) -> Balance {
        self.lock().balance()
    }

    /// Builds and signs (through the signer) a transaction paying `amount` to `script`.
    pub fn build_signed(
        &self,
        script: ScriptBuf,
        amount: SendAmount,
        fee_rate: FeeRate,
        authorization: Option<micronode_signer_protocol::PaymentAuthorization>,
    ) -> Result<Transaction, NodeError> {
        let psbt = self.build_unsigned(script, amount, fee_rate)?;
        self.sign_and_extract_for_app(psbt, authorization)
    }

    /// Builds an unsigned transaction paying `amount` to `script` (inputs carry their key
    /// origins). Used when the transaction may be signed only later (channel funding with a
    /// validating signer).
    pub fn build_unsigned(
        &self,
        script: ScriptBuf,
        amount: SendAmount,
        fee_rate: FeeRate,
    ) -> Result<Psbt, NodeError> {
        let mut w = self.lock();
        let psbt = {
            let mut builder = w.build_tx();
            builder.fee_rate(fee_rate);
            match amount {
                SendAmount::Sats(sat) => {
                    builder.add_recipient(script, Amount::from_sat(sat));
                }
                SendAmount::All => {
                    builder.drain_wallet().drain_to(script);
                }
            }
            builder.finish().map_err(|e| match e {
                bdk_wallet::error::CreateTxError::CoinSelection(e) => {
                    NodeError::InsufficientFunds(e.to_string())
                }
                other => NodeError::Wallet(format!("cannot build the transaction: {other}")),
            })?
        };
        // Stage the change address as used; the spend itself is applied on broadcast.
        self.persist(&mut w)?;
        Ok(psbt)
    }

    /// Signs a PSBT built by this wallet through the signer, finalizes it and extracts the
    /// transaction, and records it in the wallet (durably) before returning it: once signed it
    /// may reach the chain even if its broadcast seems to fail, so its coins must never be
    /// spent again by another transaction.
    pub fn sign_and_extract(&self, psbt: Psbt) -> Result<Transaction, NodeError> {
        self.sign_and_extract_for_app(psbt, None)
    }

    /// [`OnchainWallet::sign_and_extract`] with an app's signed request for the send.
    pub fn sign_and_extract_for_app(
        &self,
        psbt: Psbt,
        authorization: Option<micronode_signer_protocol::PaymentAuthorization>,
    ) -> Result<Transaction, NodeError> {
        let tx = self.sign_finalize_extract(psbt, authorization)?;
        self.apply_unconfirmed(&tx)?;
        Ok(tx)
    }

    fn sign_finalize_extract(
        &self,
        mut psbt: Psbt,
        authorization: Option<micronode_signer_protocol::PaymentAuthorization>,
    ) -> Result<Transaction, NodeError> {
        self.signer
            .sign_wallet_psbt_for_app(&mut psbt, authorization)?;
        let w = self.lock();
        // BDK 2 marks `SignOptions` deprecated in favour of `bitcoin::psbt` signing (which is what
        // the signer does); its finalizer still takes them.
        #[allow(deprecated)]
        let finalized = w
            .finalize_psbt(&mut psbt, bdk_wallet::SignOptions::default())
            .map_err(|e| {
                NodeError::Signer(format!("cannot finalize the signed transaction: {e}"))
            })?;
        if !finalized {
            return Err(NodeError::Signer(
                "the signer did not sign every wallet input".into(),
            ));
        }
        psbt.extract_tx()
            .map_err(|e| NodeError::Wallet(format!("cannot extract the transaction: {e}")))
    }

    /// The derivation `(chain, index)` of a wallet script: chain 0 receives, chain 1 change.
    pub fn derivation_of(&self, script: &ScriptBuf) -> Option<(u32, u32)> {
        let w = self.lock();
        w.derivation_of_spk(script.clone())
            .map(|(keychain, index)| {
                let chain = match keychain {
                    KeychainKind::External => 0,
                    KeychainKind::Internal => 1,
                };
                (chain, index)
            })
    }

    /// Tells the wallet about a transaction we broadcast, so balances reflect it before it
    /// confirms.
    pub fn apply_unconfirmed(&self, tx: &Transaction) -> Result<(), NodeError> {
        let mut w = self.lock();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        w.apply_unconfirmed_txs([(tx.clone(), now)]);
        self.persist(&mut w)
    }

    /// Parses an address for this wallet's network.
    pub fn parse_address(&self, address: &str) -> Result<Address, NodeError> {
        address
            .parse::<Address<bitcoin::address::NetworkUnchecked>>()
            .map_err(|e| NodeError::InvalidInput(format!("invalid address {address:?}: {e}")))?
            .require_network(self.network)
            .map_err(|e| NodeError::InvalidInput(format!("address {address:?}: {e}")))
    }

    /// Txids of the wallet's transactions.
    pub fn txids(&self) -> Vec<Txid> {
        self.lock().transactions().map(|t| t.tx_node.txid).collect()
    }

    /// The wallet's confirmed coins, as LDK's fee bumping takes them.
    pub fn confirmed_utxos(&self) -> Vec<lightning::events::bump_transaction::Utxo> {
        let w = self.lock();
        w.list_unspent()
            .filter(|o| o.chain_position.is_confirmed())
            .filter_map(|o| {
                let script = &o.txout.script_pubkey;
                if !script.is_p2wpkh() {
                    return None;
                }
                // A P2WPKH script is `OP_0 <20-byte key hash>`.
                let hash = <bitcoin::WPubkeyHash as bitcoin::hashes::Hash>::from_slice(
                    script.as_bytes().get(2..22)?,
                )
                .ok()?;
                Some(lightning::events::bump_transaction::Utxo::new_v0_p2wpkh(
                    o.outpoint,
                    o.txout.value,
                    &hash,
                ))
            })
            .collect()
    }

    /// Signs the wallet's inputs of a transaction that also spends outputs that are not the
    /// wallet's (an anchor or HTLC outputs, in a fee bump); those are left for their own
    /// signer. Wallet inputs get their key origins and previous transactions, others the
    /// previous transaction from `parents` when known. The transaction is recorded as
    /// unconfirmed before it is returned, so its coins are not spent twice.
    pub fn sign_with_foreign_inputs(
        &self,
        mut psbt: Psbt,
        parents: &std::collections::HashMap<Txid, Transaction>,
    ) -> Result<Transaction, NodeError> {
        let mut own = Vec::new();
        {
            let w = self.lock();
            for (index, txin) in psbt.unsigned_tx.input.iter().enumerate() {
                let outpoint = txin.previous_output;
                if let Some(local) = w.get_utxo(outpoint) {
                    let input = w.get_psbt_input(local, None, false).map_err(|e| {
                        NodeError::Wallet(format!("cannot describe wallet input {outpoint}: {e}"))
                    })?;
                    psbt.inputs[index] = input;
                    own.push(index);
                } else if let Some(parent) = parents.get(&outpoint.txid) {
                    psbt.inputs[index].non_witness_utxo = Some(parent.clone());
                }
            }
            // The change output's key origin, so a validating signer can tell it is the
            // wallet's (BDK adds it to the transactions it builds; LDK built this one).
            for index in 0..psbt.unsigned_tx.output.len() {
                let script = psbt.unsigned_tx.output[index].script_pubkey.clone();
                let Some((keychain, child)) = w.derivation_of_spk(script) else {
                    continue;
                };
                let derived = w
                    .public_descriptor(keychain)
                    .at_derivation_index(child)
                    .map_err(|e| NodeError::Wallet(format!("cannot derive change key: {e}")))?;
                bdk_wallet::miniscript::psbt::PsbtExt::update_output_with_descriptor(
                    &mut psbt, index, &derived,
                )
                .map_err(|e| NodeError::Wallet(format!("cannot describe change output: {e}")))?;
            }
        }
        self.signer.sign_wallet_psbt(&mut psbt)?;
        {
            let w = self.lock();
            // See `sign_and_extract`: BDK's finalizer still takes `SignOptions`. It finalizes
            // the wallet's inputs and reports the others as not finalized.
            #[allow(deprecated)]
            w.finalize_psbt(&mut psbt, bdk_wallet::SignOptions::default())
                .map_err(|e| {
                    NodeError::Signer(format!("cannot finalize the signed transaction: {e}"))
                })?;
        }
        if let Some(index) = own
            .iter()
            .find(|i| psbt.inputs[**i].final_script_witness.is_none())
        {
            return Err(NodeError::Signer(format!(
                "the signer did not sign wallet input {index}"
            )));
        }
        let tx = psbt.extract_tx_unchecked_fee_rate();
        self.apply_unconfirmed(&tx)?;
        Ok(tx)
    }
}

impl Listen for OnchainWallet {
    fn filtered_block_connected(
        &self,
        header: &bitcoin::block::Header,
        txdata: &lightning::chain::transaction::TransactionData,
        height: u32,
    ) {
        let block = Block {
            header: *header,
            txdata: txdata.iter().map(|(_, tx)| (*tx).clone()).collect(),
        };
        self.block_connected(&block, height);
    }

    fn block_connected(&self, block: &Block, height: u32) {
        let mut w = self.lock();
        let connected_to = BlockId {
            height: height.saturating_sub(1),
            hash: block.header.prev_blockhash,
        };
        if let Err(e) = w.apply_block_connected_to(block, height, connected_to) {
            tracing::error!(height, error = %e, "wallet could not apply block");
            return;
        }
        if let Err(e) = self.persist(&mut w) {
            tracing::error!(height, error = %e, "wallet could not persist block");
        }
    }

    fn blocks_disconnected(&self, _fork_point: BestBlock) {
        // BDK re-anchors its chain on the next connected block (`apply_block_connected_to`
        // replaces the stale checkpoints), so nothing to do here.
    }
}

impl lightning::sign::ChangeDestinationSourceSync for OnchainWallet {
    fn get_change_destination_script(&self) -> Result<ScriptBuf, ()> {
        self.new_change_script().map_err(|e| {
            tracing::error!(error = %e, "no change address for a sweep");
        })
    }
}

/// Reads every stored change set, merges them, and compacts them into one.
fn load_changesets(store: &Store) -> Result<(Option<ChangeSet>, u64), NodeError> {
    let mut keys = store.list(WALLET_NAMESPACE, "")?;
    keys.sort();
    if keys.is_empty() {
        return Ok((None, 0));
    }
    let mut merged = ChangeSet::default();
    for key in &keys {
        let bytes = store.read(WALLET_NAMESPACE, "", key)?;
        let cs: ChangeSet = serde_json::from_slice(&bytes)
            .map_err(|e| NodeError::Wallet(format!("corrupt wallet record {key}: {e}")))?;
        merged.merge(cs);
    }
    // Compact: write the merged set under the next sequence number, then drop the old ones.
    let next = keys.len() as u64 + parse_seq(keys.last()).unwrap_or(0) + 1;
    let bytes = serde_json::to_vec(&merged)
        .map_err(|e| NodeError::Wallet(format!("cannot encode wallet changes: {e}")))?;
    store.write(WALLET_NAMESPACE, "", &format!("cs{next:020}"), bytes)?;
    for key in &keys {
        store.remove(WALLET_NAMESPACE, "", key, false)?;
    }
    Ok((Some(merged), next + 1))
}

fn parse_seq(key: Option<&String>) -> Option<u64> {
    key?.strip_prefix("cs")?.parse().ok()
}
