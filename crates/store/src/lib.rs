//! LDK persistence backends for micronode.
//!
//! The default (and currently only) backend is [`SqliteStore`], an embedded SQLite database that
//! implements LDK's [`KVStoreSync`], [`KVStore`] and [`MigratableKVStore`] traits. Because LDK
//! provides a blanket `Persist` implementation for every [`KVStoreSync`], an
//! `Arc<SqliteStore>` can also be handed to `ChainMonitor::new` directly as the monitor
//! persister.
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, so once a `write` or
//! `remove` call returns `Ok`, the change has been fsynced and survives a process crash or power
//! loss.
//!
//! [`KVStoreSync`]: lightning::util::persist::KVStoreSync
//! [`KVStore`]: lightning::util::persist::KVStore
//! [`MigratableKVStore`]: lightning::util::persist::MigratableKVStore

#![deny(missing_docs)]

mod error;
mod setup;
mod sqlite;
mod validate;

#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use sqlite::{SqliteStore, StoreWrite, DEFAULT_DB_FILE_NAME, SCHEMA_VERSION};
