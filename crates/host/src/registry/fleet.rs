//! The registry of a host in a fleet: the rows every host shares in the fleet database.

use micronode_store::{PgDatabase, RegistryInsert, RegistryRow};

use super::{StoredState, TenantRecord};
use crate::error::HostError;

/// The fleet database's registry table, seen as [`TenantRecord`]s.
pub(super) struct FleetRegistry {
    db: PgDatabase,
}

impl FleetRegistry {
    pub(super) fn new(db: PgDatabase) -> FleetRegistry {
        FleetRegistry { db }
    }

    /// Records `record`; [`HostError::NameTaken`] if a tenant of the fleet has its name.
    pub(super) fn insert(&self, record: &TenantRecord) -> Result<(), HostError> {
        let row = RegistryRow {
            id: record.id.clone(),
            name: record.name.clone(),
            state: record.state.as_str().to_owned(),
            node_id: record.node_id.clone(),
            signer_port: record.signer_port,
            created_at: record.created_at,
        };
        match self.db.insert_registry_row(&row)? {
            RegistryInsert::Inserted => Ok(()),
            RegistryInsert::NameTaken => Err(HostError::NameTaken(record.name.clone())),
        }
    }

    /// Every tenant of the fleet, oldest first.
    pub(super) fn all(&self) -> Result<Vec<TenantRecord>, HostError> {
        self.db
            .registry_rows()?
            .into_iter()
            .map(record_of)
            .collect()
    }

    /// One tenant, by id.
    pub(super) fn get(&self, id: &str) -> Result<Option<TenantRecord>, HostError> {
        self.db.registry_row(id)?.map(record_of).transpose()
    }

    /// Sets a tenant's state.
    pub(super) fn set_state(&self, id: &str, state: StoredState) -> Result<(), HostError> {
        Ok(self.db.set_registry_state(id, state.as_str())?)
    }

    /// Records the node id a tenant's signer gave.
    pub(super) fn set_node_id(&self, id: &str, node_id: &str) -> Result<(), HostError> {
        Ok(self.db.set_registry_node_id(id, node_id)?)
    }

    /// Forgets a tenant, with its lease and stored state.
    pub(super) fn remove(&self, id: &str) -> Result<(), HostError> {
        Ok(self.db.remove_registry_row(id)?)
    }
}

fn record_of(row: RegistryRow) -> Result<TenantRecord, HostError> {
    Ok(TenantRecord {
        state: StoredState::parse(&row.state)?,
        id: row.id,
        name: row.name,
        node_id: row.node_id,
        signer_port: row.signer_port,
        created_at: row.created_at,
    })
}
