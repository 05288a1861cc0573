//! The validating signer: one VLS node built from the tenant's seed, its durable state, and
//! the policy layer on top.
//!
//! VLS state (channels, enforcement state, approved payments, allow-list, chain tracker) lives
//! in a redb database in the signer's directory, so the signer remembers every state it signed
//! across restarts; that state is what makes revoked-state refusal, the watchtower and
//! `recover` possible. The signer's own additions (chain view, watchtower data, wallet
//! high-water marks, payment credits) live beside it in [`SignerStore`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use lightning_signer::bitcoin::Network;
use lightning_signer::channel::{Channel, ChannelId, ChannelSlot};
use lightning_signer::node::{Node, NodeConfig, NodeServices};
use lightning_signer::persist::{Persist, SeedPersist};
use lightning_signer::policy::simple_validator::SimpleValidatorFactory;
use lightning_signer::signer::derive::KeyDerivationStyle;
use lightning_signer::signer::multi_signer::MultiSigner;
use lightning_signer::signer::ClockStartingTimeFactory;
use lightning_signer::util::clock::StandardClock;
use lightning_signer::util::loopback::LoopbackSignerKeysInterface;
use vls_persist::kvv::redb::RedbKVVStore;
use vls_persist::kvv::{JsonFormat, KVVPersister};
use zeroize::Zeroizing;

use crate::apps::AppGate;
use crate::chain::oracle::Oracle;
use crate::chain::SyncHandle;
use crate::outcome::Outcome;
use crate::policy::PolicyConfig;
use crate::store::{SignerStore, StoreError};
use crate::velocity::VelocityLimiter;
use crate::wallet_layout::WalletLayoutView;

/// Why the signer could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The stored VLS state does not belong to this seed or network.
    #[error("signer state mismatch: {0}")]
    StateMismatch(String),
    /// VLS refused to create or restore the node.
    #[error("cannot start the validating signer: {0}")]
    Vls(String),
    /// A private file could not be read or written.
    #[error(transparent)]
    File(#[from] micronode_files::FileError),
    /// The signer's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hands VLS the seed from memory; the seed's only copy at rest is the encrypted vault.
struct InMemorySeed(Zeroizing<[u8; 32]>);

impl SeedPersist for InMemorySeed {
    fn put(&self, _key: &str, _seed: &[u8]) {}
    fn get(&self, _key: &str) -> Option<Vec<u8>> {
        Some(self.0.to_vec())
    }
    fn list(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A holder-commitment validation that arrived before its (inbound) channel was set up.
pub(crate) type DeferredHolder = (
    lightning_signer::lightning::ln::chan_utils::HolderCommitmentTransaction,
    Vec<lightning_signer::lightning::types::payment::PaymentPreimage>,
);

/// The signer's core: VLS plus our policy layer. Shared by the link server, the chain
/// follower and `recover`.
pub struct SignerEngine {
    pub(crate) multi: Arc<MultiSigner>,
    pub(crate) keys: LoopbackSignerKeysInterface,
    /// Holder-commitment validations that arrived before their channel was set up.
    pub(crate) deferred: Mutex<HashMap<[u8; 32], DeferredHolder>>,
    pub(crate) velocity: VelocityLimiter,
    /// The tenant's apps: every payment is bound to one's signed request.
    pub(crate) apps: AppGate,
    pub(crate) policy: PolicyConfig,
    pub(crate) network: Network,
    pub(crate) store: SignerStore,
    pub(crate) wallet: WalletLayoutView,
    pub(crate) oracle: Oracle,
    /// Set when a chain follower runs: lets a request wait for the chain view to catch up.
    pub(crate) chain_sync: OnceLock<SyncHandle>,
    /// The payments found finished in the last pass of [`SignerEngine::prune_settled_payments`].
    pub(crate) finished_last_pass: Mutex<HashSet<[u8; 32]>>,
    revoked: AtomicBool,
    revoked_marker: PathBuf,
    /// The key that seals the node's state in a fleet's database ([`state_key_of`]).
    pub(crate) state_key: Zeroizing<[u8; 32]>,
}

/// Domain of the state key's derivation: no other key of the seed is derived with it.
const STATE_KEY_TAG: &[u8] = b"micronode/node-state-key/v1";

/// The key that seals a node's state in a fleet's database: HMAC-SHA256 keyed by the seed
/// over a fixed tag (as the app-token root is). It reveals nothing of the seed and signs
/// nothing; the node holds it in memory only while this signer is connected.
pub fn state_key_of(seed: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    use lightning_signer::bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
    let mut engine = hmac::HmacEngine::<sha256::Hash>::new(seed);
    engine.input(STATE_KEY_TAG);
    Zeroizing::new(hmac::Hmac::from_engine(engine).to_byte_array())
}

impl SignerEngine {
    /// Opens (creating on first use) the VLS node for `seed` with state under `dir`.
    pub fn open(
        dir: &Path,
        seed: Zeroizing<[u8; 32]>,
        network: Network,
        policy: PolicyConfig,
    ) -> Result<Self, EngineError> {
        micronode_files::own_private_dir(dir)?;
        if !policy.enforce_balance {
            tracing::warn!(
                "enforce_balance is off: a compromised operator can move this tenant's channel \
                 balance to its counterparty without an approved payment"
            );
        }
        let store = RedbKVVStore::new(dir.join("vls"));
        let persister: Arc<dyn Persist> = Arc::new(KVVPersister(store, JsonFormat));
        let oracle = Oracle::generate();
        // VLS's `OnchainValidator` would add the funding-buried check, but it does not pass
        // `enforce_balance` through (the trait's default, false, wins), which silently turns
        // balance accounting off. The simple validator keeps it; the chain check is ours
        // (`commitments::check_funding_buried`).
        let validator_factory = Arc::new(SimpleValidatorFactory::new_with_policy(
            policy.to_vls(network),
        ));
        let services = NodeServices {
            validator_factory,
            starting_time_factory: ClockStartingTimeFactory::new(),
            persister: persister.clone(),
            clock: Arc::new(StandardClock()),
            trusted_oracle_pubkeys: vec![oracle.public_key()],
        };
        let seed_source = Arc::new(InMemorySeed(seed.clone()));
        let config = NodeConfig {
            network,
            key_derivation_style: KeyDerivationStyle::Ldk,
            // Off regtest the tracker starts at VLS's latest checkpoint instead of genesis.
            use_checkpoints: network != Network::Regtest,
            allow_deep_reorgs: network != Network::Bitcoin,
        };
        let existing = persister
            .get_nodes()
            .map_err(|e| EngineError::Vls(format!("{e:?}")))?;
        let (multi, node_id) = match existing.first() {
            None => {
                let multi = MultiSigner::new(services);
                let node_id = multi
                    .new_node_with_seed(config, &seed[..], seed_source)
                    .map_err(|e| EngineError::Vls(format!("{e:?}")))?;
                (multi, node_id)
            }
            Some((stored_id, entry)) => {
                if entry.network != network.to_string() {
                    return Err(EngineError::StateMismatch(format!(
                        "state is for {}, config says {network}",
                        entry.network
                    )));
                }
                // Check before restoring: VLS panics when the seed does not match its state.
                let (_, seed_node_id) = Node::make_keys_manager(&config, &seed[..], &services);
                if seed_node_id != *stored_id {
                    return Err(EngineError::StateMismatch(
                        "the stored signer state belongs to another seed".into(),
                    ));
                }
                let multi = MultiSigner::restore(services, seed_source)
                    .map_err(|e| EngineError::Vls(format!("{e:?}")))?;
                (multi, *stored_id)
            }
        };
        let multi = Arc::new(multi);
        let node = multi
            .get_node(&node_id)
            .map_err(|e| EngineError::Vls(format!("{e:?}")))?;
        node.set_allowlist(&policy.allowlist)
            .map_err(|e| EngineError::Vls(format!("bad allow-list entry: {e:?}")))?;
        node.update_velocity_controls();
        let keys = LoopbackSignerKeysInterface {
            node_id,
            signer: multi.clone(),
        };
        let store = SignerStore::open(&dir.join("signer.sqlite"))?;
        let wallet = WalletLayoutView::new(node.get_account_extended_pubkey(), &store)?;
        let revoked_marker = dir.join("REVOKED");
        let apps = AppGate::open(dir, &seed, &node_id.to_string())?;
        let state_key = state_key_of(&seed);
        let engine = Self {
            state_key,
            apps,
            velocity: VelocityLimiter::open(
                dir.join("velocity.json"),
                policy.max_sat_per_hour,
                policy.max_sat_per_day,
            ),
            revoked: AtomicBool::new(revoked_marker.exists()),
            revoked_marker,
            multi,
            keys,
            deferred: Mutex::new(HashMap::new()),
            policy,
            network,
            store,
            wallet,
            oracle,
            chain_sync: OnceLock::new(),
            finished_last_pass: Mutex::new(HashSet::new()),
        };
        engine.restore_excess().map_err(|e| {
            EngineError::Vls(format!("cannot restore the balance allowance: {e:?}"))
        })?;
        Ok(engine)
    }

    /// The VLS node.
    pub fn node(&self) -> Arc<Node> {
        self.keys.get_node()
    }

    /// The Lightning node id.
    pub fn node_id(&self) -> lightning_signer::bitcoin::secp256k1::PublicKey {
        self.keys.node_id
    }

    /// The signer's network.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The tenant's apps.
    pub fn apps(&self) -> &AppGate {
        &self.apps
    }

    /// The tenant's policy.
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// The public material a watch-only node needs.
    pub fn public_info(&self) -> micronode_signer_protocol::SignerPublicInfo {
        micronode_signer_protocol::SignerPublicInfo::from_xpub(
            self.node_id().to_string(),
            self.network.to_string(),
            self.node().get_account_extended_pubkey().to_string(),
        )
    }

    /// Whether the tenant revoked the operator (here, or with `micronode signer revoke` from
    /// another process: the marker file is checked on every request).
    pub fn is_revoked(&self) -> bool {
        if !self.revoked.load(Ordering::SeqCst) && self.revoked_marker.exists() {
            self.revoked.store(true, Ordering::SeqCst);
        }
        self.revoked.load(Ordering::SeqCst)
    }

    /// Stops all signing for the operator, durably.
    pub fn revoke(&self) -> Result<(), EngineError> {
        micronode_files::write_private(&self.revoked_marker, b"revoked\n")?;
        self.revoked.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The height of the signer's view of the chain (VLS's tracker).
    pub fn chain_height(&self) -> u32 {
        self.node().get_tracker().height()
    }

    /// Every channel VLS has set up (funded), once each, with its hex id.
    pub(crate) fn ready_channels(&self) -> Vec<(String, Arc<Mutex<ChannelSlot>>)> {
        let node = self.node();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for slot in node.get_channels().values() {
            let guard = slot.lock().unwrap_or_else(|p| p.into_inner());
            if let ChannelSlot::Ready(chan) = &*guard {
                if seen.insert(chan.setup.funding_outpoint) {
                    out.push((channel_name(chan), slot.clone()));
                }
            }
        }
        out
    }

    /// The public keys of a channel VLS knows.
    pub(crate) fn channel_pubkeys(
        &self,
        keys_id: [u8; 32],
    ) -> Result<lightning_signer::lightning::ln::chan_utils::ChannelPublicKeys, Outcome> {
        let channel_id = ChannelId::new(&keys_id);
        self.multi
            .with_channel_base(&self.keys.node_id, &channel_id, |base| {
                Ok(base.get_channel_basepoints())
            })
            .map_err(|_| Outcome::bad(format!("unknown channel {}", hex::encode(keys_id))))
    }
}

/// The name of a channel in logs, events and the store: hex of its VLS id.
pub(crate) fn channel_name(chan: &Channel) -> String {
    hex::encode(chan.id().as_slice())
}

/// Marks the signer state in `state_dir` revoked, without unlocking the seed.
pub fn revoke_dir(state_dir: &Path) -> Result<(), EngineError> {
    micronode_files::own_private_dir(state_dir)?;
    micronode_files::write_private(&state_dir.join("REVOKED"), b"revoked\n")?;
    Ok(())
}
