//! The NIP-47 methods, over a [`WalletBackend`].
//!
//! Payments reserve their amount plus a fee allowance from the connection's budget **before**
//! the wallet is asked to pay; the reservation is settled at the real cost or released if the
//! payment fails. See [`crate::budget`].

use bitcoin::hashes::Hash;
use micronode_node::InvoiceDescription;
use micronode_signer_protocol::PaymentAuthorization;
use std::sync::Arc;

use lightning_invoice::Bolt11Invoice;
use nostr_sdk::nips::nip47::{
    ListTransactionsRequest, LookupInvoiceRequest, MakeInvoiceRequest, PayInvoiceRequest,
    PayKeysendRequest, TransactionType,
};
use serde_json::{json, Value};

use crate::backend::{
    BackendError, BackendErrorKind, Direction, Transaction, TransactionQuery, TxState,
    WalletBackend,
};
use crate::connections::Connection;
use crate::error::{ErrorCode, Nip47Error, NwcError};
use crate::protocol::{self, Method, RawRequest};
use crate::service::{db, Inner};
use crate::util::now_secs;

/// The longest invoice accepted (BOLT11 invoices with many route hints stay well below).
const MAX_INVOICE_CHARS: usize = 7_089;

type MethodResult = Result<Value, Nip47Error>;

fn internal(e: NwcError) -> Nip47Error {
    Nip47Error::new(ErrorCode::Internal, e.to_string())
}

/// The NIP-47 code for a wallet error; `paying` maps invalid input to `PAYMENT_FAILED`
/// (the request itself was checked already, so the wallet refused the payment).
fn backend_error(e: BackendError, paying: bool) -> Nip47Error {
    let code = match e.kind {
        BackendErrorKind::InvalidInput if paying => ErrorCode::PaymentFailed,
        BackendErrorKind::InvalidInput => ErrorCode::Other,
        BackendErrorKind::InsufficientBalance => ErrorCode::InsufficientBalance,
        BackendErrorKind::PaymentFailed
        | BackendErrorKind::Duplicate
        | BackendErrorKind::Timeout => ErrorCode::PaymentFailed,
        BackendErrorKind::NotFound => ErrorCode::NotFound,
        BackendErrorKind::Unavailable | BackendErrorKind::Internal => ErrorCode::Internal,
        BackendErrorKind::Unauthorized => ErrorCode::Unauthorized,
        BackendErrorKind::QuotaExceeded => ErrorCode::QuotaExceeded,
    };
    Nip47Error::new(code, e.message)
}

/// Runs an allowed, supported method.
pub(crate) async fn dispatch<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    connection: &Connection,
    request_id: &str,
    method: Method,
    raw: &RawRequest,
    authorization: PaymentAuthorization,
) -> MethodResult {
    match method {
        Method::GetInfo => get_info(inner, connection).await,
        Method::GetBalance => {
            let balance = inner
                .backend
                .get_balance()
                .await
                .map_err(|e| backend_error(e, false))?;
            Ok(json!({ "balance": balance }))
        }
        Method::MakeInvoice => make_invoice(inner, protocol::params(raw)?).await,
        Method::LookupInvoice => lookup_invoice(inner, protocol::params(raw)?).await,
        Method::ListTransactions => list_transactions(inner, protocol::params(raw)?).await,
        Method::PayInvoice => {
            let params = protocol::params(raw)?;
            pay_invoice(inner, connection, request_id, params, authorization).await
        }
        Method::PayKeysend => {
            let params = protocol::params(raw)?;
            pay_keysend(inner, connection, request_id, params, authorization).await
        }
        other => Err(Nip47Error::new(
            ErrorCode::NotImplemented,
            format!("{other} is not implemented"),
        )),
    }
}

async fn get_info<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    connection: &Connection,
) -> MethodResult {
    let info = inner
        .backend
        .get_info()
        .await
        .map_err(|e| backend_error(e, false))?;
    let methods: Vec<&str> = connection
        .allowed_methods()
        .iter()
        .map(|m| m.as_str())
        .collect();
    let mut result = json!({
        "alias": info.alias,
        "pubkey": info.pubkey,
        "network": info.network,
        "block_height": info.block_height,
        "block_hash": info.block_hash,
        "methods": methods,
    });
    if connection.notifications {
        result["notifications"] = json!(["payment_received", "payment_sent"]);
    }
    Ok(result)
}

async fn make_invoice<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    req: MakeInvoiceRequest,
) -> MethodResult {
    let expiry = match req.expiry {
        None => inner.config.default_invoice_expiry_secs,
        Some(0) => return Err(Nip47Error::new(ErrorCode::Other, "expiry must be positive")),
        Some(e) => u32::try_from(e).unwrap_or(u32::MAX),
    };
    let amount = (req.amount > 0).then_some(req.amount);
    let description = invoice_description(req.description, req.description_hash)?;
    let tx = inner
        .backend
        .make_invoice(amount, description, expiry)
        .await
        .map_err(|e| backend_error(e, false))?;
    Ok(protocol::transaction_json(&tx))
}

/// NIP-47's `description_hash` (hex SHA-256 of a description kept elsewhere) when given and
/// not empty, else the description text. The invoice commits to one of them: with a hash, the
/// text is for the wallet's own records only and must then be empty or hash to it.
fn invoice_description(
    text: Option<String>,
    hash: Option<String>,
) -> Result<InvoiceDescription, Nip47Error> {
    let text = text.unwrap_or_default();
    match hash.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
        None => Ok(InvoiceDescription::Text(text)),
        Some(hash) => {
            let hash = parse_hash(hash).map_err(|_| {
                Nip47Error::new(ErrorCode::Other, "description_hash must be 32 bytes of hex")
            })?;
            let hashes_to = bitcoin::hashes::sha256::Hash::hash(text.as_bytes()).to_byte_array();
            if !text.is_empty() && hashes_to != hash {
                return Err(Nip47Error::new(
                    ErrorCode::Other,
                    "the description does not hash to description_hash",
                ));
            }
            Ok(InvoiceDescription::Hash(hash))
        }
    }
}

fn parse_hash(s: &str) -> Result<[u8; 32], Nip47Error> {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| Nip47Error::new(ErrorCode::Other, "payment_hash must be 32 bytes of hex"))
}

fn parse_invoice(s: &str) -> Result<Bolt11Invoice, Nip47Error> {
    if s.len() > MAX_INVOICE_CHARS {
        return Err(Nip47Error::new(
            ErrorCode::Other,
            "invalid invoice: too long",
        ));
    }
    s.trim()
        .parse::<Bolt11Invoice>()
        .map_err(|e| Nip47Error::new(ErrorCode::Other, format!("invalid invoice: {e}")))
}

async fn lookup_invoice<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    req: LookupInvoiceRequest,
) -> MethodResult {
    let hash = match (&req.payment_hash, &req.invoice) {
        (Some(h), _) => parse_hash(h)?,
        (None, Some(i)) => *parse_invoice(i)?.payment_hash().as_ref(),
        (None, None) => {
            return Err(Nip47Error::new(
                ErrorCode::Other,
                "give payment_hash or invoice",
            ))
        }
    };
    match inner
        .backend
        .lookup_payment(hash)
        .await
        .map_err(|e| backend_error(e, false))?
    {
        Some(tx) => Ok(protocol::transaction_json(&tx)),
        None => Err(Nip47Error::new(
            ErrorCode::NotFound,
            "no such invoice or payment",
        )),
    }
}

async fn list_transactions<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    req: ListTransactionsRequest,
) -> MethodResult {
    let limit = req
        .limit
        .unwrap_or(inner.config.default_list_limit)
        .min(inner.config.max_list_limit);
    let query = TransactionQuery {
        from: req.from.map(|t| t.as_secs()),
        until: req.until.map(|t| t.as_secs()),
        limit: Some(limit),
        offset: req.offset,
        unpaid: req.unpaid.unwrap_or(false),
        direction: req.transaction_type.map(|t| match t {
            TransactionType::Incoming => Direction::Incoming,
            TransactionType::Outgoing => Direction::Outgoing,
        }),
    };
    let txs = inner
        .backend
        .list_transactions(&query)
        .await
        .map_err(|e| backend_error(e, false))?;
    // Keep the response under the size NIP-44 can carry: fewer items, never an error. Apps
    // page with `offset` until a page comes back empty.
    let budget = inner.config.max_response_bytes.saturating_sub(128);
    let mut used = 0;
    let mut items = Vec::with_capacity(txs.len());
    for tx in &txs {
        let item = protocol::transaction_json(tx);
        let len = item.to_string().len() + 1;
        if used + len > budget {
            break;
        }
        used += len;
        items.push(item);
    }
    Ok(json!({ "transactions": items }))
}

/// Outcome of waiting for a started payment, as a response, with the budget settled or
/// released accordingly.
async fn finish_payment<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    spend_id: i64,
    payment_hash: [u8; 32],
) -> MethodResult {
    let waited = inner
        .backend
        .wait_payment(payment_hash, inner.config.payment_timeout)
        .await;
    let now = now_secs();
    match waited {
        Ok(tx) if tx.state == TxState::Settled => {
            let cost = tx.amount_msat.saturating_add(tx.fees_paid_msat);
            db(&inner.store, move |s| s.settle_spend(spend_id, cost, now))
                .await
                .map_err(internal)?;
            Ok(json!({
                "preimage": tx.preimage.unwrap_or_default(),
                "fees_paid": tx.fees_paid_msat,
            }))
        }
        Ok(tx) if tx.state == TxState::Pending => Err(Nip47Error::new(
            ErrorCode::PaymentFailed,
            format!(
                "payment {} is still pending; check it with lookup_invoice",
                hex::encode(payment_hash)
            ),
        )),
        Ok(tx) => {
            db(&inner.store, move |s| s.release_spend(spend_id, now))
                .await
                .map_err(internal)?;
            Err(Nip47Error::new(
                ErrorCode::PaymentFailed,
                format!("payment {}: {:?}", hex::encode(payment_hash), tx.state),
            ))
        }
        // Still pending: the reservation stays until the wallet reports the outcome.
        Err(e) if e.kind == BackendErrorKind::Timeout => Err(Nip47Error::new(
            ErrorCode::PaymentFailed,
            format!(
                "payment {} is still pending after {} s; check it with lookup_invoice",
                hex::encode(payment_hash),
                inner.config.payment_timeout.as_secs()
            ),
        )),
        Err(e) => Err(backend_error(e, true)),
    }
}

/// An already existing outgoing payment of this hash, as the answer to paying it again.
async fn existing_payment<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    hash: [u8; 32],
) -> Result<Option<MethodResult>, Nip47Error> {
    let existing = inner
        .backend
        .lookup_payment(hash)
        .await
        .map_err(|e| backend_error(e, true))?;
    Ok(match existing {
        Some(Transaction {
            direction: Direction::Outgoing,
            state: TxState::Settled,
            preimage,
            fees_paid_msat,
            ..
        }) => Some(Ok(json!({
            "preimage": preimage.unwrap_or_default(),
            "fees_paid": fees_paid_msat,
        }))),
        Some(Transaction {
            direction: Direction::Outgoing,
            state: TxState::Pending,
            ..
        }) => Some(Err(Nip47Error::new(
            ErrorCode::PaymentFailed,
            "this invoice is already being paid",
        ))),
        _ => None,
    })
}

async fn reserve<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    connection: &Connection,
    request_id: &str,
    hash: Option<[u8; 32]>,
    amount_msat: u64,
) -> Result<i64, Nip47Error> {
    let total = amount_msat.saturating_add(inner.config.fee_reserve_msat(amount_msat));
    let (cid, rid, now) = (connection.id, request_id.to_string(), now_secs());
    let reserved = db(&inner.store, move |s| {
        s.reserve(cid, &rid, hash, total, now)
    })
    .await
    .map_err(internal)?;
    reserved.map_err(|e| {
        Nip47Error::new(
            ErrorCode::QuotaExceeded,
            format!(
                "budget exceeded: {} of {} sat used this period; this payment needs up to {} sat with fees",
                e.used_msat / 1000,
                e.budget_msat / 1000,
                e.requested_msat.div_ceil(1000)
            ),
        )
    })
}

async fn release<B: WalletBackend>(inner: &Arc<Inner<B>>, spend_id: i64) -> Result<(), Nip47Error> {
    let now = now_secs();
    db(&inner.store, move |s| s.release_spend(spend_id, now))
        .await
        .map_err(internal)
}

async fn pay_invoice<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    connection: &Connection,
    request_id: &str,
    req: PayInvoiceRequest,
    authorization: PaymentAuthorization,
) -> MethodResult {
    let invoice = parse_invoice(&req.invoice)?;
    let amount = match (invoice.amount_milli_satoshis(), req.amount) {
        (Some(a), None) => a,
        (Some(a), Some(b)) if b >= a => b,
        (Some(a), Some(b)) => {
            return Err(Nip47Error::new(
                ErrorCode::Other,
                format!("amount {b} msat is below the invoice's {a} msat"),
            ))
        }
        (None, Some(b)) if b > 0 => b,
        (None, _) => {
            return Err(Nip47Error::new(
                ErrorCode::Other,
                "the invoice has no amount; give one",
            ))
        }
    };
    let hash: [u8; 32] = *invoice.payment_hash().as_ref();
    if let Some(answer) = existing_payment(inner, hash).await? {
        return answer;
    }
    let spend = reserve(inner, connection, request_id, Some(hash), amount).await?;
    let fee_limit = inner.config.fee_reserve_msat(amount);
    if let Err(e) = inner
        .backend
        .pay_invoice(
            &req.invoice,
            req.amount,
            Some(fee_limit),
            Some(authorization),
        )
        .await
    {
        release(inner, spend).await?;
        if e.kind == BackendErrorKind::Duplicate {
            if let Some(answer) = existing_payment(inner, hash).await? {
                return answer;
            }
        }
        return Err(backend_error(e, true));
    }
    finish_payment(inner, spend, hash).await
}

async fn pay_keysend<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    connection: &Connection,
    request_id: &str,
    req: PayKeysendRequest,
    authorization: PaymentAuthorization,
) -> MethodResult {
    if !req.tlv_records.is_empty() {
        return Err(Nip47Error::new(
            ErrorCode::NotImplemented,
            "keysend with TLV records is not supported by this node yet",
        ));
    }
    let preimage = req
        .preimage
        .as_deref()
        .map(|p| {
            parse_hash(p)
                .map_err(|_| Nip47Error::new(ErrorCode::Other, "preimage must be 32 bytes of hex"))
        })
        .transpose()?;
    if req.amount == 0 {
        return Err(Nip47Error::new(ErrorCode::Other, "amount must be positive"));
    }
    if req.pubkey.len() != 66 || hex::decode(&req.pubkey).is_err() {
        return Err(Nip47Error::new(
            ErrorCode::Other,
            "pubkey must be a 33-byte hex node id",
        ));
    }
    let spend = reserve(inner, connection, request_id, None, req.amount).await?;
    let fee_limit = inner.config.fee_reserve_msat(req.amount);
    let hash = match inner
        .backend
        .pay_keysend(
            &req.pubkey,
            req.amount,
            Some(fee_limit),
            preimage,
            Some(authorization),
        )
        .await
    {
        Ok(h) => h,
        Err(e) => {
            release(inner, spend).await?;
            return Err(backend_error(e, true));
        }
    };
    db(&inner.store, move |s| s.set_spend_hash(spend, hash))
        .await
        .map_err(internal)?;
    finish_payment(inner, spend, hash).await
}
