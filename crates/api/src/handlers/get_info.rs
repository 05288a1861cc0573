//! `GetInfo`: a summary of the node.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{GetInfoRequest, GetInfoResponse};

use crate::adapter;
use crate::error::ApiError;

/// Handles `GetInfo`. Reads memory only.
pub async fn handle_get_info<K: KeysBackend>(
    node: &Arc<Node<K>>,
    _req: GetInfoRequest,
) -> Result<GetInfoResponse, ApiError> {
    Ok(adapter::info(node.info()))
}
