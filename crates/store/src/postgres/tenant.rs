//! One tenant's view of the fleet database: LDK's key-value store, sealed and fenced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lightning::io;
use lightning::util::persist::{KVStoreSync, MigratableKVStore};

use super::lease::Lease;
use super::workers::{PgError, Workers};
use crate::sealing::{RowId, SealError, Sealer};
use crate::sqlite::StoreWrite;
use crate::validate::{check_namespaces, check_namespaces_and_key};

/// A write refused because the tenant's lease moved on: another host runs the tenant now.
/// Found in the `io::Error` LDK gets with [`Fenced::find`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant {tenant}'s lease moved on from epoch {epoch} (now {current:?}): \
     this host may no longer write its state"
)]
pub struct Fenced {
    /// The tenant.
    pub tenant: String,
    /// The epoch this store was opened at.
    pub epoch: i64,
    /// The lease's epoch when the write was refused (`None`: the lease row is gone).
    pub current: Option<i64>,
}

impl Fenced {
    /// The [`Fenced`] refusal inside an error a store returned, if it is one.
    pub fn find(err: &io::Error) -> Option<&Fenced> {
        err.get_ref().and_then(|e| e.downcast_ref::<Fenced>())
    }
}

/// A tenant's entries in the fleet database (see the module docs of `crate::sealing` for
/// what the database holds). Reads need no lease; every write checks, in its own transaction
/// and under a share lock of the lease row, that the lease is still at this store's epoch.
/// After one refusal the store refuses every later write without asking.
pub struct PgTenantStore {
    workers: Arc<Workers>,
    lease: Lease,
    sealer: Arc<Sealer>,
    fenced: AtomicBool,
}

impl std::fmt::Debug for PgTenantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTenantStore")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// A batch of writes as one statement. The lease row is read `FOR SHARE` first: a takeover's
/// update of it waits for this statement, and this statement, if it waited for a takeover,
/// sees the new epoch. The entries change only when the lease is still at `$2`; the statement
/// answers the lease's epoch as it found it (none: no lease row).
const FENCED_WRITE: &str = "WITH lease AS (
        SELECT epoch FROM tenant_leases WHERE tenant = $1 FOR SHARE
    ), allowed AS (
        SELECT 1 FROM lease WHERE epoch = $2
    ), removed AS (
        DELETE FROM tenant_entries
        WHERE tenant = $1 AND entry = ANY($3::bytea[]) AND EXISTS (SELECT 1 FROM allowed)
    ), stored AS (
        INSERT INTO tenant_entries (tenant, entry, namespace, sealed)
        SELECT $1, e, n, s FROM unnest($4::bytea[], $5::bytea[], $6::bytea[]) AS t(e, n, s)
        WHERE EXISTS (SELECT 1 FROM allowed)
        ON CONFLICT (tenant, entry) DO UPDATE
          SET namespace = excluded.namespace, sealed = excluded.sealed
    )
    SELECT (SELECT epoch FROM lease)";

/// One row change of a fenced write.
enum RowChange {
    Put {
        entry: RowId,
        namespace: RowId,
        sealed: Vec<u8>,
    },
    Remove {
        entry: RowId,
    },
}

impl RowChange {
    fn entry(&self) -> &RowId {
        match self {
            RowChange::Put { entry, .. } | RowChange::Remove { entry } => entry,
        }
    }
}

fn other(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::Other, err)
}

impl PgTenantStore {
    pub(crate) fn new(workers: Arc<Workers>, lease: Lease, sealer: Arc<Sealer>) -> Self {
        PgTenantStore {
            workers,
            lease,
            sealer,
            fenced: AtomicBool::new(false),
        }
    }

    /// The lease this store writes under.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Whether a write was refused because the lease moved on.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// Asks the database whether this store's lease is still the tenant's current one; when
    /// it is not, the store is fenced from now on (as after a refused write). A node asks
    /// before it talks to a peer: a copy that lost its lease must not reconnect with a stale
    /// channel state, which its peer would answer with a force close.
    pub fn lease_is_current(&self) -> Result<bool, io::Error> {
        if self.is_fenced() {
            return Ok(false);
        }
        let tenant = self.lease.tenant.clone();
        let current: Option<i64> = self
            .workers
            .run("read the lease", move |c| {
                c.query_opt(
                    "SELECT epoch FROM tenant_leases WHERE tenant = $1",
                    &[&tenant],
                )?
                .map(|row| row.try_get(0))
                .transpose()
            })
            .map_err(other)?;
        if current == Some(self.lease.epoch) {
            return Ok(true);
        }
        self.fenced.store(true, Ordering::SeqCst);
        tracing::warn!(tenant = %self.lease.tenant, epoch = self.lease.epoch, ?current, "the tenant's lease moved on");
        Ok(false)
    }

    fn change(&self, w: &StoreWrite) -> Result<RowChange, io::Error> {
        let (p, s, k) = (&w.primary_namespace, &w.secondary_namespace, &w.key);
        let entry = self.sealer.entry_id(p, s, k);
        Ok(match &w.value {
            Some(value) => RowChange::Put {
                entry,
                namespace: self.sealer.namespace_id(p, s),
                sealed: self.sealer.seal(&entry, [p, s, k], value).map_err(other)?,
            },
            None => RowChange::Remove { entry },
        })
    }

    /// Applies `writes` in order in one transaction, all or none, if the lease is still this
    /// store's. Every key is checked before anything is written.
    pub fn write_all(&self, writes: Vec<StoreWrite>) -> Result<(), io::Error> {
        for w in &writes {
            let op = if w.value.is_some() { "write" } else { "remove" };
            check_namespaces_and_key(&w.primary_namespace, &w.secondary_namespace, &w.key, op)?;
        }
        // The last change of each entry is the batch's effect on it; one statement then applies
        // them all, in one round trip and one implicit transaction, so a paused host can never
        // sit in an open transaction holding the lease row.
        let mut last: std::collections::HashMap<RowId, RowChange> = Default::default();
        for w in &writes {
            let change = self.change(w)?;
            last.insert(*change.entry(), change);
        }
        self.fenced_write(last.into_values())
    }

    fn fenced_write(&self, changes: impl Iterator<Item = RowChange>) -> Result<(), io::Error> {
        let refused = |current| {
            other(Fenced {
                tenant: self.lease.tenant.clone(),
                epoch: self.lease.epoch,
                current,
            })
        };
        if self.is_fenced() {
            return Err(refused(None));
        }
        let (mut removed, mut entries, mut namespaces, mut sealed) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for change in changes {
            match change {
                RowChange::Remove { entry } => removed.push(entry.to_vec()),
                RowChange::Put {
                    entry,
                    namespace,
                    sealed: value,
                } => {
                    entries.push(entry.to_vec());
                    namespaces.push(namespace.to_vec());
                    sealed.push(value);
                }
            }
        }
        let (tenant, epoch) = (self.lease.tenant.clone(), self.lease.epoch);
        let outcome = self
            .workers
            .run("write a tenant's entries", move |c| {
                let current: Option<i64> = c
                    .query_one(
                        FENCED_WRITE,
                        &[&tenant, &epoch, &removed, &entries, &namespaces, &sealed],
                    )?
                    .try_get(0)?;
                Ok(if current == Some(epoch) {
                    Ok(())
                } else {
                    Err(current)
                })
            })
            .map_err(other)?;
        outcome.map_err(|current| {
            self.fenced.store(true, Ordering::SeqCst);
            tracing::warn!(
                tenant = %self.lease.tenant,
                epoch = self.lease.epoch,
                ?current,
                "write refused: the tenant's lease moved on"
            );
            refused(current)
        })
    }

    /// Every entry of a namespace with its value, in one query.
    pub fn read_namespace(
        &self,
        primary: &str,
        secondary: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, io::Error> {
        check_namespaces(primary, secondary, "read")?;
        self.namespace_entries(primary, secondary)
    }

    fn namespace_entries(
        &self,
        primary: &str,
        secondary: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, io::Error> {
        let namespace = self.sealer.namespace_id(primary, secondary);
        let rows = self
            .select(
                "read a namespace",
                "SELECT entry, sealed FROM tenant_entries WHERE tenant = $1 AND namespace = $2",
                namespace,
            )
            .map_err(other)?;
        rows.iter()
            .map(|(entry, sealed)| {
                let opened = self.opened(entry, sealed)?;
                let [p, s, k] = opened.names;
                if p != primary || s != secondary {
                    return Err(other(SealError::Tampered));
                }
                Ok((k, opened.value))
            })
            .collect()
    }

    fn opened(&self, entry: &RowId, sealed: &[u8]) -> Result<crate::sealing::Opened, io::Error> {
        self.sealer.open(entry, sealed).map_err(|e: SealError| {
            tracing::error!(tenant = %self.lease.tenant, error = %e, "a stored entry does not open");
            other(e)
        })
    }

    fn select(
        &self,
        step: &'static str,
        sql: &'static str,
        id: RowId,
    ) -> Result<Vec<(RowId, Vec<u8>)>, PgError> {
        let tenant = self.lease.tenant.clone();
        self.workers.run(step, move |c| {
            c.query(sql, &[&tenant, &id.as_slice()])?
                .iter()
                .map(|row| {
                    let entry: Vec<u8> = row.try_get(0)?;
                    let sealed: Vec<u8> = row.try_get(1)?;
                    Ok((row_id(&entry), sealed))
                })
                .collect()
        })
    }
}

/// A row id from the database's bytes; a wrong length gives an id no name has, so the entry
/// then fails to open rather than panicking.
fn row_id(bytes: &[u8]) -> RowId {
    let mut id = [0u8; 32];
    if bytes.len() == 32 {
        id.copy_from_slice(bytes);
    }
    id
}

impl KVStoreSync for PgTenantStore {
    fn read(&self, primary: &str, secondary: &str, key: &str) -> Result<Vec<u8>, io::Error> {
        check_namespaces_and_key(primary, secondary, key, "read")?;
        let entry = self.sealer.entry_id(primary, secondary, key);
        let rows = self
            .select(
                "read an entry",
                "SELECT entry, sealed FROM tenant_entries WHERE tenant = $1 AND entry = $2",
                entry,
            )
            .map_err(other)?;
        match rows.first() {
            Some((_, sealed)) => Ok(self.opened(&entry, sealed)?.value),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no entry stored under {primary}/{secondary}/{key}"),
            )),
        }
    }

    fn write(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
        buf: Vec<u8>,
    ) -> Result<(), io::Error> {
        self.write_all(vec![StoreWrite::put(primary, secondary, key, buf)])
    }

    fn remove(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
        _lazy: bool,
    ) -> Result<(), io::Error> {
        self.write_all(vec![StoreWrite::remove(primary, secondary, key)])
    }

    fn list(&self, primary: &str, secondary: &str) -> Result<Vec<String>, io::Error> {
        check_namespaces(primary, secondary, "list")?;
        Ok(self
            .namespace_entries(primary, secondary)?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }
}

impl MigratableKVStore for PgTenantStore {
    fn list_all_keys(&self) -> Result<Vec<(String, String, String)>, io::Error> {
        let tenant = self.lease.tenant.clone();
        let rows = self
            .workers
            .run("list a tenant's entries", move |c| {
                c.query(
                    "SELECT entry, sealed FROM tenant_entries WHERE tenant = $1",
                    &[&tenant],
                )?
                .iter()
                .map(|row| Ok((row_id(&row.try_get::<_, Vec<u8>>(0)?), row.try_get(1)?)))
                .collect::<Result<Vec<(RowId, Vec<u8>)>, postgres::Error>>()
            })
            .map_err(other)?;
        rows.iter()
            .map(|(entry, sealed)| {
                let [p, s, k] = self.opened(entry, sealed)?.names;
                Ok((p, s, k))
            })
            .collect()
    }
}
