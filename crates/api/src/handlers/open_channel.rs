//! `OpenChannel`: open a channel to a connected peer.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{OpenChannelRequest, OpenChannelResponse};

use super::blocking;
use crate::adapter;
use crate::error::ApiError;

/// Handles `OpenChannel`. LDK persists the new channel, so it runs blocking.
pub async fn handle_open_channel<K: KeysBackend>(
    node: &Arc<Node<K>>,
    req: OpenChannelRequest,
) -> Result<OpenChannelResponse, ApiError> {
    let node_id = adapter::node_id("node_id", &req.node_id)?;
    let amount_sat = adapter::sat("amount_sat", req.amount_sat)?;
    let push_msat = adapter::msat("push_msat", req.push_msat, true)?;
    if push_msat > amount_sat.saturating_mul(1000) {
        return Err(ApiError::invalid(format!(
            "push_msat: {push_msat} msat is more than the channel's {amount_sat} sat"
        )));
    }
    let announce = req.announce;
    let temporary_channel_id = blocking(node, move |n| {
        n.open_channel(node_id, amount_sat, push_msat, announce)
    })
    .await?;
    Ok(OpenChannelResponse {
        temporary_channel_id,
    })
}
