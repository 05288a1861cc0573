//! The store a node runs on: the embedded SQLite file, or its tenant's rows in the fleet's
//! PostgreSQL database.

use std::path::Path;

use lightning::io;
use lightning::util::persist::{KVStoreSync, MigratableKVStore};

use crate::error::StoreError;
use crate::postgres::PgTenantStore;
use crate::sqlite::{SqliteStore, StoreWrite};

/// Calls the same method on whichever store this is.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            NodeStore::Sqlite($s) => $call,
            NodeStore::Postgres($s) => $call,
        }
    };
}

/// A node's store, chosen by configuration. Both kinds give LDK the same guarantees: a write
/// that returned `Ok` is durable, and [`NodeStore::write_all`] is all or nothing.
#[derive(Debug)]
pub enum NodeStore {
    /// The embedded default: one SQLite file in the node's directory.
    Sqlite(SqliteStore),
    /// A fleet's tenant: sealed rows in PostgreSQL, fenced by the tenant's lease.
    Postgres(PgTenantStore),
}

impl NodeStore {
    /// Opens (creating if needed) the SQLite store in `dir` (see [`SqliteStore::open`]).
    pub fn open(dir: &Path) -> Result<NodeStore, StoreError> {
        SqliteStore::open(dir).map(NodeStore::Sqlite)
    }

    /// Whether a write was refused because the tenant's lease moved on to another host (never
    /// for SQLite). Once true, it stays true: the node must stop.
    pub fn is_fenced(&self) -> bool {
        match self {
            NodeStore::Sqlite(_) => false,
            NodeStore::Postgres(s) => s.is_fenced(),
        }
    }

    /// Whether this store may still write the node's state (always, for SQLite); see
    /// [`PgTenantStore::lease_is_current`]. An error means the database could not be asked.
    pub fn lease_is_current(&self) -> Result<bool, io::Error> {
        match self {
            NodeStore::Sqlite(_) => Ok(true),
            NodeStore::Postgres(s) => s.lease_is_current(),
        }
    }

    /// Every entry of a namespace with its value, in one query (a node's payment history at
    /// start-up, say, rather than one read per payment).
    pub fn read_namespace(
        &self,
        primary: &str,
        secondary: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, io::Error> {
        each!(self, s => s.read_namespace(primary, secondary))
    }

    /// Applies `writes` in order in one transaction: all of them are stored, or none is.
    pub fn write_all(&self, writes: Vec<StoreWrite>) -> Result<(), io::Error> {
        match self {
            NodeStore::Sqlite(s) => s.write_all(writes),
            NodeStore::Postgres(s) => s.write_all(writes),
        }
    }
}

impl From<SqliteStore> for NodeStore {
    fn from(s: SqliteStore) -> Self {
        NodeStore::Sqlite(s)
    }
}

impl From<PgTenantStore> for NodeStore {
    fn from(s: PgTenantStore) -> Self {
        NodeStore::Postgres(s)
    }
}

impl KVStoreSync for NodeStore {
    fn read(&self, primary: &str, secondary: &str, key: &str) -> Result<Vec<u8>, io::Error> {
        each!(self, s => KVStoreSync::read(s, primary, secondary, key))
    }
    fn write(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
        buf: Vec<u8>,
    ) -> Result<(), io::Error> {
        each!(self, s => KVStoreSync::write(s, primary, secondary, key, buf))
    }
    fn remove(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
        lazy: bool,
    ) -> Result<(), io::Error> {
        each!(self, s => KVStoreSync::remove(s, primary, secondary, key, lazy))
    }
    fn list(&self, primary: &str, secondary: &str) -> Result<Vec<String>, io::Error> {
        each!(self, s => KVStoreSync::list(s, primary, secondary))
    }
}

impl MigratableKVStore for NodeStore {
    fn list_all_keys(&self) -> Result<Vec<(String, String, String)>, io::Error> {
        each!(self, s => s.list_all_keys())
    }
}
