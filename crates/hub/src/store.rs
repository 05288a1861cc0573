//! The hub's SQLite database (`<data dir>/hub.sqlite`): its schema, and running work on it off
//! the async workers.
//!
//! One connection behind a mutex: every unit of work runs on a blocking thread
//! (`spawn_blocking`) and money movements inside `BEGIN IMMEDIATE` transactions, so two
//! requests can never both see the same balance. WAL journal, `synchronous=FULL`: a
//! committed movement survives a crash of the process or the machine.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::error::HubError;

/// The database file's name in the data directory.
pub const DB_FILE: &str = "hub.sqlite";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    -- 'user' or 'system'
    kind TEXT NOT NULL,
    -- the login (users) or the system account's name
    name TEXT NOT NULL UNIQUE,
    -- hex SHA-256(salt || password), users only
    password_hash TEXT,
    salt TEXT,
    -- the Lightning Address name claimed, if any
    address TEXT UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    reference TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    tx_id INTEGER NOT NULL REFERENCES transactions(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    amount_msat INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_account ON entries(account_id);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    -- 'access' or 'refresh'
    kind TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS invites (
    hash TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    used_by INTEGER REFERENCES accounts(id)
);
CREATE TABLE IF NOT EXISTS invoices (
    id INTEGER PRIMARY KEY,
    payment_hash TEXT NOT NULL UNIQUE,
    -- NULL: the tenant's own (its Lightning Address): credits no account
    account_id INTEGER REFERENCES accounts(id),
    bolt11 TEXT NOT NULL,
    amount_msat INTEGER,
    memo TEXT NOT NULL,
    description_hash TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    paid_at INTEGER,
    paid_msat INTEGER,
    -- 1 when paid by another account of this hub (no Lightning payment)
    paid_internally INTEGER NOT NULL DEFAULT 0,
    -- 1 when the node says it expired unpaid: no more reconciliation
    closed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS invoices_by_account ON invoices(account_id);
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    -- 'bolt11', 'keysend' or 'internal'
    kind TEXT NOT NULL,
    payment_hash TEXT,
    -- the node's payment id, once known (bolt11: the payment hash)
    node_id TEXT,
    bolt11 TEXT,
    destination TEXT,
    amount_msat INTEGER NOT NULL,
    reserve_msat INTEGER NOT NULL,
    fee_msat INTEGER,
    -- 'pending', 'succeeded' or 'failed'
    status TEXT NOT NULL,
    preimage TEXT,
    memo TEXT NOT NULL DEFAULT '',
    failure TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_by_account ON payments(account_id);
CREATE INDEX IF NOT EXISTS payments_by_status ON payments(status);
-- An invoice is paid at most once by this hub: one live (pending or succeeded) payment per hash.
CREATE UNIQUE INDEX IF NOT EXISTS one_live_payment_per_hash
    ON payments(payment_hash) WHERE status != 'failed' AND kind != 'keysend';
"#;

/// The system accounts (kind `system`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemAccounts {
    /// `lightning`: the outside world. Incoming payments come from it, settled outgoing
    /// payments go to it; its balance is minus what the users' accounts received net.
    pub lightning: i64,
    /// `outgoing`: holds of external payments in flight (amount + fee reserve).
    pub outgoing: i64,
    /// `fees`: the hub's own fee income (none is charged today; kept for the ledger's shape).
    pub fees: i64,
    /// `tenant`: what users paid to the tenant's own Lightning Address invoices internally.
    pub tenant: i64,
}

/// The hub's database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// The system accounts' ids.
    pub system: SystemAccounts,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed, owner-only) `<data_dir>/hub.sqlite` and its schema.
    pub fn open(data_dir: &Path) -> Result<Store, HubError> {
        micronode_files::create_private_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            drop(micronode_files::create_private_file(&path)?);
        }
        let open_err = |source| HubError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        for side in ["-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(side);
            let p = PathBuf::from(p);
            if p.exists() {
                micronode_files::restrict_to_owner(&p)?;
            }
        }
        let system = SystemAccounts {
            lightning: system_account(&conn, "lightning")?,
            outgoing: system_account(&conn, "outgoing")?,
            fees: system_account(&conn, "fees")?,
            tenant: system_account(&conn, "tenant")?,
        };
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path,
            system,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection on a blocking thread.
    pub async fn run<T, F>(&self, f: F) -> Result<T, HubError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, SystemAccounts) -> Result<T, HubError> + Send + 'static,
    {
        let conn = self.conn.clone();
        let system = self.system;
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-done transaction behind
            // (SQLite rolls it back when the transaction guard drops), so a poisoned lock is
            // still usable.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard, system)
        })
        .await?
    }

    /// Runs `f` inside one `BEGIN IMMEDIATE` transaction, committed if `f` succeeds.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, HubError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>, SystemAccounts) -> Result<T, HubError>
            + Send
            + 'static,
    {
        self.run(move |conn, system| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx, system)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

fn system_account(conn: &Connection, name: &str) -> Result<i64, HubError> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT id FROM accounts WHERE kind = 'system' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    conn.execute(
        "INSERT INTO accounts (kind, name, created_at) VALUES ('system', ?1, ?2)",
        rusqlite::params![name, now()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The current Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
