//! `GetPayment`: one payment, by id.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node, NodeError};
use micronode_proto::v1::{GetPaymentRequest, Payment};

use crate::adapter;
use crate::error::ApiError;

/// Handles `GetPayment`. Reads memory only.
pub async fn handle_get_payment<K: KeysBackend>(
    node: &Arc<Node<K>>,
    req: GetPaymentRequest,
) -> Result<Payment, ApiError> {
    let id = adapter::id32("id", &req.id)?;
    let record = match adapter::direction_filter(req.direction)? {
        Some(direction) => node.payment_in(direction, &id),
        None => node.payment(&id),
    };
    record
        .map(adapter::payment)
        .ok_or_else(|| ApiError::Node(NodeError::UnknownPayment(hex::encode(id))))
}
