//! The validating signer: one VLS node built from the tenant's seed, its durable state, and
//! the policy layer on top.
//!
//! VLS state (channels, enforcement state, approved payments, allow-list) lives in a redb
//! database in the signer's directory, so the signer remembers every state it signed across
//! restarts; that state is what makes revoked-state refusal and `recover` possible.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use lightning_signer::bitcoin::Network;
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

use crate::policy::PolicyConfig;
use crate::velocity::VelocityLimiter;

/// Why the signer could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The stored VLS state does not belong to this seed or network.
    #[error("signer state mismatch: {0}")]
    StateMismatch(String),
    /// VLS refused to create or restore the node.
    #[error("cannot start the validating signer: {0}")]
    Vls(String),
    /// A file could not be read or written.
    #[error("signer storage: {0}")]
    Io(#[from] std::io::Error),
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

/// The signer's core: VLS plus our policy layer. Shared by the link server and `recover`.
pub struct SignerEngine {
    pub(crate) multi: Arc<MultiSigner>,
    pub(crate) keys: LoopbackSignerKeysInterface,
    /// Holder-commitment validations that arrived before their channel was set up.
    #[allow(clippy::type_complexity)]
    pub(crate) deferred: Mutex<
        HashMap<
            [u8; 32],
            (
                lightning_signer::lightning::ln::chan_utils::HolderCommitmentTransaction,
                Vec<lightning_signer::lightning::types::payment::PaymentPreimage>,
            ),
        >,
    >,
    pub(crate) velocity: VelocityLimiter,
    pub(crate) policy: PolicyConfig,
    pub(crate) network: Network,
    revoked: AtomicBool,
    revoked_marker: PathBuf,
}

impl SignerEngine {
    /// Opens (creating on first use) the VLS node for `seed` with state under `dir`.
    pub fn open(
        dir: &Path,
        seed: Zeroizing<[u8; 32]>,
        network: Network,
        policy: PolicyConfig,
    ) -> Result<Self, EngineError> {
        micronode_node::secret_file::create_private_dir(dir)
            .map_err(|e| EngineError::Io(std::io::Error::other(e.to_string())))?;
        let store = RedbKVVStore::new(dir.join("vls"));
        let persister: Arc<dyn Persist> = Arc::new(KVVPersister(store, JsonFormat));
        let services = NodeServices {
            validator_factory: Arc::new(SimpleValidatorFactory::new_with_policy(
                policy.to_vls(network),
            )),
            starting_time_factory: ClockStartingTimeFactory::new(),
            persister: persister.clone(),
            clock: Arc::new(StandardClock()),
            trusted_oracle_pubkeys: Vec::new(),
        };
        let seed_source = Arc::new(InMemorySeed(seed.clone()));
        let config = NodeConfig {
            network,
            key_derivation_style: KeyDerivationStyle::Ldk,
            use_checkpoints: false,
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
        let revoked_marker = dir.join("REVOKED");
        Ok(Self {
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
        })
    }

    /// The VLS node.
    pub fn node(&self) -> Arc<Node> {
        self.keys.get_node()
    }

    /// The Lightning node id.
    pub fn node_id(&self) -> lightning_signer::bitcoin::secp256k1::PublicKey {
        self.keys.node_id
    }

    /// The public material a watch-only node needs.
    pub fn public_info(&self) -> micronode_node::remote::SignerPublicInfo {
        micronode_node::remote::SignerPublicInfo::from_xpub(
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
        micronode_node::secret_file::write_private(&self.revoked_marker, b"revoked\n")
            .map_err(|e| EngineError::Io(std::io::Error::other(e.to_string())))?;
        self.revoked.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The public keys of a channel VLS knows.
    pub(crate) fn channel_pubkeys(
        &self,
        keys_id: [u8; 32],
    ) -> Result<
        lightning_signer::lightning::ln::chan_utils::ChannelPublicKeys,
        crate::dispatch::Outcome,
    > {
        let channel_id = lightning_signer::channel::ChannelId::new(&keys_id);
        self.multi
            .with_channel_base(&self.keys.node_id, &channel_id, |base| {
                Ok(base.get_channel_basepoints())
            })
            .map_err(|_| {
                crate::dispatch::Outcome::bad(format!("unknown channel {}", hex::encode(keys_id)))
            })
    }
}

/// Marks the signer state in `state_dir` revoked, without unlocking the seed.
pub fn revoke_dir(state_dir: &Path) -> Result<(), EngineError> {
    micronode_node::secret_file::create_private_dir(state_dir)
        .map_err(|e| EngineError::Io(std::io::Error::other(e.to_string())))?;
    micronode_node::secret_file::write_private(&state_dir.join("REVOKED"), b"revoked\n")
        .map_err(|e| EngineError::Io(std::io::Error::other(e.to_string())))
}
