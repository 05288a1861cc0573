//! A node of a fleet: its state in the fleet's PostgreSQL database, sealed under a key derived
//! from the operator's fleet key, and run only while this process holds its lease
//! (docs/fleet.md). Used by `node run --fleet-database` and by fleet hosts for each tenant.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lightning::util::persist::KVStoreSync;
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::remote::attach::LinkState;
use crate::store::{derive_tenant_secret, DataKey, Lease, LeaseKeeper, NodeStore, PgDatabase};
use crate::{KeysBackend, Node, NodeError};

/// The entry that marks a node's state as sealed under the key it is opened with.
const SEAL_MARK_NAMESPACE: &str = "micronode_seal";
const SEAL_MARK_KEY: &str = "mark";

/// What a node's signer-link key is derived for (see `derive_tenant_secret`).
const LINK_KEY_LABEL: &[u8] = b"micronode/signer-link-identity/v1";

/// The operator's fleet key: every node's data key and link identity are derived from it.
pub struct FleetKey(Zeroizing<[u8; 32]>);

/// Why a fleet key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FleetKeyError {
    /// The file could not be read.
    #[error("reading the fleet key file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error("{path} must hold 64 hex digits")]
    Malformed {
        /// The file.
        path: String,
    },
}

impl FleetKey {
    /// Reads the key from a file of 64 hex digits.
    pub fn read(path: &Path) -> Result<FleetKey, FleetKeyError> {
        let shown = path.display().to_string();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            FleetKeyError::Read {
                path: shown.clone(),
                source,
            }
        })?);
        let bytes =
            Zeroizing::new(
                hex::decode(text.trim()).map_err(|_| FleetKeyError::Malformed {
                    path: shown.clone(),
                })?,
            );
        let key = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| FleetKeyError::Malformed { path: shown })?;
        Ok(FleetKey(Zeroizing::new(key)))
    }

    /// The data key that seals node `tenant`'s state.
    pub fn data_key(&self, tenant: &str) -> DataKey {
        DataKey::derive(&self.0, tenant)
    }

    /// Node `tenant`'s signer-link private key: the same on every machine with the fleet key.
    fn link_key(&self, tenant: &str) -> Zeroizing<[u8; 32]> {
        derive_tenant_secret(&self.0, tenant, LINK_KEY_LABEL)
    }
}

impl std::fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetKey(..)")
    }
}

/// Where the key that seals a fleet node's state comes from (docs/adr/0007).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKeySource {
    /// Derived from the operator's fleet key and the node's name: the node runs without its
    /// signer's help, and the operator, holding the fleet key, can read its state.
    Operator,
    /// Released by the node's signer when it connects, held in memory only: the operator's
    /// database and backups hold nothing it can read, and the state opens only while the
    /// tenant's signer is connected.
    Signer,
}

/// A lease this process holds on a node, and the node's store opened under it.
pub struct FleetLease {
    db: PgDatabase,
    /// The node's data key derived from the fleet key.
    operator_key: DataKey,
    keeper: LeaseKeeper,
    store: Arc<NodeStore>,
    link_key: Zeroizing<[u8; 32]>,
    lost: watch::Receiver<bool>,
}

impl FleetLease {
    /// Keeps `lease` (renewed every third of `ttl` on a thread of its own). Blocking: call it
    /// off the async workers.
    pub fn keep(
        db: PgDatabase,
        lease: Lease,
        ttl: Duration,
        key: &FleetKey,
    ) -> Result<FleetLease, NodeError> {
        let (lost_tx, lost) = watch::channel(false);
        let tenant = lease.tenant.clone();
        let operator_key = key.data_key(&tenant);
        // The signer link's pairing is always under the operator's key: it is there before
        // any signer connects.
        let store = Arc::new(NodeStore::from(db.tenant_store(&lease, &operator_key)));
        let keeper = LeaseKeeper::start(db.clone(), lease, ttl, move |_| {
            let _ = lost_tx.send(true);
        })
        .map_err(|e| NodeError::Internal(format!("starting the lease keeper: {e}")))?;
        Ok(FleetLease {
            db,
            operator_key,
            keeper,
            store,
            link_key: key.link_key(&tenant),
            lost,
        })
    }

    /// The lease kept.
    pub fn lease(&self) -> &Lease {
        self.keeper.lease()
    }

    /// The node's store sealed under `key`, fenced by the lease, once it is known to open
    /// under it: a node that has stored state before must find its seal mark, else the state
    /// is under another key (another `--fleet-data-key` mode, another fleet key or signer) and
    /// starting on it would start a fresh node beside its channels. A new node gets the mark.
    /// Blocking.
    /// `signer_key` is the key the node's signer released ([`DataKeySource::Signer`]); None
    /// opens it under the operator's key.
    pub fn open_node_store(
        &self,
        signer_key: Option<&DataKey>,
    ) -> Result<Arc<NodeStore>, NodeError> {
        let store = self
            .db
            .tenant_store(self.lease(), signer_key.unwrap_or(&self.operator_key));
        let tenant = &self.lease().tenant;
        match KVStoreSync::read(&store, SEAL_MARK_NAMESPACE, "", SEAL_MARK_KEY) {
            Ok(_) => {}
            Err(e) if e.kind() == lightning::io::ErrorKind::NotFound => {
                let stored = self.db.entry_count(tenant).map_err(|e| {
                    NodeError::Internal(format!("counting the node's entries: {e}"))
                })?;
                // A new node has at most its signer link's pairing entry.
                if stored > 1 {
                    return Err(NodeError::Internal(format!(
                        "the stored state of {tenant} ({stored} entries) does not open under this \
                         data key: it was sealed under another (another --fleet-data-key mode, \
                         fleet key or signer); refusing to start a fresh node beside its channels"
                    )));
                }
                KVStoreSync::write(&store, SEAL_MARK_NAMESPACE, "", SEAL_MARK_KEY, vec![1])?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Arc::new(NodeStore::from(store)))
    }

    /// Where a remote-signer node keeps its link identity and pairing in the fleet: the
    /// identity derived from the fleet key, the pairing in the node's store. So its signer,
    /// which pins the node's link key, is served by whichever machine runs the node.
    pub fn link_state(&self) -> Result<LinkState, NodeError> {
        let identity = micronode_link::LinkIdentity::from_private_key(&self.link_key)
            .map_err(|e| NodeError::Signer(format!("making the node's link identity: {e}")))?;
        Ok(LinkState::Fleet {
            identity,
            store: self.store.clone(),
        })
    }

    /// Whether the lease was lost (another process took it, or renewing it failed for
    /// longer than it lasts).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow() || self.keeper.is_lost()
    }

    /// Resolves when this process may no longer run `node`: its lease was lost, or its store
    /// refused a write because another process took the lease.
    pub async fn gone<K: KeysBackend>(&mut self, node: &Node<K>) -> &'static str {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = self.lost.wait_for(|lost| *lost) => return "its lease was lost",
                _ = tick.tick() => {
                    if node.is_fenced() {
                        return "another process took its lease";
                    }
                }
            }
        }
    }

    /// Lets the lease lapse now, so another process may take the node at once. Blocking.
    pub fn release(self) -> Result<(), crate::store::LeaseError> {
        self.keeper.release()
    }

    /// [`FleetLease::release`] off the async workers, with a log line of what happened: a
    /// failure is not an error, the lease then lapses on its own.
    pub async fn release_logged(self) {
        let tenant = self.lease().tenant.clone();
        if self.is_lost() {
            tracing::info!(%tenant, "the lease was already lost; nothing to release");
        }
        let released = match tokio::task::spawn_blocking(move || self.release()).await {
            Ok(released) => released.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match released {
            Ok(()) => tracing::info!(%tenant, "released the lease"),
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "could not release the lease; it lapses on its own")
            }
        }
    }
}
