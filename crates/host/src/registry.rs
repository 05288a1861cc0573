//! The host registry: which tenants a host has, in one SQLite file (`<host dir>/host.sqlite`).
//!
//! It holds what the host needs to bring every tenant back after a restart: its id, name,
//! lifecycle state, the port its signer dials and, once the signer has connected, its node id
//! (a different signer showing up later is refused). Funds, channels and payments are in the
//! tenant's own node store, never here.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::HostError;

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
}

impl StoredState {
    fn as_str(self) -> &'static str {
        match self {
            StoredState::Active => "active",
            StoredState::Suspended => "suspended",
            StoredState::Deleting => "deleting",
        }
    }

    fn parse(s: &str) -> Result<Self, HostError> {
        match s {
            "active" => Ok(StoredState::Active),
            "suspended" => Ok(StoredState::Suspended),
            "deleting" => Ok(StoredState::Deleting),
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

/// The registry. Its calls do disk work: call them off the async workers.
pub struct Registry {
    db: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL,
    node_id     TEXT UNIQUE,
    signer_port INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);";

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

impl Registry {
    /// Opens (or creates) the registry in `host_dir`.
    pub fn open(host_dir: &Path) -> Result<Registry, HostError> {
        let path = host_dir.join(REGISTRY_FILE);
        let db = Connection::open(&path).map_err(|e| HostError::sqlite("opening", e))?;
        micronode_files::restrict_to_owner(&path)?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| HostError::sqlite("setting WAL", e))?;
        db.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| HostError::sqlite("setting synchronous", e))?;
        db.execute_batch(SCHEMA)
            .map_err(|e| HostError::sqlite("creating the schema", e))?;
        Ok(Registry { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Every change is one statement: a panic elsewhere cannot leave it half done.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a new tenant; [`HostError::NameTaken`] if the name is in use.
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
        let inserted = self.db().execute(
            "INSERT INTO tenants (id, name, state, node_id, signer_port, created_at)
             VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
            params![
                record.id,
                record.name,
                record.state.as_str(),
                record.signer_port,
                record.created_at as i64
            ],
        );
        match inserted {
            Ok(_) => Ok(record),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(HostError::NameTaken(name.to_string()))
            }
            Err(e) => Err(HostError::sqlite("inserting a tenant", e)),
        }
    }

    /// Every tenant, oldest first.
    pub fn all(&self) -> Result<Vec<TenantRecord>, HostError> {
        let db = self.db();
        let mut stmt = db
            .prepare(
                "SELECT id, name, state, node_id, signer_port, created_at FROM tenants
                 ORDER BY created_at, rowid",
            )
            .map_err(|e| HostError::sqlite("listing tenants", e))?;
        let rows = stmt
            .query_map([], row_of)
            .map_err(|e| HostError::sqlite("listing tenants", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (record, state) = row.map_err(|e| HostError::sqlite("reading a tenant", e))?;
            out.push(TenantRecord {
                state: StoredState::parse(&state)?,
                ..record
            });
        }
        Ok(out)
    }

    /// One tenant, by id.
    pub fn get(&self, id: &str) -> Result<Option<TenantRecord>, HostError> {
        let db = self.db();
        let found = db
            .query_row(
                "SELECT id, name, state, node_id, signer_port, created_at FROM tenants
                 WHERE id = ?1",
                [id],
                row_of,
            )
            .optional()
            .map_err(|e| HostError::sqlite("reading a tenant", e))?;
        found
            .map(|(record, state)| {
                Ok(TenantRecord {
                    state: StoredState::parse(&state)?,
                    ..record
                })
            })
            .transpose()
    }

    /// Sets a tenant's state.
    pub fn set_state(&self, id: &str, state: StoredState) -> Result<(), HostError> {
        self.db()
            .execute(
                "UPDATE tenants SET state = ?2 WHERE id = ?1",
                params![id, state.as_str()],
            )
            .map_err(|e| HostError::sqlite("updating a tenant", e))?;
        Ok(())
    }

    /// Records the node id a tenant's signer gave.
    pub fn set_node_id(&self, id: &str, node_id: &str) -> Result<(), HostError> {
        self.db()
            .execute(
                "UPDATE tenants SET node_id = ?2 WHERE id = ?1",
                params![id, node_id],
            )
            .map_err(|e| HostError::sqlite("recording a node id", e))?;
        Ok(())
    }

    /// Forgets a tenant.
    pub fn remove(&self, id: &str) -> Result<(), HostError> {
        self.db()
            .execute("DELETE FROM tenants WHERE id = ?1", [id])
            .map_err(|e| HostError::sqlite("deleting a tenant", e))?;
        Ok(())
    }
}

/// A row, with its state still as text.
fn row_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<(TenantRecord, String)> {
    let port: i64 = row.get(4)?;
    let created: i64 = row.get(5)?;
    Ok((
        TenantRecord {
            id: row.get(0)?,
            name: row.get(1)?,
            state: StoredState::Active,
            node_id: row.get(3)?,
            signer_port: u16::try_from(port).unwrap_or_default(),
            created_at: u64::try_from(created).unwrap_or_default(),
        },
        row.get(2)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_tenants_and_refuses_a_taken_name() {
        let dir = tempfile::tempdir().expect("dir");
        let registry = Registry::open(dir.path()).expect("open");
        let a = registry.insert("alice", 4001).expect("alice");
        let b = registry.insert("bob", 4002).expect("bob");
        assert!(matches!(
            registry.insert("alice", 4003),
            Err(HostError::NameTaken(_))
        ));
        assert!(matches!(
            registry.insert("no spaces", 4003),
            Err(HostError::InvalidName(_))
        ));
        registry
            .set_state(&a.id, StoredState::Suspended)
            .expect("suspend");
        registry.set_node_id(&b.id, "02ab").expect("node id");
        drop(registry);

        let registry = Registry::open(dir.path()).expect("reopen");
        let all = registry.all().expect("all");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name, "alice");
        assert_eq!(all[0].state, StoredState::Suspended);
        assert_eq!(all[0].signer_port, 4001);
        assert_eq!(all[1].node_id.as_deref(), Some("02ab"));
        registry.remove(&a.id).expect("remove");
        assert_eq!(registry.get(&a.id).expect("get"), None);
        assert_eq!(registry.get(&b.id).expect("get").expect("bob").name, "bob");
    }

    #[test]
    fn tenant_ids_have_their_form() {
        let id = new_tenant_id();
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("t-"));
        assert_ne!(id, new_tenant_id());
    }
}
