//! `micronode up`: the whole system on an embedded regtest.
//!
//! It finds or installs bitcoind, starts it with a persistent datadir under
//! `$MICRONODE_HOME/regtest`, starts a host (`regtest/host`: the gateway, the operator's node
//! with keys in-process serving JIT channels, its front door and admin API), provisions a
//! watch-only tenant through the admin API whose keys live in a separate `micronode signer`
//! process paired with the enrolment bundle, and starts an outside node (anyone else on the
//! network). The tenant, with nothing on chain
//! and no channel, is paid by the outside node through a JIT channel the gateway opens; its
//! app then pays the gateway. It prints a summary and keeps serving until Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bitcoin::Network;
use micronode_chain::{ChainServices, FeedConfig};
use micronode_node::{KeysBackend, LiquiditySettings, LocalKeys, Node, NodeConfig, PaymentStatus};
use micronode_nwc::embedded_relay::EmbeddedRelay;
use micronode_nwc::{render_qr_terminal, BudgetRenewal, ConnectionSpec, NwcHandle};
use micronode_testenv::{Bitcoind, BitcoindOptions};

use crate::config::micronode_home;

/// The project's bitcoind installer, embedded so `up` works from any directory.
const INSTALL_SCRIPT: &str = include_str!("../../../scripts/install-bitcoind.sh");
const CHANNEL_SAT: u64 = 1_000_000;
/// The tenant's first payment, from the outside node.
const OUTSIDE_TO_TENANT_MSAT: u64 = 50_000_000;
// Well within the tenant signer's default velocity limits (10,000 sat an hour, fees
// included), so `up` can run again and again.
const TENANT_TO_GATEWAY_MSAT: u64 = 1_000_000;
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// The embedded Nostr relay's port (a free one if it is taken).
const NWC_RELAY_PORT: u16 = 7447;
/// The daily budget of the app connection `up` creates (the tenant's signer allows 25,000 sat
/// a day in all by default).
const NWC_DAILY_BUDGET_MSAT: u64 = 20_000_000;
/// The browser wallet's relay (and page) port, if free.
const WALLET_PORT: u16 = 7448;
/// What the browser wallet may spend per day (sat).
const WALLET_DAILY_BUDGET_SAT: u64 = 100_000;
/// The daily budget, in the tenant's signer, of the app `up` authorises (its first payment
/// costs 1,000 sat plus the routing-fee allowance).
const APP_DAILY_BUDGET_SAT: u64 = 5_000;

/// Options of `micronode up`.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Port of the host's front door (every tenant's gRPC API, and the gateway's); a busy
    /// port falls back to a free one.
    #[arg(long, default_value_t = 10010, env = "MICRONODE_UP_API_PORT")]
    api_port: u16,
    /// Exit after the summary instead of serving until Ctrl-C (for scripts and tests).
    #[arg(long)]
    exit_after_summary: bool,
    /// Delete the regtest chain and both nodes' data first, and start afresh.
    #[arg(long)]
    reset: bool,
}

type GatewayNode = Node<LocalKeys>;
/// Anyone else on the Lightning network: the node that pays the tenant first.
type OutsideNode = Node<LocalKeys>;
use micronode_host::{Host, TenantNode};

struct Step {
    n: usize,
    started: Instant,
}

impl Step {
    fn start(n: usize, what: &str) -> Step {
        eprintln!("[{n}/9] {what} ...");
        Step {
            n,
            started: Instant::now(),
        }
    }
    fn done(self, detail: &str) {
        eprintln!(
            "[{}/9] done in {:.1}s{}",
            self.n,
            self.started.elapsed().as_secs_f64(),
            detail
        );
    }
}

fn find_bitcoind(home: &Path) -> Option<PathBuf> {
    let installed = home.join("bitcoind/bin/bitcoind");
    if installed.exists() {
        return Some(installed);
    }
    micronode_testenv::find_bitcoind_exe().ok()
}

fn install_bitcoind(home: &Path) -> anyhow::Result<PathBuf> {
    let prefix = home.join("bitcoind");
    std::fs::create_dir_all(home)?;
    let script = home.join("install-bitcoind.sh");
    std::fs::write(&script, INSTALL_SCRIPT)?;
    let status = std::process::Command::new("sh")
        .arg(&script)
        .arg(&prefix)
        .status()
        .context("running the bitcoind installer")?;
    if !status.success() {
        bail!("the bitcoind installer failed ({status}); see its output above");
    }
    Ok(prefix.join("bin/bitcoind"))
}

fn node_config(name: &str, dir: &Path, liquidity: LiquiditySettings) -> NodeConfig {
    let mut config = NodeConfig::new(dir, Network::Regtest);
    config.alias = name.to_string();
    config.listen_addr = Some(([127, 0, 0, 1], 0).into());
    config.liquidity = liquidity;
    config
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !check() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn mine(bitcoind: &Bitcoind, chain: &ChainServices, n: u64) -> anyhow::Result<()> {
    let hashes = bitcoind.mine(n).await?;
    let last = hashes.last().copied();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while Some(chain.feed.poll_now().await?.block_hash) != last {
        if Instant::now() > deadline {
            bail!("the chain feed did not reach the mined blocks");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn fund<K: micronode_node::KeysBackend>(
    bitcoind: &Bitcoind,
    chain: &ChainServices,
    node: &Node<K>,
    sat: u64,
) -> anyhow::Result<()> {
    if node.onchain_balance().confirmed_sat >= sat {
        return Ok(());
    }
    let address = node
        .new_address()?
        .parse::<bitcoin::Address<_>>()?
        .assume_checked();
    bitcoind.fund_address(&address, sat).await?;
    mine(bitcoind, chain, 1).await?;
    wait_for("the wallet to see its funds", || {
        node.onchain_balance().confirmed_sat >= sat
    })
    .await
}

/// Runs `micronode up`.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let home = micronode_home();
    let regtest = home.join("regtest");
    if args.reset && regtest.exists() {
        eprintln!("removing {}", regtest.display());
        std::fs::remove_dir_all(&regtest)
            .with_context(|| format!("removing {}", regtest.display()))?;
    }

    let step = Step::start(1, "looking for bitcoind");
    let exe = match find_bitcoind(&home) {
        Some(exe) => exe,
        None => {
            eprintln!(
                "      bitcoind not found; installing it into {}",
                home.join("bitcoind").display()
            );
            install_bitcoind(&home)?
        }
    };
    step.done(&format!(": {}", exe.display()));

    let step = Step::start(2, "starting bitcoind on regtest");
    let bitcoind = Bitcoind::start_with(BitcoindOptions {
        exe: Some(exe),
        persistent_datadir: Some(regtest.join("bitcoind")),
        ..BitcoindOptions::default()
    })
    .await
    .map_err(|e| anyhow!("{e} (is another `micronode up` running?)"))?;
    step.done("");
    let result = run_with_bitcoind(&args, &regtest, &bitcoind).await;
    // Always stop bitcoind cleanly so its chain is flushed to disk.
    eprintln!("stopping bitcoind ...");
    let mut bitcoind = bitcoind;
    if let Err(e) = bitcoind.stop().await {
        eprintln!("warning: bitcoind did not stop cleanly: {e}");
    }
    result
}

async fn run_with_bitcoind(
    args: &UpArgs,
    regtest: &Path,
    bitcoind: &Bitcoind,
) -> anyhow::Result<()> {
    let feed = FeedConfig {
        network: Network::Regtest,
        poll_interval: Duration::from_millis(100),
        ..FeedConfig::default()
    };
    let graph_file = Some(regtest.join("network_graph.bin"));
    let chain =
        ChainServices::start_with_graph_file(Arc::new(bitcoind.rpc().clone()), feed, graph_file)
            .await?;
    eprintln!(
        "      bitcoind RPC on {}:{}",
        bitcoind.rpc_host(),
        bitcoind.rpc_port()
    );

    let step = Step::start(
        3,
        "starting the host (gateway and tenant), the tenant's signer and an outside node",
    );
    let stale_hint = |e: anyhow::Error| {
        anyhow!(
            "{e:#}\nhint: the nodes' state may be ahead of the regtest chain (was bitcoind \
             killed?); run `micronode up --reset` to start afresh"
        )
    };
    if regtest.join("tenant").exists() || regtest.join("gateway").exists() {
        bail!(
            "{} holds nodes of an older `micronode up`, before the host ran them; run \
             `micronode up --reset` to start afresh",
            regtest.display()
        );
    }
    // The Nostr relay of the host's NWC service, in-process.
    let relay = match EmbeddedRelay::start(([127, 0, 0, 1], NWC_RELAY_PORT).into()).await {
        Ok(relay) => relay,
        Err(_) => EmbeddedRelay::start(([127, 0, 0, 1], 0).into()).await?,
    };
    // The host runs the gateway (serving JIT channels with the default fees), the tenant and
    // NWC for its tenants; port 0 means "any free port" for its front door.
    // The browser wallet's mailbox relay and page, in-process.
    let wallet_relay = start_wallet_relay().await?;
    let up = crate::up_host::start(
        regtest,
        &chain,
        args.api_port,
        relay.url(),
        &wallet_relay.url(),
    )
    .await
    .map_err(stale_hint)?;
    let (tenant, signer) = crate::up_host::tenant(&up, regtest, bitcoind)
        .await
        .map_err(stale_hint)?;
    let gateway = up
        .host
        .gateway()
        .context("the embedded host runs its gateway")?
        .clone();
    let outside_dir = regtest.join("outside");
    let outside_keys = Arc::new(LocalKeys::load_or_create(&outside_dir, Network::Regtest)?);
    let outside = Node::start(
        node_config("outside", &outside_dir, LiquiditySettings::default()),
        outside_keys,
        chain.clone(),
    )
    .await
    .context("starting the outside node")
    .map_err(stale_hint)?;
    step.done("");
    let apis = Apis {
        door: up.door,
        admin: up.admin,
        gateway_cookie: up.host.dir().join(micronode_host::GATEWAY_COOKIE_FILE),
        host_dir: up.host.dir().to_path_buf(),
        wallet_url: format!("{}/", wallet_relay.url()),
        regtest: regtest.to_path_buf(),
    };
    let nwc = serve_nwc_management(&up.host).await;
    let result = match &nwc {
        Ok(service) => {
            let nodes = Nodes {
                tenant: &tenant,
                gateway: &gateway,
                outside: &outside,
                signer: &signer,
            };
            run_flow(args, bitcoind, &chain, nodes, &apis, service).await
        }
        Err(e) => Err(anyhow!("starting Nostr Wallet Connect: {e:#}")),
    };
    eprintln!("stopping the nodes ...");
    outside.stop().await?;
    up.host.stop().await?;
    drop(relay);
    if let Err(e) = wallet_relay.shutdown().await {
        eprintln!("warning: the wallet relay did not stop cleanly: {e}");
    }
    drop(signer);
    if let Err(e) = chain.save_graph() {
        eprintln!("warning: could not save the network graph: {e}");
    }
    result
}

/// Where `up`'s host serves.
struct Apis {
    /// The front door: the tenant's API (its tokens) and the gateway's (its cookie).
    door: SocketAddr,
    /// The admin API.
    admin: SocketAddr,
    /// The gateway's API cookie.
    gateway_cookie: PathBuf,
    /// The host's directory.
    host_dir: PathBuf,
    /// The browser wallet's page.
    wallet_url: String,
    /// The regtest directory (`<home>/regtest`).
    regtest: PathBuf,
}

/// The mailbox relay for browser wallets, serving the wallet's page too, on
/// [`WALLET_PORT`] (a free port if that one is taken).
async fn start_wallet_relay() -> anyhow::Result<micronode_relay::RelayHandle> {
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", WALLET_PORT)).await {
        Ok(listener) => listener,
        Err(_) => tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?,
    };
    Ok(micronode_relay::RelayHandle::start_with(
        listener,
        micronode_relay::RelayConfig::default(),
        micronode_webapp::router(),
    )?)
}

/// The tenant's part of the host's NWC service, and its management API (create, list and
/// revoke app connections) on a free loopback port.
async fn serve_nwc_management(host: &Host) -> anyhow::Result<Arc<NwcHandle>> {
    let service = host.tenant_nwc(crate::up_host::TENANT_NAME)?;
    // Operator-facing management of app connections, authorised by the tenant's Nostr key
    // (NIP-98); it runs until the process ends.
    let relays = service.relays().iter().map(ToString::to_string).collect();
    let (addr, _task) = micronode_nwc::http_api::serve_management(
        service.store().clone(),
        relays,
        micronode_nwc::http_api::loopback(0),
        std::future::pending(),
    )
    .await?;
    eprintln!("      NWC management API on http://{addr} (NIP-98; set the tenant key with `micronode nwc tenant`)");
    Ok(service)
}

/// The system `up` runs.
#[derive(Clone, Copy)]
struct Nodes<'a> {
    tenant: &'a Arc<TenantNode>,
    gateway: &'a GatewayNode,
    outside: &'a OutsideNode,
    signer: &'a crate::up_signer::SignerChild,
}

async fn run_flow(
    args: &UpArgs,
    bitcoind: &Bitcoind,
    chain: &ChainServices,
    nodes: Nodes<'_>,
    apis: &Apis,
    nwc: &NwcHandle,
) -> anyhow::Result<()> {
    let Nodes {
        tenant,
        gateway,
        outside,
        ..
    } = nodes;
    let step = Step::start(
        4,
        "funding the gateway's and the outside node's wallets (mining on regtest)",
    );
    fund(bitcoind, chain, gateway, 5 * CHANNEL_SAT).await?;
    fund(bitcoind, chain, outside, 2 * CHANNEL_SAT).await?;
    step.done(&format!(
        ": gateway {} sat, outside node {} sat confirmed; the tenant has {} sat on chain",
        gateway.onchain_balance().confirmed_sat,
        outside.onchain_balance().confirmed_sat,
        tenant.onchain_balance().total_sat
    ));

    let step = Step::start(5, "opening a channel outside node -> gateway");
    let gateway_addr = gateway
        .listen_addr()
        .ok_or_else(|| anyhow!("gateway is not listening"))?;
    outside
        .connect_peer(gateway.node_id(), gateway_addr)
        .await?;
    let channel_id = open_outside_channel(bitcoind, chain, outside, gateway).await?;
    step.done(&format!(": {channel_id}"));

    let step = Step::start(
        6,
        "paying the tenant through a JIT channel, then the gateway from the tenant's app",
    );
    let to_tenant = receive_first_payment(bitcoind, chain, nodes).await?;
    let app = crate::up_app::bake(nodes.signer, "micronode up app", APP_DAILY_BUDGET_SAT)?;
    let to_gateway = pay_as_app(tenant, gateway, apis.door, &app).await?;
    step.done(": the tenant's payment was asked for by its app and checked by its signer");
    let channel_id = gateway
        .list_channels()
        .into_iter()
        .find(|c| c.counterparty == tenant.node_id().to_string() && c.is_usable)
        .map(|c| c.channel_id)
        .unwrap_or_default();

    let step = Step::start(7, "connecting an app over Nostr Wallet Connect");
    // The app secret is shown once and not stored, so each run makes a fresh connection.
    let spec = ConnectionSpec::full("micronode up")
        .with_budget(NWC_DAILY_BUDGET_MSAT, BudgetRenewal::Daily);
    let nwc_app = crate::up_app::bake_nwc(
        nodes.signer,
        "micronode up NWC",
        NWC_DAILY_BUDGET_MSAT / 1000,
    )?;
    let store = nwc.store().clone();
    let relays = nwc.relays().to_vec();
    let app_pubkey = nwc_app.public_key();
    let connection = tokio::task::spawn_blocking(move || {
        store.create_connection_for_app(&spec, &relays, app_pubkey)
    })
    .await??;
    let uri = micronode_nwc::nostr_sdk::nips::nip47::NostrWalletConnectURI::new(
        connection.wallet_pubkey,
        nwc.relays().to_vec(),
        nwc_app.secret_key().clone(),
        None,
    );
    step.done("");

    let step = Step::start(8, "making a pairing phrase for the tenant's browser wallet");
    let pairing = crate::up_app::pair_browser(
        nodes.signer,
        apis.door,
        &apis.wallet_url,
        WALLET_DAILY_BUDGET_SAT,
    )?;
    step.done("");
    let step = Step::start(
        9,
        "starting the tenant's LndHub hub and Lightning Addresses",
    );
    let hub = crate::up_hub::start(nodes.signer, apis.door, &apis.regtest).await?;
    let hub_user = crate::up_hub::pay_a_new_user(&hub, outside).await?;
    step.done(&format!(
        ": the outside node paid {} {} sat",
        hub_user.address,
        crate::up_hub::TO_HUB_USER_SAT
    ));
    print_summary(nodes, &channel_id, &to_tenant, &to_gateway, apis);
    let uri = uri.to_string();
    println!(
        "  Nostr Wallet Connect (tenant; {} sat a day)",
        NWC_DAILY_BUDGET_MSAT / 1000
    );
    println!("    {uri}");
    match render_qr_terminal(&uri) {
        Ok(qr) => println!("{qr}"),
        Err(e) => eprintln!("warning: cannot draw the QR code: {e}"),
    }
    println!(
        "  Browser wallet (tenant; {WALLET_DAILY_BUDGET_SAT} sat a day): open {} and type the phrase",
        apis.wallet_url
    );
    println!("    phrase          {}", pairing.phrase);
    println!("    (shown once; one attempt; make another with `micronode signer pair`)");
    let hub_addr = hub.local_addr();
    println!(
        "  LndHub accounts (BlueWallet, Zeus, Alby; {} sat a day at the signer)",
        crate::up_hub::HUB_DAILY_BUDGET_SAT
    );
    println!("    hub             http://{hub_addr} (open sign-up)");
    println!(
        "    user            {} (paid {} sat through its address)",
        hub_user.address,
        crate::up_hub::TO_HUB_USER_SAT
    );
    println!("    wallet export   {}", hub_user.lndhub);
    println!(
        "    address         {}@{hub_addr} (the tenant's own)",
        crate::up_hub::TENANT_ADDRESS
    );
    if !args.exit_after_summary {
        println!("\nServing until Ctrl-C.");
        crate::daemon::wait_for_shutdown_signal().await;
    }
    hub.stop().await.context("stopping the hub")?;
    Ok(())
}

/// The tenant's app pays the gateway over the tenant's API; its signer checks the app's
/// signed request before approving the payment.
async fn pay_as_app<B: KeysBackend>(
    tenant: &TenantNode,
    to: &Node<B>,
    tenant_api: SocketAddr,
    app: &micronode_signer_protocol::AppCredential,
) -> anyhow::Result<String> {
    wait_for("enough outbound capacity", || {
        tenant
            .list_channels()
            .iter()
            .any(|c| c.is_usable && c.outbound_capacity_msat >= TENANT_TO_GATEWAY_MSAT)
    })
    .await?;
    let invoice = to.create_invoice(Some(TENANT_TO_GATEWAY_MSAT), "the tenant's app pays", 3600)?;
    let payment = crate::up_app::pay(tenant_api, app, &invoice.invoice).await?;
    if payment.status != micronode_proto::v1::PaymentStatus::Succeeded as i32 {
        bail!(
            "the app's payment failed: {}",
            payment.failure_reason.unwrap_or_default()
        );
    }
    let id = micronode_node::pay::parse_hash(&invoice.payment_hash)?;
    wait_for("the gateway to record the payment", || {
        to.payment(&id)
            .map(|p| p.status == PaymentStatus::Succeeded)
            .unwrap_or(false)
    })
    .await?;
    Ok(invoice.payment_hash)
}

/// Opens (or finds, on a later run) the outside node's channel to the gateway, confirmed and
/// usable.
async fn open_outside_channel(
    bitcoind: &Bitcoind,
    chain: &ChainServices,
    outside: &OutsideNode,
    gateway: &GatewayNode,
) -> anyhow::Result<String> {
    let gateway_id = gateway.node_id().to_string();
    let existing = outside
        .list_channels()
        .into_iter()
        .find(|c| c.counterparty == gateway_id && c.is_ready);
    let channel_id = match existing {
        Some(c) => c.channel_id,
        None => {
            let mut events = outside.subscribe_events();
            outside.open_channel(gateway.node_id(), CHANNEL_SAT, 0, Some(true))?;
            let channel_id = loop {
                let event = tokio::time::timeout(STEP_TIMEOUT, events.recv()).await??;
                if let micronode_node::NodeEvent::ChannelPending { channel_id, .. } = event {
                    break channel_id;
                }
            };
            eprintln!("      funding broadcast; mining 6 blocks");
            tokio::time::sleep(Duration::from_millis(200)).await;
            mine(bitcoind, chain, 6).await?;
            channel_id
        }
    };
    let usable = |channels: Vec<micronode_node::ChannelInfo>| {
        channels
            .iter()
            .any(|c| c.channel_id == channel_id && c.is_usable)
    };
    wait_for("the channel to be usable", || {
        usable(outside.list_channels()) && usable(gateway.list_channels())
    })
    .await?;
    Ok(channel_id)
}

/// The tenant's payment of a run, and how it arrived.
struct Received {
    payment_hash: String,
    received_msat: u64,
    jit: Option<micronode_node::JitOffer>,
}

/// The outside node pays the tenant's invoice. With no channel that can receive it (the first
/// run), it is a JIT invoice: the gateway holds the payment, opens a channel to the tenant
/// (mined here until it confirms) and forwards the payment less its opening fee.
async fn receive_first_payment(
    bitcoind: &Bitcoind,
    chain: &ChainServices,
    nodes: Nodes<'_>,
) -> anyhow::Result<Received> {
    let Nodes {
        tenant,
        gateway,
        outside,
        ..
    } = nodes;
    let (invoice, jit) = tenant
        .create_receivable_invoice(
            Some(OUTSIDE_TO_TENANT_MSAT),
            "the tenant's first payment",
            3600,
        )
        .await?;
    if let Some(offer) = &jit {
        eprintln!(
            "      JIT invoice: the gateway opens a channel on payment and takes {} sat",
            offer.opening_fee_msat / 1000
        );
    }
    let id = outside.pay_invoice(&invoice.invoice, None, None)?;
    let tenant_id = tenant.node_id().to_string();
    let deadline = Instant::now() + STEP_TIMEOUT;
    let record = loop {
        if let Ok(record) = outside.wait_payment(&id, Duration::from_millis(500)).await {
            if record.status != PaymentStatus::Pending {
                break record;
            }
        }
        if Instant::now() > deadline {
            bail!("the tenant's payment did not complete in {STEP_TIMEOUT:?}");
        }
        let opening = gateway
            .list_channels()
            .iter()
            .any(|c| c.counterparty == tenant_id && !c.is_ready && c.funding_txo.is_some());
        if opening {
            mine(bitcoind, chain, 1).await?;
        }
    };
    if record.status != PaymentStatus::Succeeded {
        bail!(
            "the outside node's payment to the tenant failed: {}",
            record.failure_reason.unwrap_or_default()
        );
    }
    let mut received_msat = 0;
    wait_for("the tenant to record the payment", || {
        match tenant.payment_in(micronode_node::PaymentDirection::Inbound, &id) {
            Some(p) if p.status == PaymentStatus::Succeeded => {
                received_msat = p.amount_msat.unwrap_or_default();
                true
            }
            _ => false,
        }
    })
    .await?;
    Ok(Received {
        payment_hash: invoice.payment_hash,
        received_msat,
        jit,
    })
}

/// What the summary shows of one node.
struct NodeView {
    node_id: String,
    p2p: String,
    onchain_sat: u64,
    in_channels_sat: u64,
}

impl NodeView {
    fn of<K: KeysBackend>(node: &Node<K>) -> NodeView {
        NodeView {
            node_id: node.node_id().to_string(),
            p2p: node
                .listen_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "none (it dials the gateway)".into()),
            onchain_sat: node.onchain_balance().total_sat,
            in_channels_sat: node.lightning_balance().in_channels_sat,
        }
    }
}

fn print_summary(
    nodes: Nodes<'_>,
    channel_id: &str,
    received: &Received,
    to_gateway: &str,
    apis: &Apis,
) {
    let channel = nodes
        .gateway
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == channel_id);
    println!();
    println!("micronode is up on regtest");
    println!("  host              {}", apis.host_dir.display());
    println!(
        "    front door      http://{} (every tenant's gRPC API)",
        apis.door
    );
    println!(
        "    admin API       http://{} (cookie {})",
        apis.admin,
        apis.host_dir
            .join(micronode_host::ADMIN_COOKIE_FILE)
            .display()
    );
    let views = [
        ("gateway", NodeView::of(nodes.gateway)),
        ("tenant", NodeView::of(nodes.tenant.as_ref())),
    ];
    for (name, view) in views {
        println!("  {name}");
        println!("    node id         {}", view.node_id);
        println!("    p2p             {}", view.p2p);
        println!("    on-chain        {} sat", view.onchain_sat);
        println!("    in channels     {} sat", view.in_channels_sat);
        if name == "gateway" {
            println!("    API cookie      {}", apis.gateway_cookie.display());
            println!("    keys            in-process (the operator's own node)");
        } else {
            println!("    API             the tenant's tokens (its signer bakes them)");
            println!(
                "    keys            remote signer, pid {}, {}",
                nodes.signer.pid(),
                nodes.signer.dir.display()
            );
            println!("    signer log      {}", nodes.signer.log.display());
            println!("    node holds      no private key and no seed (watch-only)");
        }
    }
    if let Some(c) = channel {
        println!("  channel gateway -> tenant");
        println!("    id              {}", c.channel_id);
        println!("    capacity        {} sat", c.capacity_sat);
        println!("    gateway balance {} sat", c.balance_sat);
        println!("    funding         {}", c.funding_txo.unwrap_or_default());
    }
    println!("  payments");
    let how = match &received.jit {
        Some(offer) => format!(
            "through a JIT channel the gateway opened on payment, its opening fee {} sat",
            offer.opening_fee_msat / 1000
        ),
        None => "through the tenant's channel with the gateway".to_string(),
    };
    println!(
        "    outside -> tenant {} sat, hash {} ({how}; the tenant received {} sat)",
        OUTSIDE_TO_TENANT_MSAT / 1000,
        received.payment_hash,
        received.received_msat / 1000
    );
    println!(
        "    tenant -> gateway {} sat, hash {} (asked by the tenant's app, its request checked by the tenant's signer)",
        TENANT_TO_GATEWAY_MSAT / 1000,
        to_gateway
    );
    println!();
    println!(
        "Try:  micronode host tenant --host-dir {} --admin {} list",
        apis.host_dir.display(),
        apis.admin
    );
    println!(
        "      micronode cli --endpoint http://{} --cookie {} --tenant {} getinfo",
        apis.door,
        apis.gateway_cookie.display(),
        nodes.gateway.node_id()
    );
}
