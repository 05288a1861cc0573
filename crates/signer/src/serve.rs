//! The signer's side of the link: dial out to the node, answer its requests, reconnect with
//! backoff when the link drops.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use micronode_link::{Backoff, ConnectMode, HandshakeKind, LinkConnector, LinkIdentity};
use micronode_node::remote::protocol::{RequestEnvelope, ResponseEnvelope, SignerResponse};
use serde::{Deserialize, Serialize};

use crate::engine::SignerEngine;

/// The node this signer is paired with: where to dial and the key pinned at pairing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairedNode {
    /// `host:port` of the node's signer link.
    pub addr: String,
    /// The node's link key, hex (pinned).
    pub node_key: String,
}

impl PairedNode {
    /// Where the pairing is kept in a signer directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("paired_node.json")
    }

    /// Loads the pairing, if any.
    pub fn load(dir: &Path) -> Option<Self> {
        let bytes = std::fs::read(Self::path(dir)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Saves the pairing (owner-only).
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        crate::files::write_private(&Self::path(dir), &bytes).map_err(|e| e.to_string())
    }

    fn key(&self) -> Result<[u8; 32], String> {
        hex::decode(&self.node_key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| "paired node key is corrupt".to_string())
    }
}

/// How often VLS forgets settled payments whose invoices expired long ago.
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// VLS prunes its payment records only when asked for a heartbeat; without it the signer
/// would refuse new payments once it tracks `max_invoices` of them.
async fn prune_periodically(engine: Arc<SignerEngine>) {
    let mut ticker = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        ticker.tick().await;
        let engine = engine.clone();
        let _ = tokio::task::spawn_blocking(move || engine.node().get_heartbeat()).await;
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How many times a pairing attempt is made before the code is declared refused.
const PAIRING_ATTEMPTS: u32 = 5;

/// Runs the signer until `stop` resolves: connect (pairing first if `pairing_code` is given),
/// serve, reconnect.
pub async fn run(
    engine: Arc<SignerEngine>,
    dir: PathBuf,
    node_addr: String,
    pairing_code: Option<micronode_link::PairingCode>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let identity = Arc::new(
        LinkIdentity::load_or_generate(&dir.join("link_identity.json"))
            .map_err(|e| e.to_string())?,
    );
    tokio::pin!(stop);
    let pruning = tokio::spawn(prune_periodically(engine.clone()));
    let _pruning = AbortOnDrop(pruning);
    let mut code = pairing_code;
    loop {
        let mode = match (&code, PairedNode::load(&dir)) {
            (Some(code), _) => ConnectMode::Pairing { code: code.clone() },
            (None, Some(paired)) => ConnectMode::Pinned {
                node_key: paired.key()?,
            },
            (None, None) => return Err("not paired: run with a pairing code first".into()),
        };
        let pairing = matches!(mode, ConnectMode::Pairing { .. });
        let connector = LinkConnector::new(node_addr.clone(), identity.clone(), mode);
        // A pinned node that refuses us may be restarting: keep trying. A pairing code the node
        // refuses is wrong, used or expired, and will never work: give up soon and say so.
        let backoff = Backoff {
            max_attempts: pairing.then_some(PAIRING_ATTEMPTS),
            ..Backoff::default()
        };
        let connected = tokio::select! {
            _ = &mut stop => return Ok(()),
            c = connector.connect_with_backoff(&backoff, std::future::pending()) => c,
        };
        let (conn, peer) = match connected {
            Ok(c) => c,
            Err(e) if pairing => {
                return Err(format!(
                    "pairing failed: the node did not accept the code after \
                     {PAIRING_ATTEMPTS} attempts (wrong, already used or expired?): {e}"
                ))
            }
            Err(e) => return Err(format!("cannot reach the node: {e}")),
        };
        if peer.kind == HandshakeKind::Paired {
            PairedNode {
                addr: node_addr.clone(),
                node_key: hex::encode(peer.remote_key),
            }
            .save(&dir)?;
            tracing::info!(node = %peer.fingerprint(), "paired with the node; its key is pinned");
            code = None;
        }
        tracing::info!(node = %peer.fingerprint(), "connected to the node");
        tokio::select! {
            _ = &mut stop => return Ok(()),
            reason = serve(engine.clone(), conn) => {
                tracing::warn!(%reason, "link to the node lost; reconnecting");
            }
        }
    }
}

async fn serve(engine: Arc<SignerEngine>, conn: micronode_link::LinkConnection) -> String {
    let (mut reader, mut writer) = conn.into_split();
    loop {
        let bytes = match reader.recv().await {
            Ok(b) => b,
            Err(e) => return e.to_string(),
        };
        let (id, response) = match serde_json::from_slice::<RequestEnvelope>(&bytes) {
            Ok(envelope) => {
                let engine = engine.clone();
                let response =
                    tokio::task::spawn_blocking(move || engine.handle(&envelope.request))
                        .await
                        .unwrap_or_else(|_| SignerResponse::Failed {
                            message: "internal signer error".into(),
                        });
                (envelope.id, response)
            }
            // A request we cannot read still gets a typed answer when its id is readable, so
            // one bad message does not cost the node its link; without an id, the peer is not
            // speaking our protocol and the link is dropped.
            Err(e) => match request_id(&bytes) {
                Some(id) => {
                    tracing::warn!(error = %e, "unreadable request from the node");
                    let message = format!("unreadable request: {e}");
                    (id, SignerResponse::Failed { message })
                }
                None => return format!("malformed request from the node: {e}"),
            },
        };
        let out = match serde_json::to_vec(&ResponseEnvelope { id, response }) {
            Ok(b) => b,
            Err(e) => return format!("cannot encode a response: {e}"),
        };
        if let Err(e) = writer.send(&out).await {
            return e.to_string();
        }
    }
}

/// The correlation id of a request that did not parse as a whole.
fn request_id(bytes: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()?
        .get("id")?
        .as_u64()
}
