//! SQLite-backed implementation of LDK's key-value store traits.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use lightning::io;
use lightning::util::async_poll::AsyncResult;
use lightning::util::persist::{KVStore, KVStoreSync, MigratableKVStore};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::StoreError;
use crate::setup::{configure, create_dir, migrate, prepare_db_file};
use crate::validate::{check_namespaces, check_namespaces_and_key};

/// File name of the database created by [`SqliteStore::open`].
pub const DEFAULT_DB_FILE_NAME: &str = "micronode.sqlite";

/// Schema version this crate writes (stored in SQLite's `user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const SQL_READ: &str = "SELECT value FROM kv_store \
    WHERE primary_namespace = ?1 AND secondary_namespace = ?2 AND key = ?3";
const SQL_WRITE: &str =
    "INSERT INTO kv_store (primary_namespace, secondary_namespace, key, value) \
    VALUES (?1, ?2, ?3, ?4) \
    ON CONFLICT (primary_namespace, secondary_namespace, key) DO UPDATE SET value = excluded.value";
const SQL_REMOVE: &str = "DELETE FROM kv_store \
    WHERE primary_namespace = ?1 AND secondary_namespace = ?2 AND key = ?3";
const SQL_LIST: &str = "SELECT key FROM kv_store \
    WHERE primary_namespace = ?1 AND secondary_namespace = ?2";
const SQL_READ_NAMESPACE: &str = "SELECT key, value FROM kv_store \
    WHERE primary_namespace = ?1 AND secondary_namespace = ?2";
const SQL_LIST_ALL: &str = "SELECT primary_namespace, secondary_namespace, key FROM kv_store";

/// An LDK key-value store persisted in a single SQLite database file.
///
/// All entries live in one table keyed by `(primary_namespace, secondary_namespace, key)`. The
/// database uses WAL journaling with `synchronous=FULL`: every successful `write`/`remove` is
/// committed and fsynced before the call returns. `remove`'s `lazy` flag is ignored (removals
/// are always durable immediately).
///
/// The connection is guarded by a mutex, so the store is `Send + Sync` and can be shared via
/// `Arc`. Operations are blocking; the [`KVStore`] (async) implementation performs the
/// operation synchronously and returns an already-completed future.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store `dir/micronode.sqlite`.
    ///
    /// `dir` is created if missing (mode `0700` on unix); the database file gets mode `0600`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with_file_name(dir, DEFAULT_DB_FILE_NAME)
    }

    /// Opens (creating if needed) the store `dir/file_name`.
    ///
    /// `file_name` must be a plain file name (no path separators). See [`SqliteStore::open`].
    pub fn open_with_file_name(dir: &Path, file_name: &str) -> Result<SqliteStore, StoreError> {
        if file_name.is_empty()
            || file_name == "."
            || file_name == ".."
            || file_name.contains(['/', '\\', '\0'])
        {
            return Err(StoreError::InvalidFileName(file_name.to_owned()));
        }
        create_dir(dir)?;
        let path = dir.join(file_name);
        prepare_db_file(dir, &path)?;

        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        configure(&conn)?;
        migrate(&conn)?;
        tracing::debug!(path = %path.display(), "opened SQLite KV store");
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current value of a pragma on the store's own connection (pragmas like `synchronous` are
    /// per connection).
    #[cfg(test)]
    pub(crate) fn pragma(&self, name: &str) -> String {
        let conn = self.lock().unwrap();
        conn.pragma_query_value(None, name, |row| row.get::<_, rusqlite::types::Value>(0))
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, io::Error> {
        self.conn.lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::Other,
                "SQLite store unusable: connection mutex poisoned by a panic",
            )
        })
    }
}

/// One entry of [`SqliteStore::write_all`]: a value to store under a key, or `None` to remove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreWrite {
    /// The entry's primary namespace.
    pub primary_namespace: String,
    /// The entry's secondary namespace.
    pub secondary_namespace: String,
    /// The entry's key.
    pub key: String,
    /// The new value; `None` removes the entry.
    pub value: Option<Vec<u8>>,
}

impl StoreWrite {
    /// Stores `value` under the key.
    pub fn put(primary: &str, secondary: &str, key: &str, value: Vec<u8>) -> StoreWrite {
        StoreWrite {
            primary_namespace: primary.to_owned(),
            secondary_namespace: secondary.to_owned(),
            key: key.to_owned(),
            value: Some(value),
        }
    }

    /// Removes the entry under the key (nothing if there is none).
    pub fn remove(primary: &str, secondary: &str, key: &str) -> StoreWrite {
        StoreWrite {
            primary_namespace: primary.to_owned(),
            secondary_namespace: secondary.to_owned(),
            key: key.to_owned(),
            value: None,
        }
    }
}

impl SqliteStore {
    /// Applies `writes` in order in one transaction: all of them reach disk (one fsync), or
    /// none does. Every key is checked before anything is written.
    pub fn write_all(&self, writes: Vec<StoreWrite>) -> Result<(), io::Error> {
        for w in &writes {
            let op = if w.value.is_some() { "write" } else { "remove" };
            check_namespaces_and_key(&w.primary_namespace, &w.secondary_namespace, &w.key, op)?;
        }
        let mut conn = self.lock()?;
        let name =
            |w: &StoreWrite| entry_name(&w.primary_namespace, &w.secondary_namespace, &w.key);
        let tx = conn
            .transaction()
            .map_err(|e| sql_error("begin", "a batch".to_owned(), e))?;
        for w in &writes {
            let (op, sql) = match w.value {
                Some(_) => ("write", SQL_WRITE),
                None => ("remove", SQL_REMOVE),
            };
            tx.prepare_cached(sql)
                .and_then(|mut stmt| match &w.value {
                    Some(value) => stmt.execute(params![
                        w.primary_namespace,
                        w.secondary_namespace,
                        w.key,
                        value
                    ]),
                    None => {
                        stmt.execute(params![w.primary_namespace, w.secondary_namespace, w.key])
                    }
                })
                .map_err(|e| sql_error(op, name(w), e))?;
        }
        tx.commit()
            .map_err(|e| sql_error("commit", format!("a batch of {}", writes.len()), e))
    }
}

impl SqliteStore {
    /// Every entry of a namespace with its value, in one query.
    pub fn read_namespace(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, io::Error> {
        check_namespaces(primary_namespace, secondary_namespace, "read")?;
        let conn = self.lock()?;
        conn.prepare_cached(SQL_READ_NAMESPACE)
            .and_then(|mut stmt| {
                stmt.query_map(params![primary_namespace, secondary_namespace], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect()
            })
            .map_err(|e| {
                sql_error(
                    "read",
                    format!("{primary_namespace}/{secondary_namespace}"),
                    e,
                )
            })
    }
}

fn sql_error(op: &str, what: String, err: rusqlite::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::Other,
        format!("SQLite store failed to {op} {what}: {err}"),
    )
}

fn entry_name(primary_namespace: &str, secondary_namespace: &str, key: &str) -> String {
    format!("{primary_namespace}/{secondary_namespace}/{key}")
}

impl KVStoreSync for SqliteStore {
    fn read(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
    ) -> Result<Vec<u8>, io::Error> {
        check_namespaces_and_key(primary_namespace, secondary_namespace, key, "read")?;
        let name = || entry_name(primary_namespace, secondary_namespace, key);
        let conn = self.lock()?;
        let value = conn
            .prepare_cached(SQL_READ)
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![primary_namespace, secondary_namespace, key],
                    |row| row.get::<_, Vec<u8>>(0),
                )
                .optional()
            })
            .map_err(|e| sql_error("read", name(), e))?;
        value.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no entry stored under {}", name()),
            )
        })
    }

    fn write(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
        buf: Vec<u8>,
    ) -> Result<(), io::Error> {
        check_namespaces_and_key(primary_namespace, secondary_namespace, key, "write")?;
        let conn = self.lock()?;
        conn.prepare_cached(SQL_WRITE)
            .and_then(|mut stmt| {
                stmt.execute(params![primary_namespace, secondary_namespace, key, buf])
            })
            .map_err(|e| {
                sql_error(
                    "write",
                    entry_name(primary_namespace, secondary_namespace, key),
                    e,
                )
            })?;
        Ok(())
    }

    fn remove(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
        _lazy: bool,
    ) -> Result<(), io::Error> {
        check_namespaces_and_key(primary_namespace, secondary_namespace, key, "remove")?;
        let conn = self.lock()?;
        conn.prepare_cached(SQL_REMOVE)
            .and_then(|mut stmt| stmt.execute(params![primary_namespace, secondary_namespace, key]))
            .map_err(|e| {
                sql_error(
                    "remove",
                    entry_name(primary_namespace, secondary_namespace, key),
                    e,
                )
            })?;
        Ok(())
    }

    fn list(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
    ) -> Result<Vec<String>, io::Error> {
        check_namespaces(primary_namespace, secondary_namespace, "list")?;
        let conn = self.lock()?;
        conn.prepare_cached(SQL_LIST)
            .and_then(|mut stmt| {
                stmt.query_map(params![primary_namespace, secondary_namespace], |row| {
                    row.get::<_, String>(0)
                })?
                .collect()
            })
            .map_err(|e| {
                sql_error(
                    "list",
                    format!("{primary_namespace}/{secondary_namespace}"),
                    e,
                )
            })
    }
}

impl MigratableKVStore for SqliteStore {
    fn list_all_keys(&self) -> Result<Vec<(String, String, String)>, io::Error> {
        let conn = self.lock()?;
        conn.prepare_cached(SQL_LIST_ALL)
            .and_then(|mut stmt| {
                stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                    .collect()
            })
            .map_err(|e| sql_error("list", "all keys".to_owned(), e))
    }
}

/// Async adapter: runs the (blocking, fsyncing) operation immediately and returns a completed
/// future, exactly like LDK's `KVStoreSyncWrapper`. Ordering of writes to the same key is
/// therefore the call order.
impl KVStore for SqliteStore {
    fn read(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
    ) -> AsyncResult<'static, Vec<u8>, io::Error> {
        let res = KVStoreSync::read(self, primary_namespace, secondary_namespace, key);
        Box::pin(std::future::ready(res))
    }

    fn write(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
        buf: Vec<u8>,
    ) -> AsyncResult<'static, (), io::Error> {
        let res = KVStoreSync::write(self, primary_namespace, secondary_namespace, key, buf);
        Box::pin(std::future::ready(res))
    }

    fn remove(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
        lazy: bool,
    ) -> AsyncResult<'static, (), io::Error> {
        let res = KVStoreSync::remove(self, primary_namespace, secondary_namespace, key, lazy);
        Box::pin(std::future::ready(res))
    }

    fn list(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
    ) -> AsyncResult<'static, Vec<String>, io::Error> {
        let res = KVStoreSync::list(self, primary_namespace, secondary_namespace);
        Box::pin(std::future::ready(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisoned_mutex_is_an_error_not_a_panic() {
        let dir = crate::tests::TempDir::new("poison");
        let store = SqliteStore::open(dir.path()).unwrap();
        KVStoreSync::write(&store, "ns", "", "k", vec![1]).unwrap();
        std::thread::scope(|s| {
            let res = s
                .spawn(|| {
                    let _guard = store.conn.lock().unwrap();
                    panic!("poison the store mutex (expected in this test)");
                })
                .join();
            assert!(res.is_err());
        });
        let err = KVStoreSync::write(&store, "ns", "", "k", vec![2]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert!(err.to_string().contains("poisoned"), "{err}");
        assert!(KVStoreSync::read(&store, "ns", "", "k").is_err());
        assert!(store.list_all_keys().is_err());
    }
}
