//! `ListChannels`: every channel.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{ListChannelsRequest, ListChannelsResponse};

use crate::adapter;
use crate::error::ApiError;

/// Handles `ListChannels`. Reads memory only.
pub async fn handle_list_channels<K: KeysBackend>(
    node: &Arc<Node<K>>,
    _req: ListChannelsRequest,
) -> Result<ListChannelsResponse, ApiError> {
    Ok(ListChannelsResponse {
        channels: node
            .list_channels()
            .into_iter()
            .map(adapter::channel)
            .collect(),
    })
}
