//! The service's own SQLite database: connections, budget spends, processed requests and a few
//! settings. One file, `nwc.sqlite`, mode 0600 in a 0700 directory; WAL with
//! `synchronous=FULL`, so a request marked as claimed survives a crash or power loss before
//! its payment starts (that is what makes a replayed `pay_invoice` pay once).
//!
//! Several processes may open it (the service, and the CLI managing connections); SQLite's
//! locking serialises their writes, and the service notices new or revoked connections.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::NwcError;

/// The database file's name inside the data directory.
pub const DB_FILE_NAME: &str = "nwc.sqlite";
/// 2: connections carry the browser wallet's `delegation` (JSON), if any.
const SCHEMA_VERSION: i64 = 2;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS connections (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL,
    app_pubkey      TEXT NOT NULL UNIQUE,
    service_secret  TEXT NOT NULL,
    service_pubkey  TEXT NOT NULL UNIQUE,
    methods         TEXT NOT NULL,
    notifications   INTEGER NOT NULL,
    budget_msat     INTEGER,
    budget_renewal  TEXT NOT NULL,
    expires_at      INTEGER,
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    delegation      TEXT
);
CREATE TABLE IF NOT EXISTS spends (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id  INTEGER NOT NULL REFERENCES connections(id),
    request_id     TEXT NOT NULL,
    payment_hash   TEXT,
    amount_msat    INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('reserved', 'settled', 'released')),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spends_by_connection ON spends(connection_id, created_at);
CREATE INDEX IF NOT EXISTS spends_by_hash ON spends(payment_hash);
CREATE TABLE IF NOT EXISTS requests (
    event_id       TEXT PRIMARY KEY,
    service_pubkey TEXT NOT NULL,
    connection_id  INTEGER,
    method         TEXT,
    created_at     INTEGER NOT NULL,
    received_at    INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('processing', 'done')),
    response       TEXT
);
CREATE INDEX IF NOT EXISTS requests_by_time ON requests(received_at);
";

/// The service's database.
pub struct NwcStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// What a request id's first sighting tells the handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Never seen: the caller owns it now and MUST finish it.
    New,
    /// Being handled (here, or by a run that crashed mid-way): do nothing.
    InFlight,
    /// Already answered: this is the signed response event (JSON), to publish again.
    Done(Option<String>),
}

impl NwcStore {
    /// Opens (creating if needed) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, NwcError> {
        create_private_dir(data_dir)?;
        let path = data_dir.join(DB_FILE_NAME);
        prepare_db_file(&path)?;
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(NwcError::Config(format!(
                "SQLite refused WAL mode (got {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(NwcError::Config(format!(
                "{} has schema version {version}; this build knows {SCHEMA_VERSION}",
                path.display()
            )));
        }
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A setting.
    pub fn meta(&self, key: &str) -> Result<Option<String>, NwcError> {
        Ok(self
            .lock()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a setting.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), NwcError> {
        self.lock().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Records a request id. Exactly one caller ever gets [`Claim::New`] for an id, across
    /// restarts, until [`NwcStore::prune_requests`] forgets it.
    pub fn claim_request(
        &self,
        event_id: &str,
        service_pubkey: &str,
        created_at: u64,
        now: u64,
    ) -> Result<Claim, NwcError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let existing: Option<(String, Option<String>)> = tx
            .query_row(
                "SELECT state, response FROM requests WHERE event_id = ?1",
                [event_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let claim = match existing {
            Some((state, response)) if state == "done" => Claim::Done(response),
            Some(_) => Claim::InFlight,
            None => {
                tx.execute(
                    "INSERT INTO requests (event_id, service_pubkey, created_at, received_at, state)
                     VALUES (?1, ?2, ?3, ?4, 'processing')",
                    params![event_id, service_pubkey, to_i64(created_at), to_i64(now)],
                )?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('last_request_at', ?1)
                     ON CONFLICT(key) DO UPDATE SET value =
                       CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
                    [created_at.to_string()],
                )?;
                Claim::New
            }
        };
        tx.commit()?;
        Ok(claim)
    }

    /// Marks a claimed request answered, with the signed response event to replay to
    /// duplicates (`None` when the request is ignored without an answer).
    pub fn finish_request(
        &self,
        event_id: &str,
        connection_id: Option<i64>,
        method: Option<&str>,
        response: Option<&str>,
    ) -> Result<(), NwcError> {
        self.lock().execute(
            "UPDATE requests SET state = 'done', connection_id = ?2, method = ?3, response = ?4
             WHERE event_id = ?1",
            params![event_id, connection_id, method, response],
        )?;
        Ok(())
    }

    /// The newest `created_at` of any request seen, for catching up after a disconnect.
    pub fn last_request_at(&self) -> Result<Option<u64>, NwcError> {
        Ok(self
            .meta("last_request_at")?
            .and_then(|v| v.parse::<u64>().ok()))
    }

    /// Requests claimed but never finished (the process stopped mid-way). They are never
    /// executed again.
    pub fn interrupted_requests(&self) -> Result<Vec<String>, NwcError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT event_id FROM requests WHERE state = 'processing'")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// Forgets requests received before `before` (unix seconds). The service ignores requests
    /// older than its maximum request age, which MUST be shorter than the retention, so a
    /// forgotten id can never be executed again.
    pub fn prune_requests(&self, before: u64) -> Result<usize, NwcError> {
        Ok(self.lock().execute(
            "DELETE FROM requests WHERE received_at < ?1 AND created_at < ?1 AND state = 'done'",
            [to_i64(before)],
        )?)
    }
}

/// Creates the tables, or brings a store of an older version up to this one, in one immediate
/// transaction (the service and the CLI may open the store at the same time): version 1 had
/// no `delegation` column on connections.
fn migrate(conn: &mut Connection) -> Result<(), NwcError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    let has_delegation: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM pragma_table_info('connections') WHERE name = 'delegation')",
        [],
        |r| r.get(0),
    )?;
    if !has_delegation {
        tx.execute_batch("ALTER TABLE connections ADD COLUMN delegation TEXT")?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn create_private_dir(dir: &Path) -> Result<(), NwcError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| NwcError::io(dir, e))
}

/// Creates the file 0600 before SQLite does, and tightens existing files (SQLite gives its
/// `-wal` and `-shm` files the main file's permissions).
fn prepare_db_file(path: &Path) -> Result<(), NwcError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(NwcError::io(path, e)),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let p = PathBuf::from(p);
            if let Ok(meta) = fs::metadata(&p) {
                if meta.permissions().mode() & 0o077 != 0 {
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o600))
                        .map_err(|e| NwcError::io(&p, e))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A temporary directory removed on drop.
    pub(crate) struct Tmp(pub PathBuf);
    impl Tmp {
        pub(crate) fn new(tag: &str) -> Self {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Self(
                std::env::temp_dir()
                    .join(format!("micronode-nwc-{tag}-{}-{n}", std::process::id())),
            )
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn claims_are_exclusive_and_survive_reopen() {
        let dir = Tmp::new("claims");
        {
            let store = NwcStore::open(&dir.0).expect("open");
            assert_eq!(
                store.claim_request("e1", "pk", 100, 110).unwrap(),
                Claim::New
            );
            assert_eq!(
                store.claim_request("e1", "pk", 100, 111).unwrap(),
                Claim::InFlight
            );
            store
                .finish_request("e1", Some(1), Some("pay_invoice"), Some("{\"id\":1}"))
                .unwrap();
            assert_eq!(
                store.claim_request("e1", "pk", 100, 112).unwrap(),
                Claim::Done(Some("{\"id\":1}".into()))
            );
            assert_eq!(
                store.claim_request("e2", "pk", 90, 112).unwrap(),
                Claim::New
            );
            assert_eq!(store.last_request_at().unwrap(), Some(100));
        }
        let store = NwcStore::open(&dir.0).expect("reopen");
        assert!(matches!(
            store.claim_request("e1", "pk", 100, 200).unwrap(),
            Claim::Done(_)
        ));
        assert_eq!(
            store.interrupted_requests().unwrap(),
            vec!["e2".to_string()]
        );
        assert_eq!(store.prune_requests(150).unwrap(), 1);
        assert_eq!(
            store.claim_request("e1", "pk", 100, 300).unwrap(),
            Claim::New
        );
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = Tmp::new("perms");
        let store = NwcStore::open(&dir.0).expect("open");
        store.set_meta("k", "v").unwrap();
        assert_eq!(store.meta("k").unwrap().as_deref(), Some("v"));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.0), 0o700);
        assert_eq!(mode(store.path()), 0o600);
        let mut wal = store.path().as_os_str().to_owned();
        wal.push("-wal");
        if Path::new(&wal).exists() {
            assert_eq!(mode(Path::new(&wal)), 0o600);
        }
    }
}
