//! `PayInvoice`: pay a BOLT11 invoice.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{PayInvoiceRequest, Payment};

use super::{blocking, outbound_record, wait_outcome, ShutdownSignal};
use crate::adapter;
use crate::error::ApiError;

/// Handles `PayInvoice`. Starting the payment writes its record, so it runs blocking; with
/// `wait`, the call then waits for the outcome (or the timeout, or the server's shutdown).
pub async fn handle_pay_invoice<K: KeysBackend>(
    node: &Arc<Node<K>>,
    stop: ShutdownSignal,
    req: PayInvoiceRequest,
) -> Result<Payment, ApiError> {
    let invoice = adapter::required("invoice", &req.invoice)?.to_string();
    let amount_msat = req
        .amount_msat
        .map(|a| adapter::msat("amount_msat", a, false))
        .transpose()?;
    let max_fee_msat = req
        .max_fee_msat
        .map(|a| adapter::msat("max_fee_msat", a, true))
        .transpose()?;
    let timeout = adapter::payment_timeout(req.timeout_secs)?;
    let id = blocking(node, move |n| {
        n.pay_invoice(&invoice, amount_msat, max_fee_msat)
    })
    .await?;
    let record = if req.wait {
        wait_outcome(node, &id, timeout, stop).await?
    } else {
        outbound_record(node, &id)?
    };
    Ok(adapter::payment(record))
}
