//! Outgoing payments in the ledger: internal payments (at once, no Lightning), and the hold,
//! settle and refund of external ones. Every outcome is applied at most once: the status moves
//! from `pending` exactly once, in the same transaction as its entries.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use crate::error::{HubError, LndHubCode, Refusal};
use crate::invoices::InvoiceRecord;
use crate::ledger;
use crate::store::{now, SystemAccounts};

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Held, outcome unknown.
    Pending,
    /// Paid.
    Succeeded,
    /// Failed and refunded.
    Failed,
}

impl PaymentStatus {
    fn parse(s: &str) -> PaymentStatus {
        match s {
            "succeeded" => PaymentStatus::Succeeded,
            "failed" => PaymentStatus::Failed,
            _ => PaymentStatus::Pending,
        }
    }
}

/// An outgoing payment of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    /// Its row id.
    pub id: i64,
    /// The paying account.
    pub account_id: i64,
    /// `bolt11`, `keysend` or `internal`.
    pub kind: String,
    /// The payment hash (hex), when known.
    pub payment_hash: Option<String>,
    /// The node's payment id, once known.
    pub node_id: Option<String>,
    /// The invoice paid, if any.
    pub bolt11: Option<String>,
    /// The keysend destination, if any.
    pub destination: Option<String>,
    /// The amount the payee gets (msat).
    pub amount_msat: i64,
    /// The fee reserve held (msat).
    pub reserve_msat: i64,
    /// The routing fee paid (msat), once settled.
    pub fee_msat: Option<i64>,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The preimage (hex), once known.
    pub preimage: Option<String>,
    /// The invoice's description.
    pub memo: String,
    /// Why it failed.
    pub failure: Option<String>,
    /// When made (Unix seconds).
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, account_id, kind, payment_hash, node_id, bolt11, destination, amount_msat, \
                       reserve_msat, fee_msat, status, preimage, memo, failure, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<PaymentRecord> {
    Ok(PaymentRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        kind: r.get(2)?,
        payment_hash: r.get(3)?,
        node_id: r.get(4)?,
        bolt11: r.get(5)?,
        destination: r.get(6)?,
        amount_msat: r.get(7)?,
        reserve_msat: r.get(8)?,
        fee_msat: r.get(9)?,
        status: PaymentStatus::parse(&r.get::<_, String>(10)?),
        preimage: r.get(11)?,
        memo: r.get(12)?,
        failure: r.get(13)?,
        created_at: r.get(14)?,
    })
}

/// One payment by row id.
pub fn get(conn: &Connection, id: i64) -> Result<Option<PaymentRecord>, HubError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM payments WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

/// An account's payments (pending and succeeded; failed ones were refunded), newest first.
pub fn for_account(
    conn: &Connection,
    account: i64,
    limit: u32,
    offset: u32,
) -> Result<Vec<PaymentRecord>, HubError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM payments WHERE account_id = ?1 AND status != 'failed' \
         ORDER BY id DESC LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = stmt
        .query_map(params![account, limit, offset], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Every pending external payment, oldest first.
pub fn pending(conn: &Connection) -> Result<Vec<PaymentRecord>, HubError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM payments WHERE status = 'pending' AND kind != 'internal' ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn to_i64(msat: u64) -> Result<i64, HubError> {
    i64::try_from(msat).map_err(|_| Refusal::bad_arguments("amount too large").into())
}

/// Pays `invoice` (another account's, or the tenant's own) from `payer` at once, without
/// Lightning. Refuses one's own invoice and invoices paid or expired.
pub fn pay_internal(
    tx: &Transaction<'_>,
    system: SystemAccounts,
    payer: i64,
    invoice: &InvoiceRecord,
    amount_msat: u64,
) -> Result<PaymentRecord, HubError> {
    if invoice.account_id == Some(payer) {
        return Err(Refusal::bad_arguments("you cannot pay your own invoice").into());
    }
    if invoice.paid_at.is_some() {
        return Err(Refusal::invalid_invoice("this invoice is already paid").into());
    }
    if invoice.expires_at <= now() {
        return Err(Refusal::invalid_invoice("this invoice has expired").into());
    }
    let amount = to_i64(amount_msat)?;
    if ledger::balance(tx, payer)? < amount {
        return Err(Refusal::not_enough_balance().into());
    }
    if !crate::invoices::mark_paid_internally(tx, invoice.id, amount)? {
        return Err(Refusal::invalid_invoice("this invoice is already paid").into());
    }
    let payee = invoice.account_id.unwrap_or(system.tenant);
    ledger::transfer(tx, "internal", &invoice.payment_hash, payer, payee, amount)?;
    let now = now();
    tx.execute(
        "INSERT INTO payments (account_id, kind, payment_hash, bolt11, amount_msat, reserve_msat, \
         fee_msat, status, memo, created_at, updated_at) \
         VALUES (?1, 'internal', ?2, ?3, ?4, 0, 0, 'succeeded', ?5, ?6, ?6)",
        params![
            payer,
            invoice.payment_hash,
            invoice.bolt11,
            amount,
            invoice.memo,
            now
        ],
    )?;
    let id = tx.last_insert_rowid();
    get(tx, id)?.ok_or_else(|| HubError::Db(rusqlite::Error::QueryReturnedNoRows))
}

/// What an external payment is.
#[derive(Debug, Clone)]
pub struct ExternalPayment {
    /// `bolt11` or `keysend`.
    pub kind: &'static str,
    /// The payment hash (hex), for an invoice.
    pub payment_hash: Option<String>,
    /// The invoice.
    pub bolt11: Option<String>,
    /// The keysend destination.
    pub destination: Option<String>,
    /// The amount the payee gets (msat).
    pub amount_msat: u64,
    /// The fee reserve (msat).
    pub reserve_msat: u64,
    /// The description.
    pub memo: String,
}

/// Holds amount + reserve of `payer` for an external payment (moved to `outgoing`) and
/// records it pending, if the balance covers it. Refuses an invoice this hub is already
/// paying or has paid.
pub fn hold(
    tx: &Transaction<'_>,
    system: SystemAccounts,
    payer: i64,
    payment: &ExternalPayment,
) -> Result<PaymentRecord, HubError> {
    let amount = to_i64(payment.amount_msat)?;
    let reserve = to_i64(payment.reserve_msat)?;
    let held = amount
        .checked_add(reserve)
        .ok_or_else(|| Refusal::bad_arguments("amount too large"))?;
    if ledger::balance(tx, payer)? < held {
        return Err(Refusal::not_enough_balance().into());
    }
    if let Some(hash) = &payment.payment_hash {
        let live: Option<String> = tx
            .query_row(
                "SELECT status FROM payments WHERE payment_hash = ?1 AND status != 'failed' \
                 AND kind != 'keysend'",
                [hash],
                |r| r.get(0),
            )
            .optional()?;
        match live.as_deref() {
            Some("pending") => {
                return Err(Refusal::new(
                    LndHubCode::PaymentInTransit,
                    "a payment of this invoice is in transit",
                )
                .into())
            }
            Some(_) => return Err(Refusal::invalid_invoice("this invoice is already paid").into()),
            None => {}
        }
    }
    let now = now();
    tx.execute(
        "INSERT INTO payments (account_id, kind, payment_hash, node_id, bolt11, destination, \
         amount_msat, reserve_msat, status, memo, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9, ?9)",
        params![
            payer,
            payment.kind,
            payment.payment_hash,
            payment.bolt11,
            payment.destination,
            amount,
            reserve,
            payment.memo,
            now
        ],
    )?;
    let id = tx.last_insert_rowid();
    ledger::transfer(tx, "hold", &id.to_string(), payer, system.outgoing, held)?;
    get(tx, id)?.ok_or_else(|| HubError::Db(rusqlite::Error::QueryReturnedNoRows))
}

/// Settles a pending payment: amount + `fee_msat` to `lightning`, the rest of the reserve
/// back to the payer. `false` if it was not pending (already resolved).
pub fn settle(
    tx: &Transaction<'_>,
    system: SystemAccounts,
    id: i64,
    fee_msat: u64,
    preimage: Option<&str>,
    payment_hash: Option<&str>,
) -> Result<bool, HubError> {
    let Some(p) = get(tx, id)? else {
        return Ok(false);
    };
    if p.status != PaymentStatus::Pending {
        return Ok(false);
    }
    // The node keeps fees within the reserve (max_fee_msat); should it ever report more, the
    // excess is charged to the payer, who may go below zero only by that excess.
    let fee = to_i64(fee_msat)?;
    let changed = tx.execute(
        "UPDATE payments SET status = 'succeeded', fee_msat = ?1, preimage = ?2, \
         payment_hash = COALESCE(payment_hash, ?3), updated_at = ?4 WHERE id = ?5 AND status = 'pending'",
        params![fee, preimage, payment_hash, now(), id],
    )?;
    if changed != 1 {
        return Ok(false);
    }
    let held = p.amount_msat + p.reserve_msat;
    ledger::post(
        tx,
        "settle",
        &id.to_string(),
        &[
            (system.outgoing, -held),
            (system.lightning, p.amount_msat + fee),
            (p.account_id, p.reserve_msat - fee),
        ],
    )?;
    Ok(true)
}

/// Refunds a pending payment in full. `false` if it was not pending.
pub fn refund(
    tx: &Transaction<'_>,
    system: SystemAccounts,
    id: i64,
    reason: &str,
) -> Result<bool, HubError> {
    let Some(p) = get(tx, id)? else {
        return Ok(false);
    };
    let changed = tx.execute(
        "UPDATE payments SET status = 'failed', failure = ?1, updated_at = ?2 \
         WHERE id = ?3 AND status = 'pending'",
        params![reason, now(), id],
    )?;
    if changed != 1 {
        return Ok(false);
    }
    ledger::transfer(
        tx,
        "refund",
        &id.to_string(),
        system.outgoing,
        p.account_id,
        p.amount_msat + p.reserve_msat,
    )?;
    Ok(true)
}

/// Node payment ids already claimed by this hub's keysend payments.
pub fn claimed_node_ids(conn: &Connection) -> Result<Vec<String>, HubError> {
    let mut stmt = conn
        .prepare("SELECT node_id FROM payments WHERE kind = 'keysend' AND node_id IS NOT NULL")?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(rows)
}
