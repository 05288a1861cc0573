//! Making bitcoind's fee estimator, and so ldk-node, use a chosen fee rate on regtest.

use bitcoin::{Amount, Denomination};
use serde_json::{json, Value};

use super::{LdkPeerError, Result};
use crate::Bitcoind;

/// What [`teach_fee_rate`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaughtFeeRate {
    /// What `estimatesmartfee` now returns for every target and mode ldk-node asks for
    /// (sat/kvB).
    pub sat_per_kvb: u64,
    /// The same in sat per 1000 weight, rounded as ldk-node converts it: its fee-rate cache
    /// holds this for every target but three (see [`teach_fee_rate`]).
    pub sat_per_kw: u64,
    /// Blocks mined to get there.
    pub blocks: u64,
}

/// The `estimatesmartfee` calls ldk-node 0.7.1 makes with a bitcoind chain source.
const LDK_NODE_ESTIMATES: [(u16, &str); 6] = [
    (1, "CONSERVATIVE"),
    (6, "CONSERVATIVE"),
    (6, "ECONOMICAL"),
    (12, "ECONOMICAL"),
    (144, "ECONOMICAL"),
    (1008, "ECONOMICAL"),
];

/// Teaches bitcoind's fee estimator a fee rate of `sat_per_vb`, so that `estimatesmartfee`
/// returns it for every target ldk-node asks for, then returns what it returns.
///
/// It sends a few wallet transactions at exactly that rate (`sendtoaddress ... fee_rate`) and
/// mines them, one block at a time, until every estimate ldk-node 0.7.1 makes (targets 1, 6
/// conservative; 6, 12, 144, 1008 economical) answers with the same rate, at least 12 blocks
/// and at most 60. bitcoind caps each target at half the blocks it has tracked, so all those
/// targets then read the short-horizon data this builds.
///
/// ldk-node reads it on its next fee refresh: [`LdkPeer::sync`](super::LdkPeer::sync) does one at once; otherwise
/// it refreshes within 2 s of seeing a new block. All its targets then hold
/// [`TaughtFeeRate::sat_per_kw`], except `MaximumFeeEstimate` (that times 1.1, plus 2500),
/// `MinAllowedNonAnchorChannelRemoteFee` (that less 250, at least 253) and
/// `MinAllowedAnchorChannelRemoteFee` (bitcoind's `mempoolminfee`, normally 253). Our nodes on
/// the same bitcoind read the same estimates.
///
/// The estimator's data decays with every block: some 100 blocks without such transactions
/// later (measured with Bitcoin Knots 29: still there 96 blocks on, gone 146 on) the estimates
/// lapse and ldk-node falls back to 253 sat/kw (its regtest fallback of 250, floored). Teach
/// again after mining many blocks, e.g. after [`Bitcoind::fund_address`] matured coins.
pub async fn teach_fee_rate(bitcoind: &Bitcoind, sat_per_vb: u64) -> Result<TaughtFeeRate> {
    const TXS_PER_BLOCK: usize = 3;
    const MIN_BLOCKS: u64 = 12;
    const MAX_BLOCKS: u64 = 60;
    if sat_per_vb == 0 {
        return Err(LdkPeerError::FeeRate("the rate must be positive".into()));
    }
    let wallet = bitcoind.wallet_rpc();
    // Spendable coins for a few blocks' worth of transactions; `mine` pays the wallet.
    if wallet.get_balance().await? < Amount::from_sat(10 * 100_000_000) {
        bitcoind.mine(101).await?;
    }
    let target = wallet.get_new_address().await?;
    let amount = Amount::from_sat(100_000).to_string_in(Denomination::Bitcoin);
    let want = sat_per_vb * 1000;
    let mut last = String::new();
    for blocks in 1..=MAX_BLOCKS {
        for _ in 0..TXS_PER_BLOCK {
            // sendtoaddress address amount comment comment_to subtractfeefromamount replaceable
            //   conf_target estimate_mode avoid_reuse fee_rate (sat/vB)
            let params = [
                json!(target.to_string()),
                json!(amount),
                json!(""),
                json!(""),
                json!(false),
                json!(true),
                Value::Null,
                Value::Null,
                Value::Null,
                json!(sat_per_vb),
            ];
            wallet.call::<Value>("sendtoaddress", &params).await?;
        }
        bitcoind.mine(1).await?;
        if blocks < MIN_BLOCKS {
            continue;
        }
        let mut rates = Vec::new();
        for (conf_target, mode) in LDK_NODE_ESTIMATES {
            let btc_per_kvb = bitcoind.rpc().estimate_smart_fee(conf_target, mode).await?;
            rates.push(btc_per_kvb.map(|r| (r * 100_000_000.0).round() as u64));
        }
        last = format!("{rates:?} sat/kvB for {LDK_NODE_ESTIMATES:?}");
        // The wallet pays at least the rate; a byte of slack in its size estimate may lift the
        // average a little, and differently per target (Knots gave 50,002 and 50,001 for
        // 50,000): every target within that band counts, at the lowest of them.
        let in_band = |r: &Option<u64>| r.is_some_and(|r| r >= want && r <= want + want / 100 + 1);
        if rates.iter().all(in_band) {
            if let Some(got) = rates.iter().flatten().copied().min() {
                return Ok(TaughtFeeRate {
                    sat_per_kvb: got,
                    // ldk-node: BTC/kvB * 25_000_000, rounded.
                    sat_per_kw: ((got as f64 / 100_000_000.0) * 25_000_000.0).round() as u64,
                    blocks,
                });
            }
        }
    }
    Err(LdkPeerError::FeeRate(format!(
        "after {MAX_BLOCKS} blocks estimatesmartfee gives {last}, wanted {want} sat/kvB"
    )))
}
