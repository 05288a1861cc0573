//! The double-entry ledger: every movement of money is one transaction of entries summing to
//! zero; a balance is always the sum of an account's entries, never a stored number.

use rusqlite::{params, Connection, Transaction};
use serde::Serialize;

use crate::error::HubError;
use crate::store::{now, SystemAccounts};

/// Records one movement: `entries` (account, signed msat), which must sum to zero.
pub fn post(
    tx: &Transaction<'_>,
    kind: &str,
    reference: &str,
    entries: &[(i64, i64)],
) -> Result<(), HubError> {
    let sum: i128 = entries.iter().map(|(_, a)| i128::from(*a)).sum();
    if sum != 0 {
        return Err(HubError::Unbalanced(sum));
    }
    tx.execute(
        "INSERT INTO transactions (kind, reference, created_at) VALUES (?1, ?2, ?3)",
        params![kind, reference, now()],
    )?;
    let tx_id = tx.last_insert_rowid();
    for (account, amount) in entries {
        if *amount != 0 {
            tx.execute(
                "INSERT INTO entries (tx_id, account_id, amount_msat) VALUES (?1, ?2, ?3)",
                params![tx_id, account, amount],
            )?;
        }
    }
    Ok(())
}

/// Moves `amount_msat` from `from` to `to`.
pub fn transfer(
    tx: &Transaction<'_>,
    kind: &str,
    reference: &str,
    from: i64,
    to: i64,
    amount_msat: i64,
) -> Result<(), HubError> {
    post(
        tx,
        kind,
        reference,
        &[(from, -amount_msat), (to, amount_msat)],
    )
}

/// An account's balance (msat): the sum of its entries.
pub fn balance(conn: &Connection, account: i64) -> Result<i64, HubError> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(amount_msat), 0) FROM entries WHERE account_id = ?1",
        [account],
        |r| r.get(0),
    )?)
}

/// The sum of all entries (msat): zero when the books balance.
pub fn ledger_sum(conn: &Connection) -> Result<i64, HubError> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(amount_msat), 0) FROM entries",
        [],
        |r| r.get(0),
    )?)
}

/// The ledger's invariants, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerReport {
    /// The sum of all entries (must be 0).
    pub total_msat: i64,
    /// Transactions whose own entries do not sum to zero (must be empty).
    pub unbalanced_transactions: Vec<i64>,
    /// User accounts (login, balance msat) below zero (must be empty).
    pub negative_accounts: Vec<(String, i64)>,
    /// The `outgoing` account's balance.
    pub outgoing_msat: i64,
    /// The holds of pending external payments (amount + reserve): must equal `outgoing_msat`.
    pub pending_holds_msat: i64,
    /// What the users hold in total (msat).
    pub users_total_msat: i64,
    /// The `lightning` account's balance (minus what came in net from the outside).
    pub lightning_msat: i64,
    /// The `tenant` account's balance (what users paid to the tenant's own address).
    pub tenant_msat: i64,
}

impl LedgerReport {
    /// Whether every invariant holds.
    pub fn is_ok(&self) -> bool {
        self.total_msat == 0
            && self.unbalanced_transactions.is_empty()
            && self.negative_accounts.is_empty()
            && self.outgoing_msat == self.pending_holds_msat
    }
}

/// Checks the ledger's invariants.
pub fn check(conn: &Connection, system: SystemAccounts) -> Result<LedgerReport, HubError> {
    let total_msat = ledger_sum(conn)?;
    let mut stmt = conn.prepare(
        "SELECT tx_id FROM entries GROUP BY tx_id HAVING SUM(amount_msat) != 0 LIMIT 100",
    )?;
    let unbalanced_transactions = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT a.name, SUM(e.amount_msat) AS b FROM accounts a JOIN entries e ON e.account_id = a.id \
         WHERE a.kind = 'user' GROUP BY a.id HAVING b < 0 LIMIT 100",
    )?;
    let negative_accounts = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<(String, i64)>, _>>()?;
    let pending_holds_msat: i64 = conn.query_row(
        "SELECT COALESCE(SUM(amount_msat + reserve_msat), 0) FROM payments \
         WHERE status = 'pending' AND kind != 'internal'",
        [],
        |r| r.get(0),
    )?;
    let users_total_msat: i64 = conn.query_row(
        "SELECT COALESCE(SUM(e.amount_msat), 0) FROM entries e JOIN accounts a ON a.id = e.account_id \
         WHERE a.kind = 'user'",
        [],
        |r| r.get(0),
    )?;
    Ok(LedgerReport {
        total_msat,
        unbalanced_transactions,
        negative_accounts,
        outgoing_msat: balance(conn, system.outgoing)?,
        pending_holds_msat,
        users_total_msat,
        lightning_msat: balance(conn, system.lightning)?,
        tenant_msat: balance(conn, system.tenant)?,
    })
}
