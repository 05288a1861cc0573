//! `micronode hub`: LndHub accounts, Lightning Addresses and their ledger on top of one
//! tenant's node (`micronode-hub`, docs/hub.md). `hub run` serves until Ctrl-C or SIGTERM; the
//! other commands work on the hub's database whether it runs or not.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use micronode_client::NodeClient;
use micronode_hub::{Hub, HubAdmin, HubConfig, SignupMode};
use tokio::net::TcpListener;

/// `micronode hub ...`.
#[derive(clap::Args, Debug)]
pub struct HubArgs {
    #[command(subcommand)]
    command: HubCommand,
}

#[derive(clap::Subcommand, Debug)]
enum HubCommand {
    /// Serve the LndHub API and Lightning Addresses until Ctrl-C or SIGTERM. Prints one JSON
    /// line, `{"event":"hub_ready",...}`, once it listens. (Boxed: its settings make it much
    /// larger than the other commands.)
    Run(Box<RunArgs>),
    /// Make a single-use invite code (for `signup = "invite"`); shown once.
    Invite(DataDir),
    /// Create an account whatever the sign-up mode (how an operator adds users to a closed
    /// hub); prints its login, password and `lndhub://` export once, as JSON.
    AddAccount(AddAccountArgs),
    /// Every account with its balance, as JSON.
    Accounts(DataDir),
    /// Check the ledger's invariants (entries sum to zero, no account below zero, holds match
    /// the payments in flight); prints the report as JSON and fails if one does not hold.
    Check(DataDir),
}

#[derive(clap::Args, Debug)]
struct DataDir {
    /// The hub's directory (its `hub.sqlite`).
    #[arg(long, env = "MICRONODE_HUB_DIR")]
    data_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
struct AddAccountArgs {
    #[command(flatten)]
    dir: DataDir,
    /// The hub's TOML file, for its public URL and the tenant's own address name.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// A Lightning Address name for the account (`name@domain`).
    #[arg(long)]
    address: Option<String>,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    dir: DataDir,
    /// A TOML file of hub settings (docs/hub.md); the flags below override it.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Where to listen (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The base URL wallets reach the hub at (for `lndhub://` exports and LNURL callbacks).
    #[arg(long)]
    public_url: Option<String>,
    /// The Lightning Addresses' domain (`name@domain`).
    #[arg(long)]
    domain: Option<String>,
    /// Who may create accounts: open, closed or invite.
    #[arg(long, value_parser = parse_signup)]
    signup: Option<SignupMode>,
    /// The tenant's own Lightning Address name (payments to it credit no account).
    #[arg(long)]
    tenant_address: Option<String>,
    /// The tenant node's gRPC API (`http://host:port`).
    #[arg(long, env = "MICRONODE_HUB_NODE")]
    node: String,
    /// The tenant, when the API is a host's front door.
    #[arg(long)]
    tenant: Option<String>,
    /// A file holding the hub's app credential (`micronode signer token bake --name hub ...`):
    /// the tenant's signer checks every payment of the hub against that app's budget.
    /// Alternatively the variable MICRONODE_HUB_CREDENTIAL.
    #[arg(long)]
    credential_file: Option<PathBuf>,
}

fn parse_signup(text: &str) -> Result<SignupMode, String> {
    match text {
        "open" => Ok(SignupMode::Open),
        "closed" => Ok(SignupMode::Closed),
        "invite" => Ok(SignupMode::Invite),
        other => Err(format!("{other:?} is not open, closed or invite")),
    }
}

impl RunArgs {
    /// The settings: the file's (or the defaults), overridden by the flags.
    fn hub_config(&self) -> anyhow::Result<HubConfig> {
        let mut config = match &self.config {
            Some(path) => read_config(path)?,
            None => HubConfig::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(url) = &self.public_url {
            config.public_url = url.clone();
        }
        if let Some(domain) = &self.domain {
            config.domain = domain.clone();
        }
        if let Some(signup) = self.signup {
            config.signup = signup;
        }
        if let Some(name) = &self.tenant_address {
            config.tenant_address = Some(name.clone());
        }
        config.validate().context("the hub's settings")?;
        Ok(config)
    }

    /// The app credential (see [`secret_from`]).
    fn credential(&self) -> anyhow::Result<String> {
        secret_from(
            self.credential_file.as_deref(),
            "MICRONODE_HUB_CREDENTIAL",
            "the hub's app credential",
        )
    }
}

/// A secret a service needs, from its file or else the variable `var`; never from a flag (it
/// would show in the process list).
pub(crate) fn secret_from(file: Option<&Path>, var: &str, what: &str) -> anyhow::Result<String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {what} in {}", path.display()))?;
        return Ok(text.trim().to_string());
    }
    std::env::var(var)
        .map(|secret| secret.trim().to_string())
        .with_context(|| format!("give {what} in a file (see --help) or {var}"))
}

/// Runs `micronode hub ...`.
pub async fn run(args: HubArgs) -> anyhow::Result<()> {
    match args.command {
        HubCommand::Run(run) => serve(*run).await,
        HubCommand::Invite(dir) => {
            let code = admin(&dir.data_dir)?.create_invite().await?;
            println!("{code}");
            Ok(())
        }
        HubCommand::AddAccount(add) => {
            let config = match &add.config {
                Some(path) => read_config(path)?,
                None => HubConfig::default(),
            };
            let credentials = admin(&add.dir.data_dir)?
                .create_account(add.address.clone(), config.tenant_address.clone())
                .await?;
            let out = serde_json::json!({
                "login": credentials.login,
                "password": credentials.password,
                "lndhub": micronode_hub::lndhub_uri(&credentials, config.base_url()),
                "address": add.address.map(|name| format!("{name}@{}", config.domain)),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        HubCommand::Accounts(dir) => {
            let accounts = admin(&dir.data_dir)?.list_accounts().await?;
            println!("{}", serde_json::to_string_pretty(&accounts)?);
            Ok(())
        }
        HubCommand::Check(dir) => {
            let report = admin(&dir.data_dir)?.check_ledger().await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            anyhow::ensure!(report.is_ok(), "the hub's ledger does not balance");
            Ok(())
        }
    }
}

fn read_config(path: &Path) -> anyhow::Result<HubConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    HubConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))
}

fn admin(data_dir: &Path) -> anyhow::Result<HubAdmin> {
    HubAdmin::open(data_dir).with_context(|| format!("opening the hub in {}", data_dir.display()))
}

async fn serve(args: RunArgs) -> anyhow::Result<()> {
    let config = args.hub_config()?;
    let credential = args.credential()?;
    let client = NodeClient::connect(&args.node, &credential, args.tenant.as_deref())
        .await
        .context("connecting to the tenant's node")?;
    anyhow::ensure!(
        client.has_app_credential(),
        "the hub needs an app credential (micronode-app:v1:...) baked by the tenant's signer, \
         so the signer can bound what it spends"
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    // Without a public URL of its own, the hub is reached where it listens (LNURL callbacks
    // and exports must name the port actually bound).
    let mut config = config;
    if config.public_url == HubConfig::default().public_url {
        config.public_url = format!("http://{}", listener.local_addr()?);
    }
    let hub = Hub::start(config.clone(), &args.dir.data_dir, client, listener)
        .await
        .context("starting the hub")?;
    let ready = serde_json::json!({
        "event": "hub_ready",
        "listen": hub.local_addr().to_string(),
        "public_url": config.base_url(),
        "domain": config.domain,
    });
    println!("{ready}");
    crate::daemon::wait_for_shutdown_signal().await;
    hub.stop().await.context("stopping the hub")
}
