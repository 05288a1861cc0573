//! Invoices the hub made for its users (and for the tenant's own Lightning Address), and
//! crediting them once when paid.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use crate::error::HubError;
use crate::ledger;
use crate::store::{now, SystemAccounts};

/// An invoice the hub made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRecord {
    /// Its row id (LndHub's `add_index`).
    pub id: i64,
    /// The payment hash (hex).
    pub payment_hash: String,
    /// The account it credits; `None` for the tenant's own.
    pub account_id: Option<i64>,
    /// The BOLT11 text.
    pub bolt11: String,
    /// Its amount (msat), if it has one.
    pub amount_msat: Option<i64>,
    /// Its description (empty for a description-hash invoice).
    pub memo: String,
    /// The description hash (hex), if any.
    pub description_hash: Option<String>,
    /// When made (Unix seconds).
    pub created_at: i64,
    /// When it stops being payable (Unix seconds).
    pub expires_at: i64,
    /// When paid (Unix seconds), if paid.
    pub paid_at: Option<i64>,
    /// What was received (msat), if paid.
    pub paid_msat: Option<i64>,
}

const COLUMNS: &str = "id, payment_hash, account_id, bolt11, amount_msat, memo, description_hash, \
                       created_at, expires_at, paid_at, paid_msat";

fn from_row(r: &Row<'_>) -> rusqlite::Result<InvoiceRecord> {
    Ok(InvoiceRecord {
        id: r.get(0)?,
        payment_hash: r.get(1)?,
        account_id: r.get(2)?,
        bolt11: r.get(3)?,
        amount_msat: r.get(4)?,
        memo: r.get(5)?,
        description_hash: r.get(6)?,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        paid_at: r.get(9)?,
        paid_msat: r.get(10)?,
    })
}

/// What to record about a new invoice.
#[derive(Debug, Clone)]
pub struct NewInvoice {
    /// The payment hash (hex).
    pub payment_hash: String,
    /// The account it credits (`None`: the tenant's own).
    pub account_id: Option<i64>,
    /// The BOLT11 text.
    pub bolt11: String,
    /// Its amount (msat).
    pub amount_msat: Option<u64>,
    /// Its description.
    pub memo: String,
    /// Its description hash (hex), if any.
    pub description_hash: Option<String>,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
}

/// Records a new invoice; its add index.
pub fn record(conn: &Connection, new: &NewInvoice) -> Result<i64, HubError> {
    conn.execute(
        "INSERT INTO invoices (payment_hash, account_id, bolt11, amount_msat, memo, description_hash, \
         created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            new.payment_hash,
            new.account_id,
            new.bolt11,
            new.amount_msat.map(|a| a as i64),
            new.memo,
            new.description_hash,
            now(),
            new.expires_at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The invoice with this payment hash, if the hub made it.
pub fn by_hash(conn: &Connection, payment_hash: &str) -> Result<Option<InvoiceRecord>, HubError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM invoices WHERE payment_hash = ?1"),
            [payment_hash],
            from_row,
        )
        .optional()?)
}

/// Credits an invoice paid over Lightning with `received_msat`, once: `true` if this call
/// credited it, `false` if it was already paid (or is not the hub's).
pub fn credit_external(
    tx: &Transaction<'_>,
    system: SystemAccounts,
    payment_hash: &str,
    received_msat: u64,
) -> Result<bool, HubError> {
    let Some(invoice) = by_hash(tx, payment_hash)? else {
        return Ok(false);
    };
    if invoice.paid_at.is_some() {
        // Already credited (an event seen twice), or paid internally and then also over
        // Lightning: the second payment stays with the node, credited to nobody.
        tracing::debug!(payment_hash, "invoice already paid; not credited again");
        return Ok(false);
    }
    let received = i64::try_from(received_msat).unwrap_or(i64::MAX);
    let changed = tx.execute(
        "UPDATE invoices SET paid_at = ?1, paid_msat = ?2 WHERE id = ?3 AND paid_at IS NULL",
        params![now(), received, invoice.id],
    )?;
    if changed != 1 {
        return Ok(false);
    }
    if let Some(account) = invoice.account_id {
        ledger::transfer(
            tx,
            "receive",
            payment_hash,
            system.lightning,
            account,
            received,
        )?;
    }
    Ok(true)
}

/// Marks an invoice paid by another account of this hub; `false` if it was already paid.
pub fn mark_paid_internally(
    tx: &Transaction<'_>,
    invoice_id: i64,
    amount_msat: i64,
) -> Result<bool, HubError> {
    Ok(tx.execute(
        "UPDATE invoices SET paid_at = ?1, paid_msat = ?2, paid_internally = 1 \
         WHERE id = ?3 AND paid_at IS NULL",
        params![now(), amount_msat, invoice_id],
    )? == 1)
}

/// An account's invoices, newest first, at most `limit`.
pub fn for_account(
    conn: &Connection,
    account: i64,
    limit: u32,
) -> Result<Vec<InvoiceRecord>, HubError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM invoices WHERE account_id = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![account, limit], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Unpaid invoices still worth asking the node about (not closed), oldest first.
pub fn unreconciled(conn: &Connection) -> Result<Vec<InvoiceRecord>, HubError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM invoices WHERE paid_at IS NULL AND closed = 0 ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Marks an invoice the node says expired unpaid: never asked about again.
pub fn close(conn: &Connection, invoice_id: i64) -> Result<(), HubError> {
    conn.execute(
        "UPDATE invoices SET closed = 1 WHERE id = ?1 AND paid_at IS NULL",
        [invoice_id],
    )?;
    Ok(())
}
