//! The `micronode` binary: `up` (the whole system on regtest), `node run` (one node daemon),
//! `cli` (a client of a node's gRPC API) and `bench`.

mod client;
mod config;
mod daemon;
mod fleet_node;
mod host_cmd;
mod hub_cmd;
mod init;
mod nwc_cmd;
mod relay_cmd;

mod signer_apps;
mod signer_cmd;
mod signer_pair;
mod signer_recover;
mod up;
mod up_app;
mod up_host;
mod up_hub;
mod up_signer;
mod wall_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::NodeSettings;

#[derive(Parser, Debug)]
#[command(
    name = "micronode",
    version,
    about = "Hosted Lightning nodes whose keys stay with their owners"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Bring up the whole system on regtest: bitcoind (installed if missing), a gateway node and
    /// a tenant node, a funded channel and payments both ways. Runs until Ctrl-C.
    Up(up::UpArgs),
    /// Run a host of many tenants (`host run`), and manage its tenants (`host tenant ...`).
    Host(host_cmd::HostArgs),
    /// Run one node.
    Node {
        /// Boxed: the node's settings make it much larger than the other commands.
        #[command(subcommand)]
        command: Box<NodeCommand>,
    },
    /// Talk to a running node's gRPC API.
    Cli(client::ClientArgs),
    /// Manage Nostr Wallet Connect connections: connect, list, revoke, tenant.
    Nwc(nwc_cmd::NwcArgs),
    /// The tenant's signer: init, restore, export-public, run, revoke.
    Signer(signer_cmd::SignerArgs),
    /// Run a Lightning Node Connect mailbox relay (HashMail) until Ctrl-C/SIGTERM.
    Relay(relay_cmd::RelayArgs),
    /// LndHub accounts and Lightning Addresses on a tenant's node: run, invite, add-account,
    /// accounts, check.
    Hub(hub_cmd::HubArgs),
    /// Run an L402 paywall in front of a tenant's HTTP service until Ctrl-C/SIGTERM.
    Wall(wall_cmd::WallArgs),
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Run a node daemon with its gRPC API until SIGINT/SIGTERM.
    Run {
        /// A TOML file with settings (flags and MICRONODE_* variables override it).
        #[arg(long, short = 'c', env = "MICRONODE_CONFIG")]
        config: Option<PathBuf>,
        /// Allow mainnet. Only a flag can allow it, never a file or variable.
        #[arg(long)]
        allow_mainnet: bool,
        #[command(flatten)]
        settings: NodeSettings,
    },
    /// Initialise the node's capability tokens (`--stateless`): keep only the token root's
    /// public key in <data-dir>/tokens/ and print the admin token once.
    Init(init::InitArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MICRONODE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ldk=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Node { command } => match *command {
                NodeCommand::Run {
                    config,
                    allow_mainnet,
                    settings,
                } => {
                    let base = match config {
                        Some(path) => NodeSettings::from_file(&path)?,
                        None => NodeSettings::default(),
                    };
                    let resolved = base.overridden_by(settings).resolve(allow_mainnet)?;
                    daemon::run(resolved).await
                }
                NodeCommand::Init(args) => init::run(args),
            },
            Command::Host(args) => host_cmd::run(args).await,
            Command::Cli(args) => client::run(args).await,
            Command::Nwc(args) => nwc_cmd::run(args).await,
            Command::Signer(args) => signer_cmd::run(args).await,
            Command::Relay(args) => relay_cmd::run(args).await,
            Command::Hub(args) => hub_cmd::run(args).await,
            Command::Wall(args) => wall_cmd::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
