//! `CreateInvoice`: a BOLT11 invoice to receive a payment.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
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
    let description = req.description;
    let (created, _) = node
        .create_receivable_invoice(amount_msat, &description, expiry_secs)
        .await?;
    Ok(CreateInvoiceResponse {
        invoice: created.invoice,
        payment_hash: created.payment_hash,
    })
}
