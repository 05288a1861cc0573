//! `micronode node run`: one node with its gRPC API, until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use micronode_api::{Authenticator, CookieAuth, CookieOrTokens, TokenAuthority};
use micronode_chain::{BitcoindRpc, ChainServices, FeedConfig};
use micronode_node::{KeysBackend, LocalKeys, Node};
use serde::Serialize;

use crate::config::ResolvedSettings;

/// The line the daemon prints on stdout once it serves, so scripts and tests can find it.
#[derive(Serialize)]
struct Ready<'a> {
    event: &'a str,
    node_id: String,
    network: String,
    p2p_listen: Option<String>,
    api_listen: String,
    /// `null` when the node authenticates with capability tokens.
    api_cookie: Option<String>,
}

/// Starts the chain services for these settings, with a clear error when bitcoind is away.
pub async fn start_chain(settings: &ResolvedSettings) -> anyhow::Result<ChainServices> {
    let rpc = BitcoindRpc::new(
        &settings.bitcoind_host,
        settings.bitcoind_port,
        settings.bitcoind_auth.clone(),
    )
    .context("bitcoind RPC settings")?
    .with_timeout(settings.bitcoind_rpc_timeout);
    let config = FeedConfig {
        network: settings.node.network,
        poll_interval: settings.poll_interval,
        ..FeedConfig::default()
    };
    let graph_file = Some(settings.node.data_dir.join("network_graph.bin"));
    ChainServices::start_with_graph_file(Arc::new(rpc), config, graph_file)
        .await
        .with_context(|| {
            format!(
                "cannot use bitcoind at {}:{}",
                settings.bitcoind_host, settings.bitcoind_port
            )
        })
}

/// Runs the node until a signal arrives; stops it gracefully.
pub async fn run(mut settings: ResolvedSettings) -> anyhow::Result<()> {
    let chain = start_chain(&settings).await?;
    // In a fleet, the node's state is the database's, and this process runs it only once it
    // holds the node's lease.
    let fleet = match &settings.fleet {
        None => None,
        Some(fleet) => {
            let lease = crate::fleet_node::take(fleet).await?;
            let (lease, store) = tokio::task::spawn_blocking(move || {
                let store = lease.open_node_store(None);
                (lease, store)
            })
            .await?;
            settings.node.store = micronode_node::StoreChoice::Given(store?);
            Some(lease)
        }
    };
    match settings.remote_signer {
        None => {
            let keys = LocalKeys::load_or_create(&settings.node.data_dir, settings.node.network)
                .context("loading the node's keys")?;
            serve(settings, chain, Arc::new(keys), fleet).await
        }
        Some(listen) => {
            let state = match &fleet {
                Some(lease) => lease.link_state()?,
                None => micronode_node::remote::attach::LinkState::InDataDir,
            };
            let keys = micronode_node::remote::attach::connect(
                state,
                &settings.node.data_dir,
                listen,
                &settings.signer_allow,
            )
            .await?;
            serve(settings, chain, Arc::new(keys), fleet).await
        }
    }
}

async fn serve<K: KeysBackend>(
    settings: ResolvedSettings,
    chain: ChainServices,
    keys: Arc<K>,
    mut fleet: Option<micronode_node::fleet::FleetLease>,
) -> anyhow::Result<()> {
    let node = Arc::new(
        Node::start(settings.node.clone(), keys, chain.clone())
            .await
            .context("starting the node")?,
    );
    let node_id = node.node_id().to_string();
    let auth = api_auth(&settings, &node_id, node.keys_app_token_root()).await?;
    let authenticator: Arc<dyn Authenticator> = Arc::from(auth.authenticator);
    // Nostr Wallet Connect for this node, if relays are configured.
    let nwc = if settings.nwc_relays.is_empty() {
        None
    } else {
        let config = micronode_nwc::NwcConfig::new(
            settings.node.data_dir.join("nwc"),
            settings.nwc_relays.clone(),
        );
        let backend = micronode_nwc::NodeBackend::new(node.clone());
        Some(
            micronode_nwc::NwcService::start(config, backend)
                .await
                .context("starting NWC")?,
        )
    };
    // Browser-wallet pairing, if a relay is configured.
    let (stop_wallet, wallet_stopped) = tokio::sync::watch::channel(false);
    let wallet = match &settings.wallet_relay {
        None => None,
        Some(relay) => Some(
            micronode_wallet::start_for_node(
                node.clone(),
                authenticator.clone(),
                relay,
                nwc.as_ref().map(|handle| {
                    Arc::new(micronode_wallet::nwc::NwcTunnel::new(handle))
                        as Arc<dyn micronode_wallet::nwc::NwcControl>
                }),
                wallet_stopped,
            )
            .await
            .context("starting browser-wallet pairing")?,
        ),
    };
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let (api_addr, api_task) = micronode_api::serve_with(
        node.clone(),
        settings.api_listen,
        authenticator,
        async move {
            let _ = api_stopped.await;
        },
        micronode_api::ServeOptions {
            allow: settings.api_allow.clone(),
            pairing: wallet
                .clone()
                .map(|w| w as Arc<dyn micronode_api::PairingBackend>),
            ..Default::default()
        },
    )
    .await
    .context("starting the gRPC API")?;
    let ready = Ready {
        event: "ready",
        node_id: node.node_id().to_string(),
        network: settings.node.network.to_string(),
        p2p_listen: node.listen_addr().map(|a| a.to_string()),
        api_listen: api_addr.to_string(),
        api_cookie: auth
            .cookie_path
            .then(|| settings.api_cookie.display().to_string()),
    };
    println!("{}", serde_json::to_string(&ready)?);
    tracing::info!(node_id = %ready.node_id, api = %api_addr, "node is serving");
    let lease_gone = match fleet.as_mut() {
        None => {
            wait_for_shutdown_signal().await;
            None
        }
        Some(lease) => tokio::select! {
            _ = wait_for_shutdown_signal() => None,
            why = lease.gone(&node) => Some(why),
        },
    };
    match lease_gone {
        None => tracing::info!("shutting down"),
        Some(why) => tracing::error!("stopping: {why}; another process runs this node now"),
    }
    if let Some(nwc) = nwc {
        nwc.stop().await;
    }
    if let Some(wallet) = wallet {
        wallet.stop().await;
    }
    let _ = stop_wallet.send(true);
    let _ = stop_api.send(());
    let _ = api_task.await;
    if let Some(why) = lease_gone {
        // Its store refuses every write now: stopping cannot persist anything, by design.
        let _ = node.stop().await;
        anyhow::bail!("this process stopped running the node: {why}");
    }
    node.stop().await.context("stopping the node")?;
    if let Some(lease) = fleet {
        lease.release_logged().await;
    }
    if let Err(e) = chain.save_graph() {
        tracing::warn!(error = %e, "could not save the network graph");
    }
    Ok(())
}

/// Who may call a node's API.
pub(crate) struct ApiAuth {
    /// The authenticator.
    pub authenticator: Box<dyn Authenticator>,
    /// Whether the operator's cookie file is written (and accepted).
    pub cookie_path: bool,
}

/// The API's authentication: for a tenant whose signer holds the token root, the operator's
/// cookie and the tenant's tokens (verified with the signer's root public key); otherwise
/// capability tokens if `node init --stateless` made a token store, else the cookie.
pub(crate) async fn api_auth(
    settings: &ResolvedSettings,
    node_id: &str,
    signer_root: Option<String>,
) -> anyhow::Result<ApiAuth> {
    let data_dir = settings.node.data_dir.clone();
    let tenant = node_id.to_string();
    let signer_held = signer_root.is_some();
    let tokens = tokio::task::spawn_blocking(move || match signer_root {
        Some(root) => TokenAuthority::open_for_signer(&data_dir, &tenant, &root).map(Some),
        None => TokenAuthority::open_if_initialised(&data_dir, &tenant),
    })
    .await?
    .context("opening the token store")?;
    Ok(match (tokens, signer_held) {
        (Some(tokens), true) => ApiAuth {
            authenticator: Box::new(CookieOrTokens::new(
                CookieAuth::create(&settings.api_cookie).context("writing the API cookie")?,
                tokens,
            )),
            cookie_path: true,
        },
        (Some(tokens), false) => ApiAuth {
            authenticator: Box::new(tokens),
            cookie_path: false,
        },
        (None, _) => ApiAuth {
            authenticator: Box::new(
                CookieAuth::create(&settings.api_cookie).context("writing the API cookie")?,
            ),
            cookie_path: true,
        },
    })
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
