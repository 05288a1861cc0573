//! The node's side of a remote signer at start-up: listen for the signer, make a pairing code
//! if none is paired yet, wait for it, and greet it.
//!
//! A node started with a remote signer holds no key: until the signer has dialled in and
//! answered `hello`, there is no node id and nothing can start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lightning::util::persist::KVStoreSync;
use micronode_link::{
    LinkError, LinkIdentity, PairingPersistence, PairingStore, DEFAULT_PAIRING_TTL,
};
use zeroize::Zeroizing;

use super::{LinkSignerTransport, RemoteKeys};
use crate::edge::IpAllowList;
use crate::error::NodeError;
use crate::types::Store;

/// How long one signing call may take before the signer counts as offline.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The signer link, listening, before the signer has connected.
pub struct WaitingForSigner {
    transport: Arc<LinkSignerTransport>,
    identity: Arc<LinkIdentity>,
    /// The one-time pairing code, when no signer is paired yet.
    pub pairing_code: Option<String>,
    pairing: Arc<PairingStore>,
    data_dir: PathBuf,
}

impl WaitingForSigner {
    /// Where the signer dials.
    pub fn listen_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// The fingerprint of the node's link key, which the signer checks when it pairs.
    pub fn node_link_key(&self) -> String {
        self.identity.fingerprint()
    }

    /// The node's pairing store: a host makes new pairing codes with it while the node waits.
    pub fn pairing_store(&self) -> Arc<PairingStore> {
        self.pairing.clone()
    }

    /// The JSON line for the operator (and scripts): where the signer dials, the node's link
    /// key fingerprint, and the pairing code to type into `micronode signer run --pair`.
    pub fn announcement(&self) -> serde_json::Value {
        serde_json::json!({
            "event": "waiting_for_signer",
            "signer_listen": self.listen_addr().to_string(),
            "node_link_key": self.identity.fingerprint(),
            "pairing_code": self.pairing_code,
        })
    }

    /// Waits for the signer (logging every 10 s) and greets it.
    pub async fn connected(self) -> Result<RemoteKeys, NodeError> {
        tracing::info!(listen = %self.listen_addr(), "waiting for the tenant's signer");
        let waiting = async {
            let mut ticker = tokio::time::interval(Duration::from_secs(10));
            ticker.tick().await;
            loop {
                ticker.tick().await;
                tracing::info!("still waiting for the tenant's signer");
            }
        };
        tokio::select! {
            _ = self.transport.wait_online() => {}
            _ = waiting => {}
        }
        let cache = self.data_dir.join("remote_channel_keys.json");
        let transport = self.transport;
        let keys = tokio::task::spawn_blocking(move || RemoteKeys::connect(transport, cache))
            .await
            .map_err(|e| NodeError::Internal(format!("greeting the signer: {e}")))??;
        tracing::info!(node_id = %keys.node_id(), "signer connected; node keys are remote");
        Ok(keys)
    }
}

/// Where the node's side of its signer link keeps its identity and its pairing state.
pub enum LinkState {
    /// In `<data dir>/signer_link/`: a node of its own, or a host's tenant.
    InDataDir,
    /// A node of a fleet, which any of its hosts may run: its link identity is the same on
    /// each (derived from the operator's fleet key, so the signer's pinned key still
    /// matches), and its pairing state is in the node's fenced fleet store (so every host
    /// knows which signer is paired, and a host that lost the node's lease changes nothing).
    Fleet {
        /// The node's link identity.
        identity: LinkIdentity,
        /// The node's store.
        store: Arc<Store>,
    },
}

/// The pairing state's entry in a fleet node's store.
const PAIRING_NAMESPACE: &str = "signer_link";
const PAIRING_KEY: &str = "pairing";

/// A pairing state kept as one entry of the node's store.
struct PairingInStore(Arc<Store>);

impl PairingPersistence for PairingInStore {
    fn load(&self) -> micronode_link::Result<Option<Zeroizing<Vec<u8>>>> {
        match KVStoreSync::read(&*self.0, PAIRING_NAMESPACE, "", PAIRING_KEY) {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            Err(e) if e.kind() == lightning::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LinkError::Io(e.into())),
        }
    }
    fn save(&self, state: &[u8]) -> micronode_link::Result<()> {
        KVStoreSync::write(&*self.0, PAIRING_NAMESPACE, "", PAIRING_KEY, state.to_vec())
            .map_err(|e| LinkError::Io(e.into()))
    }
}

/// Starts the signer link of the node whose data is in `data_dir`, on `listen`, for signers
/// dialling from the addresses `allow` lets in.
pub fn listen(
    data_dir: &Path,
    listen: SocketAddr,
    allow: &IpAllowList,
) -> Result<WaitingForSigner, NodeError> {
    listen_with(LinkState::InDataDir, data_dir, listen, allow)
}

/// [`listen`], with the link's identity and pairing state where `state` says.
pub fn listen_with(
    state: LinkState,
    data_dir: &Path,
    listen: SocketAddr,
    allow: &IpAllowList,
) -> Result<WaitingForSigner, NodeError> {
    let link = |what: &str, e: micronode_link::LinkError| NodeError::Signer(format!("{what}: {e}"));
    let (identity, pairing) = match state {
        LinkState::InDataDir => {
            let link_dir = data_dir.join("signer_link");
            micronode_files::own_private_dir(&link_dir)?;
            let identity = LinkIdentity::load_or_generate(&link_dir.join("identity.json"))
                .map_err(|e| link("loading the node's link identity", e))?;
            let pairing =
                PairingStore::open(&link_dir).map_err(|e| link("opening the pairing store", e))?;
            (identity, pairing)
        }
        LinkState::Fleet { identity, store } => {
            let pairing = PairingStore::with_persistence(
                PathBuf::from(format!("fleet store: {PAIRING_NAMESPACE}/{PAIRING_KEY}")),
                Box::new(PairingInStore(store)),
            )
            .map_err(|e| link("opening the pairing state", e))?;
            (identity, pairing)
        }
    };
    let (identity, pairing) = (Arc::new(identity), Arc::new(pairing));
    let pairing_code = match pairing.paired_signer() {
        Some(_) => None,
        None => Some(
            pairing
                .new_pairing_code(DEFAULT_PAIRING_TTL)
                .map_err(|e| link("creating a pairing code", e))?
                .reveal(),
        ),
    };
    let transport = Arc::new(LinkSignerTransport::start(
        listen,
        identity.clone(),
        pairing.clone(),
        CALL_TIMEOUT,
        allow,
    )?);
    Ok(WaitingForSigner {
        transport,
        identity,
        pairing_code,
        pairing,
        data_dir: data_dir.to_path_buf(),
    })
}

/// Starts the signer link, announces it on stdout and returns the keys backend once the
/// signer has answered.
pub async fn connect(
    state: LinkState,
    data_dir: &Path,
    listen_on: SocketAddr,
    allow: &IpAllowList,
) -> Result<RemoteKeys, NodeError> {
    // Opening the link's state reads and writes files or the fleet database: off the
    // async workers.
    let (dir, allow) = (data_dir.to_path_buf(), allow.clone());
    let waiting = tokio::task::spawn_blocking(move || listen_with(state, &dir, listen_on, &allow))
        .await
        .map_err(|e| NodeError::Internal(format!("starting the signer link: {e}")))??;
    println!("{}", waiting.announcement());
    waiting.connected().await
}
