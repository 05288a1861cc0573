//! `NewAddress`: a fresh receive address.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::{NewAddressRequest, NewAddressResponse};

use super::blocking;
use crate::error::ApiError;

/// Handles `NewAddress`. Revealing an address persists the wallet, so it runs blocking.
pub async fn handle_new_address<K: KeysBackend>(
    node: &Arc<Node<K>>,
    _req: NewAddressRequest,
) -> Result<NewAddressResponse, ApiError> {
    let address = blocking(node, |n| n.new_address()).await?;
    Ok(NewAddressResponse { address })
}
