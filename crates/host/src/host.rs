//! [`Host`]: the operator's gateway and every tenant node in one process, on one chain feed.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::Network;
use micronode_api::TenantDirectory;
use micronode_api::{CookieAuth, RateLimit, TenantApi};
use micronode_chain::ChainServices;
use micronode_node::fleet::{DataKeySource, FleetKey, FleetLease};
use micronode_node::store::PgDatabase;
use micronode_node::{ChannelSettings, LocalKeys, LspSettings, Node, NodeConfig};
use tokio::sync::watch;

use crate::error::HostError;
use crate::registry::{Registry, StoredState, TenantRecord};
use crate::tenant::{launch, Phase, Shared, TenantNode, TenantSlot};

/// The gateway: the operator's own node, keys in-process, serving JIT channels.
pub type GatewayNode = Node<LocalKeys>;

/// How often the host looks for deleting tenants whose channels have closed.
const DELETE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Settings of a host.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The host's directory: registry, admin cookie, gateway and tenants.
    pub dir: PathBuf,
    /// The network.
    pub network: Network,
    /// The gateway's node settings (its `data_dir` is `<dir>/gateway` whatever is set here).
    pub gateway: NodeConfig,
    /// The address tenants' signer links listen on (each tenant has its own port).
    pub signer_ip: IpAddr,
    /// Where tenants' signers may dial in from (the pairing and pinned keys still decide
    /// which signer a tenant serves).
    pub signer_allow: micronode_node::edge::IpAllowList,
    /// Every tenant node's channel settings.
    pub tenant_channels: ChannelSettings,
    /// The calls each tenant may make at the front door.
    pub tenant_api_rate: RateLimit,
    /// The calls each remote address may make at the front door, over all tenants.
    pub api_rate_per_ip: RateLimit,
    /// The relays of the host's Nostr Wallet Connect service (none: no NWC). One set of
    /// connections serves every tenant; each tenant's connections live in its own database,
    /// `tenants/<id>/nwc`.
    pub nwc_relays: Vec<String>,
    /// The NWC requests each tenant may make, over all its app connections together.
    pub tenant_nwc_rate: micronode_nwc::RateLimit,
    /// The mailbox relay tenants' nodes dial for browser-wallet pairing (`docs/pairing.md`);
    /// none: no pairing.
    pub wallet_relay: Option<String>,
    /// In a fleet: hosts sharing one PostgreSQL database run the tenants between them
    /// (docs/fleet.md). None: this host alone, its registry and tenants on its disk.
    pub fleet: Option<FleetHosting>,
}

/// How a host takes part in a fleet.
#[derive(Clone, Debug)]
pub struct FleetHosting {
    /// The fleet's database: registry, leases and every tenant's sealed state.
    pub db: PgDatabase,
    /// The operator's fleet key: tenants' data keys and link identities derive from it.
    pub key: Arc<FleetKey>,
    /// This host's name in the fleet's leases (unique per host).
    pub holder: String,
    /// How long a lease lasts unless renewed: a dead host's tenants are taken after it.
    pub lease: Duration,
    /// Where each tenant's data key comes from (docs/adr/0007).
    pub data_key: DataKeySource,
    /// The fleet's gateway, run as a node of its own (`node run`): every host's tenants buy
    /// their channels from it, so a host's loss leaves their channels' peer up.
    pub gateway: LspSettings,
}

/// The gateway's API cookie in the host directory: the operator's credential for its own node
/// at the front door (header `x-micronode-tenant: <gateway node id>`). No tenant accepts it.
pub const GATEWAY_COOKIE_FILE: &str = "gateway.cookie";

/// A tenant as the operator sees it: lifecycle and connectivity, never funds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantView {
    /// Its registry record.
    pub record: TenantRecord,
    /// Where it is now.
    pub status: TenantStatus,
    /// Where its signer dials.
    pub signer_address: SocketAddr,
    /// Whether its signer is connected now.
    pub signer_connected: bool,
    /// How many channels it has.
    pub channels: usize,
    /// The one-time pairing code, while it waits for its first signer.
    pub pairing_code: Option<String>,
    /// The fingerprint of its node's signer-link key, once known.
    pub node_link_key: Option<String>,
}

/// A tenant's status now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantStatus {
    /// Its signer has not connected yet.
    WaitingForSigner,
    /// Its node runs and its API is served.
    Active,
    /// Its node runs; its API is refused.
    Suspended,
    /// Its channels are closing before it is deleted.
    Deleting,
    /// It failed, for this reason.
    Failed(String),
}

/// What [`Host::delete_tenant`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// The tenant is gone; its data is under `<host dir>/deleted/`.
    Deleted,
    /// Its channels are closing (this many); the host deletes it once they have.
    Closing(usize),
}

/// A running host.
pub struct Host {
    pub(crate) shared: Arc<Shared>,
    dir: PathBuf,
    /// The gateway, when this host runs it (not in a fleet, where it is a node of its own).
    gateway: Option<Arc<GatewayNode>>,
    tenants: RwLock<BTreeMap<String, Arc<TenantSlot>>>,
    /// The next tenant's place in creation order.
    next_seq: std::sync::atomic::AtomicU64,
    pub(crate) fleet: Option<FleetHosting>,
    pub(crate) stop: watch::Sender<bool>,
}

impl Host {
    /// Starts the gateway and every registered tenant on `chain`; in a fleet, takes the
    /// tenants no live host runs, up to this host's share.
    pub async fn start(config: HostConfig, chain: ChainServices) -> Result<Arc<Host>, HostError> {
        let dir = config.dir.clone();
        let (registry, records, gateway_keys) = {
            let dir = dir.clone();
            let network = config.network;
            let fleet_db = config.fleet.as_ref().map(|f| f.db.clone());
            tokio::task::spawn_blocking(move || -> Result<_, HostError> {
                micronode_files::own_private_dir(&dir)?;
                micronode_files::own_private_dir(&dir.join("tenants"))?;
                let Some(db) = fleet_db else {
                    let registry = Registry::open(&dir)?;
                    let records = registry.all()?;
                    let keys = LocalKeys::load_or_create(&dir.join("gateway"), network)?;
                    return Ok((registry, records, Some(keys)));
                };
                // A fleet's tenants are taken under leases by the takeover rounds.
                Ok((Registry::fleet(db), Vec::new(), None))
            })
            .await??
        };
        let (gateway, gateway_lsp) = match gateway_keys {
            Some(keys) => {
                let mut gateway_config = config.gateway.clone();
                gateway_config.data_dir = dir.join("gateway");
                let gateway =
                    Arc::new(Node::start(gateway_config, Arc::new(keys), chain.clone()).await?);
                let addr = gateway.listen_addr().ok_or_else(|| {
                    HostError::WrongState(
                        "the gateway must listen for peers (tenants dial it)".into(),
                    )
                })?;
                let lsp = LspSettings::new(gateway.node_id(), loopback_if_unspecified(addr));
                (Some(gateway), lsp)
            }
            None => {
                let fleet = config.fleet.as_ref().ok_or_else(|| {
                    HostError::WrongState("a host without a gateway must be in a fleet".into())
                })?;
                (None, fleet.gateway.clone())
            }
        };
        let nwc = if config.nwc_relays.is_empty() {
            None
        } else {
            let nwc_config = micronode_nwc::NwcConfig::new(dir.join("nwc"), config.nwc_relays);
            Some(micronode_nwc::SharedRelays::start(nwc_config, config.tenant_nwc_rate).await?)
        };
        let shared = Arc::new(Shared {
            chain,
            network: config.network,
            registry: Arc::new(registry),
            directory: TenantDirectory::with_rate_limit(config.tenant_api_rate)
                .with_ip_rate_limit(config.api_rate_per_ip),
            gateway: gateway_lsp,
            signer_ip: config.signer_ip,
            signer_allow: config.signer_allow.clone(),
            tenant_channels: config.tenant_channels.clone(),
            nwc,
            wallet_relay: config.wallet_relay.clone(),
            data_key: config.fleet.as_ref().map(|f| f.data_key),
        });
        if let Some(gateway) = &gateway {
            let cookie = CookieAuth::create(dir.join(GATEWAY_COOKIE_FILE))?;
            shared.directory.serve(
                &gateway.node_id().to_string(),
                TenantApi::new(gateway.clone(), Arc::new(cookie)),
            );
        }
        let (stop, _) = watch::channel(false);
        let host = Arc::new(Host {
            shared,
            dir,
            gateway,
            tenants: RwLock::new(BTreeMap::new()),
            next_seq: Default::default(),
            fleet: config.fleet,
            stop,
        });
        for record in records {
            host.add_slot(record, None);
        }
        tokio::spawn(finish_deletions(
            Arc::downgrade(&host),
            host.stop.subscribe(),
        ));
        if let Some(fleet) = &host.fleet {
            tokio::spawn(crate::fleet::take_over_rounds(
                Arc::downgrade(&host),
                host.stop.subscribe(),
                fleet.lease,
            ));
        }
        Ok(host)
    }

    /// Runs `record`'s tenant on this host; in a fleet, under `lease`.
    pub(crate) fn add_slot(
        &self,
        record: TenantRecord,
        lease: Option<FleetLease>,
    ) -> Arc<TenantSlot> {
        let seq = self
            .next_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = TenantSlot::new(record.clone(), seq, &self.dir.join("tenants"), lease);
        self.write_tenants().insert(record.id, slot.clone());
        launch(slot.clone(), self.shared.clone());
        slot
    }

    pub(crate) fn write_tenants(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<TenantSlot>>> {
        self.tenants.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn slots(&self) -> Vec<Arc<TenantSlot>> {
        let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        let mut slots: Vec<_> = tenants.values().cloned().collect();
        slots.sort_by_key(|s| s.seq);
        slots
    }

    /// The host's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The chain services every node of the host shares.
    pub fn chain(&self) -> &ChainServices {
        &self.shared.chain
    }

    /// The gateway node, when this host runs it (not in a fleet).
    pub fn gateway(&self) -> Option<&Arc<GatewayNode>> {
        self.gateway.as_ref()
    }

    /// The node tenants buy their channels from: this host's gateway, or the fleet's.
    pub fn gateway_peer(&self) -> &LspSettings {
        &self.shared.gateway
    }

    /// The network.
    pub fn network(&self) -> Network {
        self.shared.network
    }

    /// The front door's tenants (serve it with [`micronode_api::serve_front_door`]).
    pub fn directory(&self) -> TenantDirectory {
        self.shared.directory.clone()
    }

    /// The tenant whose id or name is `key`: by id from the map, else by name.
    fn slot(&self, key: &str) -> Result<Arc<TenantSlot>, HostError> {
        let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        tenants
            .get(key)
            .or_else(|| tenants.values().find(|s| s.record().name == key))
            .cloned()
            .ok_or_else(|| HostError::UnknownTenant(key.chars().take(80).collect()))
    }

    /// A tenant's node, if it runs (for the host's own wiring: NWC, tests).
    pub fn tenant_node(&self, key: &str) -> Result<Arc<TenantNode>, HostError> {
        self.slot(key)?
            .node()
            .ok_or_else(|| HostError::NotRunning(key.chars().take(80).collect()))
    }

    /// A tenant's Nostr Wallet Connect service, if its node runs and the host serves NWC:
    /// its connections are made on its store.
    pub fn tenant_nwc(&self, key: &str) -> Result<Arc<micronode_nwc::NwcHandle>, HostError> {
        self.slot(key)?
            .nwc()
            .ok_or_else(|| HostError::NotRunning(key.chars().take(80).collect()))
    }

    /// Provisions a tenant: records it, reserves its signer port and starts waiting for its
    /// signer. The view carries the one-time pairing code.
    pub async fn create_tenant(&self, name: &str) -> Result<TenantView, HostError> {
        crate::registry::check_name(name)?;
        // The port is reserved by binding it and recorded, so the signer's address survives
        // restarts; the tenant's link binds it again at once.
        let probe = std::net::TcpListener::bind(SocketAddr::new(self.shared.signer_ip, 0))
            .map_err(HostError::io("reserving a signer port"))?;
        let port = probe
            .local_addr()
            .map_err(HostError::io("reserving a signer port"))?
            .port();
        drop(probe);
        let registry = self.shared.registry.clone();
        let name = name.to_string();
        let record = tokio::task::spawn_blocking(move || registry.insert(&name, port)).await??;
        tracing::info!(tenant = %record.id, name = %record.name, "tenant created");
        // In a fleet, the host that creates a tenant runs it first (other hosts leave a
        // tenant that never had a lease to its creator for a while: fleet.rs).
        let lease = match &self.fleet {
            Some(fleet) => Some(crate::fleet::take_lease(fleet, &record.id).await?),
            None => None,
        };
        let slot = self.add_slot(record, lease);
        // The link starts on its own task; the pairing code is there in a moment.
        for _ in 0..200 {
            if !matches!(&*slot.phase(), Phase::Starting) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(self.view(&slot))
    }

    /// Every tenant, oldest first.
    pub fn list_tenants(&self) -> Vec<TenantView> {
        self.slots().iter().map(|s| self.view(s)).collect()
    }

    /// One tenant, by id or name.
    pub fn tenant(&self, key: &str) -> Result<TenantView, HostError> {
        let slot = self.slot(key)?;
        Ok(self.view(&slot))
    }

    /// A new pairing code for a tenant still waiting for its first signer.
    pub fn new_pairing_code(&self, key: &str) -> Result<TenantView, HostError> {
        let slot = self.slot(key)?;
        if slot.new_pairing_code()?.is_none() {
            return Err(HostError::WrongState(
                "this tenant's signer is paired already (or its link has not started)".into(),
            ));
        }
        Ok(self.view(&slot))
    }

    /// Suspends a tenant: its API and apps are refused; its node keeps watching the chain.
    pub async fn suspend_tenant(&self, key: &str) -> Result<TenantView, HostError> {
        self.set_state(key, StoredState::Suspended, StoredState::Active)
            .await
    }

    /// Serves a suspended tenant again.
    pub async fn resume_tenant(&self, key: &str) -> Result<TenantView, HostError> {
        self.set_state(key, StoredState::Active, StoredState::Suspended)
            .await
    }

    async fn set_state(
        &self,
        key: &str,
        to: StoredState,
        from: StoredState,
    ) -> Result<TenantView, HostError> {
        let slot = self.slot(key)?;
        let record = slot.record();
        if record.state == to {
            return Ok(self.view(&slot));
        }
        if record.state != from {
            return Err(HostError::WrongState(format!(
                "tenant {} is {:?}",
                record.id, record.state
            )));
        }
        let registry = self.shared.registry.clone();
        let id = record.id.clone();
        tokio::task::spawn_blocking(move || registry.set_state(&id, to)).await??;
        slot.record.lock().unwrap_or_else(|e| e.into_inner()).state = to;
        slot.apply_state(&self.shared.directory);
        tracing::info!(tenant = %record.id, state = ?to, "tenant state changed");
        Ok(self.view(&slot))
    }

    /// Deletes a tenant. Refused while it has channels or funds waiting on chain after a
    /// close, unless `close_channels`: then its channels are closed cooperatively and it is
    /// deleted once they have closed.
    pub async fn delete_tenant(
        &self,
        key: &str,
        close_channels: bool,
    ) -> Result<Deletion, HostError> {
        let slot = self.slot(key)?;
        let record = slot.record();
        let node = match (slot.node(), &record.node_id) {
            (Some(node), _) => Some(node),
            // Never paired: it has no node and no funds.
            (None, None) => None,
            (None, Some(_)) => return Err(HostError::NotRunning(record.id)),
        };
        if let Some(node) = node {
            let channels = node.list_channels();
            let pending_sat = node.lightning_balance().pending_on_chain_sat;
            if !channels.is_empty() || pending_sat > 0 {
                if !close_channels {
                    return Err(HostError::HasFunds {
                        tenant: record.id,
                        channels: channels.len(),
                        pending_sat,
                    });
                }
                let registry = self.shared.registry.clone();
                let id = record.id.clone();
                tokio::task::spawn_blocking(move || registry.set_state(&id, StoredState::Deleting))
                    .await??;
                slot.record.lock().unwrap_or_else(|e| e.into_inner()).state = StoredState::Deleting;
                slot.apply_state(&self.shared.directory);
                let ids: Vec<String> = channels
                    .iter()
                    .filter(|c| c.is_ready)
                    .map(|c| c.channel_id.clone())
                    .collect();
                let closing = ids.len();
                tokio::task::spawn_blocking(move || {
                    for id in ids {
                        node.close_channel(&id, false)?;
                    }
                    Ok::<_, HostError>(())
                })
                .await??;
                tracing::info!(tenant = %record.id, closing, "tenant's channels closing before deletion");
                return Ok(Deletion::Closing(closing));
            }
        }
        self.remove(&slot).await?;
        Ok(Deletion::Deleted)
    }

    /// Stops a tenant's node, forgets it and moves its data aside.
    async fn remove(&self, slot: &Arc<TenantSlot>) -> Result<(), HostError> {
        let record = slot.record();
        self.stop_slot(slot, "deleted").await?;
        crate::fleet::release_lease(slot).await;
        let registry = self.shared.registry.clone();
        let (id, dir, host_dir) = (record.id.clone(), slot.dir.clone(), self.dir.clone());
        tokio::task::spawn_blocking(move || -> Result<(), HostError> {
            registry.remove(&id)?;
            if dir.exists() {
                let deleted = host_dir.join("deleted");
                micronode_files::own_private_dir(&deleted)?;
                let stamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let to = deleted.join(format!("{id}-{stamp}"));
                std::fs::rename(&dir, &to).map_err(HostError::io("moving a tenant's data"))?;
            }
            Ok(())
        })
        .await??;
        tracing::info!(tenant = %record.id, name = %record.name, "tenant deleted");
        Ok(())
    }

    /// Stops a tenant's apps and node on this host and forgets its slot (its data stays).
    /// The node's stop is reported after the slot is gone.
    pub(crate) async fn stop_slot(
        &self,
        slot: &Arc<TenantSlot>,
        why: &str,
    ) -> Result<(), HostError> {
        let record = slot.record();
        if let Some(node_id) = &record.node_id {
            self.shared.directory.remove(node_id);
        }
        if let Some(nwc) = slot.nwc() {
            nwc.stop().await;
        }
        if let Some(wallet) = slot.wallet() {
            wallet.stop().await;
        }
        let stopped = match slot.node() {
            Some(node) => {
                let stopped = node.stop().await;
                // Its port and thread are freed now, whatever still holds the node.
                node.keys().close_link();
                stopped
            }
            None => Ok(()),
        };
        // Dropping the phase drops the node and its signer link (port and thread freed).
        slot.set_phase(Phase::Failed(why.into()));
        self.write_tenants().remove(&record.id);
        Ok(stopped?)
    }

    fn view(&self, slot: &TenantSlot) -> TenantView {
        let record = slot.record();
        let signer_address = SocketAddr::new(self.shared.signer_ip, record.signer_port);
        let phase = slot.phase();
        let (status, signer_connected, channels, pairing_code, node_link_key) = match &*phase {
            Phase::Starting => (TenantStatus::WaitingForSigner, false, 0, None, None),
            Phase::WaitingForSigner {
                pairing_code,
                node_link_key,
                ..
            } => (
                TenantStatus::WaitingForSigner,
                false,
                0,
                pairing_code.clone(),
                Some(node_link_key.clone()),
            ),
            Phase::Running {
                node,
                node_link_key,
                ..
            } => {
                let status = match record.state {
                    StoredState::Active => TenantStatus::Active,
                    StoredState::Suspended => TenantStatus::Suspended,
                    StoredState::Deleting => TenantStatus::Deleting,
                    StoredState::Exported => {
                        TenantStatus::Failed("exported: it has left this fleet".into())
                    }
                };
                (
                    status,
                    node.signer_online(),
                    node.list_channels().len(),
                    None,
                    Some(node_link_key.clone()),
                )
            }
            Phase::Failed(why) => (TenantStatus::Failed(why.clone()), false, 0, None, None),
        };
        TenantView {
            record,
            status,
            signer_address,
            signer_connected,
            channels,
            pairing_code,
            node_link_key,
        }
    }

    /// Stops every tenant node, then the gateway.
    pub async fn stop(&self) -> Result<(), HostError> {
        let _ = self.stop.send(true);
        for slot in self.slots() {
            if let Some(nwc) = slot.nwc() {
                nwc.stop().await;
            }
            if let Some(wallet) = slot.wallet() {
                wallet.stop().await;
            }
            if let Some(node) = slot.node() {
                if let Err(e) = node.stop().await {
                    tracing::warn!(tenant = %slot.record().id, error = %e, "tenant node did not stop cleanly");
                }
            }
        }
        for slot in self.slots() {
            crate::fleet::release_lease(&slot).await;
        }
        if let Some(relays) = &self.shared.nwc {
            relays.stop().await;
        }
        if let Some(gateway) = &self.gateway {
            gateway.stop().await?;
        }
        Ok(())
    }
}

/// Deletes the tenants whose channels have closed after a delete with `close_channels`.
async fn finish_deletions(host: std::sync::Weak<Host>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(DELETE_CHECK_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        let Some(host) = host.upgrade() else { return };
        for slot in host.slots() {
            if slot.record().state != StoredState::Deleting {
                continue;
            }
            let Some(node) = slot.node() else { continue };
            if node.list_channels().is_empty() && node.lightning_balance().pending_on_chain_sat == 0
            {
                if let Err(e) = host.remove(&slot).await {
                    tracing::error!(tenant = %slot.record().id, error = %e, "cannot finish deleting a tenant");
                }
            }
        }
    }
}

/// The address tenants dial the gateway on: loopback when it listens on every interface.
fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port())
    } else {
        addr
    }
}
