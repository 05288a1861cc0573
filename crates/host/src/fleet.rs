//! A host in a fleet: hosts sharing one PostgreSQL database run its tenants between them,
//! each tenant on exactly one host, under a lease (docs/fleet.md).
//!
//! Every few moments a host runs a takeover round:
//! - it lets go of the tenants it may no longer run (their lease was lost, or their store
//!   was fenced because another host took the lease) and of those that failed here, so another
//!   host may try them;
//! - it takes the tenants no live host runs (their lease lapsed: a host died, or let go), up
//!   to its share: the tenants divided by the hosts that hold a live lease, itself included.
//!
//! A tenant that never had a lease is its creator's for a while ([`UNCLAIMED_GRACE`]), so two
//! hosts do not race for a tenant being created.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use micronode_node::fleet::FleetLease;
use micronode_store::LeaseInfo;
use tokio::sync::watch;

use crate::error::HostError;
use crate::host::{FleetHosting, Host};
use crate::registry::{StoredState, TenantRecord};
use crate::tenant::{Phase, TenantSlot};

/// How long a tenant without a lease is left to the host that created it.
const UNCLAIMED_GRACE: Duration = Duration::from_secs(30);

/// How long a host leaves a tenant alone after it failed here.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Takes tenant `id`'s lease for this host and keeps it. Refused while another live host
/// holds it.
pub(crate) async fn take_lease(fleet: &FleetHosting, id: &str) -> Result<FleetLease, HostError> {
    let (db, key, holder, ttl, id) = (
        fleet.db.clone(),
        fleet.key.clone(),
        fleet.holder.clone(),
        fleet.lease,
        id.to_string(),
    );
    let kept = tokio::task::spawn_blocking(move || -> Result<FleetLease, HostError> {
        let lease = db.acquire_lease(&id, &holder, ttl)?;
        Ok(FleetLease::keep(db, lease, ttl, &key)?)
    })
    .await??;
    tracing::info!(tenant = %kept.lease().tenant, epoch = kept.lease().epoch, "took the tenant's lease");
    Ok(kept)
}

/// Lets the tenant's lease lapse now, if this host holds one (another host may take the
/// tenant at once). A failure is logged: the lease then lapses on its own.
pub(crate) async fn release_lease(slot: &TenantSlot) {
    let lease = slot.lease.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(lease) = lease {
        lease.release_logged().await;
    }
}

/// Runs takeover rounds every fifth of the lease until the host stops.
pub(crate) async fn take_over_rounds(
    host: Weak<Host>,
    mut stop: watch::Receiver<bool>,
    lease: Duration,
) {
    let every = (lease / 5).clamp(Duration::from_millis(100), Duration::from_secs(2));
    let mut failed_here: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let Some(host) = host.upgrade() else { return };
        let Some(fleet) = host.fleet.clone() else {
            return;
        };
        failed_here.retain(|_, at| at.elapsed() < RETRY_AFTER_FAILURE);
        let_go(&host, &mut failed_here).await;
        if let Err(e) = take_free(&host, &fleet, &failed_here).await {
            tracing::warn!(error = %e, "a takeover round failed; retrying");
        }
    }
}

/// Stops serving the tenants this host may no longer run, and those that failed here.
async fn let_go(host: &Host, failed_here: &mut HashMap<String, Instant>) {
    for slot in host.slots() {
        let failed = matches!(&*slot.phase(), Phase::Failed(_));
        if !failed && !slot.run_elsewhere() {
            continue;
        }
        let record = slot.record();
        if failed {
            failed_here.insert(record.id.clone(), Instant::now());
            tracing::warn!(tenant = %record.id, "the tenant failed here; letting another host try it");
        } else {
            tracing::error!(tenant = %record.id, "another host took this tenant's lease; no longer serving it");
        }
        stop_serving(host, &slot).await;
    }
}

/// Stops a tenant's services and node here and lets its lease go. Its data stays in the
/// fleet's database.
async fn stop_serving(host: &Host, slot: &Arc<TenantSlot>) {
    // A fenced store refuses the node's final writes: by design, the new host has the state.
    if let Err(e) = host.stop_slot(slot, "run by another host").await {
        tracing::info!(tenant = %slot.record().id, error = %e, "the tenant's node stopped without its final writes");
    }
    release_lease(slot).await;
}

/// Stops serving the tenants that left the fleet, then takes the tenants no live host runs,
/// up to this host's share.
async fn take_free(
    host: &Arc<Host>,
    fleet: &FleetHosting,
    failed_here: &HashMap<String, Instant>,
) -> Result<(), HostError> {
    // The slots of before the registry is read: each has its row (a tenant is recorded
    // before it gets a slot).
    let slots_before = host.slots();
    let (registry, db) = (host.shared.registry.clone(), fleet.db.clone());
    let (records, leases) = tokio::task::spawn_blocking(move || -> Result<_, HostError> {
        Ok((registry.all()?, db.leases()?))
    })
    .await??;
    for slot in slots_before {
        let id = slot.record().id;
        let gone = match records.iter().find(|r| r.id == id) {
            Some(record) => record.state == StoredState::Exported,
            None => true,
        };
        if gone {
            tracing::info!(tenant = %id, "the tenant left the fleet (exported or deleted); no longer serving it");
            stop_serving(host, &slot).await;
        }
    }
    let running: BTreeSet<String> = host.slots().iter().map(|s| s.record().id).collect();
    let free = free_tenants(&records, &leases, &running, &fleet.holder, now_secs());
    let mut count = running.len();
    let share = share_of(records.len(), &leases, &fleet.holder);
    for record in free {
        if count >= share {
            break;
        }
        if failed_here.contains_key(&record.id) {
            continue;
        }
        match take_lease(fleet, &record.id).await {
            Ok(lease) => {
                tracing::info!(tenant = %record.id, name = %record.name, "taking over the tenant");
                host.add_slot(record.clone(), Some(lease));
                count += 1;
            }
            // Another host was quicker.
            Err(HostError::Lease(micronode_store::LeaseError::HeldElsewhere { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The tenants nobody runs: not here, not exported, and their lease lapsed; or they never had
/// one and were created more than [`UNCLAIMED_GRACE`] ago. Oldest first.
fn free_tenants(
    records: &[TenantRecord],
    leases: &[LeaseInfo],
    running: &BTreeSet<String>,
    holder: &str,
    now_secs: u64,
) -> Vec<TenantRecord> {
    let lease_of: HashMap<&str, &LeaseInfo> =
        leases.iter().map(|l| (l.tenant.as_str(), l)).collect();
    records
        .iter()
        .filter(|r| !running.contains(&r.id) && r.state != StoredState::Exported)
        .filter(|r| match lease_of.get(r.id.as_str()) {
            // This host's name on a live lease: a lease of this host before a restart.
            Some(lease) => lease.expires_in_ms <= 0 || lease.holder == holder,
            None => now_secs.saturating_sub(r.created_at) >= UNCLAIMED_GRACE.as_secs(),
        })
        .cloned()
        .collect()
}

/// How many tenants this host should run: all of them divided among the hosts holding a live
/// lease, this one included, rounded up (so every tenant has a host).
fn share_of(tenants: usize, leases: &[LeaseInfo], holder: &str) -> usize {
    let mut hosts: BTreeSet<&str> = leases
        .iter()
        .filter(|l| l.expires_in_ms > 0)
        .map(|l| l.holder.as_str())
        .collect();
    hosts.insert(holder);
    tenants.div_ceil(hosts.len())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, created_at: u64) -> TenantRecord {
        TenantRecord {
            id: id.into(),
            name: id.into(),
            state: StoredState::Active,
            node_id: None,
            signer_port: 1,
            created_at,
        }
    }

    fn lease(tenant: &str, holder: &str, expires_in_ms: i64) -> LeaseInfo {
        LeaseInfo {
            tenant: tenant.into(),
            holder: holder.into(),
            epoch: 1,
            expires_in_ms,
        }
    }

    #[test]
    fn free_tenants_are_the_lapsed_and_the_long_unclaimed_not_the_live_running_or_exported() {
        let records = [
            record("lapsed", 0),
            record("live", 0),
            record("mine-before-restart", 0),
            record("running-here", 0),
            record("new", 1_000),
            record("unclaimed", 900),
            TenantRecord {
                state: StoredState::Exported,
                ..record("exported", 0)
            },
        ];
        let leases = [
            lease("lapsed", "a", 0),
            lease("live", "a", 500),
            lease("mine-before-restart", "b", 500),
            lease("running-here", "b", 500),
            lease("exported", "a", 0),
        ];
        let running = BTreeSet::from(["running-here".to_string()]);
        let free: Vec<String> = free_tenants(&records, &leases, &running, "b", 1_010)
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(free, ["lapsed", "mine-before-restart", "unclaimed"]);
    }

    #[test]
    fn the_share_counts_hosts_with_a_live_lease_and_this_one() {
        let leases = [lease("1", "a", 10), lease("2", "a", 10), lease("3", "c", 0)];
        // Hosts a and b (c's lease lapsed): 3 tenants, 2 each at most.
        assert_eq!(share_of(3, &leases, "b"), 2);
        // Alone: every tenant.
        assert_eq!(share_of(3, &[], "b"), 3);
        assert_eq!(share_of(0, &leases, "b"), 0);
    }
}
