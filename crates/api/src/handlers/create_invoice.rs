//! `CreateInvoice`: a BOLT11 invoice to receive a payment.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{CreateInvoiceRequest, CreateInvoiceResponse};

use super::blocking;
use crate::adapter;
use crate::error::ApiError;

/// Handles `CreateInvoice`. The node records the pending payment (a store write), so it runs
/// blocking.
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
    let created = blocking(node, move |n| {
        n.create_invoice(amount_msat, &description, expiry_secs)
    })
    .await?;
    Ok(CreateInvoiceResponse {
        invoice: created.invoice,
        payment_hash: created.payment_hash,
    })
}
