//! The world of an interop test: one bitcoind, one ldk-node peer in its own process
//! (`interop/ldk-peer`) and one of our nodes, with the bookkeeping that reconciles both sides
//! to the sat from the real transactions.

use std::collections::HashMap;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::{OutPoint, Transaction};
use lightning::chain::chaininterface::{ConfirmationTarget, FeeEstimator};
use micronode_node::{NodeEvent, PaymentDirection, PaymentStatus};
use micronode_testenv::ldk_peer::{
    LdkPeer, PeerBalances, PeerEvent, PeerLightningBalance, UserChannelId,
};
use micronode_testenv::nodes::{expect_event, Env, TestNode, TIMEOUT};
use micronode_testenv::wait_until;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// One anchor output.
pub const ANCHOR_SAT: u64 = 330;
/// The two anchor outputs the funder pays for.
pub const ANCHORS_SAT: u64 = 2 * ANCHOR_SAT;
/// ldk-node's fee rate for every target on a regtest chain whose bitcoind has no estimates.
pub const LDK_NODE_REGTEST_RATE_KW: u64 = 253;

/// One side of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Our node.
    Ours,
    /// The ldk-node peer.
    Peer,
}

/// A channel between our node and the peer.
#[derive(Clone, Debug)]
pub struct Chan {
    pub channel_id: String,
    /// ldk-node's id for it (its close commands take it).
    pub peer_id: UserChannelId,
    pub funding: OutPoint,
    pub capacity: u64,
    pub funder: Side,
}

/// What each side owns in a channel with no HTLC in flight (sat): the funder's share
/// includes the commitment fee and the two anchors it pays for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub ours: u64,
    pub peer: u64,
}

impl Split {
    pub fn of(&self, side: Side) -> u64 {
        match side {
            Side::Ours => self.ours,
            Side::Peer => self.peer,
        }
    }
}

/// Spends of outputs in mined blocks, scanned once per block.
struct Scanner {
    next_height: u32,
    spends: HashMap<OutPoint, Transaction>,
}

/// A bitcoind, the peer and our node.
pub struct World {
    pub env: Env,
    pub peer: LdkPeer,
    pub ours: TestNode,
    /// The peer's events taken off its queue and not yet consumed.
    log: Mutex<Vec<PeerEvent>>,
    scan: Mutex<Scanner>,
}

impl World {
    /// Starts everything and funds the peer's wallet with one coin of each of `peer_coins` and
    /// ours with `our_coins` (several coins, so that parallel spends need no unconfirmed
    /// change).
    pub async fn start(tag: &str, peer_coins: &[u64], our_coins: &[u64]) -> World {
        let env = Env::new(tag).await;
        let peer = LdkPeer::start(&env.bitcoind, &env.dir.0.join("ldk-peer"))
            .await
            .expect("start the ldk-node peer");
        let ours = env.start_node("ours").await;
        for sat in peer_coins {
            let address = peer.new_address().await.expect("peer address");
            env.bitcoind
                .fund_address(&address, *sat)
                .await
                .expect("fund the peer");
        }
        for sat in our_coins {
            let address = ours
                .new_address()
                .expect("address")
                .parse::<bitcoin::Address<_>>()
                .expect("parse")
                .assume_checked();
            env.bitcoind
                .fund_address(&address, *sat)
                .await
                .expect("fund our node");
        }
        env.mine(1).await;
        let tip = env.bitcoind.rpc().get_block_count().await.expect("height");
        let world = World {
            env,
            peer,
            ours,
            log: Mutex::new(Vec::new()),
            scan: Mutex::new(Scanner {
                next_height: tip + 1,
                spends: HashMap::new(),
            }),
        };
        let ours_total: u64 = our_coins.iter().sum();
        let peer_total: u64 = peer_coins.iter().sum();
        wait_until("our wallet sees its coins", TIMEOUT, || async {
            world.ours.onchain_balance().confirmed_sat == ours_total
        })
        .await
        .expect("our node funded");
        world
            .peer_balances_until("the peer's coins", |b| b.total_onchain_sat == peer_total)
            .await;
        world
    }

    /// Syncs the peer until `pred` holds for its balances; returns them.
    pub async fn peer_balances_until(
        &self,
        what: &str,
        pred: impl Fn(&PeerBalances) -> bool,
    ) -> PeerBalances {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.peer.sync().await.expect("peer sync");
            let balances = self.peer.balances().await.expect("peer balances");
            if pred(&balances) {
                return balances;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the peer's balances: {balances:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The first of the peer's events matching `pred` (earlier ones stay for later calls).
    pub async fn peer_event(&self, what: &str, pred: impl Fn(&PeerEvent) -> bool) -> PeerEvent {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            {
                let mut log = self.log.lock().await;
                if let Some(i) = log.iter().position(&pred) {
                    return log.remove(i);
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for the peer's {what}; its events: {log:#?}"
                );
            }
            let event = self
                .peer
                .wait_event(Duration::from_millis(300))
                .await
                .expect("peer wait_event");
            if let Some(event) = event {
                self.peer.event_handled().await.expect("peer event_handled");
                self.log.lock().await.push(event);
            }
        }
    }

    /// The peer opens a private channel of `sat` to our node, pushing `push_sat` to us.
    pub async fn open_from_peer(&self, sat: u64, push_sat: u64) -> Chan {
        let addr = self.ours.listen_addr().expect("listening");
        let id = self
            .peer
            .open_channel(self.ours.node_id(), addr, sat, push_sat * 1000, false)
            .await
            .expect("the peer opens a channel");
        let event = self
            .peer_event("channel pending", |e| match e {
                PeerEvent::ChannelPending {
                    user_channel_id, ..
                }
                | PeerEvent::ChannelClosed {
                    user_channel_id, ..
                } => *user_channel_id == id,
                _ => false,
            })
            .await;
        let PeerEvent::ChannelPending {
            channel_id,
            funding_txo,
            ..
        } = event
        else {
            panic!("the peer's channel closed before it was funded: {event:?}");
        };
        let funding: OutPoint = funding_txo.parse().expect("funding outpoint");
        self.env
            .bitcoind
            .wait_for_mempool_tx(&funding.txid, TIMEOUT)
            .await
            .expect("funding broadcast");
        // ldk-node 0.7.1 does not mark the coins of a funding transaction as spent until its
        // wallet syncs: a second channel opened at once double-spends the first's coins and
        // bitcoind refuses it ("insufficient fee, rejecting replacement"). Confirm and sync.
        self.env.mine(1).await;
        self.peer.sync().await.expect("peer sync");
        Chan {
            channel_id,
            peer_id: id,
            funding,
            capacity: sat,
            funder: Side::Peer,
        }
    }

    /// Our node opens a private channel of `sat` to the peer, pushing `push_sat` to it.
    pub async fn open_from_ours(&self, sat: u64, push_sat: u64) -> Chan {
        let ours = &self.ours;
        ours.connect_peer(self.peer.node_id(), self.peer.listen_addr())
            .await
            .expect("connect to the peer");
        let mut events = ours.subscribe_events();
        ours.open_channel(self.peer.node_id(), sat, push_sat * 1000, Some(false))
            .expect("open a channel");
        let event = expect_event(&mut events, "our channel pending", |e| match e {
            NodeEvent::ChannelPending { channel_id, .. } => ours
                .list_channels()
                .iter()
                .any(|c| &c.channel_id == channel_id && c.is_outbound),
            NodeEvent::ChannelClosed { .. } => true,
            _ => false,
        })
        .await;
        let NodeEvent::ChannelPending {
            channel_id,
            funding_txo,
            ..
        } = event
        else {
            panic!("our channel closed before it was funded: {event:?}");
        };
        let funding: OutPoint = funding_txo.parse().expect("funding outpoint");
        self.env
            .bitcoind
            .wait_for_mempool_tx(&funding.txid, TIMEOUT)
            .await
            .expect("funding broadcast");
        let peer_id = poll("the peer knows the channel", || async {
            let theirs = self.peer.channels().await.expect("peer channels");
            let id = theirs
                .iter()
                .find(|c| c.channel_id == channel_id)
                .map(|c| c.user_channel_id);
            (id, theirs)
        })
        .await;
        Chan {
            channel_id,
            peer_id,
            funding,
            capacity: sat,
            funder: Side::Ours,
        }
    }

    /// Confirms the channels (6 blocks) and waits until both sides can use them; checks that
    /// both negotiated anchors.
    pub async fn confirm(&self, chans: &[&Chan]) {
        self.env.mine(6).await;
        wait_until("the channels are usable on both sides", TIMEOUT, || async {
            let ours = self.ours.list_channels();
            let theirs = self.peer.channels().await.expect("peer channels");
            chans.iter().all(|chan| {
                ours.iter()
                    .any(|c| c.channel_id == chan.channel_id && c.is_usable)
                    && theirs
                        .iter()
                        .any(|c| c.channel_id == chan.channel_id && c.is_usable)
            })
        })
        .await
        .expect("channels usable");
        let theirs = self.peer.channels().await.expect("peer channels");
        for chan in chans {
            let ours = self.our_channel(chan);
            assert!(
                ours.anchors,
                "our side of {} has no anchors",
                chan.channel_id
            );
            assert_eq!(ours.capacity_sat, chan.capacity);
            assert_eq!(ours.is_outbound, chan.funder == Side::Ours);
            let peer = theirs
                .iter()
                .find(|c| c.channel_id == chan.channel_id)
                .expect("peer channel");
            // ldk-node does not expose the channel type; its anchor reserve counts anchor
            // channels (see interop/ldk-peer/README.md).
            assert_eq!(
                peer.anchors,
                Some(true),
                "the peer's side of {} has no anchors",
                chan.channel_id
            );
            assert_eq!(peer.is_outbound, chan.funder == Side::Peer);
            assert_eq!(peer.funding_txo, Some(chan.funding));
        }
    }

    pub fn our_channel(&self, chan: &Chan) -> micronode_node::ChannelInfo {
        self.ours
            .list_channels()
            .into_iter()
            .find(|c| c.channel_id == chan.channel_id)
            .unwrap_or_else(|| panic!("we have no channel {}", chan.channel_id))
    }

    /// The peer's balance of the channel while it is open.
    pub fn peer_channel_balance<'a>(
        balances: &'a PeerBalances,
        chan: &Chan,
    ) -> &'a PeerLightningBalance {
        balances
            .lightning_balances
            .iter()
            .find(|b| b.channel_id == chan.channel_id && b.kind == "ClaimableOnChannelClose")
            .unwrap_or_else(|| {
                panic!(
                    "the peer has no balance of {}: {balances:#?}",
                    chan.channel_id
                )
            })
    }

    /// Each side's share of an open channel with no HTLC in flight, as each side reports it;
    /// checks that they add up to the channel's capacity.
    pub async fn split(&self, chan: &Chan) -> Split {
        poll("both sides agree on the channel", || async {
            let ours_info = self.our_channel(chan);
            let balances = self.peer.balances().await.expect("peer balances");
            let peer = Self::peer_channel_balance(&balances, chan);
            let funder_extra = |side: Side| if chan.funder == side { ANCHORS_SAT } else { 0 };
            let s = Split {
                ours: ours_info.balance_sat + funder_extra(Side::Ours),
                peer: peer.amount_sat
                    + peer.transaction_fee_sat.unwrap_or(0)
                    + funder_extra(Side::Peer),
            };
            let agreed = ours_info.pending_htlcs == 0 && s.ours + s.peer == chan.capacity;
            (agreed.then_some(s), (s, chan.capacity, ours_info, balances))
        })
        .await
    }

    /// The peer pays an invoice of ours for `sat`; both sides record it.
    pub async fn peer_pays_invoice(&self, sat: u64) {
        let invoice = self
            .ours
            .create_invoice(Some(sat * 1000), "from ldk-node", 3600)
            .expect("invoice");
        let id = self.peer.pay(&invoice.invoice).await.expect("peer pays");
        let paid = self
            .peer
            .wait_payment(&id, TIMEOUT)
            .await
            .expect("resolves");
        assert_eq!(paid.status, "succeeded", "{paid:?}");
        assert_eq!(paid.fee_paid_msat, Some(0), "{paid:?}");
        let hash = micronode_node::pay::parse_hash(&invoice.payment_hash).expect("hash");
        self.wait_received(&hash, sat).await;
    }

    /// The peer sends `sat` by keysend; both sides record it.
    pub async fn peer_keysends(&self, sat: u64) {
        let id = self
            .peer
            .keysend(self.ours.node_id(), sat * 1000)
            .await
            .expect("peer keysends");
        let paid = self
            .peer
            .wait_payment(&id, TIMEOUT)
            .await
            .expect("resolves");
        assert_eq!(paid.status, "succeeded", "{paid:?}");
        assert_eq!(paid.kind, "spontaneous");
        let hash = paid.payment_hash.as_deref().expect("hash");
        let hash = micronode_node::pay::parse_hash(hash).expect("hash");
        self.wait_received(&hash, sat).await;
    }

    async fn wait_received(&self, hash: &[u8; 32], sat: u64) {
        wait_until("our node records the payment", TIMEOUT, || async {
            self.ours
                .payment_in(PaymentDirection::Inbound, hash)
                .is_some_and(|p| p.status == PaymentStatus::Succeeded)
        })
        .await
        .expect("received");
        let received = self
            .ours
            .payment_in(PaymentDirection::Inbound, hash)
            .expect("payment");
        assert_eq!(received.amount_msat, Some(sat * 1000), "{received:?}");
    }

    /// Our node pays an invoice of the peer for `sat`; both sides record it.
    pub async fn ours_pays_invoice(&self, sat: u64) {
        let invoice = self
            .peer
            .invoice(sat * 1000, "from micronode", 3600)
            .await
            .expect("peer invoice");
        let id = self
            .ours
            .pay_invoice(&invoice.bolt11, None, None)
            .expect("pay");
        let paid = self.ours.wait_payment(&id, TIMEOUT).await.expect("outcome");
        assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
        assert_eq!(paid.fee_msat, Some(0), "{paid:?}");
        self.wait_peer_received(&invoice.payment_hash, sat).await;
    }

    /// Our node sends `sat` to the peer by keysend; both sides record it.
    pub async fn ours_keysends(&self, sat: u64) {
        let id = self
            .ours
            .keysend(self.peer.node_id(), sat * 1000, None)
            .expect("keysend");
        let paid = self.ours.wait_payment(&id, TIMEOUT).await.expect("outcome");
        assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
        assert_eq!(paid.fee_msat, Some(0), "{paid:?}");
        self.wait_peer_received(&hex::encode(paid.payment_hash), sat)
            .await;
    }

    async fn wait_peer_received(&self, hash: &str, sat: u64) {
        // ldk-node's id of an inbound payment is its hash.
        let received = poll("the peer records the payment", || async {
            let payment = self.peer.payment(hash).await;
            let done = payment
                .as_ref()
                .ok()
                .filter(|p| p.status == "succeeded")
                .cloned();
            (done, format!("{payment:?}"))
        })
        .await;
        assert_eq!(received.direction, "inbound");
        assert_eq!(received.amount_msat, Some(sat * 1000), "{received:?}");
    }

    /// Our fee estimator's rate for `target`.
    pub fn our_rate(&self, target: ConfirmationTarget) -> u64 {
        u64::from(self.env.chain.fees.get_est_sat_per_1000_weight(target))
    }

    /// The transaction of a mined block that spends `outpoint`, if any.
    pub async fn confirmed_spend(&self, outpoint: &OutPoint) -> Option<Transaction> {
        let rpc = self.env.bitcoind.rpc();
        let mut scan = self.scan.lock().await;
        let tip = rpc.get_block_count().await.expect("height");
        while scan.next_height <= tip {
            let hash = rpc
                .get_block_hash(scan.next_height)
                .await
                .expect("block hash");
            let block = rpc.get_block(&hash).await.expect("block");
            for tx in block.txdata {
                for input in &tx.input {
                    scan.spends.insert(input.previous_output, tx.clone());
                }
            }
            scan.next_height += 1;
        }
        scan.spends.get(outpoint).cloned()
    }

    /// The mempool transaction spending any of `outpoints`, once there is one.
    pub async fn wait_for_mempool_spend(&self, outpoints: &[OutPoint], what: &str) -> Transaction {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let found = self.env.mempool().await.into_iter().find(|tx| {
                tx.input
                    .iter()
                    .any(|i| outpoints.contains(&i.previous_output))
            });
            if let Some(tx) = found {
                return tx;
            }
            assert!(Instant::now() < deadline, "no {what} in the mempool");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether a mempool transaction spends any of `outpoints` within `wait`.
    pub async fn mempool_spend_within(
        &self,
        outpoints: &[OutPoint],
        wait: Duration,
    ) -> Option<Transaction> {
        let deadline = Instant::now() + wait;
        loop {
            let found = self.env.mempool().await.into_iter().find(|tx| {
                tx.input
                    .iter()
                    .any(|i| outpoints.contains(&i.previous_output))
            });
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Mines a block at a time until every one of `outpoints` is spent in a mined block;
    /// returns the spending transactions, each once.
    pub async fn mine_until_all_spent(&self, outpoints: &[OutPoint]) -> Vec<Transaction> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut txs: Vec<Transaction> = Vec::new();
            let mut missing = Vec::new();
            for outpoint in outpoints {
                match self.confirmed_spend(outpoint).await {
                    Some(tx) => {
                        if !txs.iter().any(|t| t.compute_txid() == tx.compute_txid()) {
                            txs.push(tx);
                        }
                    }
                    None => missing.push(*outpoint),
                }
            }
            if missing.is_empty() {
                return txs;
            }
            assert!(
                Instant::now() < deadline,
                "nothing spent {missing:?} on chain; mempool: {:#?}",
                self.env.mempool().await
            );
            // Give the sweepers a moment to see the last block and broadcast.
            tokio::time::sleep(Duration::from_millis(700)).await;
            self.env.mine(1).await;
        }
    }

    /// Waits until our wallet holds `ours` confirmed and nothing in channels, and the peer's
    /// wallet holds `peer` with no Lightning balance or sweep left.
    pub async fn settled(&self, ours: u64, peer: u64) {
        wait_until("our wallet reconciles", TIMEOUT, || async {
            self.ours.onchain_balance().confirmed_sat == ours
                && self.ours.lightning_balance().claimable_sat == 0
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}: ours {:?} {:?}, expected {ours}",
                self.ours.onchain_balance(),
                self.ours.lightning_balance()
            )
        });
        self.peer_balances_until(&format!("the peer's wallet to hold {peer} sat"), |b| {
            // ldk-node's sweeper keeps tracking a swept output for ~4,000 blocks after its
            // sweep confirmed (LDK's `PRUNE_DELAY_BLOCKS`).
            b.total_onchain_sat == peer
                && b.total_lightning_sat == 0
                && b.lightning_balances.is_empty()
                && b.pending_sweep_balances
                    .iter()
                    .all(|s| s.kind == "AwaitingThresholdConfirmations")
        })
        .await;
    }
}

/// Polls `f` every 100 ms until it gives a value; after [`TIMEOUT`] panics with what it saw
/// last.
pub async fn poll<T, D: std::fmt::Debug, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (Option<T>, D)>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (value, seen) = f().await;
        if let Some(value) = value {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last seen: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A preimage and its payment hash, both hex.
pub fn preimage_and_hash() -> ([u8; 32], String, String) {
    let preimage: [u8; 32] = rand::random();
    let hash = sha256::Hash::hash(&preimage).to_byte_array();
    (preimage, hex::encode(preimage), hex::encode(hash))
}

/// The fee rate (sat/kWU) of a transaction paying `fee` sat, as LDK computes it.
pub fn rate_kw(fee: u64, tx: &Transaction) -> u64 {
    fee * 1000 / tx.weight().to_wu()
}

/// The index of the one output of `tx` worth `sat`.
pub fn output_worth(tx: &Transaction, sat: u64) -> OutPoint {
    let matching: Vec<usize> = (0..tx.output.len())
        .filter(|i| tx.output[*i].value.to_sat() == sat)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "not exactly one output of {sat} sat in {tx:#?}"
    );
    OutPoint::new(tx.compute_txid(), matching[0] as u32)
}

/// The anchor outputs (330 sat) of a commitment.
pub fn anchors_of(commitment: &Transaction) -> Vec<OutPoint> {
    (0..commitment.output.len())
        .filter(|i| commitment.output[*i].value.to_sat() == ANCHOR_SAT)
        .map(|i| OutPoint::new(commitment.compute_txid(), i as u32))
        .collect()
}

/// LDK's target for the CPFP of a commitment (`closure_conf_target`): urgent while an HTLC is
/// at stake, else the rate of sweeps without a deadline.
pub fn cpfp_target(htlcs: bool) -> ConfirmationTarget {
    if htlcs {
        ConfirmationTarget::UrgentOnChainSweep
    } else {
        ConfirmationTarget::OutputSpendingFee
    }
}
