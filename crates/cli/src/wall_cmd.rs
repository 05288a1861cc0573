//! `micronode wall`: an L402 paywall in front of a tenant's HTTP service (`micronode-wall`,
//! docs/wall.md), its invoices made by the tenant's node. Runs until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use micronode_wall::{NodeInvoices, WallConfig, WallSecret};
use tokio::net::TcpListener;

/// Options of `micronode wall`.
#[derive(clap::Args, Debug)]
pub struct WallArgs {
    /// The wall's TOML file: upstream, service name and priced routes (docs/wall.md).
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// The wall's directory: its secret (`wall.secret`, made on first start, owner-only) signs
    /// and checks every token. Replacing it revokes every token.
    #[arg(long, env = "MICRONODE_WALL_DIR")]
    data_dir: PathBuf,
    /// Where to listen, instead of the file's `listen` (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The tenant node's gRPC API (`http://host:port`).
    #[arg(long, env = "MICRONODE_WALL_NODE")]
    node: String,
    /// The tenant, when the API is a host's front door.
    #[arg(long)]
    tenant: Option<String>,
    /// A file holding a token of the tenant's node with the `invoice` right (the wall only
    /// makes invoices). Alternatively the variable MICRONODE_WALL_TOKEN.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

impl WallArgs {
    fn token(&self) -> anyhow::Result<String> {
        crate::hub_cmd::secret_from(
            self.token_file.as_deref(),
            "MICRONODE_WALL_TOKEN",
            "the node token",
        )
    }
}

/// Runs the wall until Ctrl-C or SIGTERM. Prints one JSON line, `{"event":"wall_ready",...}`,
/// once it listens.
pub async fn run(args: WallArgs) -> anyhow::Result<()> {
    let mut config = WallConfig::load(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let secret = WallSecret::load_or_create(&args.data_dir)?;
    let invoices = NodeInvoices::connect(&args.node, &args.token()?, args.tenant.as_deref())
        .await
        .context("connecting to the tenant's node")?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    let ready = serde_json::json!({
        "event": "wall_ready",
        "listen": addr.to_string(),
        "service": config.service,
        "upstream": config.upstream,
    });
    println!("{ready}");
    micronode_wall::serve(
        config,
        secret,
        Arc::new(invoices),
        listener,
        crate::daemon::wait_for_shutdown_signal(),
    )
    .await
    .context("serving the wall")
}
