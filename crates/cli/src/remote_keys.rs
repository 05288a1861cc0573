//! The node's side of a remote signer at start-up: listen for the signer, make a pairing code
//! if none is paired yet, wait for it, and greet it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use micronode_link::{LinkIdentity, PairingStore, DEFAULT_PAIRING_TTL};
use micronode_node::remote::LinkSignerTransport;
use micronode_node::RemoteKeys;

/// How long one signing call may take before the signer counts as offline.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The signer link, listening, before the signer has connected.
pub struct WaitingForSigner {
    transport: Arc<LinkSignerTransport>,
    identity: Arc<LinkIdentity>,
    /// The one-time pairing code, when no signer is paired yet.
    pub pairing_code: Option<String>,
    data_dir: PathBuf,
}

impl WaitingForSigner {
    /// Where the signer dials.
    pub fn listen_addr(&self) -> SocketAddr {
        self.transport.local_addr()
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
    pub async fn connected(self) -> anyhow::Result<RemoteKeys> {
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
            .context("greeting the signer")??;
        tracing::info!(node_id = %keys.node_id(), "signer connected; node keys are remote");
        Ok(keys)
    }
}

/// Starts the signer link of the node whose data is in `data_dir`, on `listen`.
pub fn listen(data_dir: &Path, listen: SocketAddr) -> anyhow::Result<WaitingForSigner> {
    let link_dir = data_dir.join("signer_link");
    micronode_node::secret_file::create_private_dir(&link_dir)?;
    let identity = Arc::new(
        LinkIdentity::load_or_generate(&link_dir.join("identity.json"))
            .context("loading the node's link identity")?,
    );
    let pairing = Arc::new(PairingStore::open(&link_dir).context("opening the pairing store")?);
    let pairing_code = match pairing.paired_signer() {
        Some(_) => None,
        None => Some(
            pairing
                .new_pairing_code(DEFAULT_PAIRING_TTL)
                .context("creating a pairing code")?
                .reveal(),
        ),
    };
    let transport = Arc::new(LinkSignerTransport::start(
        listen,
        identity.clone(),
        pairing,
        CALL_TIMEOUT,
    )?);
    Ok(WaitingForSigner {
        transport,
        identity,
        pairing_code,
        data_dir: data_dir.to_path_buf(),
    })
}

/// Starts the signer link, announces it on stdout and returns the keys backend once the
/// signer has answered.
pub async fn connect(data_dir: &Path, listen_on: SocketAddr) -> anyhow::Result<RemoteKeys> {
    let waiting = listen(data_dir, listen_on)?;
    println!("{}", waiting.announcement());
    waiting.connected().await
}
