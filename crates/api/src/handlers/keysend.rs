//! `Keysend`: a spontaneous payment.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{KeysendRequest, Payment};

use super::{blocking, outbound_record, wait_outcome, ShutdownSignal};
use crate::adapter;
use crate::auth::Grant;
use crate::budget;
use crate::error::ApiError;

/// Handles `Keysend`. Under a metered grant, the payment's cost (amount plus routing-fee
/// limit) is first reserved against the token's budgets, and nothing is paid if that fails.
/// Starting the payment writes its record, so it runs blocking; with `wait`, the call then
/// waits for the outcome (or the timeout, or the server's shutdown).
pub async fn handle_keysend<K: KeysBackend>(
    node: &Arc<Node<K>>,
    stop: ShutdownSignal,
    grant: &Grant,
    req: KeysendRequest,
) -> Result<Payment, ApiError> {
    let node_id = adapter::node_id("node_id", &req.node_id)?;
    let amount_msat = adapter::msat("amount_msat", req.amount_msat, false)?;
    let mut max_fee_msat = req
        .max_fee_msat
        .map(|a| adapter::msat("max_fee_msat", a, true))
        .transpose()?;
    let timeout = adapter::payment_timeout(req.timeout_secs)?;
    let reservation = if grant.is_metered() {
        let fee_limit = *max_fee_msat.get_or_insert(budget::default_fee_limit_msat(amount_msat));
        let cost = amount_msat
            .checked_add(fee_limit)
            .ok_or_else(|| ApiError::invalid("amount plus fee limit overflows"))?;
        // The id is the node's to choose; it is attached once the payment starts.
        budget::reserve(grant, cost, None).await?
    } else {
        None
    };
    let started = blocking(node, move |n| n.keysend(node_id, amount_msat, max_fee_msat)).await;
    let id = match (started, reservation) {
        (Ok(id), Some(reservation)) => {
            reservation.track(node.clone(), id, stop.clone()).await;
            id
        }
        (Ok(id), None) => id,
        (Err(e), Some(reservation)) => {
            reservation.release().await;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    let record = if req.wait {
        wait_outcome(node, &id, timeout, stop).await?
    } else {
        outbound_record(node, &id)?
    };
    Ok(adapter::payment(record))
}
