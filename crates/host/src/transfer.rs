//! A tenant leaves a fleet with its node: `host tenant export` writes its state as a bundle,
//! `host tenant import` records it in another fleet's database (docs/fleet.md).
//!
//! The bundle holds the tenant's registry row and its entries exactly as stored: sealed under
//! the key its signer released (`--fleet-data-key signer`), so only that signer's node can
//! open them, on any fleet. Exporting marks the tenant exported first, so every host of the
//! old fleet stops running it and none takes it again, then takes its lease (so no host
//! writes while the rows are read) and reads the rows with the lease checked. The old fleet
//! keeps the rows; its hosts refuse to run them.
//!
//! These calls do database and disk work: call them off the async workers.

use std::path::Path;
use std::time::{Duration, Instant};

use micronode_store::{
    LeaseError, PgDatabase, RegistryInsert, RegistryRow, SealedEntry, TenantRows,
};
use serde::{Deserialize, Serialize};

use crate::error::HostError;
use crate::registry::StoredState;

/// The bundle's format tag.
const BUNDLE_FORMAT: &str = "micronode-tenant-bundle/v1";

/// The lease holder name an export takes the tenant's lease under.
const EXPORT_HOLDER: &str = "export";

/// How long the export holds the lease it takes (the tenant is exported by then: no host
/// takes it again).
const EXPORT_LEASE: Duration = Duration::from_secs(60);

/// A bundle file: the tenant's registry row and its sealed entries, hex.
#[derive(Serialize, Deserialize)]
struct BundleFile {
    format: String,
    id: String,
    name: String,
    node_id: Option<String>,
    signer_port: u16,
    created_at: u64,
    /// `[entry, namespace, sealed]`, each hex.
    entries: Vec<[String; 3]>,
}

/// What an export or import moved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Moved {
    /// The tenant's id (the same in both fleets: its entries are sealed with it).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its node id, if its signer ever connected.
    pub node_id: Option<String>,
    /// How many sealed entries moved.
    pub entries: usize,
}

/// Exports tenant `key` (id or name) of the fleet in `db` to a new file `out`, waiting up to
/// `wait` for the host that runs it to let go.
pub fn export_tenant(
    db: &PgDatabase,
    key: &str,
    out: &Path,
    wait: Duration,
) -> Result<Moved, HostError> {
    micronode_files::ensure_absent(out)?;
    let row = db
        .registry_rows()?
        .into_iter()
        .find(|r| r.id == key || r.name == key)
        .ok_or_else(|| HostError::UnknownTenant(key.chars().take(80).collect()))?;
    let exported = StoredState::Exported.as_str();
    if row.state == StoredState::Deleting.as_str() {
        return Err(HostError::WrongState(format!(
            "tenant {} is being deleted",
            row.id
        )));
    }
    // Every host lets go of an exported tenant within a takeover round and none takes it.
    db.set_registry_state(&row.id, exported)?;
    let result = take_and_read(db, &row.id, exported, wait).and_then(|rows| {
        write_bundle(out, &rows)?;
        Ok(rows)
    });
    match result {
        Ok(rows) => Ok(moved(&rows)),
        Err(e) => {
            // Nothing left the fleet: the tenant runs here again.
            if let Err(restore) = db.set_registry_state(&row.id, &row.state) {
                tracing::error!(tenant = %row.id, error = %restore, "could not restore the tenant's state after a failed export");
            }
            Err(e)
        }
    }
}

/// Takes the tenant's lease once its host has let go, and reads its rows under it.
fn take_and_read(
    db: &PgDatabase,
    id: &str,
    state: &str,
    wait: Duration,
) -> Result<TenantRows, HostError> {
    let deadline = Instant::now() + wait;
    let lease = loop {
        match db.acquire_lease(id, EXPORT_HOLDER, EXPORT_LEASE) {
            Ok(lease) => break lease,
            Err(LeaseError::HeldElsewhere { holder, .. }) if Instant::now() < deadline => {
                tracing::debug!(%holder, "waiting for the host running the tenant to let go");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(LeaseError::HeldElsewhere { holder, .. }) => {
                return Err(HostError::WrongState(format!(
                    "host {holder} still runs tenant {id} after {wait:?}; try again"
                )))
            }
            Err(e) => return Err(e.into()),
        }
    };
    db.export_tenant_rows(&lease, state)?.ok_or_else(|| {
        HostError::WrongState(format!(
            "tenant {id}'s lease was taken while it was exported; try again"
        ))
    })
}

fn moved(rows: &TenantRows) -> Moved {
    Moved {
        id: rows.registry.id.clone(),
        name: rows.registry.name.clone(),
        node_id: rows.registry.node_id.clone(),
        entries: rows.entries.len(),
    }
}

fn write_bundle(out: &Path, rows: &TenantRows) -> Result<(), HostError> {
    let r = &rows.registry;
    let file = BundleFile {
        format: BUNDLE_FORMAT.into(),
        id: r.id.clone(),
        name: r.name.clone(),
        node_id: r.node_id.clone(),
        signer_port: r.signer_port,
        created_at: r.created_at,
        entries: rows
            .entries
            .iter()
            .map(|e| {
                [
                    hex::encode(&e.entry),
                    hex::encode(&e.namespace),
                    hex::encode(&e.sealed),
                ]
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&file)
        .map_err(|e| HostError::Bundle(format!("encoding the bundle: {e}")))?;
    micronode_files::write_new_private(out, &bytes)?;
    Ok(())
}

/// Records the tenant in bundle `path` in the fleet in `db`, active: a host of the fleet
/// takes it at its next round, and waits for its signer to pair again.
pub fn import_tenant(db: &PgDatabase, path: &Path) -> Result<Moved, HostError> {
    let bytes = std::fs::read(path).map_err(HostError::io(format!(
        "reading the bundle {}",
        path.display()
    )))?;
    let rows = parse_bundle(&bytes)?;
    match db.import_tenant_rows(&rows)? {
        RegistryInsert::Inserted => Ok(moved(&rows)),
        RegistryInsert::NameTaken => Err(HostError::NameTaken(rows.registry.name)),
    }
}

/// A bundle's rows, its tenant active; a typed error for anything malformed.
fn parse_bundle(bytes: &[u8]) -> Result<TenantRows, HostError> {
    let file: BundleFile = serde_json::from_slice(bytes)
        .map_err(|e| HostError::Bundle(format!("not a tenant bundle: {e}")))?;
    if file.format != BUNDLE_FORMAT {
        return Err(HostError::Bundle(format!(
            "unknown bundle format {:?} (this host reads {BUNDLE_FORMAT})",
            file.format.chars().take(80).collect::<String>()
        )));
    }
    crate::registry::check_name(&file.name)?;
    let unhex = |s: &str, what: &str| {
        hex::decode(s).map_err(|_| HostError::Bundle(format!("an entry's {what} is not hex")))
    };
    let entries = file
        .entries
        .iter()
        .map(|[entry, namespace, sealed]| {
            Ok(SealedEntry {
                entry: unhex(entry, "id")?,
                namespace: unhex(namespace, "namespace")?,
                sealed: unhex(sealed, "value")?,
            })
        })
        .collect::<Result<Vec<_>, HostError>>()?;
    Ok(TenantRows {
        registry: RegistryRow {
            id: file.id,
            name: file.name,
            state: StoredState::Active.as_str().into(),
            node_id: file.node_id,
            signer_port: file.signer_port,
            created_at: file.created_at,
        },
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bundles_are_refused_with_a_reason() {
        let cases: [(&[u8], &str); 4] = [
            (b"not json", "not a tenant bundle"),
            (
                br#"{"format":"other/v9","id":"t-1","name":"a","node_id":null,"signer_port":1,"created_at":0,"entries":[]}"#,
                "unknown bundle format",
            ),
            (
                br#"{"format":"micronode-tenant-bundle/v1","id":"t-1","name":"no spaces","node_id":null,"signer_port":1,"created_at":0,"entries":[]}"#,
                "invalid tenant name",
            ),
            (
                br#"{"format":"micronode-tenant-bundle/v1","id":"t-1","name":"a","node_id":null,"signer_port":1,"created_at":0,"entries":[["zz","00","00"]]}"#,
                "not hex",
            ),
        ];
        for (bytes, why) in cases {
            let e = parse_bundle(bytes).expect_err("refused");
            assert!(e.to_string().contains(why), "{e}");
        }
        let ok = br#"{"format":"micronode-tenant-bundle/v1","id":"t-1","name":"a","node_id":"02ab","signer_port":7,"created_at":5,"entries":[["01","02","03"]]}"#;
        let rows = parse_bundle(ok).expect("parses");
        assert_eq!(rows.registry.state, "active");
        assert_eq!(
            rows.entries,
            [SealedEntry {
                entry: vec![1],
                namespace: vec![2],
                sealed: vec![3]
            }]
        );
    }
}
