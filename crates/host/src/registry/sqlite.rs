//! The registry of a host of its own, in one SQLite file (`<host dir>/host.sqlite`).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{StoredState, TenantRecord, REGISTRY_FILE};
use crate::error::HostError;

/// The registry in `<host dir>/host.sqlite`, for a host of its own.
pub(super) struct SqliteRegistry {
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

impl SqliteRegistry {
    /// Opens (or creates) the registry in `host_dir`.
    pub(super) fn open(host_dir: &Path) -> Result<SqliteRegistry, HostError> {
        let path = host_dir.join(REGISTRY_FILE);
        let db = Connection::open(&path).map_err(|e| HostError::sqlite("opening", e))?;
        micronode_files::restrict_to_owner(&path)?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| HostError::sqlite("setting WAL", e))?;
        db.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| HostError::sqlite("setting synchronous", e))?;
        db.execute_batch(SCHEMA)
            .map_err(|e| HostError::sqlite("creating the schema", e))?;
        Ok(SqliteRegistry { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Every change is one statement: a panic elsewhere cannot leave it half done.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `record`; [`HostError::NameTaken`] if its name is in use.
    pub(super) fn insert(&self, record: &TenantRecord) -> Result<(), HostError> {
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
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(HostError::NameTaken(record.name.clone()))
            }
            Err(e) => Err(HostError::sqlite("inserting a tenant", e)),
        }
    }

    /// Every tenant, oldest first.
    pub(super) fn all(&self) -> Result<Vec<TenantRecord>, HostError> {
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
    pub(super) fn get(&self, id: &str) -> Result<Option<TenantRecord>, HostError> {
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
    pub(super) fn set_state(&self, id: &str, state: StoredState) -> Result<(), HostError> {
        self.db()
            .execute(
                "UPDATE tenants SET state = ?2 WHERE id = ?1",
                params![id, state.as_str()],
            )
            .map_err(|e| HostError::sqlite("updating a tenant", e))?;
        Ok(())
    }

    /// Records the node id a tenant's signer gave.
    pub(super) fn set_node_id(&self, id: &str, node_id: &str) -> Result<(), HostError> {
        self.db()
            .execute(
                "UPDATE tenants SET node_id = ?2 WHERE id = ?1",
                params![id, node_id],
            )
            .map_err(|e| HostError::sqlite("recording a node id", e))?;
        Ok(())
    }

    /// Forgets a tenant.
    pub(super) fn remove(&self, id: &str) -> Result<(), HostError> {
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
