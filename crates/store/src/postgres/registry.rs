//! The fleet's tenant registry: which tenants exist, shared by every host of the fleet.
//!
//! A row holds what any host needs to run a tenant it takes over: its id, unique name,
//! lifecycle state, the port its signer dials and, once its signer has connected, its node
//! id. Funds, channels and payments are in the tenant's sealed entries, never here. The host
//! crate gives the rows their meaning (`micronode_host::registry`); this module only stores
//! them.

use super::workers::PgError;
use super::PgDatabase;

/// One tenant's row in the fleet registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRow {
    /// The tenant's id.
    pub id: String,
    /// Its name, unique in the fleet.
    pub name: String,
    /// Its lifecycle state, as the host crate spells it.
    pub state: String,
    /// Its node id, once its signer has connected.
    pub node_id: Option<String>,
    /// The port its signer dials.
    pub signer_port: u16,
    /// When it was created (Unix seconds).
    pub created_at: u64,
}

/// What inserting a row found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryInsert {
    /// The row is recorded.
    Inserted,
    /// Another tenant has that name already; nothing was written.
    NameTaken,
}

pub(super) const COLUMNS: &str = "id, name, state, node_id, signer_port, created_at";

impl PgDatabase {
    /// Records a new tenant, unless its name is taken.
    pub fn insert_registry_row(&self, row: &RegistryRow) -> Result<RegistryInsert, PgError> {
        let row = row.clone();
        let inserted = self
            .workers()
            .run("record a tenant", move |c| insert_row(c, &row))?;
        Ok(if inserted == 1 {
            RegistryInsert::Inserted
        } else {
            RegistryInsert::NameTaken
        })
    }

    /// Every tenant of the fleet, oldest first (in the order recorded).
    pub fn registry_rows(&self) -> Result<Vec<RegistryRow>, PgError> {
        self.workers().run("list tenants", |c| {
            c.query(
                &format!("SELECT {COLUMNS} FROM fleet_tenants ORDER BY created_at, recorded"),
                &[],
            )?
            .iter()
            .map(registry_row)
            .collect()
        })
    }

    /// One tenant, by id.
    pub fn registry_row(&self, id: &str) -> Result<Option<RegistryRow>, PgError> {
        let id = id.to_owned();
        self.workers().run("read a tenant", move |c| {
            c.query_opt(
                &format!("SELECT {COLUMNS} FROM fleet_tenants WHERE id = $1"),
                &[&id],
            )?
            .as_ref()
            .map(registry_row)
            .transpose()
        })
    }

    /// Sets a tenant's lifecycle state.
    pub fn set_registry_state(&self, id: &str, state: &str) -> Result<(), PgError> {
        self.update_registry_row(
            "update a tenant",
            "UPDATE fleet_tenants SET state = $2 WHERE id = $1",
            id,
            state,
        )
    }

    /// Records the node id a tenant's signer gave.
    pub fn set_registry_node_id(&self, id: &str, node_id: &str) -> Result<(), PgError> {
        self.update_registry_row(
            "record a node id",
            "UPDATE fleet_tenants SET node_id = $2 WHERE id = $1",
            id,
            node_id,
        )
    }

    /// Runs `statement` (`$1` the tenant's id, `$2` the value) for one tenant.
    fn update_registry_row(
        &self,
        step: &'static str,
        statement: &'static str,
        id: &str,
        value: &str,
    ) -> Result<(), PgError> {
        let (id, value) = (id.to_owned(), value.to_owned());
        self.workers().run(step, move |c| {
            c.execute(statement, &[&id, &value]).map(drop)
        })
    }

    /// Forgets a tenant: its registry row, its lease and its sealed entries, in one
    /// transaction.
    pub fn remove_registry_row(&self, id: &str) -> Result<(), PgError> {
        let id = id.to_owned();
        self.workers().run("forget a tenant", move |c| {
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM tenant_entries WHERE tenant = $1", &[&id])?;
            tx.execute("DELETE FROM tenant_leases WHERE tenant = $1", &[&id])?;
            tx.execute("DELETE FROM fleet_tenants WHERE id = $1", &[&id])?;
            tx.commit()
        })
    }
}

/// Inserts `row` unless its name is taken; how many rows were inserted (0 or 1).
pub(super) fn insert_row(
    c: &mut impl postgres::GenericClient,
    row: &RegistryRow,
) -> Result<u64, postgres::Error> {
    c.execute(
        "INSERT INTO fleet_tenants (id, name, state, node_id, signer_port, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (name) DO NOTHING",
        &[
            &row.id,
            &row.name,
            &row.state,
            &row.node_id,
            &i32::from(row.signer_port),
            &i64::try_from(row.created_at).unwrap_or(i64::MAX),
        ],
    )
}

pub(super) fn registry_row(row: &postgres::Row) -> Result<RegistryRow, postgres::Error> {
    let port: i32 = row.try_get(4)?;
    let created: i64 = row.try_get(5)?;
    Ok(RegistryRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        state: row.try_get(2)?,
        node_id: row.try_get(3)?,
        signer_port: u16::try_from(port).unwrap_or_default(),
        created_at: u64::try_from(created).unwrap_or_default(),
    })
}
