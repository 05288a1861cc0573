//! `node run --fleet-database`: the node's state in a fleet's PostgreSQL database, run under a
//! lease (docs/fleet.md). Wiring only: the store, leases and fencing are `micronode-store`'s,
//! the lease kept is `micronode_node::fleet`'s.

use std::time::Duration;

use anyhow::Context;
use micronode_node::fleet::{FleetKey, FleetLease};
use micronode_node::store::{LeaseError, PgDatabase, DEFAULT_CONNECTIONS};

use crate::config::FleetSettings;

/// Reads the fleet key and connects to the fleet database.
pub async fn open(settings: &FleetSettings) -> anyhow::Result<(FleetKey, PgDatabase)> {
    let (url, key_file) = (settings.database.clone(), settings.key_file.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let key = FleetKey::read(&key_file)?;
        let db =
            PgDatabase::connect(&url, DEFAULT_CONNECTIONS).context("opening the fleet database")?;
        Ok((key, db))
    })
    .await?
}

/// Connects to the fleet database and takes the node's lease, waiting (with a log line) while
/// another process holds it, until it lapses.
pub async fn take(settings: &FleetSettings) -> anyhow::Result<FleetLease> {
    let (key, db) = open(settings).await?;
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
    let ttl = settings.lease;
    let kept =
        tokio::task::spawn_blocking(move || FleetLease::keep(db, lease, ttl, &key)).await??;
    Ok(kept)
}
