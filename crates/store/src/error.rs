//! Error type for opening a store.

use std::path::PathBuf;

/// Errors that can occur while opening (creating, configuring or migrating) a store.
///
/// Errors from the individual key-value operations are reported as `lightning::io::Error`, as
/// required by LDK's `KVStoreSync`/`KVStore` traits.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The requested database file name is not a plain file name.
    #[error(
        "invalid database file name {0:?}: must be a non-empty file name without path separators"
    )]
    InvalidFileName(String),

    /// The store directory could not be created.
    #[error("failed to create store directory {}", path.display())]
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The database file could not be created or its permissions could not be set.
    #[error("failed to prepare database file {}", path.display())]
    PrepareFile {
        /// The database file (or one of its `-wal`/`-shm` companions, or its directory).
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// SQLite failed to open the database file.
    #[error("failed to open SQLite database {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
    },

    /// Configuring the connection (pragmas) or creating the schema failed.
    #[error("failed to configure SQLite database: {step}")]
    Configure {
        /// Which configuration step failed.
        step: &'static str,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
    },

    /// SQLite refused to switch to WAL journal mode (e.g. on a filesystem without shared memory
    /// support), so the durability guarantees could not be established.
    #[error("SQLite database could not be switched to WAL journal mode (got {0:?})")]
    JournalMode(String),

    /// The database was created by a newer version of this crate.
    #[error("database schema version {found} is newer than the supported version {supported}")]
    UnsupportedSchemaVersion {
        /// The schema version found in the database.
        found: i64,
        /// The newest schema version this crate understands.
        supported: i64,
    },

    /// The PostgreSQL connection string does not parse.
    #[error("invalid PostgreSQL connection string")]
    PgConfig {
        /// The driver's parse error.
        #[source]
        source: postgres::Error,
    },

    /// The fleet database could not be reached or set up.
    #[error("the fleet database could not be opened")]
    Pg(#[source] crate::postgres::PgError),
}

impl StoreError {
    fn io_kind(&self) -> std::io::ErrorKind {
        match self {
            StoreError::InvalidFileName(_) | StoreError::PgConfig { .. } => {
                std::io::ErrorKind::InvalidInput
            }
            StoreError::CreateDir { source, .. } | StoreError::PrepareFile { source, .. } => {
                source.kind()
            }
            StoreError::UnsupportedSchemaVersion { .. } => std::io::ErrorKind::InvalidData,
            StoreError::Open { .. }
            | StoreError::Configure { .. }
            | StoreError::JournalMode(_)
            | StoreError::Pg(_) => std::io::ErrorKind::Other,
        }
    }
}

impl From<StoreError> for std::io::Error {
    fn from(err: StoreError) -> Self {
        std::io::Error::new(err.io_kind(), err)
    }
}

/// Note: `lightning::io::Error` is `bitcoin_io::Error`, not `std::io::Error`; the cause is kept
/// as text because without `bitcoin-io`'s `std` feature it cannot hold a `std::error::Error`.
impl From<StoreError> for lightning::io::Error {
    fn from(err: StoreError) -> Self {
        use lightning::io::ErrorKind as K;
        let kind = match err.io_kind() {
            std::io::ErrorKind::NotFound => K::NotFound,
            std::io::ErrorKind::PermissionDenied => K::PermissionDenied,
            std::io::ErrorKind::AlreadyExists => K::AlreadyExists,
            std::io::ErrorKind::InvalidInput => K::InvalidInput,
            std::io::ErrorKind::InvalidData => K::InvalidData,
            _ => K::Other,
        };
        let mut msg = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            msg.push_str(": ");
            msg.push_str(&cause.to_string());
            source = cause.source();
        }
        lightning::io::Error::new(kind, msg)
    }
}
