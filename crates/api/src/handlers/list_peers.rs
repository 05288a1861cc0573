//! `ListPeers`: connected peers.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{ListPeersRequest, ListPeersResponse};

use crate::adapter;
use crate::error::ApiError;

/// Handles `ListPeers`. Reads memory only.
pub async fn handle_list_peers<K: KeysBackend>(
    node: &Arc<Node<K>>,
    _req: ListPeersRequest,
) -> Result<ListPeersResponse, ApiError> {
    Ok(ListPeersResponse {
        peers: node.list_peers().into_iter().map(adapter::peer).collect(),
    })
}
