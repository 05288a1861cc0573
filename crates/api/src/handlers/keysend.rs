//! `Keysend`: a spontaneous payment.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{KeysendRequest, Payment};

use super::{blocking, finish_payment, ShutdownSignal};
use crate::adapter;
use crate::auth::Grant;
use crate::budget;
use crate::error::ApiError;
use micronode_signer_protocol::PaymentAuthorization;

/// Handles `Keysend`. Under a metered grant, the payment's cost (amount plus routing-fee
/// limit) is first reserved against the token's budgets, and nothing is paid if that fails.
/// Starting the payment writes its record, so it runs blocking; with `wait`, the call then
/// waits for the outcome (or the timeout, or the server's shutdown).
pub async fn handle_keysend<K: KeysBackend>(
    node: &Arc<Node<K>>,
    stop: ShutdownSignal,
    grant: &Grant,
    app: Option<PaymentAuthorization>,
    req: KeysendRequest,
) -> Result<Payment, ApiError> {
    let node_id = adapter::node_id("node_id", &req.node_id)?;
    let amount_msat = adapter::msat("amount_msat", req.amount_msat, false)?;
    let mut max_fee_msat = req
        .max_fee_msat
        .map(|a| adapter::msat("max_fee_msat", a, true))
        .transpose()?;
    let timeout = adapter::payment_timeout(req.timeout_secs)?;
    let preimage = req
        .preimage
        .as_deref()
        .map(|p| adapter::id32("preimage", p))
        .transpose()?;
    let reservation = if grant.is_metered() {
        let cost = budget::metered_cost(amount_msat, &mut max_fee_msat)?;
        // The id is the node's to choose; it is attached once the payment starts.
        budget::reserve(grant, cost, None).await?
    } else {
        None
    };
    let started = blocking(node, move |n| {
        n.keysend_with_preimage(node_id, amount_msat, max_fee_msat, preimage, app)
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
