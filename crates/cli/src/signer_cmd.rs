//! `micronode signer`: the tenant's signer daemon and its seed management. Argument parsing
//! and wiring only; the signer is `micronode-signer`.
//!
//! The passphrase comes from `MICRONODE_SIGNER_PASSPHRASE` when set (scripts, services), else
//! from standard input. The chain source's RPC password comes from
//! `MICRONODE_BITCOIND_RPC_PASSWORD` (never a flag value on a shared host).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use micronode_signer::chain::{BitcoindSource, BitcoindSourceConfig, ChainFollower};
use micronode_signer::config::{parse_network, SignerConfig};
use micronode_signer::vault::{KdfParams, Passphrase, SeedVault};
use micronode_signer::{open_signer, SignerEngine};

/// Arguments of `micronode signer`.
#[derive(clap::Args, Debug)]
pub struct SignerArgs {
    /// The signer's directory: encrypted seed, VLS state, pairing [default: ~/.micronode-signer].
    #[arg(long, env = "MICRONODE_SIGNER_DIR", global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: SignerCommand,
}

/// Where the signer reads the chain: the tenant's own bitcoind. Overrides `[chain]` in
/// `signer.toml`.
#[derive(clap::Args, Debug, Default)]
pub struct ChainArgs {
    /// bitcoind RPC address host:port [default: 127.0.0.1 and the network's RPC port].
    #[arg(long, env = "MICRONODE_SIGNER_BITCOIND_RPC")]
    bitcoind_rpc: Option<String>,
    /// bitcoind RPC user (the password comes from MICRONODE_BITCOIND_RPC_PASSWORD).
    #[arg(long, env = "MICRONODE_SIGNER_BITCOIND_RPC_USER")]
    bitcoind_rpc_user: Option<String>,
    /// bitcoind cookie file (instead of user and password).
    #[arg(long, env = "MICRONODE_SIGNER_BITCOIND_RPC_COOKIE")]
    bitcoind_rpc_cookie: Option<PathBuf>,
    /// How often to look at the chain, in milliseconds [default: 2000].
    #[arg(long)]
    poll_interval_ms: Option<u64>,
}

impl ChainArgs {
    pub(crate) fn source(
        self,
        config: &SignerConfig,
    ) -> anyhow::Result<(BitcoindSource, std::time::Duration)> {
        let chain = config.chain.clone().overridden_by(BitcoindSourceConfig {
            bitcoind_rpc: self.bitcoind_rpc,
            bitcoind_rpc_user: self.bitcoind_rpc_user,
            bitcoind_rpc_cookie: self.bitcoind_rpc_cookie,
            poll_interval_ms: self.poll_interval_ms,
        });
        let password = std::env::var("MICRONODE_BITCOIND_RPC_PASSWORD").ok();
        let source = BitcoindSource::new(config.network()?, &chain, password)?;
        Ok((source, chain.poll_interval()))
    }
}

#[derive(clap::Subcommand, Debug)]
enum SignerCommand {
    /// Create a new seed: shows the 24 recovery words once and asks for some of them back.
    Init {
        /// Bitcoin network of the keys [default: regtest].
        #[arg(long, default_value = "regtest")]
        network: String,
        /// Skip the word check (scripted set-ups that store the words themselves).
        #[arg(long, hide = true)]
        skip_confirm: bool,
    },
    /// Import existing recovery words (read from standard input, one line).
    Restore {
        /// Bitcoin network of the keys [default: regtest].
        #[arg(long, default_value = "regtest")]
        network: String,
    },
    /// Print what a watch-only node needs (node id, xpub, descriptors) as JSON.
    ExportPublic,
    /// Follow the chain and dial out to the node, signing for it until stopped.
    Run {
        /// The node's signer link address, host:port. For a node of a fleet, each host that
        /// may run it (repeat the flag, or separate with commas): they are tried in turn.
        #[arg(long, required = true, value_delimiter = ',')]
        node: Vec<String>,
        /// The one-time pairing code the node showed (first run only).
        #[arg(long)]
        pair: Option<String>,
        /// The signer's own chain source.
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Stop all signing for the operator, at once and for good.
    Revoke,
    /// The tenant's apps: bake a credential for a new one, or revoke one.
    Token {
        /// What to do.
        #[command(subcommand)]
        command: crate::signer_apps::TokenCommand,
    },
    /// Pair a browser wallet: authorise it as an app (with a budget), register a pairing
    /// session at the node, and show the 10-word phrase to type in the wallet (once).
    Pair(crate::signer_pair::PairArgs),
    /// Each app, its budget used and left, and the last payments the signer approved for it
    /// (JSON). Needs no passphrase.
    Status,
    /// Leave without the operator: close or claim every channel with the latest state this
    /// signer validated (punishing any revoked state the counterparty broadcast) and sweep the
    /// funds to your address after the delay (revokes the operator first).
    Recover(crate::signer_recover::RecoverArgs),
}

fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".micronode-signer")
}

pub(crate) fn passphrase(confirm: bool) -> anyhow::Result<Passphrase> {
    if let Ok(p) = std::env::var("MICRONODE_SIGNER_PASSPHRASE") {
        return Ok(Passphrase::new(p));
    }
    let stdin = std::io::stdin();
    if confirm {
        return Ok(micronode_signer::vault::read_passphrase_twice(
            stdin.lock(),
            std::io::stderr(),
        )?);
    }
    eprint!("Signer passphrase: ");
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(Passphrase::new(line.trim_end_matches(['\r', '\n'])))
}

/// Unlocks the vault (asking for the passphrase) and opens the validating signer.
pub fn open_engine(dir: &Path) -> anyhow::Result<(SignerEngine, SignerConfig)> {
    Ok(open_signer(dir, &passphrase(false)?)?)
}

/// Runs `micronode signer ...`.
pub async fn run(args: SignerArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(default_dir);
    micronode_files::own_private_dir(&dir)?;
    match args.command {
        SignerCommand::Init {
            network,
            skip_confirm,
        } => {
            let network = parse_network(&network)?;
            let pass = passphrase(true)?;
            let (_, words) =
                SeedVault::create(dir.join("seed.vault"), &pass, KdfParams::default())?;
            if skip_confirm {
                println!("{words}");
            } else {
                let stdin = std::io::stdin();
                micronode_signer::vault::confirm_backup(
                    &words,
                    stdin.lock(),
                    std::io::stdout(),
                    &mut rand::thread_rng(),
                )?;
            }
            SignerConfig::write_default_if_missing(&dir, network)?;
            eprintln!("signer initialised in {}", dir.display());
            Ok(())
        }
        SignerCommand::Restore { network } => {
            let network = parse_network(&network)?;
            eprintln!("Recovery words (one line):");
            let mut words = String::new();
            std::io::stdin().lock().read_line(&mut words)?;
            let pass = passphrase(true)?;
            SeedVault::restore(
                dir.join("seed.vault"),
                words.trim(),
                &pass,
                KdfParams::default(),
            )?;
            SignerConfig::write_default_if_missing(&dir, network)?;
            eprintln!("seed restored in {}", dir.display());
            Ok(())
        }
        SignerCommand::ExportPublic => {
            let (engine, _) = open_engine(&dir)?;
            let info = engine.public_info();
            let mut out = std::io::stdout();
            writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?;
            Ok(())
        }
        SignerCommand::Run { node, pair, chain } => {
            if node.iter().any(|a| a.trim().is_empty()) {
                bail!("--node: an address is empty (give host:port, comma-separated for several)");
            }
            let code = pair
                .map(|c| micronode_link::PairingCode::parse(&c))
                .transpose()
                .context("bad pairing code")?;
            let (engine, config) = open_engine(&dir)?;
            if engine.is_revoked() {
                bail!("this signer was revoked; it signs nothing for the operator");
            }
            let (source, poll) = chain.source(&config)?;
            let engine = Arc::new(engine);
            let follower = ChainFollower::new(engine.clone(), Arc::new(source), poll);
            let line = serde_json::json!({"event": "signer_ready", "node_id": engine.node_id().to_string()});
            println!("{line}");
            micronode_signer::serve::run(
                engine,
                dir.clone(),
                node,
                code,
                follower,
                crate::daemon::wait_for_shutdown_signal(),
            )
            .await?;
            Ok(())
        }
        SignerCommand::Recover(args) => crate::signer_recover::run(&dir, args).await,
        SignerCommand::Token { command } => crate::signer_apps::run_token(&dir, command),
        SignerCommand::Pair(args) => crate::signer_pair::run(&dir, args).await,
        SignerCommand::Status => {
            let status = crate::signer_apps::status(&dir)?;
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(())
        }
        SignerCommand::Revoke => {
            micronode_signer::engine::revoke_dir(&dir.join("state"))?;
            eprintln!("revoked: the signer refuses every request from the operator from now on");
            Ok(())
        }
    }
}
