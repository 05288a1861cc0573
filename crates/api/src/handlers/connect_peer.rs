//! `ConnectPeer`: connect to a peer and wait for the handshake.

use std::net::SocketAddr;
use std::sync::Arc;

use micronode_node::{KeysBackend, Node, NodeError};
use micronode_proto::v1::{ConnectPeerRequest, ConnectPeerResponse};

use crate::adapter;
use crate::error::ApiError;

/// The longest `host:port` accepted (a DNS name has at most 253 characters).
const MAX_ADDRESS_LEN: usize = 300;

/// Handles `ConnectPeer`. Resolves a DNS name if the address is not an IP address. The node
/// remembers the address (a store write) inside its async `connect_peer`, after the handshake.
pub async fn handle_connect_peer<K: KeysBackend>(
    node: &Arc<Node<K>>,
    req: ConnectPeerRequest,
) -> Result<ConnectPeerResponse, ApiError> {
    let node_id = adapter::node_id("node_id", &req.node_id)?;
    let addr = resolve(adapter::required("address", &req.address)?).await?;
    node.connect_peer(node_id, addr).await?;
    Ok(ConnectPeerResponse {})
}

/// Parses `host:port`, resolving `host` if it is a name.
async fn resolve(address: &str) -> Result<SocketAddr, ApiError> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let malformed = || {
        ApiError::invalid(
            "address: expected host:port, e.g. 127.0.0.1:9735, [::1]:9735 or node.example:9735",
        )
    };
    if address.len() > MAX_ADDRESS_LEN {
        return Err(malformed());
    }
    let (host, port) = address.rsplit_once(':').ok_or_else(malformed)?;
    if host.is_empty() || host.contains(':') || port.parse::<u16>().is_err() {
        return Err(malformed());
    }
    let mut addrs = tokio::net::lookup_host(address)
        .await
        .map_err(|_| NodeError::Connection(format!("cannot resolve {host}")))?;
    addrs
        .next()
        .ok_or_else(|| ApiError::Node(NodeError::Connection(format!("{host} has no address"))))
}
