//! `node run --fleet-database`: the node's state in a fleet's PostgreSQL database, run under a
//! lease (docs/fleet.md). Wiring only: the store, leases and fencing are `micronode-store`'s.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use micronode_node::remote::attach::LinkState;
use micronode_node::store::{
    derive_tenant_secret, DataKey, LeaseError, LeaseKeeper, NodeStore, PgDatabase,
    DEFAULT_CONNECTIONS,
};
use micronode_node::{KeysBackend, Node};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::config::FleetSettings;

/// The lease this process holds on its node, and the store it opened under it.
pub struct FleetLease {
    /// Renews the lease until released.
    pub keeper: LeaseKeeper,
    /// The node's sealed, fenced store.
    pub store: Arc<NodeStore>,
    /// The node's signer-link key, the same on every machine with the fleet key.
    link_key: Zeroizing<[u8; 32]>,
    lost: watch::Receiver<bool>,
}

/// What the node's signer-link key is derived for (see `derive_tenant_secret`).
const LINK_KEY_LABEL: &[u8] = b"micronode/signer-link-identity/v1";

/// Reads the operator's master key: 64 hex digits.
fn read_master_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the fleet key file {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| format!("{} must hold 64 hex digits", path.display()))?;
    Ok(bytes)
}

/// Connects to the fleet database and takes the node's lease, waiting (with a log line) while
/// another process holds it, until it lapses.
pub async fn take(settings: &FleetSettings) -> anyhow::Result<FleetLease> {
    let (url, key_file) = (settings.database.clone(), settings.key_file.clone());
    let (mut master, db) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let master = read_master_key(&key_file)?;
        let db =
            PgDatabase::connect(&url, DEFAULT_CONNECTIONS).context("opening the fleet database")?;
        Ok((master, db))
    })
    .await??;
    let retry = (settings.lease / 5).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut waiting_for = None;
    let lease = loop {
        let (db, tenant, holder, ttl) = (
            db.clone(),
            settings.tenant.clone(),
            settings.holder.clone(),
            settings.lease,
        );
        match tokio::task::spawn_blocking(move || db.acquire_lease(&tenant, &holder, ttl)).await? {
            Ok(lease) => break lease,
            Err(LeaseError::HeldElsewhere { holder, epoch, .. }) => {
                if waiting_for.as_ref() != Some(&(holder.clone(), epoch)) {
                    tracing::info!(tenant = %settings.tenant, %holder, epoch, "another process runs this node; waiting for its lease to lapse");
                    waiting_for = Some((holder, epoch));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot take the lease yet; retrying"),
        }
        tokio::time::sleep(retry).await;
    };
    tracing::info!(tenant = %settings.tenant, epoch = lease.epoch, holder = %lease.holder, "took the node's lease");
    let (lost_tx, lost) = watch::channel(false);
    let key = DataKey::derive(&master, &settings.tenant);
    let link_key = derive_tenant_secret(&master, &settings.tenant, LINK_KEY_LABEL);
    zeroize::Zeroize::zeroize(&mut master);
    let store = Arc::new(NodeStore::from(db.tenant_store(&lease, &key)));
    let keeper = LeaseKeeper::start(db, lease, settings.lease, move |_| {
        let _ = lost_tx.send(true);
    })
    .context("starting the lease keeper")?;
    Ok(FleetLease {
        keeper,
        store,
        link_key,
        lost,
    })
}

impl FleetLease {
    /// Where a remote-signer node keeps its link identity and pairing in the fleet: the
    /// identity derived from the fleet key, the pairing in the node's store. So its signer,
    /// which pins the node's link key, is served by whichever machine runs the node.
    pub fn link_state(&self) -> anyhow::Result<LinkState> {
        let identity = micronode_link::LinkIdentity::from_private_key(&self.link_key)
            .context("making the node's link identity")?;
        Ok(LinkState::Fleet {
            identity,
            store: self.store.clone(),
        })
    }

    /// Resolves when this process may no longer run the node: its lease was lost, or its
    /// store refused a write because another process took the lease.
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

    /// Lets the lease lapse now, so another process may take the node at once.
    pub async fn release(self) {
        let keeper = self.keeper;
        match tokio::task::spawn_blocking(move || keeper.release()).await {
            Ok(Ok(())) => tracing::info!("released the node's lease"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not release the lease; it lapses on its own")
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not release the lease; it lapses on its own")
            }
        }
    }
}
