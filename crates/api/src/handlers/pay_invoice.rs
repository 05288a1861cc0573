//! `PayInvoice`: pay a BOLT11 invoice.

use std::sync::Arc;

use bitcoin::hashes::Hash;
use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{PayInvoiceRequest, Payment};

use super::{blocking, finish_payment, ShutdownSignal};
use crate::adapter;
use crate::auth::Grant;
use crate::budget;
use crate::error::ApiError;
use micronode_signer_protocol::PaymentAuthorization;

/// Handles `PayInvoice`. Under a metered grant (a capability token), the payment's cost (amount
/// plus routing-fee limit) is first reserved against the token's budgets, and nothing is paid
/// if that fails. Starting the payment writes its record, so it runs blocking; with `wait`, the
/// call then waits for the outcome (or the timeout, or the server's shutdown).
pub async fn handle_pay_invoice<K: KeysBackend>(
    node: &Arc<Node<K>>,
    stop: ShutdownSignal,
    grant: &Grant,
    app: Option<PaymentAuthorization>,
    req: PayInvoiceRequest,
) -> Result<Payment, ApiError> {
    let invoice = adapter::required("invoice", &req.invoice)?.to_string();
    let amount_msat = req
        .amount_msat
        .map(|a| adapter::msat("amount_msat", a, false))
        .transpose()?;
    let mut max_fee_msat = req
        .max_fee_msat
        .map(|a| adapter::msat("max_fee_msat", a, true))
        .transpose()?;
    let timeout = adapter::payment_timeout(req.timeout_secs)?;
    let reservation = if grant.is_metered() {
        let parsed = micronode_node::pay::parse_invoice(&invoice)?;
        // The node pays the larger of the two (it refuses an amount below the invoice's).
        let amount = match (parsed.amount_milli_satoshis(), amount_msat) {
            (Some(a), Some(b)) => a.max(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => {
                return Err(ApiError::invalid(
                    "the invoice has no amount; give amount_msat",
                ))
            }
        };
        let cost = budget::metered_cost(amount, &mut max_fee_msat)?;
        let hash = parsed.payment_hash().to_byte_array();
        budget::reserve(grant, cost, Some(hash)).await?
    } else {
        None
    };
    let started = blocking(node, move |n| {
        n.pay_invoice_for_app(&invoice, amount_msat, max_fee_msat, app)
    })
    .await;
    finish_payment(
        node,
        started,
        reservation,
        req.wait.then_some(timeout),
        stop,
    )
    .await
}
