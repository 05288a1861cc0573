//! Creating, configuring and migrating the database file.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::StoreError;
use crate::sqlite::SCHEMA_VERSION;

/// How long an operation waits for a lock held by another connection (e.g. a backup tool)
/// before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SQL_CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS kv_store (
    primary_namespace   TEXT NOT NULL,
    secondary_namespace TEXT NOT NULL,
    key                 TEXT NOT NULL,
    value               BLOB NOT NULL,
    PRIMARY KEY (primary_namespace, secondary_namespace, key)
)";

/// Creates `dir` (and missing parents) with mode 0700 on unix.
pub(crate) fn create_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| StoreError::CreateDir {
        path: dir.to_owned(),
        source,
    })
}

/// Creates the database file with mode 0600 (before SQLite does, so it never exists with
/// wider permissions) and tightens the permissions of pre-existing files. SQLite creates its
/// `-wal` and `-shm` files with the permissions of the main database file.
pub(crate) fn prepare_db_file(dir: &Path, path: &Path) -> Result<(), StoreError> {
    let prep_err = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::PrepareFile { path, source }
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(file) => {
            file.sync_all().map_err(prep_err(path))?;
            // Make the new directory entry durable as well.
            #[cfg(unix)]
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(prep_err(dir))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(prep_err(path)(e)),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut companions = path.as_os_str().to_owned();
        companions.push("-wal");
        let wal = PathBuf::from(companions);
        let mut companions = path.as_os_str().to_owned();
        companions.push("-shm");
        let shm = PathBuf::from(companions);
        for file in [path, wal.as_path(), shm.as_path()] {
            let meta = match fs::metadata(file) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && file != path => continue,
                Err(e) => return Err(prep_err(file)(e)),
            };
            if meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(file, fs::Permissions::from_mode(0o600))
                    .map_err(prep_err(file))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Page cache per connection, as SQLite's negative-KiB form.
const PAGE_CACHE_KIB: i64 = -256;

/// Sets the pragmas that provide the durability guarantees LDK relies on.
pub(crate) fn configure(conn: &Connection) -> Result<(), StoreError> {
    let cfg_err = |step: &'static str| move |source| StoreError::Configure { step, source };
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(cfg_err("set busy timeout"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(cfg_err("set journal_mode=WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::JournalMode(mode));
    }
    // FULL: the WAL is fsynced on every commit, so committed data survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(cfg_err("set synchronous=FULL"))?;
    // Use F_FULLFSYNC on macOS (no-op elsewhere); plain fsync there does not reach the platter.
    conn.pragma_update(None, "fullfsync", true)
        .map_err(cfg_err("set fullfsync"))?;
    conn.pragma_update(None, "checkpoint_fullfsync", true)
        .map_err(cfg_err("set checkpoint_fullfsync"))?;
    // A node's working set is small (the channel manager, monitors, payment records) and is
    // read mostly at start-up; with thousands of nodes per process, SQLite's default 2 MiB page
    // cache per connection would dominate memory.
    conn.pragma_update(None, "cache_size", PAGE_CACHE_KIB)
        .map_err(cfg_err("set cache_size"))?;
    Ok(())
}

/// Creates or checks the schema.
pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let cfg_err = |step: &'static str| move |source| StoreError::Configure { step, source };
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(cfg_err("read schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::UnsupportedSchemaVersion {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SQL_CREATE_TABLE}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(cfg_err("create schema"))?;
    }
    Ok(())
}
