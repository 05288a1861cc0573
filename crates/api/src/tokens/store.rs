//! The token authority's own SQLite file, `<data-dir>/tokens/tokens.sqlite`, apart from the
//! node's LDK store. It holds what verification and revocation need and nothing that could
//! mint or replay a token:
//!
//! - `meta`: the root PUBLIC key and the tenant (node id) the tokens belong to;
//! - `revoked`: the revocation list (block revocation ids);
//! - `tokens`: registered tokens' ids, revocation ids, label and block sources (caveats);
//! - `spends` + `spend_lineage`: the spending ledger, one row per payment and one lineage row
//!   per block revocation id of the token that paid, so that a block's budget sums every
//!   payment made through it or through any attenuation of it.
//!
//! WAL with `synchronous=FULL`: a reservation is on disk before its payment starts.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::caveats::Period;
use super::error::TokenError;

/// The database file's name inside the tokens folder.
pub const STORE_FILE: &str = "tokens.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked (
    revocation_id BLOB PRIMARY KEY,
    revoked_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    revocation_ids TEXT NOT NULL,
    label TEXT NOT NULL,
    blocks TEXT NOT NULL,
    registered_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spends (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id BLOB,
    cost_msat INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spends_open ON spends(state) WHERE state = 'reserved';
CREATE TABLE IF NOT EXISTS spend_lineage (
    revocation_id BLOB NOT NULL,
    spend_id INTEGER NOT NULL REFERENCES spends(id),
    PRIMARY KEY (revocation_id, spend_id)
) WITHOUT ROWID;
";

/// Meta key of the root public key (`ed25519/<hex>`).
pub const META_ROOT_PUBLIC_KEY: &str = "root_public_key";
/// Meta key of the tenant (the node id).
pub const META_TENANT: &str = "tenant";

/// What was spent through one block, per period (msat): settled payments at their final cost,
/// reserved ones at their reserved cost, released ones not at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    /// The last 24 hours.
    pub day: i64,
    /// The last 7 days.
    pub week: i64,
    /// The last 30 days.
    pub month: i64,
    /// Ever.
    pub total: i64,
}

impl Spent {
    /// The sum for `period`.
    pub fn get(&self, period: Period) -> i64 {
        match period {
            Period::Day => self.day,
            Period::Week => self.week,
            Period::Month => self.month,
            Period::Total => self.total,
        }
    }
}

/// A registered token as stored.
#[derive(Clone, Debug)]
pub struct TokenRow {
    /// Its id.
    pub id: String,
    /// Its blocks' revocation ids.
    pub revocation_ids: Vec<Vec<u8>>,
    /// The label given at registration.
    pub label: String,
    /// Its blocks' Datalog sources.
    pub blocks: Vec<String>,
    /// When it was registered (Unix seconds).
    pub registered_at: u64,
}

/// An open (reserved) spend: its row id and the payment it belongs to, once known.
pub type OpenSpend = (i64, Option<[u8; 32]>);

/// The token store. Not `Sync`: the authority keeps it behind a mutex, which also makes each
/// reservation's check-and-insert atomic.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Creates the store in `dir` (mode 0700), failing if it already exists.
    pub fn create(dir: &Path) -> Result<Store, TokenError> {
        let path = dir.join(STORE_FILE);
        if path.exists() {
            return Err(TokenError::AlreadyInitialised(dir.to_path_buf()));
        }
        create_private_dir(dir)?;
        // Create the file private before SQLite opens it.
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        opts.open(&path).map_err(TokenError::io(&path))?;
        Self::open_file(path)
    }

    /// Opens the store in `dir`, which must exist.
    pub fn open(dir: &Path) -> Result<Store, TokenError> {
        let path = dir.join(STORE_FILE);
        if !path.is_file() {
            return Err(TokenError::NotInitialised(dir.to_path_buf()));
        }
        Self::open_file(path)
    }

    fn open_file(path: PathBuf) -> Result<Store, TokenError> {
        let conn = Connection::open(&path).map_err(TokenError::store(&path))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .and_then(|_| conn.pragma_update(None, "synchronous", "FULL"))
            .and_then(|_| conn.pragma_update(None, "foreign_keys", "ON"))
            .and_then(|_| conn.busy_timeout(std::time::Duration::from_secs(5)))
            .and_then(|_| conn.execute_batch(SCHEMA))
            .map_err(TokenError::store(&path))?;
        Ok(Store { conn, path })
    }

    fn err(&self) -> impl FnOnce(rusqlite::Error) -> TokenError {
        TokenError::store(&self.path)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets a meta value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), TokenError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// A meta value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, TokenError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }

    /// Every revoked revocation id.
    pub fn revoked(&self) -> Result<HashSet<Vec<u8>>, TokenError> {
        let mut stmt = self
            .conn
            .prepare("SELECT revocation_id FROM revoked")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Adds a revocation id to the list (idempotent).
    pub fn revoke(&self, revocation_id: &[u8], now: u64) -> Result<(), TokenError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO revoked (revocation_id, revoked_at) VALUES (?1, ?2)",
                params![revocation_id, to_i64(now)],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Registers a token, or updates the label of one registered before.
    pub fn register(&self, row: &TokenRow) -> Result<(), TokenError> {
        let revocation_ids: Vec<String> = row.revocation_ids.iter().map(hex::encode).collect();
        let blocks = serde_json::to_string(&row.blocks)
            .map_err(|e| TokenError::Corrupt(format!("cannot encode blocks: {e}")))?;
        self.conn
            .execute(
                "INSERT INTO tokens (id, revocation_ids, label, blocks, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET label = excluded.label",
                params![
                    row.id,
                    revocation_ids.join(","),
                    row.label,
                    blocks,
                    to_i64(row.registered_at)
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Registered tokens, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, TokenError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, revocation_ids, label, blocks, registered_at FROM tokens
                 ORDER BY registered_at, rowid",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(self.err())?;
        let mut tokens = Vec::new();
        for row in rows {
            let (id, revocation_ids, label, blocks, registered_at) = row.map_err(self.err())?;
            let revocation_ids = revocation_ids
                .split(',')
                .map(hex::decode)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TokenError::Corrupt(format!("token {id}: revocation ids: {e}")))?;
            let blocks = serde_json::from_str(&blocks)
                .map_err(|e| TokenError::Corrupt(format!("token {id}: blocks: {e}")))?;
            tokens.push(TokenRow {
                id,
                revocation_ids,
                label,
                blocks,
                registered_at: u64::try_from(registered_at).unwrap_or_default(),
            });
        }
        Ok(tokens)
    }

    /// What was spent through the block with this revocation id, per period, as of `now`.
    pub fn spent(&self, revocation_id: &[u8], now: u64) -> Result<Spent, TokenError> {
        spent_in(&self.conn, revocation_id, now).map_err(self.err())
    }

    /// Atomically: sums what was spent through each block of `lineage`, lets `check` decide on
    /// those sums, and if it agrees records a reserved spend of `cost_msat` in the ledger of
    /// every block. Concurrent reservations are serialised by the caller's mutex and by
    /// SQLite's write lock, so two payments can never both fit a budget only one fits.
    pub fn reserve(
        &mut self,
        lineage: &[Vec<u8>],
        cost_msat: u64,
        payment_id: Option<[u8; 32]>,
        now: u64,
        check: impl FnOnce(&[Spent]) -> Result<(), TokenError>,
    ) -> Result<i64, TokenError> {
        let path = self.path.clone();
        let err = |e| TokenError::store(&path)(e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let spent = lineage
            .iter()
            .map(|rev| spent_in(&tx, rev, now))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        check(&spent)?;
        tx.execute(
            "INSERT INTO spends (payment_id, cost_msat, state, created_at, updated_at)
             VALUES (?1, ?2, 'reserved', ?3, ?3)",
            params![
                payment_id.as_ref().map(|p| p.as_slice()),
                to_i64(cost_msat),
                to_i64(now)
            ],
        )
        .map_err(err)?;
        let spend_id = tx.last_insert_rowid();
        for rev in lineage {
            tx.execute(
                "INSERT OR IGNORE INTO spend_lineage (revocation_id, spend_id) VALUES (?1, ?2)",
                params![rev, spend_id],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(spend_id)
    }

    /// Records which payment a reserved spend belongs to.
    pub fn attach(&self, spend_id: i64, payment_id: &[u8; 32], now: u64) -> Result<(), TokenError> {
        self.conn
            .execute(
                "UPDATE spends SET payment_id = ?2, updated_at = ?3 WHERE id = ?1",
                params![spend_id, payment_id.as_slice(), to_i64(now)],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// A reserved spend's payment succeeded: it now counts at `cost_msat`, or at its reserved
    /// cost if that is `None` (unknown).
    pub fn settle(
        &self,
        spend_id: i64,
        cost_msat: Option<u64>,
        now: u64,
    ) -> Result<(), TokenError> {
        self.conn
            .execute(
                "UPDATE spends SET state = 'settled', cost_msat = COALESCE(?2, cost_msat),
                 updated_at = ?3 WHERE id = ?1 AND state = 'reserved'",
                params![spend_id, cost_msat.map(to_i64), to_i64(now)],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// A reserved spend's payment failed or never started: it no longer counts.
    pub fn release(&self, spend_id: i64, now: u64) -> Result<(), TokenError> {
        self.conn
            .execute(
                "UPDATE spends SET state = 'released', updated_at = ?2
                 WHERE id = ?1 AND state = 'reserved'",
                params![spend_id, to_i64(now)],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Spends still reserved, oldest first.
    pub fn open_spends(&self) -> Result<Vec<OpenSpend>, TokenError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, payment_id FROM spends WHERE state = 'reserved' ORDER BY id")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
            })
            .map_err(self.err())?;
        let mut open = Vec::new();
        for row in rows {
            let (id, payment) = row.map_err(self.err())?;
            let payment = match payment {
                None => None,
                Some(bytes) => Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    TokenError::Corrupt(format!("spend {id}: payment id is not 32 bytes"))
                })?),
            };
            open.push((id, payment));
        }
        Ok(open)
    }
}

fn spent_in(conn: &Connection, revocation_id: &[u8], now: u64) -> rusqlite::Result<Spent> {
    let since = |p: Period| to_i64(now.saturating_sub(p.window_secs().unwrap_or(now)));
    conn.query_row(
        "SELECT
            COALESCE(SUM(CASE WHEN s.created_at > ?2 THEN s.cost_msat END), 0),
            COALESCE(SUM(CASE WHEN s.created_at > ?3 THEN s.cost_msat END), 0),
            COALESCE(SUM(CASE WHEN s.created_at > ?4 THEN s.cost_msat END), 0),
            COALESCE(SUM(s.cost_msat), 0)
         FROM spend_lineage l JOIN spends s ON s.id = l.spend_id
         WHERE l.revocation_id = ?1 AND s.state != 'released'",
        params![
            revocation_id,
            since(Period::Day),
            since(Period::Week),
            since(Period::Month)
        ],
        |r| {
            Ok(Spent {
                day: r.get(0)?,
                week: r.get(1)?,
                month: r.get(2)?,
                total: r.get(3)?,
            })
        },
    )
}

/// SQLite integers are i64; the values here (seconds, msat) are far below its limit, and a
/// value that is not saturates rather than wraps.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Creates `dir` with mode 0700 (and its parents) if missing.
fn create_private_dir(dir: &Path) -> Result<(), TokenError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(TokenError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "micronode-token-store-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ))
    }

    #[test]
    fn ledger_sums_per_block_and_period_and_survives_reopening() {
        let dir = temp_dir("ledger");
        let mut store = Store::create(&dir).expect("create");
        assert!(matches!(
            Store::create(&dir),
            Err(TokenError::AlreadyInitialised(_))
        ));
        let (root, parent, child) = (vec![0u8; 64], vec![1u8; 64], vec![2u8; 64]);
        let now = 1_000_000_000;
        // Through the child: counts for root, parent and child.
        let a = store
            .reserve(
                &[root.clone(), parent.clone(), child.clone()],
                6000,
                None,
                now,
                |_| Ok(()),
            )
            .expect("reserve");
        // Through the parent only, two days ago.
        store
            .reserve(
                &[root.clone(), parent.clone()],
                1000,
                None,
                now - 2 * 86_400,
                |_| Ok(()),
            )
            .expect("reserve");
        let spent = store.spent(&parent, now).expect("spent");
        assert_eq!((spent.day, spent.week, spent.total), (6000, 7000, 7000));
        assert_eq!(store.spent(&child, now).expect("spent").total, 6000);
        // A check that refuses records nothing.
        let refused = store.reserve(&[root.clone(), child.clone()], 1, None, now, |sums| {
            assert_eq!(sums[1].day, 6000);
            Err(TokenError::BudgetExceeded("no".into()))
        });
        assert!(matches!(refused, Err(TokenError::BudgetExceeded(_))));
        assert_eq!(store.spent(&root, now).expect("spent").total, 7000);
        // Settling changes the cost; releasing removes it.
        store.settle(a, Some(5000), now).expect("settle");
        assert_eq!(store.spent(&child, now).expect("spent").day, 5000);
        let b = store
            .reserve(
                std::slice::from_ref(&child),
                100,
                Some([9; 32]),
                now,
                |_| Ok(()),
            )
            .expect("reserve");
        assert_eq!(
            store.open_spends().expect("open"),
            vec![(2, None), (b, Some([9; 32]))]
        );
        store.release(b, now).expect("release");
        store.release(b, now).expect("release twice");
        drop(store);
        let store = Store::open(&dir).expect("reopen");
        assert_eq!(store.spent(&child, now).expect("spent").total, 5000);
        assert_eq!(store.spent(&parent, now).expect("spent").week, 6000);
        assert_eq!(store.open_spends().expect("open"), vec![(2, None)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn revocations_tokens_and_meta_persist() {
        let dir = temp_dir("meta");
        let store = Store::create(&dir).expect("create");
        store.set_meta(META_TENANT, "02ab").expect("meta");
        store.revoke(&[7u8; 64], 1).expect("revoke");
        store.revoke(&[7u8; 64], 2).expect("revoke again");
        let row = TokenRow {
            id: "aa".into(),
            revocation_ids: vec![vec![1; 64], vec![2; 64]],
            label: "app".into(),
            blocks: vec!["right(\"admin\");".into(), "check if x;".into()],
            registered_at: 5,
        };
        store.register(&row).expect("register");
        store
            .register(&TokenRow {
                label: "renamed".into(),
                ..row.clone()
            })
            .expect("register again");
        drop(store);
        let store = Store::open(&dir).expect("open");
        assert_eq!(
            store.meta(META_TENANT).expect("meta").as_deref(),
            Some("02ab")
        );
        assert_eq!(store.meta("nope").expect("meta"), None);
        assert_eq!(store.revoked().expect("revoked").len(), 1);
        let tokens = store.tokens().expect("tokens");
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].label, "renamed");
        assert_eq!(tokens[0].revocation_ids, row.revocation_ids);
        assert_eq!(tokens[0].blocks, row.blocks);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(STORE_FILE)), 0o600);
        }
        assert!(matches!(
            Store::open(&dir.join("missing")),
            Err(TokenError::NotInitialised(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
