//! The signer's side of the link: follow the chain, dial out to the node, answer its requests,
//! reconnect with backoff when the link drops.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use micronode_link::{Backoff, ConnectMode, HandshakeKind, LinkConnector, LinkIdentity};
use micronode_signer_protocol::{RequestEnvelope, ResponseEnvelope, SignerResponse};
use serde::{Deserialize, Serialize};

use crate::chain::{ChainError, ChainFollower, ChainSource};
use crate::engine::SignerEngine;

/// Why the signer stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The signer has never been paired and no pairing code was given.
    #[error("not paired: run with a pairing code first")]
    NotPaired,
    /// The node refused the pairing code every time.
    #[error("pairing failed: the node did not accept the code after {attempts} attempts (wrong, already used or expired?): {source}")]
    Pairing {
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        #[source]
        source: micronode_link::LinkError,
    },
    /// The node could not be reached.
    #[error("cannot reach the node: {0}")]
    Unreachable(#[source] micronode_link::LinkError),
    /// The link's identity or pairing could not be read or written.
    #[error("link state: {0}")]
    LinkState(String),
    /// The chain source is unusable (wrong network, unreachable at start).
    #[error("the signer's chain source: {0}")]
    Chain(#[from] ChainError),
}

/// The node this signer is paired with: where to dial and the key pinned at pairing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairedNode {
    /// `host:port` of the node's signer link (several, comma-separated, for a fleet).
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
    pub fn save(&self, dir: &Path) -> Result<(), ServeError> {
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| ServeError::LinkState(e.to_string()))?;
        micronode_files::write_private(&Self::path(dir), &bytes)
            .map_err(|e| ServeError::LinkState(e.to_string()))
    }

    fn key(&self) -> Result<[u8; 32], ServeError> {
        hex::decode(&self.node_key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| ServeError::LinkState("paired node key is corrupt".into()))
    }
}

/// How often VLS prunes what it still tracks after its invoices expired (failed payments,
/// closed channels), and the signer its expired credits and settled records.
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// VLS prunes what [`crate::settled`] leaves to it (failed payments, closed channels) only
/// when asked for a heartbeat. Expired payment credits leave the balance allowance at the same
/// time, and settled hashes whose refusal ended are forgotten.
fn prune(engine: &SignerEngine) {
    engine.node().get_heartbeat();
    if let Err(e) = engine.prune_credits().and_then(|()| engine.clamp_excess()) {
        tracing::warn!(error = ?e, "cannot update the balance allowance");
    }
    if let Err(e) = engine.prune_settled_records() {
        tracing::warn!(error = ?e, "cannot forget old settled payments");
    }
}

/// Forgets settled payments in VLS soon after they settle ([`crate::settled`]).
fn forget_settled(engine: &SignerEngine) {
    if let Err(e) = engine.prune_settled_payments() {
        tracing::warn!(error = ?e, "cannot forget settled payments");
    }
}

/// Runs the blocking `work` on `engine` every `interval`, off the async workers; a tick that
/// comes while the last run is still going is skipped.
async fn every(interval: std::time::Duration, engine: Arc<SignerEngine>, work: fn(&SignerEngine)) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let engine = engine.clone();
        let _ = tokio::task::spawn_blocking(move || work(&engine)).await;
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

/// Runs the signer until `stop` resolves: catch up with the chain, then connect (pairing
/// first if `pairing_code` is given), serve, reconnect, while `chain` keeps following the
/// tenant's chain source (and watching for breaches) whether or not the node is there.
///
/// `node_addrs` are where the node's signer link may listen: one address, or each host of a
/// fleet that may run the node (attempts go to each in turn; the node's pinned key is what
/// is trusted, never the address).
pub async fn run<S: ChainSource>(
    engine: Arc<SignerEngine>,
    dir: PathBuf,
    node_addrs: Vec<String>,
    pairing_code: Option<micronode_link::PairingCode>,
    chain: ChainFollower<S>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let identity = Arc::new(
        LinkIdentity::load_or_generate(&dir.join("link_identity.json"))
            .map_err(|e| ServeError::LinkState(e.to_string()))?,
    );
    tokio::pin!(stop);
    chain.check_network().await?;
    let height = chain.sync().await?;
    tracing::info!(height, "the signer's view of the chain is current");
    let following = tokio::spawn(chain.run(std::future::pending()));
    let _following = AbortOnDrop(following);
    let pruning = tokio::spawn(every(PRUNE_INTERVAL, engine.clone(), prune));
    let _pruning = AbortOnDrop(pruning);
    let forgetting = tokio::spawn(every(
        crate::settled::PRUNE_SETTLED_INTERVAL,
        engine.clone(),
        forget_settled,
    ));
    let _forgetting = AbortOnDrop(forgetting);
    let mut code = pairing_code;
    loop {
        let mode = match (&code, PairedNode::load(&dir)) {
            (Some(code), _) => ConnectMode::Pairing { code: code.clone() },
            (None, Some(paired)) => ConnectMode::Pinned {
                node_key: paired.key()?,
            },
            (None, None) => return Err(ServeError::NotPaired),
        };
        let pairing = matches!(mode, ConnectMode::Pairing { .. });
        let connector = LinkConnector::any_of(node_addrs.clone(), identity.clone(), mode);
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
            Err(source) if pairing => {
                return Err(ServeError::Pairing {
                    attempts: PAIRING_ATTEMPTS,
                    source,
                })
            }
            Err(e) => return Err(ServeError::Unreachable(e)),
        };
        if peer.kind == HandshakeKind::Paired {
            PairedNode {
                addr: node_addrs.join(","),
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
