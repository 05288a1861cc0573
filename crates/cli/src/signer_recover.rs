//! `micronode signer recover`: the tenant leaves without the operator. From the signer's own
//! state and any bitcoind, it force-closes every channel with the latest state the signer
//! validated, waits out the contest delay and sweeps the tenant's side to the tenant's address.
//!
//! The on-chain wallet's coins (found with `scantxoutset`) go to the same address.
//!
//! Progress goes to stdout as JSON lines (`event`: `operator_revoked`, `commitment_broadcast`,
//! `commitment_on_chain`, `channel_skipped`, `channel_failed`, `wallet_sweep_broadcast`,
//! `wallet_swept`, `waiting`, `sweep_broadcast`, `swept`, `recovered`), details to the log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use micronode_chain::BitcoindRpc;
use micronode_signer::recover::{ChannelExit, WalletUtxo};
use serde_json::{json, Value};

/// Arguments of `micronode signer recover`.
#[derive(clap::Args, Debug)]
pub struct RecoverArgs {
    /// The tenant's own address that receives the funds.
    #[arg(long)]
    to: String,
    /// bitcoind RPC address host:port [default: 127.0.0.1 and the network's RPC port].
    #[arg(long, env = "MICRONODE_BITCOIND_RPC")]
    bitcoind_rpc: Option<String>,
    /// bitcoind RPC user (with the password).
    #[arg(long, env = "MICRONODE_BITCOIND_RPC_USER")]
    bitcoind_rpc_user: Option<String>,
    /// bitcoind RPC password. Prefer the environment variable: flags show up in `ps`.
    #[arg(long, env = "MICRONODE_BITCOIND_RPC_PASSWORD", hide_env_values = true)]
    bitcoind_rpc_password: Option<String>,
    /// bitcoind cookie file (instead of user and password).
    #[arg(long, env = "MICRONODE_BITCOIND_RPC_COOKIE")]
    bitcoind_rpc_cookie: Option<PathBuf>,
    /// Fee rate of the sweeps, sat/vB [default: bitcoind's 6-block estimate, else 2].
    #[arg(long)]
    sat_per_vb: Option<u64>,
    /// How often to look at the chain, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    poll_interval_ms: u64,
    /// How many receive and change addresses of the on-chain wallet to scan for coins.
    #[arg(long, default_value_t = 1000)]
    wallet_range: u32,
    /// Only show what would be broadcast; change nothing.
    #[arg(long)]
    dry_run: bool,
}

fn emit(value: Value) {
    println!("{value}");
}

/// One transaction of ours whose delayed outputs we sweep once it is deep enough.
struct Pending {
    exit: usize,
    source: Transaction,
    sweep: Option<Txid>,
    last_wait: Option<i64>,
}

/// Runs the recovery to the end (every sweep confirmed).
pub async fn run(dir: &Path, args: RecoverArgs) -> anyhow::Result<()> {
    let config = crate::signer_cmd::read_config(dir)?;
    let network = crate::signer_cmd::parse_network(&config.network)?;
    let destination = args
        .to
        .parse::<Address<NetworkUnchecked>>()
        .context("--to is not a Bitcoin address")?
        .require_network(network)
        .with_context(|| format!("--to is not a {network} address"))?
        .script_pubkey();
    let (host, port, auth) = crate::config::bitcoind_endpoint(
        network,
        args.bitcoind_rpc.as_deref(),
        args.bitcoind_rpc_user,
        args.bitcoind_rpc_password,
        args.bitcoind_rpc_cookie,
    )?;
    let rpc = BitcoindRpc::new(&host, port, auth)?;
    let chain_network = rpc.network().await.context("asking bitcoind its network")?;
    if chain_network != network {
        bail!("bitcoind is on {chain_network}, the signer's keys are for {network}");
    }
    let engine = crate::signer_cmd::open_engine(dir)?;
    if !args.dry_run {
        // The operator is gone or not trusted: it gets no signature from here on.
        micronode_signer::engine::revoke_dir(&dir.join("state"))?;
        emit(json!({"event": "operator_revoked"}));
    }
    let sat_per_vb = match args.sat_per_vb {
        Some(rate) => rate,
        None => estimate_sat_per_vb(&rpc).await,
    };

    let mut exits: Vec<ChannelExit> = Vec::new();
    for exit in engine.channel_exits(!args.dry_run) {
        match exit {
            Ok(exit) => exits.push(exit),
            Err(e) => {
                tracing::error!(error = %e, "cannot recover a channel");
                emit(json!({"event": "channel_failed", "error": e.to_string()}));
            }
        }
    }
    let mut pending = Vec::new();
    for (index, exit) in exits.iter().enumerate() {
        let commitment_txid = exit.commitment.compute_txid();
        let ours = exit.delayed_outputs(&exit.commitment);
        let base = json!({
            "channel": exit.channel,
            "commitment_txid": commitment_txid.to_string(),
            "to_self_delay": exit.to_self_delay,
            "capacity_sat": exit.capacity_sat,
            "our_output_sat": ours.iter().map(|(_, o)| o.value.to_sat()).sum::<u64>(),
        });
        if utxo(&rpc, &exit.funding, true).await?.is_some() {
            if args.dry_run {
                emit(with_event(base, "would_broadcast_commitment"));
                continue;
            }
            rpc.send_raw_transaction(&exit.commitment)
                .await
                .with_context(|| format!("broadcasting the commitment of {}", exit.channel))?;
            tracing::info!(channel = %exit.channel, txid = %commitment_txid, "commitment broadcast");
            emit(with_event(base, "commitment_broadcast"));
        } else if let Some((outpoint, _)) = ours.first() {
            if utxo(&rpc, outpoint, true).await?.is_none() {
                emit(skipped(
                    base,
                    "the funding output is spent by another transaction (a cooperative close, \
                     or the counterparty's commitment)",
                ));
                continue;
            }
            emit(with_event(base, "commitment_on_chain"));
        } else {
            emit(skipped(
                base,
                "our side of the latest state is empty or dust",
            ));
            continue;
        }
        if ours.is_empty() {
            continue;
        }
        pending.push(Pending {
            exit: index,
            source: exit.commitment.clone(),
            sweep: None,
            last_wait: None,
        });
        for htlc_tx in &exit.htlc_txs {
            match rpc.send_raw_transaction(htlc_tx).await {
                Ok(_) => pending.push(Pending {
                    exit: index,
                    source: htlc_tx.clone(),
                    sweep: None,
                    last_wait: None,
                }),
                Err(e) => tracing::warn!(error = %e, "an HTLC transaction was not accepted yet"),
            }
        }
    }
    let wallet = scan_wallet(&rpc, &engine, args.wallet_range).await?;
    let wallet_sat: u64 = wallet.iter().map(|u| u.output.value.to_sat()).sum();
    if args.dry_run {
        emit(
            json!({"event": "would_sweep_wallet", "coins": wallet.len(), "amount_sat": wallet_sat}),
        );
        return Ok(());
    }
    let mut wallet_sweep = None;
    if !wallet.is_empty() {
        let tx = engine.sweep_wallet(&wallet, &destination, sat_per_vb)?;
        let txid = rpc
            .send_raw_transaction(&tx)
            .await
            .context("broadcasting the wallet sweep")?;
        emit(
            json!({"event": "wallet_sweep_broadcast", "txid": txid.to_string(),
            "coins": wallet.len(), "amount_sat": tx.output[0].value.to_sat()}),
        );
        wallet_sweep = Some(txid);
    }

    let mut swept: HashMap<Txid, u64> = HashMap::new();
    let expected = pending.len() + usize::from(wallet_sweep.is_some());
    while swept.len() < expected {
        if let Some(txid) = wallet_sweep.filter(|t| !swept.contains_key(t)) {
            if let Some(sat) = confirmed_value(&rpc, &OutPoint::new(txid, 0)).await? {
                swept.insert(txid, sat);
                emit(json!({"event": "wallet_swept", "txid": txid.to_string(), "amount_sat": sat}));
            }
        }
        for item in pending.iter_mut() {
            let exit = &exits[item.exit];
            let outputs = exit.delayed_outputs(&item.source);
            if let Some(sweep_txid) = item.sweep {
                if swept.contains_key(&sweep_txid) {
                    continue;
                }
                if let Some(sat) = confirmed_value(&rpc, &OutPoint::new(sweep_txid, 0)).await? {
                    swept.insert(sweep_txid, sat);
                    emit(json!({"event": "swept", "channel": exit.channel,
                        "txid": sweep_txid.to_string(), "amount_sat": sat}));
                }
                continue;
            }
            let Some((first, _)) = outputs.first() else {
                continue;
            };
            let confirmations = match utxo(&rpc, first, false).await? {
                Some(utxo) => utxo["confirmations"].as_i64().unwrap_or(0),
                None => 0,
            };
            let left = i64::from(exit.to_self_delay) - confirmations;
            if left > 0 {
                if item.last_wait != Some(left) {
                    item.last_wait = Some(left);
                    tracing::info!(channel = %exit.channel, blocks_left = left, "waiting for the contest delay");
                    emit(json!({"event": "waiting", "channel": exit.channel,
                        "confirmations": confirmations, "blocks_left": left}));
                }
                continue;
            }
            let sweep = exit.sweep(&outputs, &destination, sat_per_vb)?;
            let txid = rpc
                .send_raw_transaction(&sweep)
                .await
                .context("broadcasting a sweep")?;
            item.sweep = Some(txid);
            emit(json!({"event": "sweep_broadcast", "channel": exit.channel,
                "txid": txid.to_string(), "amount_sat": sweep.output[0].value.to_sat()}));
        }
        if swept.len() < expected {
            tokio::time::sleep(Duration::from_millis(args.poll_interval_ms)).await;
        }
    }
    let total: u64 = swept.values().sum();
    emit(json!({"event": "recovered", "total_sat": total, "to": args.to}));
    Ok(())
}

fn with_event(mut base: Value, event: &str) -> Value {
    base["event"] = json!(event);
    base
}

fn skipped(base: Value, reason: &str) -> Value {
    let mut value = with_event(base, "channel_skipped");
    value["reason"] = json!(reason);
    value
}

/// `gettxout`: the unspent output, or `None` when it is spent or unknown.
async fn utxo(
    rpc: &BitcoindRpc,
    outpoint: &OutPoint,
    include_mempool: bool,
) -> anyhow::Result<Option<Value>> {
    let value: Option<Value> = rpc
        .call(
            "gettxout",
            &[
                json!(outpoint.txid.to_string()),
                json!(outpoint.vout),
                json!(include_mempool),
            ],
        )
        .await
        .context("gettxout")?;
    Ok(value.filter(|v| !v.is_null()))
}

/// The value of an output once it has at least one confirmation.
async fn confirmed_value(rpc: &BitcoindRpc, outpoint: &OutPoint) -> anyhow::Result<Option<u64>> {
    Ok(utxo(rpc, outpoint, false)
        .await?
        .filter(|u| u["confirmations"].as_i64().unwrap_or(0) >= 1)
        .map(|u| (u["value"].as_f64().unwrap_or(0.0) * 1e8).round() as u64))
}

/// Finds the wallet's confirmed coins with `scantxoutset` over the first `range` receive and
/// change addresses (no wallet needed in bitcoind).
async fn scan_wallet(
    rpc: &BitcoindRpc,
    engine: &micronode_signer::SignerEngine,
    range: u32,
) -> anyhow::Result<Vec<WalletUtxo>> {
    let info = engine.public_info();
    tracing::info!(
        range,
        "scanning the UTXO set for the wallet's coins (minutes on mainnet)"
    );
    let scan: Value = rpc
        .call(
            "scantxoutset",
            &[
                json!("start"),
                json!([
                    {"desc": info.external_descriptor, "range": [0, range]},
                    {"desc": info.internal_descriptor, "range": [0, range]},
                ]),
            ],
        )
        .await
        .context("scantxoutset")?;
    let mut coins = Vec::new();
    for unspent in scan["unspents"].as_array().cloned().unwrap_or_default() {
        let parsed = (|| {
            let txid: Txid = unspent["txid"].as_str()?.parse().ok()?;
            let vout = u32::try_from(unspent["vout"].as_u64()?).ok()?;
            let script = hex::decode(unspent["scriptPubKey"].as_str()?).ok()?;
            let sat = (unspent["amount"].as_f64()? * 1e8).round() as u64;
            let path = origin_path(unspent["desc"].as_str()?)?;
            Some(WalletUtxo {
                outpoint: OutPoint::new(txid, vout),
                output: TxOut {
                    value: Amount::from_sat(sat),
                    script_pubkey: ScriptBuf::from_bytes(script),
                },
                path,
            })
        })();
        match parsed {
            Some(coin) => coins.push(coin),
            None => tracing::warn!(%unspent, "skipping a coin bitcoind described oddly"),
        }
    }
    Ok(coins)
}

/// The path after the fingerprint in a descriptor's key origin: `wpkh([d34db33f/1/7]02..)`
/// gives `[1, 7]`.
fn origin_path(desc: &str) -> Option<Vec<u32>> {
    let start = desc.find('[')? + 1;
    let end = start + desc[start..].find(']')?;
    desc[start..end]
        .split('/')
        .skip(1)
        .map(|step| step.parse().ok())
        .collect()
}

async fn estimate_sat_per_vb(rpc: &BitcoindRpc) -> u64 {
    match rpc.estimate_smart_fee(6, "economical").await {
        Ok(Some(btc_per_kvb)) => ((btc_per_kvb * 1e8 / 1000.0).ceil() as u64).max(1),
        _ => {
            tracing::warn!("bitcoind has no fee estimate; sweeping at 2 sat/vB (set --sat-per-vb)");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::origin_path;

    #[test]
    fn origin_paths_are_read_from_descriptors() {
        assert_eq!(
            origin_path("wpkh([d34db33f/1/7]02aa)#abcd"),
            Some(vec![1, 7])
        );
        assert_eq!(origin_path("wpkh(02aa)"), None);
        assert_eq!(origin_path("wpkh([d34db33f/1h/7]02aa)"), None);
    }
}
