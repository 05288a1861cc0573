//! The host registry: which tenants a host has.
//!
//! It holds what a host needs to bring every tenant back after a restart: its id, name,
//! lifecycle state, the port its signer dials and, once the signer has connected, its node id
//! (a different signer showing up later is refused). Funds, channels and payments are in the
//! tenant's own node store, never here.
//!
//! A host of its own keeps it in one SQLite file (`<host dir>/host.sqlite`); hosts of a fleet
//! share it in the fleet database (`fleet_tenants`, see `docs/fleet.md`). Both behave alike:
//! `crates/host/tests/registry.rs` runs one suite against each.

mod fleet;
mod sqlite;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use micronode_store::PgDatabase;

use crate::error::HostError;
use fleet::FleetRegistry;
use sqlite::SqliteRegistry;

/// The registry's file in the host directory.
pub const REGISTRY_FILE: &str = "host.sqlite";

/// A tenant's persisted lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredState {
    /// Served (its API once its signer has connected).
    Active,
    /// Its API and apps are refused; its node runs.
    Suspended,
    /// Its channels are closing before it is deleted.
    Deleting,
    /// It left the fleet with `host tenant export`: no host of this fleet runs it again.
    Exported,
}

impl StoredState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StoredState::Active => "active",
            StoredState::Suspended => "suspended",
            StoredState::Deleting => "deleting",
            StoredState::Exported => "exported",
        }
    }

    fn parse(s: &str) -> Result<Self, HostError> {
        match s {
            "active" => Ok(StoredState::Active),
            "suspended" => Ok(StoredState::Suspended),
            "deleting" => Ok(StoredState::Deleting),
            "exported" => Ok(StoredState::Exported),
            other => Err(HostError::Registry(format!(
                "unknown tenant state {other:?}"
            ))),
        }
    }
}

/// One tenant as the registry records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    /// The host's id of the tenant: `t-` and 16 hex digits.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// Its lifecycle state.
    pub state: StoredState,
    /// Its node id, once its signer has connected.
    pub node_id: Option<String>,
    /// The port its signer dials.
    pub signer_port: u16,
    /// When it was created (Unix seconds).
    pub created_at: u64,
}

/// Checks a tenant name: 1 to 64 characters of letters, digits, `-`, `_` and `.`.
pub fn check_name(name: &str) -> Result<(), HostError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(HostError::InvalidName(name.chars().take(80).collect()))
    }
}

/// A new random tenant id.
pub fn new_tenant_id() -> String {
    format!("t-{}", hex::encode(rand::random::<[u8; 8]>()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The registry. Its calls do disk or database work: call them off the async workers.
pub struct Registry {
    backend: Backend,
}

enum Backend {
    Sqlite(SqliteRegistry),
    Fleet(FleetRegistry),
}

impl Registry {
    /// Opens (or creates) the registry of a host of its own, in `host_dir`.
    pub fn open(host_dir: &Path) -> Result<Registry, HostError> {
        Ok(Registry {
            backend: Backend::Sqlite(SqliteRegistry::open(host_dir)?),
        })
    }

    /// The registry the hosts of a fleet share in `db`.
    pub fn fleet(db: PgDatabase) -> Registry {
        Registry {
            backend: Backend::Fleet(FleetRegistry::new(db)),
        }
    }

    /// Records a new, active tenant; [`HostError::NameTaken`] if the name is in use.
    pub fn insert(&self, name: &str, signer_port: u16) -> Result<TenantRecord, HostError> {
        check_name(name)?;
        let record = TenantRecord {
            id: new_tenant_id(),
            name: name.to_string(),
            state: StoredState::Active,
            node_id: None,
            signer_port,
            created_at: now(),
        };
        match &self.backend {
            Backend::Sqlite(r) => r.insert(&record)?,
            Backend::Fleet(r) => r.insert(&record)?,
        }
        Ok(record)
    }

    /// Every tenant, oldest first.
    pub fn all(&self) -> Result<Vec<TenantRecord>, HostError> {
        match &self.backend {
            Backend::Sqlite(r) => r.all(),
            Backend::Fleet(r) => r.all(),
        }
    }

    /// One tenant, by id.
    pub fn get(&self, id: &str) -> Result<Option<TenantRecord>, HostError> {
        match &self.backend {
            Backend::Sqlite(r) => r.get(id),
            Backend::Fleet(r) => r.get(id),
        }
    }

    /// Sets a tenant's state.
    pub fn set_state(&self, id: &str, state: StoredState) -> Result<(), HostError> {
        match &self.backend {
            Backend::Sqlite(r) => r.set_state(id, state),
            Backend::Fleet(r) => r.set_state(id, state),
        }
    }

    /// Records the node id a tenant's signer gave.
    pub fn set_node_id(&self, id: &str, node_id: &str) -> Result<(), HostError> {
        match &self.backend {
            Backend::Sqlite(r) => r.set_node_id(id, node_id),
            Backend::Fleet(r) => r.set_node_id(id, node_id),
        }
    }

    /// Forgets a tenant (on the fleet database, with its lease and stored state).
    pub fn remove(&self, id: &str) -> Result<(), HostError> {
        match &self.backend {
            Backend::Sqlite(r) => r.remove(id),
            Backend::Fleet(r) => r.remove(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_have_their_form() {
        let id = new_tenant_id();
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("t-"));
        assert_ne!(id, new_tenant_id());
    }
}
