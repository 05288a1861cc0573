//! The signer's own ledger of the tenant's apps: each app's key, rights, budget and expiry,
//! and every payment it approved for each (whose nonces are never approved again).
//!
//! One SQLite file, `state/apps.sqlite` (WAL, `synchronous=FULL`, owner-only). It is shared
//! by the running signer and the tenant's `micronode signer token`/`status` commands, which
//! may run at the same time: SQLite's locking serialises them.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::store::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS apps (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, client_key TEXT NOT NULL UNIQUE,
    methods TEXT NOT NULL, budget_msat INTEGER NOT NULL, period_secs INTEGER NOT NULL,
    expires_at INTEGER, created_at INTEGER NOT NULL, revoked_at INTEGER);
CREATE TABLE IF NOT EXISTS approvals (
    app_id TEXT NOT NULL, nonce TEXT NOT NULL, time INTEGER NOT NULL, method TEXT NOT NULL,
    target TEXT NOT NULL, payment_hash TEXT NOT NULL, amount_msat INTEGER NOT NULL,
    cost_msat INTEGER NOT NULL, PRIMARY KEY (app_id, nonce));
CREATE INDEX IF NOT EXISTS approvals_time ON approvals (app_id, time);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// The `meta` key of the tenant's node id, written by the running signer.
pub const META_TENANT: &str = "tenant";

/// One app the tenant authorised.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AppRecord {
    /// Its id (hex), also the id of its token.
    pub id: String,
    /// The tenant's name for it.
    pub name: String,
    /// Its client key (x-only, hex).
    pub client_key: String,
    /// The payment methods it may ask for (`pay_invoice`, `keysend`).
    pub methods: Vec<String>,
    /// The most it may spend per period, in msat (amount plus fee allowance); 0: no payments.
    pub budget_msat: u64,
    /// The budget's rolling period in seconds; 0: the app's whole life.
    pub period_secs: u64,
    /// When it stops being valid (Unix seconds), if ever.
    pub expires_at: Option<u64>,
    /// When it was made.
    pub created_at: u64,
    /// When the tenant revoked it, if it did.
    pub revoked_at: Option<u64>,
}

/// One payment the signer approved for an app.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Approval {
    /// The app.
    pub app_id: String,
    /// The request's nonce.
    pub nonce: String,
    /// When it was approved.
    pub time: u64,
    /// `pay_invoice` or `keysend`.
    pub method: String,
    /// The payment hash or payee.
    pub target: String,
    /// The payment hash.
    pub payment_hash: String,
    /// Paid to the payee.
    pub amount_msat: u64,
    /// Charged to the budget: amount plus fee allowance.
    pub cost_msat: u64,
}

/// The ledger.
pub struct AppStore {
    conn: Mutex<Connection>,
}

fn u(v: i64) -> Result<u64, rusqlite::Error> {
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, v))
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn app_of(row: &rusqlite::Row<'_>) -> Result<AppRecord, rusqlite::Error> {
    let methods: String = row.get(3)?;
    Ok(AppRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        client_key: row.get(2)?,
        methods: methods
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect(),
        budget_msat: u(row.get(4)?)?,
        period_secs: u(row.get(5)?)?,
        expires_at: row.get::<_, Option<i64>>(6)?.map(u).transpose()?,
        created_at: u(row.get(7)?)?,
        revoked_at: row.get::<_, Option<i64>>(8)?.map(u).transpose()?,
    })
}

/// What an app spent since `?2` (Unix seconds), in msat.
const SPENT_SINCE: &str =
    "SELECT COALESCE(SUM(cost_msat), 0) FROM approvals WHERE app_id = ?1 AND time >= ?2";

const APP_COLUMNS: &str =
    "id, name, client_key, methods, budget_msat, period_secs, expires_at, created_at, revoked_at";

impl AppStore {
    /// Opens (creating) the ledger at `path`.
    pub fn open(path: &Path) -> Result<AppStore, StoreError> {
        if let Some(dir) = path.parent() {
            micronode_files::own_private_dir(dir)?;
        }
        let conn = Connection::open(path)?;
        micronode_files::restrict_to_owner(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(AppStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A `meta` value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a `meta` value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Records a new app.
    pub fn add(&self, app: &AppRecord) -> Result<(), StoreError> {
        self.conn().execute(
            &format!(
                "INSERT INTO apps ({APP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            params![
                app.id,
                app.name,
                app.client_key,
                app.methods.join(","),
                i(app.budget_msat),
                i(app.period_secs),
                app.expires_at.map(i),
                i(app.created_at),
                app.revoked_at.map(i),
            ],
        )?;
        Ok(())
    }

    /// Every app, oldest first.
    pub fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {APP_COLUMNS} FROM apps ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([], app_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The app with `id`.
    pub fn app(&self, id: &str) -> Result<Option<AppRecord>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!("SELECT {APP_COLUMNS} FROM apps WHERE id = ?1"),
                [id],
                app_of,
            )
            .optional()?)
    }

    /// The app whose client key (x-only hex) is `key`.
    pub fn app_by_key(&self, key: &str) -> Result<Option<AppRecord>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!("SELECT {APP_COLUMNS} FROM apps WHERE client_key = ?1"),
                [key.to_ascii_lowercase()],
                app_of,
            )
            .optional()?)
    }

    /// Marks the app revoked at `now`; `false` if there is no such app.
    pub fn revoke(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE apps SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, i(now)],
        )?;
        Ok(changed > 0)
    }

    /// What the app spent since `since` (Unix seconds), in msat.
    pub fn spent_since(&self, app_id: &str, since: u64) -> Result<u64, StoreError> {
        let total: i64 = self
            .conn()
            .query_row(SPENT_SINCE, params![app_id, i(since)], |r| r.get(0))?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Records an approval if its nonce is new for the app and `fits(spent)` holds for what
    /// the app spent since `since`, atomically. `Ok(Err(spent))` when it does not fit;
    /// `Ok(Ok(false))` when the nonce was seen before.
    pub fn record(
        &self,
        approval: &Approval,
        since: u64,
        fits: impl FnOnce(u64) -> bool,
    ) -> Result<Result<bool, u64>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let seen: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM approvals WHERE app_id = ?1 AND nonce = ?2)",
            params![approval.app_id, approval.nonce],
            |r| r.get(0),
        )?;
        if seen {
            return Ok(Ok(false));
        }
        let spent: i64 = tx.query_row(SPENT_SINCE, params![approval.app_id, i(since)], |r| {
            r.get(0)
        })?;
        let spent = u64::try_from(spent).unwrap_or(0);
        if !fits(spent) {
            return Ok(Err(spent));
        }
        tx.execute(
            "INSERT INTO approvals (app_id, nonce, time, method, target, payment_hash, \
             amount_msat, cost_msat) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                approval.app_id,
                approval.nonce,
                i(approval.time),
                approval.method,
                approval.target,
                approval.payment_hash,
                i(approval.amount_msat),
                i(approval.cost_msat),
            ],
        )?;
        tx.commit()?;
        Ok(Ok(true))
    }

    /// Takes an approval back (the payment was refused after it was recorded).
    pub fn forget(&self, app_id: &str, nonce: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM approvals WHERE app_id = ?1 AND nonce = ?2",
            params![app_id, nonce],
        )?;
        Ok(())
    }

    /// The app's latest approvals, newest first.
    pub fn recent(&self, app_id: &str, limit: usize) -> Result<Vec<Approval>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT app_id, nonce, time, method, target, payment_hash, amount_msat, cost_msat \
             FROM approvals WHERE app_id = ?1 ORDER BY time DESC, rowid DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![app_id, i(limit as u64)], |r| {
            Ok(Approval {
                app_id: r.get(0)?,
                nonce: r.get(1)?,
                time: u(r.get(2)?)?,
                method: r.get(3)?,
                target: r.get(4)?,
                payment_hash: r.get(5)?,
                amount_msat: u(r.get(6)?)?,
                cost_msat: u(r.get(7)?)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
