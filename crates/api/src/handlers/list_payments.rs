//! `ListPayments`: the payment history.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{ListPaymentsRequest, ListPaymentsResponse};

use crate::adapter;
use crate::error::ApiError;

/// Handles `ListPayments`. Reads memory only.
pub async fn handle_list_payments<K: KeysBackend>(
    node: &Arc<Node<K>>,
    _req: ListPaymentsRequest,
) -> Result<ListPaymentsResponse, ApiError> {
    Ok(ListPaymentsResponse {
        payments: node
            .list_payments()
            .into_iter()
            .map(adapter::payment)
            .collect(),
    })
}
