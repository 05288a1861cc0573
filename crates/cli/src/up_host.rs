//! The host in `micronode up`: one [`Host`] in this process with the gateway (serving JIT
//! channels) and the tenant, its front door and its admin API; the tenant is provisioned
//! through the admin API, as an operator would, and its signer (a separate process) pairs with
//! the enrolment bundle.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bitcoin::Network;
use micronode_chain::ChainServices;
use micronode_host::{Host, HostConfig, TenantNode, ADMIN_COOKIE_FILE};
use micronode_node::{ChannelSettings, LiquiditySettings, NodeConfig};
use micronode_proto::v1;
use micronode_proto::v1::admin_client::AdminClient;

use crate::host_cmd::authed;
use crate::up_signer::SignerChild;

/// The tenant's name on the host.
pub const TENANT_NAME: &str = "tenant";
/// How long the tenant's signer may take to connect and its node to start.
const TENANT_START_TIMEOUT: Duration = Duration::from_secs(120);

/// The host `up` runs, and where it serves.
pub struct UpHost {
    /// The host.
    pub host: Arc<Host>,
    /// Its front door: every tenant's API (and the gateway's, with its cookie).
    pub door: SocketAddr,
    /// Its admin API.
    pub admin: SocketAddr,
}

/// Starts the host in `<regtest>/host` on `chain`, its front door on `api_port` (a free port if
/// that one is taken), its admin API on a free loopback port, NWC for its tenants on
/// `nwc_relay`, and browser-wallet pairing through the mailbox relay at `wallet_relay`.
pub async fn start(
    regtest: &Path,
    chain: &ChainServices,
    api_port: u16,
    nwc_relay: &str,
    wallet_relay: &str,
) -> anyhow::Result<UpHost> {
    let dir = regtest.join("host");
    let mut gateway = NodeConfig::new(dir.join("gateway"), Network::Regtest);
    gateway.alias = "gateway".into();
    gateway.listen_addr = Some(([127, 0, 0, 1], 0).into());
    gateway.liquidity = LiquiditySettings {
        lsps2_service: Some(Default::default()),
        lsp: None,
    };
    let config = HostConfig {
        dir,
        network: Network::Regtest,
        gateway,
        signer_ip: [127, 0, 0, 1].into(),
        signer_allow: Default::default(),
        tenant_channels: ChannelSettings {
            announce_channels: false,
            max_channels: 16,
            max_peers: 16,
            ..ChannelSettings::for_network(Network::Regtest)
        },
        tenant_api_rate: Default::default(),
        api_rate_per_ip: micronode_api::RateLimit::UNLIMITED,
        nwc_relays: vec![nwc_relay.to_string()],
        tenant_nwc_rate: Default::default(),
        wallet_relay: Some(wallet_relay.to_string()),
        fleet: None,
    };
    let host = Host::start(config, chain.clone()).await?;
    let wanted: SocketAddr = ([127, 0, 0, 1], api_port).into();
    let door = match micronode_api::serve_front_door(
        host.directory(),
        wanted,
        Default::default(),
        std::future::pending(),
    )
    .await
    {
        Ok((addr, _)) => addr,
        Err(_) => {
            micronode_api::serve_front_door(
                host.directory(),
                ([127, 0, 0, 1], 0).into(),
                Default::default(),
                std::future::pending(),
            )
            .await?
            .0
        }
    };
    let (admin, _) = micronode_host::serve_admin(
        host.clone(),
        ([127, 0, 0, 1], 0).into(),
        std::future::pending(),
    )
    .await?;
    Ok(UpHost { host, door, admin })
}

/// Provisions the tenant through the admin API (or finds it, on a later run), starts its
/// signer with the enrolment bundle, and returns its node once the signer has connected.
pub async fn tenant(
    up: &UpHost,
    regtest: &Path,
    bitcoind: &micronode_testenv::Bitcoind,
) -> anyhow::Result<(Arc<TenantNode>, SignerChild)> {
    let cookie = micronode_api::read_cookie(up.host.dir().join(ADMIN_COOKIE_FILE))?;
    let auth: tonic::metadata::MetadataValue<_> = micronode_api::bearer(&cookie).parse()?;
    let mut admin = AdminClient::connect(format!("http://{}", up.admin))
        .await
        .context("connecting to the host's admin API")?;
    let listed = admin
        .list_tenants(authed(&auth, v1::ListTenantsRequest {}))
        .await?
        .into_inner();
    let (tenant, code) = match listed.tenants.into_iter().find(|t| t.name == TENANT_NAME) {
        Some(tenant) => (tenant, None),
        None => {
            let request = v1::CreateTenantRequest {
                name: TENANT_NAME.into(),
            };
            let enrolment = admin
                .create_tenant(authed(&auth, request))
                .await?
                .into_inner();
            let tenant = enrolment
                .tenant
                .ok_or_else(|| anyhow!("the host's enrolment names no tenant"))?;
            eprintln!(
                "      provisioned tenant {} through the admin API; its signer dials {}",
                tenant.id, tenant.signer_address
            );
            (tenant, Some(enrolment.pairing_code))
        }
    };
    let signer_address: SocketAddr = tenant
        .signer_address
        .parse()
        .context("the host gave no signer address")?;
    let signer =
        crate::up_signer::start(regtest, signer_address, code.as_deref(), bitcoind).await?;
    let deadline = Instant::now() + TENANT_START_TIMEOUT;
    let node = loop {
        if let Ok(node) = up.host.tenant_node(&tenant.id) {
            break node;
        }
        if let Ok(view) = up.host.tenant(&tenant.id) {
            if let micronode_host::TenantStatus::Failed(why) = view.status {
                bail!("the tenant failed to start: {why}");
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the tenant's signer did not connect; see {}",
                signer.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if node.node_id().to_string() != signer.node_id {
        bail!("the tenant's signer and node disagree on the node id");
    }
    Ok((node, signer))
}
