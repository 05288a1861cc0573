//! LDK persistence backends for micronode.
//!
//! Two backends, behind one [`NodeStore`]:
//! - [`SqliteStore`], the embedded default: one SQLite database per node, implementing LDK's
//!   [`KVStoreSync`], [`KVStore`] and [`MigratableKVStore`] traits. Because LDK provides a
//!   blanket `Persist` implementation for every [`KVStoreSync`], an `Arc<SqliteStore>` can also
//!   be handed to `ChainMonitor::new` directly as the monitor persister.
//! - [`PgTenantStore`], for fleets: a tenant's entries in a PostgreSQL database shared by many
//!   hosts ([`PgDatabase`]), sealed under the tenant's [`DataKey`] and fenced by its [`Lease`]
//!   (see `docs/adr/0006-fleet-store-on-postgresql.md`).
//!
//! Durability: SQLite runs in WAL mode with `synchronous=FULL`, so once a `write` or
//! `remove` call returns `Ok`, the change has been fsynced and survives a process crash or power
//! loss.
//!
//! [`KVStoreSync`]: lightning::util::persist::KVStoreSync
//! [`KVStore`]: lightning::util::persist::KVStore
//! [`MigratableKVStore`]: lightning::util::persist::MigratableKVStore

#![deny(missing_docs)]

mod backend;
mod error;
mod postgres;
mod sealing;
mod setup;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod validate;

#[cfg(test)]
mod tests;

pub use backend::NodeStore;
pub use error::StoreError;
pub use postgres::{
    Fenced, Lease, LeaseError, LeaseInfo, LeaseKeeper, PgDatabase, PgError, PgTenantStore,
    RegistryInsert, RegistryRow, SealedEntry, TenantRows, DEFAULT_CONNECTIONS, PG_SCHEMA_VERSION,
};
pub use sealing::{derive_tenant_secret, DataKey, SealError, PAD_TO};
pub use sqlite::{SqliteStore, StoreWrite, DEFAULT_DB_FILE_NAME, SCHEMA_VERSION};
