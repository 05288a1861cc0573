//! The node's side of the browser wallet (`docs/pairing.md`).
//!
//! A [`WalletLink`] runs one tenant's pairing sessions: each session's task dials out to the
//! relay (the node needs no open port), waits for the browser that knows the phrase, runs
//! Lightning Node Connect's handshake ([`micronode_lnc`]) and serves the wallet API
//! ([`tunnel::TunnelApi`]) over it, through the node's own gRPC API with the session's token.
//! It is the [`PairingBackend`] of the node's `CreatePairing`, `ListPairings` and
//! `RevokePairing` RPCs.
//!
//! ```text
//!  browser ──wss──▶ relay (operator's, sees ciphertext) ◀──ws── WalletLink session task
//!                                                              │ Noise transport
//!                                                              ▼
//!                                             TunnelApi ─▶ in-process gRPC (token, app request)
//! ```
#![deny(missing_docs)]

pub mod error;
pub mod nwc;
mod responder;
pub mod sessions;
pub mod tunnel;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use micronode_api::{
    ApiError, ErrorCode, InProcessService, NewPairing, PairingBackend, PairingCaller,
};
use micronode_lnc::SecretKey;
use micronode_proto::v1;
use micronode_proto::v1::lightning_client::LightningClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{Result, WalletError};
pub use sessions::{SessionRecord, SessionState, SessionStore};
pub use tunnel::{SignerProbe, SignerState, TunnelApi};

use crate::nwc::NwcControl;
use crate::responder::Runner;

/// The most live sessions one tenant may have.
pub const MAX_LIVE_SESSIONS: usize = 20;
/// The longest a session may last.
pub const MAX_SESSION_SECS: u64 = 366 * 24 * 3600;
/// The largest auth data a session may hand out.
pub const MAX_AUTH_DATA: usize = micronode_lnc::handshake::MAX_AUTH_DATA;

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// What a wallet link needs.
pub struct WalletConfig {
    /// Where its sessions file lives (created owner-only), e.g. `<node data dir>/wallet`.
    pub dir: PathBuf,
    /// The relay's base URL (`http://host:port`).
    pub relay_url: String,
    /// The node's API, in process (see [`micronode_api::in_process_client`]).
    pub client: LightningClient<InProcessService>,
    /// How the tenant's signer stands.
    pub signer: SignerProbe,
    /// The tenant's NWC connections, if NWC runs.
    pub nwc: Option<Arc<dyn NwcControl>>,
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// One tenant's pairing sessions, running.
pub struct WalletLink {
    store: Arc<SessionStore>,
    relay_url: String,
    client: LightningClient<InProcessService>,
    signer: SignerProbe,
    nwc: Option<Arc<dyn NwcControl>>,
    running: Mutex<HashMap<String, Running>>,
    connected: Arc<Mutex<HashSet<String>>>,
}

impl WalletLink {
    /// Opens the sessions file and starts every live session.
    pub async fn start(config: WalletConfig) -> Result<Arc<WalletLink>> {
        let dir = config.dir.clone();
        let store = tokio::task::spawn_blocking(move || SessionStore::open(&dir))
            .await
            .map_err(|e| WalletError::Task(e.to_string()))??;
        let link = Arc::new(WalletLink {
            store: Arc::new(store),
            relay_url: config.relay_url.trim_end_matches('/').to_string(),
            client: config.client,
            signer: config.signer,
            nwc: config.nwc,
            running: Mutex::new(HashMap::new()),
            connected: Arc::new(Mutex::new(HashSet::new())),
        });
        for record in link.store.list() {
            if record.state.is_live() {
                link.launch(&record);
            }
        }
        Ok(link)
    }

    /// The relay this link dials.
    pub fn relay_url(&self) -> &str {
        &self.relay_url
    }

    fn launch(&self, record: &SessionRecord) {
        let Some(token) = token_of(&record.auth_data) else {
            tracing::error!(session = %record.id, "a session's auth data has no token; not started");
            return;
        };
        let (stop, stop_rx) = watch::channel(false);
        let runner = Runner {
            store: self.store.clone(),
            relay_url: self.relay_url.clone(),
            api: TunnelApi::new(
                self.client.clone(),
                token,
                self.signer.clone(),
                self.nwc.clone(),
            ),
            id: record.id.clone(),
            stop: stop_rx,
            connected: self.connected.clone(),
        };
        let task = tokio::spawn(runner.run());
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(record.id.clone(), Running { stop, task });
    }

    /// Stops every session task (their state stays as it is) and waits for them.
    pub async fn stop(&self) {
        let tasks: Vec<Running> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.drain().map(|(_, r)| r).collect()
        };
        for r in &tasks {
            let _ = r.stop.send(true);
        }
        for r in tasks {
            let _ = r.task.await;
        }
    }

    fn info(&self, r: &SessionRecord) -> v1::PairingSession {
        let connected = self
            .connected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&r.id);
        v1::PairingSession {
            id: r.id.clone(),
            label: r.label.clone(),
            state: r.state.as_str().to_string(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            paired_at: r.paired_at,
            last_seen: r.last_seen,
            connected,
            ended_reason: r.ended_reason.clone(),
        }
    }

    fn record_of(&self, pairing: NewPairing) -> std::result::Result<SessionRecord, ApiError> {
        let r = pairing.request;
        let now = now_secs();
        if r.label.is_empty() || r.label.len() > 64 {
            return Err(ApiError::invalid("label: 1 to 64 bytes"));
        }
        if r.expires_at <= now || r.expires_at > now + MAX_SESSION_SECS {
            return Err(ApiError::invalid(
                "expires_at: in the future, at most a year away",
            ));
        }
        if r.password.len() != 32 {
            return Err(ApiError::invalid("password: 32 bytes"));
        }
        if r.stream_id.len() != 64 {
            return Err(ApiError::invalid("stream_id: 64 bytes"));
        }
        if r.auth_data.len() > MAX_AUTH_DATA {
            return Err(ApiError::invalid(format!(
                "auth_data: at most {MAX_AUTH_DATA} bytes"
            )));
        }
        let auth_data = String::from_utf8(r.auth_data)
            .map_err(|_| ApiError::invalid("auth_data: UTF-8 JSON"))?;
        let node_static = SecretKey::new(&mut rand::rngs::OsRng);
        Ok(SessionRecord {
            id: hex::encode(rand::random::<[u8; 8]>()),
            label: r.label,
            created_at: now,
            expires_at: r.expires_at,
            state: SessionState::Waiting,
            token_id: pairing.token_id,
            node_static: hex::encode(node_static.secret_bytes()),
            password: Some(hex::encode(&r.password)),
            phrase_stream: Some(hex::encode(&r.stream_id)),
            client_static: None,
            auth_data,
            paired_at: None,
            last_seen: None,
            ended_reason: None,
        })
    }
}

fn token_of(auth_data: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(auth_data).ok()?;
    value.get("token")?.as_str().map(str::to_string)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Task(e.to_string())
}

#[tonic::async_trait]
impl PairingBackend for WalletLink {
    async fn create(
        &self,
        pairing: NewPairing,
    ) -> std::result::Result<v1::PairingSession, ApiError> {
        let record = self.record_of(pairing)?;
        let store = self.store.clone();
        let added = record.clone();
        tokio::task::spawn_blocking(move || store.add(added, MAX_LIVE_SESSIONS))
            .await
            .map_err(internal)?
            .map_err(|e| match e {
                WalletError::Invalid(m) => ApiError::refused(ErrorCode::InvalidInput, m),
                other => internal(other),
            })?;
        self.launch(&record);
        tracing::info!(session = %record.id, "pairing session created");
        Ok(self.info(&record))
    }

    async fn list(
        &self,
        caller: PairingCaller,
    ) -> std::result::Result<Vec<v1::PairingSession>, ApiError> {
        Ok(self
            .store
            .list()
            .iter()
            .filter(|r| caller.may_use(&r.token_id))
            .map(|r| self.info(r))
            .collect())
    }

    async fn revoke(
        &self,
        id: &str,
        caller: PairingCaller,
    ) -> std::result::Result<v1::PairingSession, ApiError> {
        let record = self
            .store
            .get(id)
            .filter(|r| caller.may_use(&r.token_id))
            .ok_or_else(micronode_api::pairing::unknown_session)?;
        let store = self.store.clone();
        let id_owned = record.id.clone();
        let ended = tokio::task::spawn_blocking(move || {
            store.update(&id_owned, |r| {
                if r.state.is_live() {
                    r.end(SessionState::Revoked, "revoked")
                }
            })
        })
        .await
        .map_err(internal)?
        .map_err(internal)?
        .ok_or_else(micronode_api::pairing::unknown_session)?;
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(running) = running {
            let _ = running.stop.send(true);
            let _ = running.task.await;
        }
        // The task deleted the streams it knew of; the phrase's too, if it never paired.
        for sid in phrase_streams(&record) {
            let _ = micronode_relay::client::delete_stream(&self.relay_url, &sid).await;
        }
        tracing::info!(session = %id, "pairing session revoked");
        Ok(self.info(&ended))
    }
}

/// The phrase's stream ids of a session that still knows them.
pub(crate) fn phrase_stream_ids(record: &SessionRecord) -> Option<micronode_lnc::StreamIds> {
    let sid = hex::decode(record.phrase_stream.as_deref()?).ok()?;
    Some(micronode_lnc::StreamIds::from_server_to_client(
        sid.try_into().ok()?,
    ))
}

/// The phrase's two streams of a session that still knows them.
pub(crate) fn phrase_streams(record: &SessionRecord) -> Vec<micronode_relay::StreamId> {
    phrase_stream_ids(record)
        .map(|ids| {
            vec![
                micronode_relay::StreamId::new(ids.server_to_client),
                micronode_relay::StreamId::new(ids.client_to_server),
            ]
        })
        .unwrap_or_default()
}

/// Starts the wallet link of `node`: its API in process behind `auth`, its sessions in
/// `<data dir>/wallet`, dialing `relay_url`. The in-process API's long calls end when `stop`
/// becomes `true`.
pub async fn start_for_node<K: micronode_node::KeysBackend>(
    node: Arc<micronode_node::Node<K>>,
    auth: Arc<dyn micronode_api::Authenticator>,
    relay_url: &str,
    nwc: Option<Arc<dyn NwcControl>>,
    stop: watch::Receiver<bool>,
) -> Result<Arc<WalletLink>> {
    let remote = node.keys_app_token_root().is_some();
    let probe_node = node.clone();
    let signer: SignerProbe = Arc::new(move || {
        if !remote {
            SignerState::Local
        } else if probe_node.signer_revoked() {
            SignerState::Revoked
        } else if probe_node.signer_online() {
            SignerState::Connected
        } else {
            SignerState::Offline
        }
    });
    let dir = node.config().data_dir.join("wallet");
    let client = micronode_api::in_process_client(node, auth, stop);
    WalletLink::start(WalletConfig {
        dir,
        relay_url: relay_url.to_string(),
        client,
        signer,
        nwc,
    })
    .await
}
