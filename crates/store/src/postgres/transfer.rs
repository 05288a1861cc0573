//! Moving a tenant between fleets: its registry row and its sealed entries, copied as they
//! are. The entries stay sealed under the tenant's data key (with the signer-released key,
//! only the tenant's signer can open them), so neither the bundle nor the fleet that moves
//! it can read them.

use super::lease::Lease;
use super::registry::{RegistryInsert, RegistryRow};
use super::workers::PgError;
use super::PgDatabase;

/// One sealed entry as stored: its id and namespace id (HMACs of its names under the
/// tenant's key) and its sealed value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedEntry {
    /// The entry's id.
    pub entry: Vec<u8>,
    /// Its namespace's id.
    pub namespace: Vec<u8>,
    /// Its sealed value.
    pub sealed: Vec<u8>,
}

/// A tenant's rows: what another fleet needs to run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRows {
    /// Its registry row.
    pub registry: RegistryRow,
    /// Its sealed entries.
    pub entries: Vec<SealedEntry>,
}

impl PgDatabase {
    /// Reads a tenant's rows under `lease`, which the caller holds (so no host writes
    /// meanwhile), and sets its registry state to `state` in the same transaction. None if
    /// the lease is no longer current or the tenant is unknown; nothing is changed then.
    pub fn export_tenant_rows(
        &self,
        lease: &Lease,
        state: &str,
    ) -> Result<Option<TenantRows>, PgError> {
        let (lease, state) = (lease.clone(), state.to_owned());
        self.workers().run("export a tenant", move |c| {
            let mut tx = c.transaction()?;
            let current: Option<i64> = tx
                .query_opt(
                    "SELECT epoch FROM tenant_leases WHERE tenant = $1 FOR UPDATE",
                    &[&lease.tenant],
                )?
                .map(|row| row.try_get(0))
                .transpose()?;
            if current != Some(lease.epoch) {
                return Ok(None);
            }
            let updated = tx.execute(
                "UPDATE fleet_tenants SET state = $2 WHERE id = $1",
                &[&lease.tenant, &state],
            )?;
            if updated != 1 {
                return Ok(None);
            }
            let registry = tx.query_one(
                &format!(
                    "SELECT {} FROM fleet_tenants WHERE id = $1",
                    super::registry::COLUMNS
                ),
                &[&lease.tenant],
            )?;
            let registry = super::registry::registry_row(&registry)?;
            let entries = tx
                .query(
                    "SELECT entry, namespace, sealed FROM tenant_entries WHERE tenant = $1
                     ORDER BY entry",
                    &[&lease.tenant],
                )?
                .iter()
                .map(|row| {
                    Ok(SealedEntry {
                        entry: row.try_get(0)?,
                        namespace: row.try_get(1)?,
                        sealed: row.try_get(2)?,
                    })
                })
                .collect::<Result<Vec<_>, postgres::Error>>()?;
            tx.commit()?;
            Ok(Some(TenantRows { registry, entries }))
        })
    }

    /// Records a tenant moved from another fleet: its registry row, its entries and a lapsed
    /// lease (so a host takes it at once), in one transaction. Refused (nothing written) when
    /// its name is taken; an id this fleet knows already is an error.
    pub fn import_tenant_rows(&self, rows: &TenantRows) -> Result<RegistryInsert, PgError> {
        let rows = rows.clone();
        self.workers().run("import a tenant", move |c| {
            let mut tx = c.transaction()?;
            let r = &rows.registry;
            let inserted = super::registry::insert_row(&mut tx, r)?;
            if inserted != 1 {
                return Ok(RegistryInsert::NameTaken);
            }
            // A lapsed lease (epoch 0, released by the import): any host of the fleet may take
            // the tenant at once.
            tx.execute(
                "INSERT INTO tenant_leases (tenant, epoch, holder, expires_at)
                 VALUES ($1, 0, 'import', now())",
                &[&r.id],
            )?;
            for e in &rows.entries {
                tx.execute(
                    "INSERT INTO tenant_entries (tenant, entry, namespace, sealed)
                     VALUES ($1, $2, $3, $4)",
                    &[&r.id, &e.entry, &e.namespace, &e.sealed],
                )?;
            }
            tx.commit()?;
            Ok(RegistryInsert::Inserted)
        })
    }
}
