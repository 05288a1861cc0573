//! `OnchainBalance`: the on-chain wallet's balance.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{OnchainBalanceRequest, OnchainBalanceResponse};

use crate::adapter;
use crate::error::ApiError;

/// Handles `OnchainBalance`. Reads memory only.
pub async fn handle_onchain_balance<K: KeysBackend>(
    node: &Arc<Node<K>>,
    _req: OnchainBalanceRequest,
) -> Result<OnchainBalanceResponse, ApiError> {
    Ok(adapter::onchain_balance(node.onchain_balance()))
}
