//! `LightningBalance`: balances as the channel monitors see them.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{LightningBalanceRequest, LightningBalanceResponse};

use crate::adapter;
use crate::error::ApiError;

/// Handles `LightningBalance`. Reads memory only.
pub async fn handle_lightning_balance<K: KeysBackend>(
    node: &Arc<Node<K>>,
    _req: LightningBalanceRequest,
) -> Result<LightningBalanceResponse, ApiError> {
    Ok(adapter::lightning_balance(node.lightning_balance()))
}
