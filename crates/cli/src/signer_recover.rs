//! `micronode signer recover`: arguments and output. The recovery itself is
//! `micronode_signer::recover`; each step is printed on stdout as a JSON line (`event`:
//! `operator_revoked`, `chain_synced`, `commitment_broadcast`, `commitment_on_chain`,
//! `breach_punished`, `to_remote_broadcast`, `channel_skipped`, `channel_failed`, `waiting`,
//! `sweep_broadcast`, `swept`, `wallet_sweep_broadcast`, `wallet_swept`, `recovered`), details
//! go to the log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bitcoin::address::NetworkUnchecked;
use bitcoin::Address;
use micronode_signer::recover::{recover, RecoverOptions};

/// Arguments of `micronode signer recover`.
#[derive(clap::Args, Debug)]
pub struct RecoverArgs {
    /// The tenant's own address that receives the funds.
    #[arg(long)]
    to: String,
    /// The chain source (the tenant's bitcoind).
    #[command(flatten)]
    chain: crate::signer_cmd::ChainArgs,
    /// Fee rate of the sweeps, sat/vB [default: bitcoind's 6-block estimate, else 2]; never
    /// above the policy's `max_sweep_feerate_sat_per_vb`.
    #[arg(long)]
    sat_per_vb: Option<u64>,
    /// Only show what would be broadcast; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs the recovery to the end (every sweep confirmed).
pub async fn run(dir: &Path, args: RecoverArgs) -> anyhow::Result<()> {
    let (engine, config) = crate::signer_cmd::open_engine(dir)?;
    let network = config.network()?;
    let destination = args
        .to
        .parse::<Address<NetworkUnchecked>>()
        .context("--to is not a Bitcoin address")?
        .require_network(network)
        .with_context(|| format!("--to is not a {network} address"))?
        .script_pubkey();
    let mut options = RecoverOptions {
        destination,
        sat_per_vb: args.sat_per_vb,
        poll_interval: Duration::from_secs(2),
        dry_run: args.dry_run,
    };
    options.check_fee(&config.policy)?;
    let (source, poll) = args.chain.source(&config)?;
    options.poll_interval = poll.min(Duration::from_secs(2));
    let to = args.to.clone();
    recover(Arc::new(engine), Arc::new(source), options, |event| {
        let mut line = serde_json::to_value(&event).unwrap_or_default();
        if line["event"] == "recovered" {
            line["to"] = serde_json::json!(to);
        }
        println!("{line}");
    })
    .await?;
    Ok(())
}
