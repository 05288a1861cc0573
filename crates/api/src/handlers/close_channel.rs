//! `CloseChannel`: close a channel, cooperatively or by force.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{CloseChannelRequest, CloseChannelResponse};

use super::blocking;
use crate::adapter;
use crate::error::ApiError;

/// Handles `CloseChannel`. LDK persists the channel's new state (and a force close broadcasts),
/// so it runs blocking.
pub async fn handle_close_channel<K: KeysBackend>(
    node: &Arc<Node<K>>,
    req: CloseChannelRequest,
) -> Result<CloseChannelResponse, ApiError> {
    let channel_id = adapter::channel_id("channel_id", &req.channel_id)?;
    let force = req.force;
    blocking(node, move |n| n.close_channel(&channel_id, force)).await?;
    Ok(CloseChannelResponse {})
}
