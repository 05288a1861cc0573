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
    expires_at INTEGER, created_at INTEGER NOT NULL, revoked_at INTEGER, parent_id TEXT);
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
    /// The app that delegated to it (an NWC app a browser wallet made), if any: each of its
    /// payments is charged to that app's budget too, and stops when that app is revoked.
    pub parent_id: Option<String>,
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
        parent_id: row.get(9)?,
    })
}

/// What an app spent since `?2` (Unix seconds), in msat.
const SPENT_SINCE: &str =
    "SELECT COALESCE(SUM(cost_msat), 0) FROM approvals WHERE app_id = ?1 AND time >= ?2";

const APP_COLUMNS: &str = "id, name, client_key, methods, budget_msat, period_secs, expires_at, \
     created_at, revoked_at, parent_id";

/// Inserts `app`; `conflict` is appended to the statement (an `ON CONFLICT` clause, or "").
fn insert_app(
    conn: &Connection,
    app: &AppRecord,
    conflict: &str,
) -> Result<usize, rusqlite::Error> {
    conn.execute(
        &format!(
            "INSERT INTO apps ({APP_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10){conflict}"
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
            app.parent_id,
        ],
    )
}

/// Adds the `parent_id` column to a ledger made before delegations, once: in one immediate
/// transaction, so the signer and a command opening the ledger together do not both add it.
fn migrate(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let has_parent: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM pragma_table_info('apps') WHERE name = 'parent_id')",
        [],
        |r| r.get(0),
    )?;
    if !has_parent {
        tx.execute_batch("ALTER TABLE apps ADD COLUMN parent_id TEXT")?;
    }
    tx.commit()
}

/// One charge of an approval to one app's budget, for [`AppStore::record_chain`].
#[derive(Clone, Debug)]
pub struct Charge<'a> {
    /// The approval, as recorded for the app it names.
    pub approval: &'a Approval,
    /// The start of the app's budget window (Unix seconds).
    pub since: u64,
    /// The app's budget for the window, in msat.
    pub budget_msat: u64,
}

/// What [`AppStore::record_chain`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recording {
    /// Every charge was recorded.
    Recorded,
    /// The nonce was approved before for this app (its id): nothing was recorded.
    Replayed(String),
    /// This app's budget does not allow the charge: nothing was recorded.
    OverBudget {
        /// The app.
        app_id: String,
        /// What it spent in its window, in msat.
        spent_msat: u64,
    },
}

impl AppStore {
    /// Opens (creating) the ledger at `path`.
    pub fn open(path: &Path) -> Result<AppStore, StoreError> {
        if let Some(dir) = path.parent() {
            micronode_files::own_private_dir(dir)?;
        }
        let mut conn = Connection::open(path)?;
        micronode_files::restrict_to_owner(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        migrate(&mut conn)?;
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
        insert_app(&self.conn(), app, "")?;
        Ok(())
    }

    /// Records `app` unless an app with its id or client key exists, and returns the app
    /// stored with its client key: `app`, or the one a concurrent caller recorded first.
    /// `None` if its id is taken by an app with another key.
    pub fn add_or_get(&self, app: &AppRecord) -> Result<Option<AppRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        insert_app(&tx, app, " ON CONFLICT DO NOTHING")?;
        let stored = tx
            .query_row(
                &format!("SELECT {APP_COLUMNS} FROM apps WHERE client_key = ?1"),
                [&app.client_key],
                app_of,
            )
            .optional()?;
        tx.commit()?;
        Ok(stored)
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

    /// Records one approval for each app of a chain (an NWC app a browser wallet delegated
    /// to, and that browser's app), all or none, atomically: none when any app approved the
    /// nonce before ([`Recording::Replayed`]) or when any app's spending since its window's
    /// start plus the charge's cost would pass its budget ([`Recording::OverBudget`]).
    pub fn record_chain(&self, charges: &[Charge<'_>]) -> Result<Recording, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for charge in charges {
            let approval = charge.approval;
            let seen: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM approvals WHERE app_id = ?1 AND nonce = ?2)",
                params![approval.app_id, approval.nonce],
                |r| r.get(0),
            )?;
            if seen {
                return Ok(Recording::Replayed(approval.app_id.clone()));
            }
        }
        for charge in charges {
            let approval = charge.approval;
            let spent: i64 = tx.query_row(
                SPENT_SINCE,
                params![approval.app_id, i(charge.since)],
                |r| r.get(0),
            )?;
            let spent = u64::try_from(spent).unwrap_or(0);
            if spent.saturating_add(approval.cost_msat) > charge.budget_msat {
                return Ok(Recording::OverBudget {
                    app_id: approval.app_id.clone(),
                    spent_msat: spent,
                });
            }
        }
        for charge in charges {
            let approval = charge.approval;
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
        }
        tx.commit()?;
        Ok(Recording::Recorded)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, key: &str, parent: Option<&str>) -> AppRecord {
        AppRecord {
            id: id.into(),
            name: id.into(),
            client_key: key.into(),
            methods: vec!["pay_invoice".into()],
            budget_msat: 10_000,
            period_secs: 0,
            expires_at: None,
            created_at: 1,
            revoked_at: None,
            parent_id: parent.map(str::to_string),
        }
    }

    fn approval(app_id: &str, nonce: &str, cost_msat: u64) -> Approval {
        Approval {
            app_id: app_id.into(),
            nonce: nonce.into(),
            time: 100,
            method: "pay_invoice".into(),
            target: "ab".into(),
            payment_hash: "ab".into(),
            amount_msat: cost_msat,
            cost_msat,
        }
    }

    #[test]
    fn a_ledger_made_before_delegations_gains_the_parent_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apps.sqlite");
        {
            // The schema as it was before delegations, with one app.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE apps (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, client_key TEXT NOT NULL UNIQUE,
                    methods TEXT NOT NULL, budget_msat INTEGER NOT NULL,
                    period_secs INTEGER NOT NULL, expires_at INTEGER,
                    created_at INTEGER NOT NULL, revoked_at INTEGER);
                 INSERT INTO apps VALUES ('old', 'old', 'k0', 'pay_invoice', 5, 0, NULL, 1, NULL);",
            )
            .unwrap();
        }
        let store = AppStore::open(&path).unwrap();
        let old = store.app("old").unwrap().unwrap();
        assert_eq!(old.parent_id, None);
        assert_eq!(old.budget_msat, 5);
        let child = app("old:k1", "k1", Some("old"));
        assert_eq!(store.add_or_get(&child).unwrap(), Some(child.clone()));
        drop(store);
        // Opening again (and again) migrates nothing twice.
        let store = AppStore::open(&path).unwrap();
        assert_eq!(store.app_by_key("k1").unwrap(), Some(child.clone()));
        // A second record for the same key keeps the first; an id taken by another key: none.
        let mut again = child.clone();
        again.budget_msat = 99_999;
        assert_eq!(store.add_or_get(&again).unwrap(), Some(child));
        assert_eq!(
            store.add_or_get(&app("old:k1", "k2", Some("old"))).unwrap(),
            None
        );
    }

    fn charge(approval: &Approval, budget_msat: u64) -> Charge<'_> {
        Charge {
            approval,
            since: 0,
            budget_msat,
        }
    }

    #[test]
    fn a_chain_is_charged_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = AppStore::open(&dir.path().join("apps.sqlite")).unwrap();
        let (child, parent) = (approval("c", "n1", 4_000), approval("p", "n1", 4_000));
        let first = [charge(&child, 5_000), charge(&parent, 6_000)];
        assert_eq!(store.record_chain(&first).unwrap(), Recording::Recorded);
        // The same nonce again: nothing more is charged to either.
        assert_eq!(
            store.record_chain(&first).unwrap(),
            Recording::Replayed("c".into())
        );
        // Fits the child's budget (another child), not the parent's: neither is charged.
        let (other, parent2) = (approval("d", "n2", 2_001), approval("p", "n2", 2_001));
        assert_eq!(
            store
                .record_chain(&[charge(&other, 5_000), charge(&parent2, 6_000)])
                .unwrap(),
            Recording::OverBudget {
                app_id: "p".into(),
                spent_msat: 4_000
            }
        );
        assert_eq!(store.spent_since("d", 0).unwrap(), 0);
        assert_eq!(store.spent_since("c", 0).unwrap(), 4_000);
        assert_eq!(store.spent_since("p", 0).unwrap(), 4_000);
        let (other, parent2) = (approval("d", "n2", 2_000), approval("p", "n2", 2_000));
        assert_eq!(
            store
                .record_chain(&[charge(&other, 5_000), charge(&parent2, 6_000)])
                .unwrap(),
            Recording::Recorded
        );
        assert_eq!(store.spent_since("p", 0).unwrap(), 6_000);
    }
}
