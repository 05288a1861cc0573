//! `CreateInvoice`: a BOLT11 invoice to receive a payment.

use std::sync::Arc;

use micronode_node::{InvoiceDescription, KeysBackend, Node};
use micronode_proto::v1::{CreateInvoiceRequest, CreateInvoiceResponse};

use crate::adapter;
use crate::error::ApiError;

/// Handles `CreateInvoice`. When the node's channels cannot receive the amount and it has an
/// LSP, the invoice pays through a JIT channel (see `Node::create_receivable_invoice`).
pub async fn handle_create_invoice<K: KeysBackend>(
    node: &Arc<Node<K>>,
    req: CreateInvoiceRequest,
) -> Result<CreateInvoiceResponse, ApiError> {
    let amount_msat = req
        .amount_msat
        .map(|a| adapter::msat("amount_msat", a, false))
        .transpose()?;
    let expiry_secs = adapter::invoice_expiry(req.expiry_secs)?;
    let description = description_of(req.description, req.description_hash)?;
    let (created, _) = node
        .create_receivable_invoice(amount_msat, description, expiry_secs)
        .await?;
    Ok(CreateInvoiceResponse {
        invoice: created.invoice,
        payment_hash: created.payment_hash,
    })
}

/// The invoice's description: the text, or the hash when `description_hash` is given (then the
/// text must be empty: an invoice carries one or the other).
fn description_of(text: String, hash: Option<String>) -> Result<InvoiceDescription, ApiError> {
    let Some(hash) = hash else {
        return Ok(InvoiceDescription::Text(text));
    };
    if !text.is_empty() {
        return Err(ApiError::InvalidRequest(
            "give description or description_hash, not both".into(),
        ));
    }
    Ok(InvoiceDescription::Hash(adapter::id32(
        "description_hash",
        hash.trim(),
    )?))
}
