//! One tenant on a host: its signer link, then its watch-only node once the signer has
//! connected, and its API behind the front door.
//!
//! Each tenant runs in its own task inside a `tenant` tracing span (its id and name), so every
//! log line of its work names it. A failure or a panic in that task marks this tenant failed
//! and leaves the others running.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bitcoin::Network;
use micronode_api::PairingBackend;
use micronode_api::{TenantApi, TenantDirectory, TokenAuthority};
use micronode_chain::ChainServices;
use micronode_link::{PairingStore, DEFAULT_PAIRING_TTL};
use micronode_node::edge::IpAllowList;
use micronode_node::fleet::{DataKeySource, FleetLease};
use micronode_node::remote::attach::LinkState;
use micronode_node::{
    ChannelSettings, LiquiditySettings, LspSettings, Node, NodeConfig, RemoteKeys, StoreChoice,
};
use micronode_nwc::{NodeBackend, NwcConfig, NwcHandle, NwcService, SharedRelays};
use micronode_wallet::WalletLink;
use tracing::Instrument;

use crate::error::HostError;
use crate::registry::{Registry, StoredState, TenantRecord};

/// A tenant's node: watch-only, its keys in the tenant's signer.
pub type TenantNode = Node<RemoteKeys>;

/// What every tenant of a host shares.
pub(crate) struct Shared {
    /// The chain feed, fee estimator, broadcaster and graph.
    pub chain: ChainServices,
    /// The network.
    pub network: Network,
    /// The registry.
    pub registry: Arc<Registry>,
    /// The front door's tenants.
    pub directory: TenantDirectory,
    /// The gateway every tenant buys JIT channels from, and where it accepts peers.
    pub gateway: LspSettings,
    /// The address tenants' signer links listen on.
    pub signer_ip: IpAddr,
    /// Where tenants' signers may dial in from.
    pub signer_allow: IpAllowList,
    /// Every tenant node's channel settings.
    pub tenant_channels: ChannelSettings,
    /// The relays of the host's one Nostr Wallet Connect service, if it has one.
    pub nwc: Option<SharedRelays>,
    /// The relay tenants dial for browser-wallet pairing, if any.
    pub wallet_relay: Option<String>,
    /// In a fleet, where tenants' data keys come from.
    pub data_key: Option<DataKeySource>,
}

/// Where a tenant is in its life on this host, now.
pub(crate) enum Phase {
    /// Its signer link is starting.
    Starting,
    /// Its signer link listens; the signer has not connected yet.
    WaitingForSigner {
        pairing: Arc<PairingStore>,
        pairing_code: Option<String>,
        node_link_key: String,
    },
    /// Its node runs.
    Running {
        node: Arc<TenantNode>,
        tokens: TokenAuthority,
        node_link_key: String,
        /// Its part of the host's Nostr Wallet Connect service.
        nwc: Option<Arc<NwcHandle>>,
        /// Its browser-wallet pairing sessions.
        wallet: Option<Arc<WalletLink>>,
    },
    /// It failed; the reason.
    Failed(String),
}

/// A tenant of the host.
pub(crate) struct TenantSlot {
    /// Its registry record (kept in step with the registry).
    pub record: Mutex<TenantRecord>,
    /// Where it is now.
    pub phase: Mutex<Phase>,
    /// Its node's data directory.
    pub dir: PathBuf,
    /// Its place in the host's creation order (the registry's order at start, then each new
    /// tenant after the last): tenants created in the same second keep their order.
    pub seq: u64,
    /// In a fleet, the lease this host runs the tenant under (taken when it is released).
    pub lease: Mutex<Option<FleetLease>>,
    /// Its task (signer link, then node start), aborted when the host stops running it.
    pub task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl TenantSlot {
    /// A slot for `record`, number `seq` in creation order, its data in `tenants_dir/<id>`.
    pub fn new(
        record: TenantRecord,
        seq: u64,
        tenants_dir: &Path,
        lease: Option<FleetLease>,
    ) -> Arc<TenantSlot> {
        Arc::new(TenantSlot {
            seq,
            lease: Mutex::new(lease),
            task: Mutex::new(None),
            dir: tenants_dir.join(&record.id),
            record: Mutex::new(record),
            phase: Mutex::new(Phase::Starting),
        })
    }

    /// Its record now.
    pub fn record(&self) -> TenantRecord {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    pub(crate) fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// In a fleet: its signer link's state, from the lease this host holds (None off a
    /// fleet, or once the lease is released).
    fn fleet_link_state(&self) -> Result<Option<LinkState>, HostError> {
        let lease = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match lease.as_ref() {
            None => None,
            Some(lease) => Some(lease.link_state()?),
        })
    }

    /// Where its node's state is: in a fleet, its rows sealed under the key `source` names
    /// (the signer's, released by `keys`), fenced by this host's lease, refused if they do not
    /// open under it; else its data directory. Blocking.
    fn node_store(
        &self,
        keys: &RemoteKeys,
        source: Option<DataKeySource>,
    ) -> Result<StoreChoice, HostError> {
        let lease = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        let Some(lease) = lease.as_ref() else {
            return Ok(StoreChoice::SqliteInDataDir);
        };
        let store = match source {
            Some(DataKeySource::Signer) => lease.open_node_store(Some(&keys.state_key()))?,
            _ => lease.open_node_store(None)?,
        };
        Ok(StoreChoice::Given(store))
    }

    /// In a fleet, whether this host may no longer run the tenant: its lease was lost or its
    /// store refused a write because another host took the lease.
    pub fn run_elsewhere(&self) -> bool {
        let lost = self
            .lease
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|lease| lease.is_lost());
        lost || self.node().is_some_and(|node| node.is_fenced())
    }

    /// Its Nostr Wallet Connect service, if its node runs and the host has one.
    pub fn nwc(&self) -> Option<Arc<NwcHandle>> {
        match &*self.phase() {
            Phase::Running { nwc, .. } => nwc.clone(),
            _ => None,
        }
    }

    /// Its browser-wallet pairing sessions, if its node runs and the host has a relay.
    pub fn wallet(&self) -> Option<Arc<WalletLink>> {
        match &*self.phase() {
            Phase::Running { wallet, .. } => wallet.clone(),
            _ => None,
        }
    }

    /// Its node, if it runs.
    pub fn node(&self) -> Option<Arc<TenantNode>> {
        match &*self.phase() {
            Phase::Running { node, .. } => Some(node.clone()),
            _ => None,
        }
    }

    /// A new one-time pairing code, if the tenant waits for a signer to pair.
    pub fn new_pairing_code(&self) -> Result<Option<String>, HostError> {
        let mut phase = self.phase();
        let Phase::WaitingForSigner {
            pairing,
            pairing_code,
            ..
        } = &mut *phase
        else {
            return Ok(None);
        };
        if pairing.paired_signer().is_some() {
            return Ok(None);
        }
        let code = pairing
            .new_pairing_code(DEFAULT_PAIRING_TTL)
            .map_err(|e| HostError::WrongState(format!("cannot make a pairing code: {e}")))?
            .reveal();
        *pairing_code = Some(code.clone());
        Ok(Some(code))
    }

    /// Serves its API at the front door and its NWC apps (when it runs and is not
    /// suspended), or refuses them.
    pub fn apply_state(&self, directory: &TenantDirectory) {
        let record = self.record();
        let Some(node_id) = record.node_id else {
            return;
        };
        let phase = self.phase();
        if let Phase::Running { nwc: Some(nwc), .. } = &*phase {
            nwc.set_paused(record.state != StoredState::Active);
        }
        match (&*phase, record.state) {
            (
                Phase::Running {
                    node,
                    tokens,
                    wallet,
                    ..
                },
                StoredState::Active,
            ) => directory.serve(
                &node_id,
                TenantApi::with_pairing(
                    node.clone(),
                    Arc::new(tokens.clone()),
                    wallet.clone().map(|w| w as Arc<dyn PairingBackend>),
                ),
            ),
            (_, StoredState::Active) => directory.remove(&node_id),
            (_, StoredState::Exported) => directory.remove(&node_id),
            (_, StoredState::Suspended | StoredState::Deleting) => directory.suspend(&node_id),
        }
    }
}

/// Starts the tenant's task: its signer link, then its node once the signer connects. A
/// failure or a panic marks the tenant failed; the host goes on.
pub(crate) fn launch(slot: Arc<TenantSlot>, shared: Arc<Shared>) {
    let record = slot.record();
    let span = tracing::info_span!("tenant", tenant = %record.id, name = %record.name);
    let task = tokio::spawn(run(slot.clone(), shared).instrument(span.clone()));
    *slot.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
    tokio::spawn(
        async move {
            let failure = match task.await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(e) if e.is_panic() => format!("its task panicked: {}", panic_text(e)),
                Err(_) => return, // cancelled: the host is stopping
            };
            tracing::error!(failure = %failure, "tenant failed; the host goes on");
            slot.set_phase(Phase::Failed(failure));
        }
        .instrument(span),
    );
}

fn panic_text(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

async fn run(slot: Arc<TenantSlot>, shared: Arc<Shared>) -> Result<(), HostError> {
    let record = slot.record();
    let listen = SocketAddr::new(shared.signer_ip, record.signer_port);
    let dir = slot.dir.clone();
    let allow = shared.signer_allow.clone();
    let link_state = slot.fleet_link_state()?.unwrap_or(LinkState::InDataDir);
    let waiting = tokio::task::spawn_blocking(move || {
        micronode_node::remote::attach::listen_with(link_state, &dir, listen, &allow)
    })
    .await??;
    let node_link_key = waiting.node_link_key();
    slot.set_phase(Phase::WaitingForSigner {
        pairing: waiting.pairing_store(),
        pairing_code: waiting.pairing_code.clone(),
        node_link_key: node_link_key.clone(),
    });
    tracing::info!(signer_listen = %waiting.listen_addr(), "tenant waits for its signer");
    let keys = waiting.connected().await?;
    let node_id = keys.node_id().to_string();
    match &record.node_id {
        Some(known) if *known != node_id => {
            return Err(HostError::WrongState(format!(
                "a signer of another node ({node_id}) connected; this tenant's node is {known}"
            )))
        }
        Some(_) => {}
        None => {
            let (registry, id, node) =
                (shared.registry.clone(), record.id.clone(), node_id.clone());
            tokio::task::spawn_blocking(move || registry.set_node_id(&id, &node)).await??;
            slot.record
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .node_id = Some(node_id.clone());
        }
    }
    let mut config = NodeConfig::new(&slot.dir, shared.network);
    config.alias = record.name.clone();
    config.channels = shared.tenant_channels.clone();
    let (keys, store) = {
        let (slot, source) = (slot.clone(), shared.data_key);
        tokio::task::spawn_blocking(move || {
            let store = slot.node_store(&keys, source);
            (keys, store)
        })
        .await?
    };
    config.store = store?;
    config.liquidity = LiquiditySettings {
        lsps2_service: None,
        lsp: Some(shared.gateway.clone()),
    };
    let node = Arc::new(Node::start(config, Arc::new(keys), shared.chain.clone()).await?);
    let root = node.keys_app_token_root().ok_or_else(|| {
        HostError::WrongState("the tenant's signer gave no app token root".into())
    })?;
    let (dir, tenant) = (slot.dir.clone(), node_id.clone());
    let tokens =
        tokio::task::spawn_blocking(move || TokenAuthority::open_for_signer(&dir, &tenant, &root))
            .await?
            .map_err(|e| HostError::WrongState(format!("opening the tenant's token store: {e}")))?;
    let nwc = match &shared.nwc {
        Some(relays) => {
            let config = NwcConfig::new(slot.dir.join("nwc"), Vec::new());
            let backend = NodeBackend::new(node.clone());
            match NwcService::start_shared(relays, &record.id, config, backend).await {
                Ok(service) => Some(Arc::new(service)),
                // The node and its API run on; only this tenant's NWC apps go unanswered.
                Err(e) => {
                    tracing::error!(error = %e, "the tenant's NWC service did not start");
                    None
                }
            }
        }
        None => None,
    };
    let wallet = match &shared.wallet_relay {
        Some(relay) => {
            // Nobody holds the sender: the in-process API's long calls end with the host.
            let (_, stop) = tokio::sync::watch::channel(false);
            let auth: Arc<dyn micronode_api::Authenticator> = Arc::new(tokens.clone());
            let nwc_control = nwc.as_ref().map(|handle| {
                Arc::new(micronode_wallet::nwc::NwcTunnel::new(handle))
                    as Arc<dyn micronode_wallet::nwc::NwcControl>
            });
            match micronode_wallet::start_for_node(node.clone(), auth, relay, nwc_control, stop)
                .await
            {
                Ok(link) => Some(link),
                // The node and its API run on; only its browser pairing is missing.
                Err(e) => {
                    tracing::error!(error = %e, "the tenant's wallet pairing did not start");
                    None
                }
            }
        }
        None => None,
    };
    slot.set_phase(Phase::Running {
        node,
        tokens,
        node_link_key,
        nwc,
        wallet,
    });
    slot.apply_state(&shared.directory);
    tracing::info!(node_id = %node_id, "tenant node is running");
    Ok(())
}
