//! `micronode signer`: the tenant's signer daemon and its seed management.
//!
//! The passphrase comes from `MICRONODE_SIGNER_PASSPHRASE` when set (scripts, services), else
//! from standard input.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use bitcoin::Network;
use micronode_signer::vault::{KdfParams, Passphrase, SeedVault};
use micronode_signer::{PolicyConfig, SignerEngine};
use serde::{Deserialize, Serialize};

/// Arguments of `micronode signer`.
#[derive(clap::Args, Debug)]
pub struct SignerArgs {
    /// The signer's directory: encrypted seed, VLS state, pairing [default: ~/.micronode-signer].
    #[arg(long, env = "MICRONODE_SIGNER_DIR", global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: SignerCommand,
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
    /// Dial out to the node and sign for it until stopped.
    Run {
        /// The node's signer link address, host:port.
        #[arg(long)]
        node: String,
        /// The one-time pairing code the node showed (first run only).
        #[arg(long)]
        pair: Option<String>,
    },
    /// Stop all signing for the operator, at once and for good.
    Revoke,
    /// Leave without the operator: force-close every channel with the latest state this
    /// signer validated and sweep the funds to your address after the delay (revokes the
    /// operator first).
    Recover(crate::signer_recover::RecoverArgs),
}

/// `signer.toml` in the signer's directory.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    /// The network of the keys.
    pub network: String,
    /// The tenant's policy.
    #[serde(default)]
    pub policy: PolicyConfig,
}

fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".micronode-signer")
}

fn passphrase(confirm: bool) -> anyhow::Result<Passphrase> {
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

/// Parses a network name as `signer.toml` stores it.
pub(crate) fn parse_network(s: &str) -> anyhow::Result<Network> {
    match s {
        "mainnet" | "bitcoin" => Ok(Network::Bitcoin),
        other => Network::from_core_arg(other).with_context(|| format!("unknown network {other}")),
    }
}

/// Writes a default `signer.toml`, unless one exists (a restore keeps the tenant's policy).
fn write_config(dir: &Path, network: Network) -> anyhow::Result<()> {
    if dir.join("signer.toml").exists() {
        let existing = read_config(dir)?;
        if parse_network(&existing.network)? != network {
            bail!(
                "{} is for {}, not {network}",
                dir.join("signer.toml").display(),
                existing.network
            );
        }
        return Ok(());
    }
    let config = SignerConfig {
        network: network.to_core_arg().to_string(),
        policy: PolicyConfig::default(),
    };
    let text = toml::to_string_pretty(&config)?;
    micronode_node::secret_file::write_private(&dir.join("signer.toml"), text.as_bytes())?;
    Ok(())
}

/// Reads `signer.toml`.
pub fn read_config(dir: &Path) -> anyhow::Result<SignerConfig> {
    let path = dir.join("signer.toml");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (run `micronode signer init` first)",
            path.display()
        )
    })?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Unlocks the vault and opens the validating signer.
pub fn open_engine(dir: &Path) -> anyhow::Result<SignerEngine> {
    let config = read_config(dir)?;
    let network = parse_network(&config.network)?;
    let vault = SeedVault::open(dir.join("seed.vault"))?;
    let seed = vault.unlock(&passphrase(false)?)?;
    Ok(SignerEngine::open(
        &dir.join("state"),
        seed.signer_seed(),
        network,
        config.policy,
    )?)
}

/// Runs `micronode signer ...`.
pub async fn run(args: SignerArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(default_dir);
    micronode_node::secret_file::create_private_dir(&dir)?;
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
            write_config(&dir, network)?;
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
            write_config(&dir, network)?;
            eprintln!("seed restored in {}", dir.display());
            Ok(())
        }
        SignerCommand::ExportPublic => {
            let engine = open_engine(&dir)?;
            let info = engine.public_info();
            let mut out = std::io::stdout();
            writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?;
            Ok(())
        }
        SignerCommand::Run { node, pair } => {
            let code = pair
                .map(|c| micronode_link::PairingCode::parse(&c))
                .transpose()
                .context("bad pairing code")?;
            let engine = Arc::new(open_engine(&dir)?);
            if engine.is_revoked() {
                bail!("this signer was revoked; it signs nothing for the operator");
            }
            let line = serde_json::json!({"event": "signer_ready", "node_id": engine.node_id().to_string()});
            println!("{line}");
            micronode_signer::serve::run(
                engine,
                dir.clone(),
                node,
                code,
                crate::daemon::wait_for_shutdown_signal(),
            )
            .await
            .map_err(anyhow::Error::msg)
        }
        SignerCommand::Recover(args) => crate::signer_recover::run(&dir, args).await,
        SignerCommand::Revoke => {
            micronode_signer::engine::revoke_dir(&dir.join("state"))?;
            eprintln!("revoked: the signer refuses every request from the operator from now on");
            Ok(())
        }
    }
}
