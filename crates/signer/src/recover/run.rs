//! The recovery loop: decide per channel, broadcast, wait, sweep, report.

use std::sync::Arc;
use std::time::Duration;

use lightning_signer::bitcoin::{OutPoint, ScriptBuf, Transaction, Txid};

use super::{ChannelExit, RecoverError, RecoverEvent};
use crate::chain::{ChainFollower, ChainSource};
use crate::engine::SignerEngine;
use crate::watchtower::{Destination, FundingSpend};

/// How a recovery runs.
#[derive(Clone, Debug)]
pub struct RecoverOptions {
    /// The tenant's address that receives everything.
    pub destination: ScriptBuf,
    /// Fee rate of the sweeps in sat/vB; `None`: the chain source's estimate, within the
    /// tenant's sweep ceiling. A rate above the ceiling is refused.
    pub sat_per_vb: Option<u64>,
    /// How often to look at the chain.
    pub poll_interval: Duration,
    /// Only report what would be done.
    pub dry_run: bool,
}

impl RecoverOptions {
    /// Refuses a fee rate above the tenant's sweep ceiling (before anything is touched).
    pub fn check_fee(&self, policy: &crate::PolicyConfig) -> Result<(), RecoverError> {
        let ceiling = policy.max_sweep_feerate_sat_per_vb.max(1);
        match self.sat_per_vb {
            Some(requested) if requested > ceiling => {
                Err(RecoverError::FeeAboveCeiling { requested, ceiling })
            }
            _ => Ok(()),
        }
    }
}

/// A transaction of ours whose delayed outputs are swept once they are deep enough.
struct Delayed {
    exit: usize,
    source: Transaction,
    sweep: Option<(Txid, u64)>,
    last_wait: Option<u32>,
    done: bool,
}

/// A claim waiting to confirm.
struct Claim {
    channel: String,
    tx: Transaction,
    /// Paid into the wallet (counted with the wallet sweep) rather than to the destination.
    to_wallet: bool,
    done: bool,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RecoverError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RecoverError::Step(format!("internal error: {e}")))
}

/// The value of an output once it has at least one confirmation.
async fn confirmed_value<S: ChainSource>(
    source: &S,
    outpoint: OutPoint,
) -> Result<Option<u64>, RecoverError> {
    Ok(source
        .unspent(outpoint, false)
        .await?
        .filter(|(_, confirmations)| *confirmations >= 1)
        .map(|(out, _)| out.value.to_sat()))
}

/// Runs a recovery to the end (every sweep confirmed), reporting each step to `emit`. Returns
/// the total paid to the destination.
pub async fn recover<S: ChainSource>(
    engine: Arc<SignerEngine>,
    source: Arc<S>,
    options: RecoverOptions,
    mut emit: impl FnMut(RecoverEvent),
) -> Result<u64, RecoverError> {
    options.check_fee(engine.policy())?;
    let follower = ChainFollower::new(engine.clone(), source.clone(), options.poll_interval);
    follower.check_network().await?;
    let sat_per_vb = match options.sat_per_vb {
        Some(rate) => rate.max(1),
        None => follower.claim_fee_rate().await,
    };
    if !options.dry_run {
        // The operator is gone or not trusted: it gets no signature from here on.
        engine.revoke()?;
        emit(RecoverEvent::OperatorRevoked);
    }
    let height = follower.sync().await?;
    emit(RecoverEvent::ChainSynced { height });

    let close = !options.dry_run;
    let e = engine.clone();
    let channels = blocking(move || e.funded_channels()).await?;
    let mut exits: Vec<ChannelExit> = Vec::new();
    let mut delayed: Vec<Delayed> = Vec::new();
    let mut claims: Vec<Claim> = Vec::new();
    for (channel, funding) in channels {
        let e = engine.clone();
        let spender = blocking(move || e.store.spender_of(&funding)).await??;
        let spend = match &spender {
            Some(s) => {
                let (e, tx) = (engine.clone(), s.tx.clone());
                blocking(move || e.classify_funding_spend(&funding, &tx)).await?
            }
            None => None,
        };
        if spender.is_none() && source.unspent(funding, true).await?.is_none() {
            let e = engine.clone();
            let confirmed = blocking(move || e.store.funding_position(&funding)).await??;
            emit(RecoverEvent::ChannelSkipped {
                channel,
                reason: if confirmed.is_some() {
                    "the funding output is spent by a transaction that is not confirmed yet; \
                     run recover again once it is"
                } else {
                    "the channel's funding never reached the chain: there is nothing to recover"
                }
                .into(),
            });
            continue;
        }
        match (spender, spend) {
            (None, _) | (Some(_), Some(FundingSpend::Holder { .. })) => {
                // Still open (or closed with our own state): our latest state, then its
                // delayed outputs.
                let e = engine.clone();
                let exit = match blocking(move || e.channel_exit(&funding, close)).await? {
                    Some(Ok(exit)) => exit,
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "cannot recover a channel");
                        emit(RecoverEvent::ChannelFailed {
                            error: e.to_string(),
                        });
                        continue;
                    }
                    None => continue,
                };
                exits.push(exit);
                let index = exits.len() - 1;
                let spender = spender_of_exit(&engine, &exits[index]).await?;
                open_or_on_chain(
                    &*source,
                    &options,
                    index,
                    &exits,
                    spender,
                    &mut delayed,
                    &mut emit,
                )
                .await?;
            }
            (Some(spender), Some(spend @ FundingSpend::Counterparty { revoked, .. })) => {
                if options.dry_run {
                    emit(RecoverEvent::ChannelSkipped {
                        channel,
                        reason: format!(
                            "the counterparty closed ({spend:?}); a real run claims it"
                        ),
                    });
                    continue;
                }
                let claim = claim_counterparty_close(
                    &engine,
                    &*source,
                    &channel,
                    funding,
                    &spender.tx,
                    spend,
                    &options.destination,
                    sat_per_vb,
                )
                .await?;
                let Some(claim) = claim else {
                    emit(RecoverEvent::ChannelSkipped {
                        channel,
                        reason: "the counterparty's close owes the tenant nothing worth claiming"
                            .into(),
                    });
                    continue;
                };
                let txid = claim.tx.compute_txid().to_string();
                let amount_sat = claim.tx.output[0].value.to_sat();
                emit(if revoked {
                    RecoverEvent::BreachPunished {
                        channel,
                        commitment_txid: spender.tx.compute_txid().to_string(),
                        txid,
                        amount_sat,
                    }
                } else {
                    RecoverEvent::ToRemoteBroadcast {
                        channel,
                        txid,
                        amount_sat,
                    }
                });
                claims.push(claim);
            }
            (Some(_), _) => emit(RecoverEvent::ChannelSkipped {
                channel,
                reason: "the funding output was spent by a cooperative close; the tenant's share \
                         is in the wallet or on its way there"
                    .into(),
            }),
        }
    }

    let e = engine.clone();
    let range = blocking(move || e.wallet.scan_range(&e.store)).await??;
    let info = engine.public_info();
    if options.dry_run {
        let coins = source
            .wallet_coins(info.external_descriptor, info.internal_descriptor, range)
            .await?;
        emit(RecoverEvent::WouldSweepWallet {
            coins: coins.len(),
            amount_sat: coins.iter().map(|c| c.output.value.to_sat()).sum(),
        });
        return Ok(0);
    }

    let mut total = 0u64;
    let mut wallet: Option<Option<(Txid, u64)>> = None; // None: not swept yet; Some(None): empty
    let mut wallet_done = false;
    loop {
        for item in delayed.iter_mut().filter(|d| !d.done) {
            let exit = &exits[item.exit];
            if let Some((txid, amount)) = item.sweep {
                if let Some(sat) = confirmed_value(&*source, OutPoint::new(txid, 0)).await? {
                    item.done = true;
                    total += sat;
                    emit(RecoverEvent::Swept {
                        channel: exit.channel.clone(),
                        txid: txid.to_string(),
                        amount_sat: sat.min(amount),
                    });
                }
                continue;
            }
            let outputs = exit.delayed_outputs(&item.source);
            let Some((first, _)) = outputs.first() else {
                item.done = true;
                continue;
            };
            let confirmations = source
                .unspent(*first, false)
                .await?
                .map(|(_, c)| c)
                .unwrap_or(0);
            let left = u32::from(exit.to_self_delay).saturating_sub(confirmations);
            if left > 0 {
                if item.last_wait != Some(left) {
                    item.last_wait = Some(left);
                    emit(RecoverEvent::Waiting {
                        channel: exit.channel.clone(),
                        confirmations,
                        blocks_left: left,
                    });
                }
                continue;
            }
            let sweep = exit.sweep(&outputs, &options.destination, sat_per_vb)?;
            let amount = sweep.output[0].value.to_sat();
            let txid = sweep.compute_txid();
            source.broadcast(sweep).await?;
            item.sweep = Some((txid, amount));
            emit(RecoverEvent::SweepBroadcast {
                channel: exit.channel.clone(),
                txid: txid.to_string(),
                amount_sat: amount,
            });
        }
        for claim in claims.iter_mut().filter(|c| !c.done) {
            let txid = claim.tx.compute_txid();
            match confirmed_value(&*source, OutPoint::new(txid, 0)).await? {
                Some(sat) => {
                    claim.done = true;
                    if !claim.to_wallet {
                        total += sat;
                    }
                    emit(RecoverEvent::Swept {
                        channel: claim.channel.clone(),
                        txid: txid.to_string(),
                        amount_sat: sat,
                    });
                }
                None => {
                    let _ = source.broadcast(claim.tx.clone()).await;
                }
            }
        }
        // The wallet goes last among the claims into it: justice outputs land there first.
        if !wallet_done && claims.iter().all(|c| c.done || !c.to_wallet) {
            match wallet {
                None => {
                    wallet = Some(
                        sweep_wallet(&engine, &*source, &options, sat_per_vb, range, &mut emit)
                            .await?,
                    );
                    if wallet == Some(None) {
                        wallet_done = true;
                    }
                }
                Some(Some((txid, _))) => {
                    if let Some(sat) = confirmed_value(&*source, OutPoint::new(txid, 0)).await? {
                        wallet_done = true;
                        total += sat;
                        emit(RecoverEvent::WalletSwept {
                            txid: txid.to_string(),
                            amount_sat: sat,
                        });
                    }
                }
                Some(None) => wallet_done = true,
            }
        }
        if wallet_done && delayed.iter().all(|d| d.done) && claims.iter().all(|c| c.done) {
            break;
        }
        tokio::time::sleep(options.poll_interval).await;
    }
    emit(RecoverEvent::Recovered { total_sat: total });
    Ok(total)
}

/// The recorded transaction spending an exit's funding output, if any.
async fn spender_of_exit(
    engine: &Arc<SignerEngine>,
    exit: &ChannelExit,
) -> Result<Option<Transaction>, RecoverError> {
    let (e, funding) = (engine.clone(), exit.funding);
    Ok(blocking(move || e.store.spender_of(&funding))
        .await??
        .map(|s| s.tx))
}

/// A channel still open is closed with our latest state; one whose latest state of ours is on
/// chain already waits for its delay. Either way its delayed outputs are queued.
async fn open_or_on_chain<S: ChainSource>(
    source: &S,
    options: &RecoverOptions,
    index: usize,
    exits: &[ChannelExit],
    spender: Option<Transaction>,
    delayed: &mut Vec<Delayed>,
    emit: &mut impl FnMut(RecoverEvent),
) -> Result<(), RecoverError> {
    let exit = &exits[index];
    let commitment_txid = exit.commitment.compute_txid();
    let ours: u64 = exit
        .delayed_outputs(&exit.commitment)
        .iter()
        .map(|(_, o)| o.value.to_sat())
        .sum();
    match spender {
        Some(tx) if tx.compute_txid() == commitment_txid => {
            emit(RecoverEvent::CommitmentOnChain {
                channel: exit.channel.clone(),
                commitment_txid: commitment_txid.to_string(),
                to_self_delay: exit.to_self_delay,
                our_output_sat: ours,
            });
        }
        Some(_) => {
            emit(RecoverEvent::ChannelSkipped {
                channel: exit.channel.clone(),
                reason: "an older state of ours is on chain; the node's own sweeps claim it".into(),
            });
            return Ok(());
        }
        None if options.dry_run => {
            emit(RecoverEvent::WouldBroadcastCommitment {
                channel: exit.channel.clone(),
                commitment_txid: commitment_txid.to_string(),
                our_output_sat: ours,
            });
            return Ok(());
        }
        None => {
            source.broadcast(exit.commitment.clone()).await?;
            tracing::info!(channel = %exit.channel, txid = %commitment_txid, "commitment broadcast");
            emit(RecoverEvent::CommitmentBroadcast {
                channel: exit.channel.clone(),
                commitment_txid: commitment_txid.to_string(),
                to_self_delay: exit.to_self_delay,
                capacity_sat: exit.capacity_sat,
                our_output_sat: ours,
            });
        }
    }
    if !options.dry_run {
        queue_delayed(source, index, exit, delayed).await;
    }
    Ok(())
}

/// Queues our commitment's delayed outputs, and broadcasts the HTLC transactions on it that
/// can be claimed now (their outputs are delayed too).
async fn queue_delayed<S: ChainSource>(
    source: &S,
    index: usize,
    exit: &ChannelExit,
    delayed: &mut Vec<Delayed>,
) {
    if exit.delayed_outputs(&exit.commitment).is_empty() {
        return;
    }
    delayed.push(Delayed {
        exit: index,
        source: exit.commitment.clone(),
        sweep: None,
        last_wait: None,
        done: false,
    });
    for htlc_tx in &exit.htlc_txs {
        match source.broadcast(htlc_tx.clone()).await {
            Ok(()) => delayed.push(Delayed {
                exit: index,
                source: htlc_tx.clone(),
                sweep: None,
                last_wait: None,
                done: false,
            }),
            Err(e) => tracing::warn!(error = %e, "an HTLC transaction was not accepted yet"),
        }
    }
}

/// Claims what the counterparty's close owes the tenant: a revoked state is punished into the
/// wallet (VLS signs revocation claims only to it); a current state's `to_remote` goes to the
/// destination. A claim the watchtower already made is reused.
#[allow(clippy::too_many_arguments)]
async fn claim_counterparty_close<S: ChainSource>(
    engine: &Arc<SignerEngine>,
    source: &S,
    channel: &str,
    funding: OutPoint,
    commitment: &Transaction,
    spend: FundingSpend,
    destination: &ScriptBuf,
    sat_per_vb: u64,
) -> Result<Option<Claim>, RecoverError> {
    let revoked = matches!(spend, FundingSpend::Counterparty { revoked: true, .. });
    let e = engine.clone();
    let (tx, destination, channel) = (commitment.clone(), destination.clone(), channel.to_string());
    let built = blocking(move || -> Result<Vec<Transaction>, RecoverError> {
        let txid = tx.compute_txid();
        if let Some(existing) = e
            .store
            .sweeps(true)?
            .into_iter()
            .find(|s| s.tx.input.iter().any(|i| i.previous_output.txid == txid))
        {
            return Ok(vec![existing.tx]);
        }
        let destination = if revoked {
            let (script, path) = e.wallet.next_change(&e.store)?;
            Destination {
                script,
                wallet_path: Some(path),
            }
        } else {
            Destination {
                script: destination,
                wallet_path: None,
            }
        };
        let claims = e.claim_funding_spend(&funding, &tx, spend, &destination, sat_per_vb)?;
        for claim in &claims {
            e.store.record_sweep(claim)?;
        }
        Ok(claims.into_iter().map(|c| c.tx).collect::<Vec<_>>())
    })
    .await??;
    // The first claim is the one followed here; an anchor channel's revoked state also has
    // its `to_remote` claim, sent alongside.
    let mut built = built.into_iter();
    let Some(tx) = built.next() else {
        return Ok(None);
    };
    source.broadcast(tx.clone()).await?;
    for extra in built {
        source.broadcast(extra).await?;
    }
    Ok(Some(Claim {
        channel,
        tx,
        to_wallet: revoked,
        done: false,
    }))
}

/// Sweeps every coin of the wallet (scanned up to its high-water mark plus the window) to the
/// destination; `None` when the wallet is empty.
async fn sweep_wallet<S: ChainSource>(
    engine: &Arc<SignerEngine>,
    source: &S,
    options: &RecoverOptions,
    sat_per_vb: u64,
    range: (u32, u32),
    emit: &mut impl FnMut(RecoverEvent),
) -> Result<Option<(Txid, u64)>, RecoverError> {
    let info = engine.public_info();
    let coins = source
        .wallet_coins(info.external_descriptor, info.internal_descriptor, range)
        .await?;
    if coins.is_empty() {
        return Ok(None);
    }
    let e = engine.clone();
    let destination = options.destination.clone();
    let count = coins.len();
    let tx = blocking(move || e.sweep_wallet(&coins, &destination, sat_per_vb)).await??;
    let amount = tx.output[0].value.to_sat();
    let txid = tx.compute_txid();
    source.broadcast(tx).await?;
    emit(RecoverEvent::WalletSweepBroadcast {
        txid: txid.to_string(),
        coins: count,
        amount_sat: amount,
    });
    Ok(Some((txid, amount)))
}
