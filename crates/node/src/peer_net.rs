//! How the node reaches and admits Lightning peers: directly or through a SOCKS5 proxy (Tor)
//! out, and in only from allowed addresses, each at a bounded rate of new connections.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;

use crate::edge::{IpAllowList, PerIpLimiter, RateLimit};
use crate::keys::KeysBackend;
use crate::node::NodeInner;
use crate::types::{PeerManager, Store};

/// How long reaching a peer through the proxy may take (LDK's own direct dial waits 10 s).
const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A peer connection's driver: runs until the connection closes.
pub(crate) type Connection = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The node's Lightning P2P network settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerNetwork {
    /// Dial every peer through this SOCKS5 proxy (Tor's is `127.0.0.1:9050`); `None` dials
    /// directly.
    pub socks5_proxy: Option<SocketAddr>,
    /// Accept peers from these addresses only (default: any).
    pub inbound_allow: IpAllowList,
    /// New inbound connections each address may open (default: 1 a second, bursts of 10).
    pub inbound_rate: RateLimit,
}

impl Default for PeerNetwork {
    fn default() -> Self {
        Self {
            socks5_proxy: None,
            inbound_allow: IpAllowList::any(),
            inbound_rate: RateLimit {
                per_second: 1,
                burst: 10,
            },
        }
    }
}

/// Decides which inbound connections the listener takes.
pub(crate) struct InboundGate {
    allow: IpAllowList,
    limiter: PerIpLimiter,
}

impl InboundGate {
    pub(crate) fn new(network: &PeerNetwork) -> Self {
        Self {
            allow: network.inbound_allow.clone(),
            limiter: PerIpLimiter::new(network.inbound_rate),
        }
    }

    /// Whether a connection from `from` is taken; why not, if not.
    pub(crate) fn admit(&self, from: SocketAddr) -> Result<(), &'static str> {
        if !self.allow.allows(from.ip()) {
            return Err("its address is not in the allow-list");
        }
        if !self.limiter.admit(from.ip()) {
            return Err("its address connects too often");
        }
        Ok(())
    }
}

impl<K: KeysBackend> NodeInner<K> {
    /// Connects to `node_id` at `addr` with the node's [`PeerNetwork`] settings (see [`dial`]).
    pub(crate) async fn dial(&self, node_id: PublicKey, addr: SocketAddr) -> Option<Connection> {
        dial(
            self.peer_manager.clone(),
            &self.config.peer_network,
            self.store.clone(),
            node_id,
            addr,
        )
        .await
    }
}

/// Whether the node's store still holds its lease (always, for SQLite), asked off the async
/// workers. A copy that lost it must not talk to peers: its channel states may be older than
/// the ones its successor has agreed since, and a peer answers an old state with a force close.
/// `false` too when the database cannot be asked.
pub(crate) async fn lease_current(store: Arc<Store>) -> bool {
    matches!(
        tokio::task::spawn_blocking(move || store.lease_is_current()).await,
        Ok(Ok(true))
    )
}

/// Connects to `node_id` at `addr`, through `network`'s proxy if it has one. `None` if the
/// peer (or the proxy) cannot be reached, or if the node's lease is not current
/// ([`lease_current`]).
pub(crate) async fn dial<K: KeysBackend>(
    pm: Arc<PeerManager<K>>,
    network: &PeerNetwork,
    store: Arc<Store>,
    node_id: PublicKey,
    addr: SocketAddr,
) -> Option<Connection> {
    if !lease_current(store).await {
        tracing::debug!(%node_id, "not dialing: the node's lease is not current");
        return None;
    }
    let Some(proxy) = network.socks5_proxy else {
        let conn = lightning_net_tokio::connect_outbound(pm, node_id, addr).await?;
        return Some(Box::pin(conn));
    };
    let connect = tokio_socks::tcp::Socks5Stream::connect(proxy, addr);
    let stream = match tokio::time::timeout(PROXY_CONNECT_TIMEOUT, connect).await {
        Ok(Ok(stream)) => stream.into_inner(),
        Ok(Err(e)) => {
            tracing::warn!(%proxy, %addr, error = %e, "the SOCKS5 proxy did not reach the peer");
            return None;
        }
        Err(_) => {
            tracing::warn!(%proxy, %addr, "the SOCKS5 proxy timed out");
            return None;
        }
    };
    match stream.into_std() {
        Ok(std_stream) => Some(Box::pin(lightning_net_tokio::setup_outbound(
            pm, node_id, std_stream,
        ))),
        Err(e) => {
            tracing::warn!(error = %e, "cannot take over a proxied peer socket");
            None
        }
    }
}
