//! `Keysend`: a spontaneous payment.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{KeysendRequest, Payment};

use super::{blocking, outbound_record, wait_outcome, ShutdownSignal};
use crate::adapter;
use crate::error::ApiError;

/// Handles `Keysend`. Starting the payment writes its record, so it runs blocking; with
/// `wait`, the call then waits for the outcome (or the timeout, or the server's shutdown).
pub async fn handle_keysend<K: KeysBackend>(
    node: &Arc<Node<K>>,
    stop: ShutdownSignal,
    req: KeysendRequest,
) -> Result<Payment, ApiError> {
    let node_id = adapter::node_id("node_id", &req.node_id)?;
    let amount_msat = adapter::msat("amount_msat", req.amount_msat, false)?;
    let max_fee_msat = req
        .max_fee_msat
        .map(|a| adapter::msat("max_fee_msat", a, true))
        .transpose()?;
    let timeout = adapter::payment_timeout(req.timeout_secs)?;
    let id = blocking(node, move |n| n.keysend(node_id, amount_msat, max_fee_msat)).await?;
    let record = if req.wait {
        wait_outcome(node, &id, timeout, stop).await?
    } else {
        outbound_record(node, &id)?
    };
    Ok(adapter::payment(record))
}
