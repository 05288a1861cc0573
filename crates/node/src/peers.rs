//! Addresses of peers we have channels with, so the node reconnects after a restart.

use std::net::SocketAddr;
use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use lightning::util::persist::KVStoreSync;

use crate::error::NodeError;
use crate::types::Store;

const PEERS_NAMESPACE: &str = "peers";

/// Persistent peer addresses.
pub struct PeerStore {
    store: Arc<Store>,
}

impl PeerStore {
    /// Opens the peer addresses in `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    /// Remembers (or updates) a peer's address.
    pub fn remember(&self, node_id: &PublicKey, addr: SocketAddr) -> Result<(), NodeError> {
        self.store.write(
            PEERS_NAMESPACE,
            "",
            &node_id.to_string(),
            addr.to_string().into_bytes(),
        )?;
        Ok(())
    }

    /// Every remembered peer.
    pub fn all(&self) -> Result<Vec<(PublicKey, SocketAddr)>, NodeError> {
        let mut peers = Vec::new();
        for key in self.store.list(PEERS_NAMESPACE, "")? {
            let bytes = self.store.read(PEERS_NAMESPACE, "", &key)?;
            let (Ok(node_id), Some(addr)) = (
                key.parse::<PublicKey>(),
                String::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.parse::<SocketAddr>().ok()),
            ) else {
                tracing::warn!(key, "skipping unreadable peer record");
                continue;
            };
            peers.push((node_id, addr));
        }
        Ok(peers)
    }
}
