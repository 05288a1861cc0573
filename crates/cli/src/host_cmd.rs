//! `micronode host`: `run` a host (the gateway and every tenant in one process, or in a fleet
//! its share of the fleet's tenants) and manage its tenants through its admin API
//! (`tenant create|list|show|suspend|resume|delete|pair`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use std::sync::Arc;

use micronode_host::{FleetHosting, Host, HostConfig, ADMIN_ADDRESS_FILE, ADMIN_COOKIE_FILE};
use micronode_node::fleet::DataKeySource;
use micronode_node::store::PgDatabase;
use micronode_proto::v1;
use micronode_proto::v1::admin_client::AdminClient;
use serde::Serialize;

use crate::config::{micronode_home, network_dir, NodeSettings, ResolvedSettings};

/// `micronode host ...`.
#[derive(clap::Args, Debug)]
pub struct HostArgs {
    #[command(subcommand)]
    command: HostCommand,
}

#[derive(clap::Subcommand, Debug)]
enum HostCommand {
    /// Run a host until SIGINT/SIGTERM: the gateway (serving JIT channels), every tenant, the
    /// tenants' front door (`--api-listen`), the admin API (`--admin-listen`) and Prometheus
    /// metrics (`--metrics-listen`).
    Run(Box<RunArgs>),
    /// Manage the tenants of a running host.
    Tenant(TenantArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// A TOML file with settings (flags and MICRONODE_* variables override it).
    #[arg(long, short = 'c', env = "MICRONODE_CONFIG")]
    config: Option<PathBuf>,
    /// Allow mainnet. Only a flag can allow it, never a file or variable.
    #[arg(long)]
    allow_mainnet: bool,
    /// Address of the admin API [default: 127.0.0.1:10020]; keep it on loopback.
    #[arg(long, env = "MICRONODE_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Address of the Prometheus endpoint (`/metrics`) [default: 127.0.0.1:10030]; keep it
    /// on loopback or a private network (it has no authentication).
    #[arg(long, env = "MICRONODE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Calls a tenant may make at the front door per second (twice that at once); 0 for no
    /// limit [default: 100].
    #[arg(long, env = "MICRONODE_TENANT_API_RATE")]
    tenant_api_rate: Option<u32>,
    /// Calls one remote address may make at the front door per second, over all tenants
    /// (twice that at once); 0 for no limit [default: 0: behind a reverse proxy every call
    /// comes from one address].
    #[arg(long, env = "MICRONODE_API_RATE_PER_IP")]
    api_rate_per_ip: Option<u32>,
    /// NWC requests a tenant's apps may make together per second (twice that at once), on
    /// the host's one NWC service (`--nwc-relay`) [default: 20].
    #[arg(long, env = "MICRONODE_TENANT_NWC_RATE")]
    tenant_nwc_rate: Option<u32>,
    /// The most channels a tenant has at once; one more is refused [default: 16].
    #[arg(long, env = "MICRONODE_TENANT_MAX_CHANNELS")]
    tenant_max_channels: Option<u32>,
    /// The most peers a tenant connects to at once [default: 16].
    #[arg(long, env = "MICRONODE_TENANT_MAX_PEERS")]
    tenant_max_peers: Option<u32>,
    /// Run the browser wallet's mailbox relay (and its page) in this process on this address
    /// (e.g. 0.0.0.0:7448); tenants' nodes dial it unless `--wallet-relay` names another.
    #[arg(long, env = "MICRONODE_RELAY_LISTEN")]
    relay_listen: Option<std::net::SocketAddr>,
    /// The address tenants' signers dial (each tenant gets its own port) [default: 127.0.0.1].
    #[arg(long, env = "MICRONODE_TENANT_SIGNER_IP")]
    tenant_signer_ip: Option<IpAddr>,
    /// In a fleet, where each tenant's data key comes from: `signer` (released by the
    /// tenant's signer when it connects, held in memory only: the operator cannot read the
    /// state) or `operator` (derived from the fleet key) [default: signer]. Fixed for a fleet:
    /// state sealed under one opens under no other. See docs/adr/0007.
    #[arg(long, value_enum, env = "MICRONODE_FLEET_DATA_KEY")]
    fleet_data_key: Option<DataKeyArg>,
    /// The host's settings: `--data-dir` is the host directory [default:
    /// $MICRONODE_HOME/<network>/host], `--listen` the gateway's P2P address and
    /// `--api-listen` the tenants' front door (`--api-allow` who may call it),
    /// `--signer-allow` where tenants' signers may dial from, `--nwc-relay` the relays of the one Nostr
    /// Wallet Connect service of all tenants.
    #[command(flatten)]
    settings: NodeSettings,
}

/// `--fleet-data-key`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum DataKeyArg {
    /// Released by the tenant's signer.
    Signer,
    /// Derived from the operator's fleet key.
    Operator,
}

#[derive(clap::Args, Debug)]
struct TenantArgs {
    /// The host's directory, where its admin cookie and address are [default:
    /// $MICRONODE_HOME/regtest/host].
    #[arg(long, env = "MICRONODE_HOST_DIR")]
    host_dir: Option<PathBuf>,
    /// The admin API's address [default: the one the host recorded in its directory].
    #[arg(long)]
    admin: Option<SocketAddr>,
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
enum TenantCommand {
    /// Provision a tenant; prints its enrolment bundle (signer address and pairing code).
    Create {
        /// A unique name (letters, digits, '-', '_', '.').
        name: String,
    },
    /// Every tenant of the host.
    List,
    /// One tenant, by id or name.
    Show {
        /// Id or name.
        tenant: String,
    },
    /// Refuse the tenant's API and apps (its node keeps watching the chain).
    Suspend {
        /// Id or name.
        tenant: String,
    },
    /// Serve a suspended tenant again.
    Resume {
        /// Id or name.
        tenant: String,
    },
    /// Delete a tenant; refused while it has channels unless `--close-channels`.
    Delete {
        /// Id or name.
        tenant: String,
        /// Close its channels cooperatively first; the host deletes it once they have closed.
        #[arg(long)]
        close_channels: bool,
    },
    /// A new one-time pairing code for a tenant whose signer has not paired yet.
    Pair {
        /// Id or name.
        tenant: String,
    },
    /// Move a fleet tenant out: write its state to a new bundle file that only its signer's
    /// node can open, for another operator's fleet to import. Every host of this fleet stops
    /// running it, and none runs it again. Works on the fleet's database, not a host.
    Export {
        /// Id or name.
        tenant: String,
        /// The bundle file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// The fleet's database (a `postgres://` URL or key=value string).
        #[arg(long, env = "MICRONODE_FLEET_DATABASE")]
        fleet_database: String,
        /// How long to wait for the host running it to let go, in seconds.
        #[arg(long, default_value_t = 30)]
        wait_secs: u64,
    },
    /// Move a tenant in: record another fleet's bundle in this fleet's database. A host of
    /// the fleet takes it at once and waits for its signer to pair again (`tenant pair`
    /// there gives the code).
    Import {
        /// The bundle file `tenant export` wrote.
        bundle: PathBuf,
        /// The fleet's database (a `postgres://` URL or key=value string).
        #[arg(long, env = "MICRONODE_FLEET_DATABASE")]
        fleet_database: String,
    },
}

/// The line `host run` prints on stdout once it serves.
#[derive(Serialize)]
struct Ready {
    event: &'static str,
    network: String,
    gateway_node_id: String,
    gateway_p2p: Option<String>,
    api_listen: String,
    admin_listen: String,
    metrics_listen: String,
    admin_cookie: String,
    /// None in a fleet, whose gateway is a node of its own.
    gateway_cookie: Option<String>,
    /// This host's name in the fleet's leases, in a fleet.
    fleet_holder: Option<String>,
    tenants: usize,
}

/// In a fleet (`--fleet-database`): the database, the fleet key and the fleet's gateway
/// (`--lsp`), which every host's tenants buy their channels from.
async fn fleet_hosting(
    resolved: &ResolvedSettings,
    data_key: Option<DataKeyArg>,
) -> anyhow::Result<Option<FleetHosting>> {
    let Some(fleet) = &resolved.fleet else {
        anyhow::ensure!(
            data_key.is_none(),
            "--fleet-data-key applies to a fleet host only (with --fleet-database)"
        );
        return Ok(None);
    };
    let gateway = resolved.node.liquidity.lsp.clone().context(
        "a fleet host needs the fleet's gateway, a node of its own: --lsp <node id>@<host:port> \
         (docs/fleet.md)",
    )?;
    let (key, db) = crate::fleet_node::open(fleet).await?;
    Ok(Some(FleetHosting {
        db,
        key: Arc::new(key),
        holder: fleet.holder.clone(),
        lease: fleet.lease,
        data_key: match data_key.unwrap_or(DataKeyArg::Signer) {
            DataKeyArg::Signer => DataKeySource::Signer,
            DataKeyArg::Operator => DataKeySource::Operator,
        },
        gateway,
    }))
}

/// `tenant export|import`: on the fleet's database, not a host's admin API.
async fn transfer(command: &TenantCommand) -> anyhow::Result<()> {
    let command = command.clone();
    let moved = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let connect = |url: &str| PgDatabase::connect(url, 2).context("opening the fleet database");
        Ok(match command {
            TenantCommand::Export {
                tenant,
                out,
                fleet_database,
                wait_secs,
            } => micronode_host::transfer::export_tenant(
                &connect(&fleet_database)?,
                &tenant,
                &out,
                std::time::Duration::from_secs(wait_secs),
            )?,
            TenantCommand::Import {
                bundle,
                fleet_database,
            } => micronode_host::transfer::import_tenant(&connect(&fleet_database)?, &bundle)?,
            other => anyhow::bail!("{other:?} is not a transfer"),
        })
    })
    .await??;
    println!("{}", serde_json::to_string_pretty(&moved)?);
    Ok(())
}

/// Runs `micronode host`.
pub async fn run(args: HostArgs) -> anyhow::Result<()> {
    match args.command {
        HostCommand::Run(run) => serve(*run).await,
        HostCommand::Tenant(tenant) => manage(tenant).await,
    }
}

async fn serve(args: RunArgs) -> anyhow::Result<()> {
    let base = match &args.config {
        Some(path) => NodeSettings::from_file(path)?,
        None => NodeSettings::default(),
    };
    let mut settings = base.overridden_by(args.settings);
    anyhow::ensure!(
        settings.fleet_tenant.is_none(),
        "--fleet-tenant names the one node of `node run`; a fleet host runs the tenants of the \
         fleet's registry"
    );
    let network = settings.network.unwrap_or(bitcoin::Network::Regtest);
    if settings.data_dir.is_none() {
        settings.data_dir = Some(micronode_home().join(network_dir(network)).join("host"));
    }
    // The gateway serves JIT channels unless told not to.
    if settings.lsps2_service.is_none() {
        settings.lsps2_service = Some(true);
    }
    let resolved = settings.resolve(args.allow_mainnet)?;
    let chain = crate::daemon::start_chain(&resolved).await?;
    let mut gateway = resolved.node.clone();
    gateway.alias = "gateway".into();
    // The browser wallet's relay, in this process if asked for.
    let relay = match args.relay_listen {
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("the wallet relay cannot listen on {listen}"))?;
            Some(micronode_relay::RelayHandle::start_with(
                listener,
                micronode_relay::RelayConfig::default(),
                micronode_webapp::router(),
            )?)
        }
        None => None,
    };
    let wallet_relay = resolved
        .wallet_relay
        .clone()
        .or_else(|| relay.as_ref().map(|r| r.url()));
    let config = HostConfig {
        dir: resolved.node.data_dir.clone(),
        network: resolved.node.network,
        gateway,
        signer_ip: args.tenant_signer_ip.unwrap_or([127, 0, 0, 1].into()),
        signer_allow: resolved.signer_allow.clone(),
        // Tenants' channels are private: a tenant is reached through the gateway.
        tenant_channels: micronode_node::ChannelSettings {
            announce_channels: false,
            max_channels: args.tenant_max_channels.unwrap_or(16),
            max_peers: args.tenant_max_peers.unwrap_or(16),
            ..resolved.node.channels.clone()
        },
        tenant_api_rate: args
            .tenant_api_rate
            .map(micronode_api::RateLimit::per_second)
            .unwrap_or_default(),
        api_rate_per_ip: micronode_api::RateLimit::per_second(args.api_rate_per_ip.unwrap_or(0)),
        nwc_relays: resolved.nwc_relays.clone(),
        tenant_nwc_rate: nwc_rate(args.tenant_nwc_rate.unwrap_or(20)),
        wallet_relay,
        fleet: fleet_hosting(&resolved, args.fleet_data_key).await?,
    };
    let host = Host::start(config, chain.clone())
        .await
        .context("starting the host")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (api_addr, api_task) = micronode_api::serve_front_door(
        host.directory(),
        resolved.api_listen,
        micronode_api::ServeOptions {
            allow: resolved.api_allow.clone(),
            ..Default::default()
        },
        stopped(stop_rx.clone()),
    )
    .await
    .context("starting the tenants' front door")?;
    let admin_listen = args
        .admin_listen
        .unwrap_or_else(|| ([127, 0, 0, 1], 10020).into());
    let (admin_addr, admin_task) =
        micronode_host::serve_admin(host.clone(), admin_listen, stopped(stop_rx.clone()))
            .await
            .context("starting the admin API")?;
    let metrics_listen = args
        .metrics_listen
        .unwrap_or_else(|| ([127, 0, 0, 1], 10030).into());
    let (metrics_addr, metrics_task) =
        micronode_host::serve_metrics(host.clone(), metrics_listen, stopped(stop_rx))
            .await
            .context("starting the metrics endpoint")?;
    let ready = Ready {
        event: "host_ready",
        network: resolved.node.network.to_string(),
        gateway_node_id: host.gateway_peer().node_id.to_string(),
        gateway_p2p: Some(host.gateway_peer().addr.to_string()),
        api_listen: api_addr.to_string(),
        admin_listen: admin_addr.to_string(),
        metrics_listen: metrics_addr.to_string(),
        admin_cookie: host.dir().join(ADMIN_COOKIE_FILE).display().to_string(),
        gateway_cookie: host.gateway().map(|_| {
            host.dir()
                .join(micronode_host::GATEWAY_COOKIE_FILE)
                .display()
                .to_string()
        }),
        fleet_holder: resolved.fleet.as_ref().map(|f| f.holder.clone()),
        tenants: host.list_tenants().len(),
    };
    println!("{}", serde_json::to_string(&ready)?);
    tracing::info!(api = %api_addr, admin = %admin_addr, "host is serving");
    crate::daemon::wait_for_shutdown_signal().await;
    tracing::info!("host shutting down");
    let _ = stop_tx.send(true);
    let _ = api_task.await;
    let _ = admin_task.await;
    let _ = metrics_task.await;
    host.stop().await.context("stopping the host")?;
    if let Some(relay) = relay {
        if let Err(e) = relay.shutdown().await {
            tracing::warn!(error = %e, "the wallet relay did not stop cleanly");
        }
    }
    if let Err(e) = chain.save_graph() {
        tracing::warn!(error = %e, "could not save the network graph");
    }
    Ok(())
}

/// An admin client with the host's cookie.
async fn admin_client(
    args: &TenantArgs,
) -> anyhow::Result<(
    AdminClient<tonic::transport::Channel>,
    tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
)> {
    let dir = args
        .host_dir
        .clone()
        .unwrap_or_else(|| micronode_home().join("regtest").join("host"));
    let addr = match args.admin {
        Some(addr) => addr,
        None => {
            let file = dir.join(ADMIN_ADDRESS_FILE);
            std::fs::read_to_string(&file)
                .with_context(|| format!("reading {} (is the host running?)", file.display()))?
                .trim()
                .parse()
                .with_context(|| format!("{} holds no address", file.display()))?
        }
    };
    let cookie = micronode_api::read_cookie(dir.join(ADMIN_COOKIE_FILE))?;
    let auth = micronode_api::bearer(&cookie).parse()?;
    let client = AdminClient::connect(format!("http://{addr}"))
        .await
        .with_context(|| format!("connecting to the host's admin API at {addr}"))?;
    Ok((client, auth))
}

/// `msg` with the admin credential.
pub(crate) fn authed<T>(
    auth: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    msg: T,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(msg);
    request
        .metadata_mut()
        .insert(micronode_proto::AUTHORIZATION_METADATA, auth.clone());
    request
}

async fn manage(args: TenantArgs) -> anyhow::Result<()> {
    if matches!(
        args.command,
        TenantCommand::Export { .. } | TenantCommand::Import { .. }
    ) {
        return transfer(&args.command).await;
    }
    let (mut client, auth) = admin_client(&args).await?;
    let refer = |tenant: &str| v1::TenantRef {
        tenant: tenant.to_string(),
    };
    let out = match &args.command {
        TenantCommand::Create { name } => {
            let e = client
                .create_tenant(authed(
                    &auth,
                    v1::CreateTenantRequest { name: name.clone() },
                ))
                .await?
                .into_inner();
            enrolment_json(e)
        }
        TenantCommand::List => {
            let list = client
                .list_tenants(authed(&auth, v1::ListTenantsRequest {}))
                .await?
                .into_inner();
            serde_json::Value::Array(list.tenants.into_iter().map(tenant_json).collect())
        }
        TenantCommand::Show { tenant } => tenant_json(
            client
                .get_tenant(authed(&auth, refer(tenant)))
                .await?
                .into_inner(),
        ),
        TenantCommand::Suspend { tenant } => tenant_json(
            client
                .suspend_tenant(authed(&auth, refer(tenant)))
                .await?
                .into_inner(),
        ),
        TenantCommand::Resume { tenant } => tenant_json(
            client
                .resume_tenant(authed(&auth, refer(tenant)))
                .await?
                .into_inner(),
        ),
        TenantCommand::Delete {
            tenant,
            close_channels,
        } => {
            let r = client
                .delete_tenant(authed(
                    &auth,
                    v1::DeleteTenantRequest {
                        tenant: tenant.clone(),
                        close_channels: *close_channels,
                    },
                ))
                .await?
                .into_inner();
            serde_json::json!({ "deleted": r.deleted, "closing_channels": r.closing_channels })
        }
        TenantCommand::Pair { tenant } => enrolment_json(
            client
                .new_pairing_code(authed(&auth, refer(tenant)))
                .await?
                .into_inner(),
        ),
        // On the fleet's database, not through the admin API.
        TenantCommand::Export { .. } | TenantCommand::Import { .. } => {
            return transfer(&args.command).await
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn tenant_json(t: v1::Tenant) -> serde_json::Value {
    let state = v1::TenantState::try_from(t.state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("TENANT_STATE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| "unknown".into());
    serde_json::json!({
        "id": t.id,
        "name": t.name,
        "state": state,
        "node_id": t.node_id,
        "signer_address": t.signer_address,
        "signer_connected": t.signer_connected,
        "channels": t.channels,
        "failure": t.failure,
        "created_at": t.created_at,
    })
}

fn enrolment_json(e: v1::Enrolment) -> serde_json::Value {
    serde_json::json!({
        "tenant": e.tenant.map(tenant_json),
        "pairing_code": e.pairing_code,
        "node_link_key": e.node_link_key,
        "network": e.network,
        "signer_command": e.signer_command,
    })
}

/// A tenant's NWC rate: `per_second` requests a second, bursts of twice that.
fn nwc_rate(per_second: u32) -> micronode_nwc::RateLimit {
    micronode_nwc::RateLimit {
        burst: per_second.saturating_mul(2).max(1),
        per_second: f64::from(per_second.max(1)),
    }
}
