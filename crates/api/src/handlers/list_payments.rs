//! `ListPayments`: the payment history, whole or page by page.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node, NodeError};
use micronode_proto::v1::{ListPaymentsRequest, ListPaymentsResponse};

use crate::adapter;
use crate::error::ApiError;

/// Handles `ListPayments`. Reads memory only. Without a page size it returns the whole
/// history oldest first, as before paging existed; with one, a page newest first.
pub async fn handle_list_payments<K: KeysBackend>(
    node: &Arc<Node<K>>,
    req: ListPaymentsRequest,
) -> Result<ListPaymentsResponse, ApiError> {
    let page_size = req.page_size.unwrap_or(0);
    if page_size == 0 {
        if req.cursor.is_some() {
            return Err(NodeError::InvalidInput("a cursor needs a page_size".into()).into());
        }
        return Ok(ListPaymentsResponse {
            payments: node
                .list_payments()
                .into_iter()
                .map(adapter::payment)
                .collect(),
            next_cursor: None,
        });
    }
    let size = usize::try_from(page_size).unwrap_or(usize::MAX);
    let page = node.list_payments_page(size, req.cursor.as_deref())?;
    Ok(ListPaymentsResponse {
        payments: page.payments.into_iter().map(adapter::payment).collect(),
        next_cursor: page.next_cursor,
    })
}
