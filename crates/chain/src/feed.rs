//! One chain feed for many nodes.
//!
//! A [`ChainFeed`] polls bitcoind for the best tip, fetches every new block exactly once and fans
//! it out to every registered [`Listen`]er (channel managers, chain monitors, sweepers, wallets of
//! all the nodes in the process). A node that registers behind the feed's tip is brought up to the
//! feed's tip first, from the same source and header cache, and only then joins the fan-out, so no
//! listener ever sees a block twice or misses one.
//!
//! All RPC traffic and all listener callbacks run on one dedicated thread with its own
//! current-thread tokio runtime. LDK's `Listen` callbacks are synchronous and may persist to disk;
//! running them there keeps them off the application's async workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, Network};
use lightning::chain::{BestBlock, Listen};
use lightning_block_sync::poll::{ChainPoller, ValidatedBlockHeader};
use lightning_block_sync::{
    AsyncBlockSourceResult, BlockData, BlockHeaderData, BlockSource, Cache, SpvClient,
};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::listener::FeedListener;
use crate::mempool::{MempoolDiff, MempoolPoller};
use crate::rpc::BitcoindRpc;

/// A listener shared with the feed.
pub type SharedListener = Arc<dyn Listen + Send + Sync>;

/// Identifies one registration with a [`ChainFeed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(u64);

/// Errors of the chain feed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// bitcoind could not be reached or answered with an error.
    #[error("chain source error: {0}")]
    Source(String),
    /// The feed's thread has stopped.
    #[error("the chain feed has stopped")]
    Stopped,
    /// The feed thread could not be started.
    #[error("could not start the chain feed thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// bitcoind did not answer (unreachable, wrong credentials, or an RPC error).
    #[error(transparent)]
    Rpc(#[from] crate::rpc::RpcError),
    /// bitcoind is on another chain than the one configured.
    #[error("bitcoind is on {actual}, but {expected} was configured")]
    WrongNetwork {
        /// The configured network.
        expected: Network,
        /// bitcoind's network.
        actual: Network,
    },
}

impl From<lightning_block_sync::BlockSourceError> for FeedError {
    fn from(e: lightning_block_sync::BlockSourceError) -> Self {
        FeedError::Source(e.into_inner().to_string())
    }
}

/// Settings of a [`ChainFeed`].
#[derive(Clone, Debug)]
pub struct FeedConfig {
    /// The chain bitcoind is on.
    pub network: Network,
    /// How often to ask bitcoind for its best tip.
    pub poll_interval: Duration,
    /// How many headers of the best chain to keep for reorg handling.
    pub header_cache_size: usize,
    /// How often to look at bitcoind's mempool for unconfirmed transactions (one poll for the
    /// whole process, handed to every node); `None` turns it off. Default 10 s.
    pub mempool_poll_interval: Option<Duration>,
    /// How often kept transactions that are not mined yet are sent to bitcoind again (they
    /// also are as soon as bitcoind answers again after an outage). Default 60 s.
    pub rebroadcast_interval: Duration,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            network: Network::Regtest,
            poll_interval: Duration::from_millis(500),
            header_cache_size: 2016,
            mempool_poll_interval: Some(Duration::from_secs(10)),
            rebroadcast_interval: Duration::from_secs(60),
        }
    }
}

enum Command {
    Register {
        catch_up: Vec<(BlockHash, SharedListener)>,
        live: Arc<dyn FeedListener>,
        reply: oneshot::Sender<Result<ListenerId, FeedError>>,
    },
    CatchUp {
        catch_up: Vec<(BlockHash, SharedListener)>,
        reply: oneshot::Sender<Result<BestBlock, FeedError>>,
    },
    Unregister(ListenerId),
    PollNow(oneshot::Sender<Result<BestBlock, FeedError>>),
}

/// The fan-out of blocks (and mempool transactions and broadcasts) to every registered
/// listener.
#[derive(Default)]
pub(crate) struct FanOut {
    listeners: RwLock<BTreeMap<ListenerId, Arc<dyn FeedListener>>>,
}

impl FanOut {
    /// The registered listeners now.
    pub(crate) fn snapshot(&self) -> Vec<Arc<dyn FeedListener>> {
        match self.listeners.read() {
            Ok(l) => l.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        }
    }
    fn insert(&self, id: ListenerId, l: Arc<dyn FeedListener>) {
        match self.listeners.write() {
            Ok(mut m) => m.insert(id, l),
            Err(poisoned) => poisoned.into_inner().insert(id, l),
        };
    }
    fn remove(&self, id: ListenerId) {
        match self.listeners.write() {
            Ok(mut m) => m.remove(&id),
            Err(poisoned) => poisoned.into_inner().remove(&id),
        };
    }
}

impl Listen for FanOut {
    fn filtered_block_connected(
        &self,
        header: &Header,
        txdata: &lightning::chain::transaction::TransactionData,
        height: u32,
    ) {
        for l in self.snapshot() {
            l.filtered_block_connected(header, txdata, height);
        }
    }
    fn block_connected(&self, block: &Block, height: u32) {
        for l in self.snapshot() {
            l.block_connected(block, height);
        }
    }
    fn blocks_disconnected(&self, fork_point: BestBlock) {
        for l in self.snapshot() {
            l.blocks_disconnected(fork_point);
        }
    }
}

/// A header cache that keeps only the most recent `capacity` headers of the best chain.
///
/// It also records the last header the listeners were moved to (`reached`), because
/// `SpvClient` does not expose the tip it reached when a poll fails half-way.
struct BoundedCache {
    capacity: usize,
    headers: HashMap<BlockHash, ValidatedBlockHeader>,
    by_height: BTreeMap<u32, Vec<BlockHash>>,
    reached: Option<ValidatedBlockHeader>,
}

impl BoundedCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(16),
            headers: HashMap::new(),
            by_height: BTreeMap::new(),
            reached: None,
        }
    }
}

impl Cache for BoundedCache {
    fn look_up(&self, block_hash: &BlockHash) -> Option<&ValidatedBlockHeader> {
        self.headers.get(block_hash)
    }
    fn block_connected(&mut self, block_hash: BlockHash, header: ValidatedBlockHeader) {
        self.reached = Some(header);
        self.by_height
            .entry(header.height)
            .or_default()
            .push(block_hash);
        self.headers.insert(block_hash, header);
        while self.headers.len() > self.capacity {
            let Some((_, hashes)) = self.by_height.pop_first() else {
                break;
            };
            for h in hashes {
                self.headers.remove(&h);
            }
        }
    }
    fn block_disconnected(&mut self, block_hash: &BlockHash) -> Option<ValidatedBlockHeader> {
        let header = self.headers.remove(block_hash)?;
        self.reached = self.headers.get(&header.header.prev_blockhash).copied();
        if let Some(v) = self.by_height.get_mut(&header.height) {
            v.retain(|h| h != block_hash);
        }
        Some(header)
    }
}

/// A block source whose best block is pinned to the feed's tip, so that catching a listener up
/// never takes it past the blocks the feed itself has delivered.
struct PinnedTip<'a> {
    rpc: &'a BitcoindRpc,
    tip: BestBlock,
}

impl BlockSource for PinnedTip<'_> {
    fn get_header<'a>(
        &'a self,
        header_hash: &'a BlockHash,
        height_hint: Option<u32>,
    ) -> AsyncBlockSourceResult<'a, BlockHeaderData> {
        BlockSource::get_header(self.rpc, header_hash, height_hint)
    }
    fn get_block<'a>(
        &'a self,
        header_hash: &'a BlockHash,
    ) -> AsyncBlockSourceResult<'a, BlockData> {
        BlockSource::get_block(self.rpc, header_hash)
    }
    fn get_best_block(&self) -> AsyncBlockSourceResult<'_, (BlockHash, Option<u32>)> {
        let tip = self.tip;
        Box::pin(async move { Ok((tip.block_hash, Some(tip.height))) })
    }
}

/// Whether bitcoind answers the feed, and a wake-up for when it answers again.
#[derive(Default)]
pub(crate) struct Health {
    unreachable: AtomicBool,
    /// Notified when bitcoind answers after failing, and when a listener joins.
    pub(crate) rebroadcast_now: Notify,
}

impl Health {
    fn poll_result(&self, ok: bool) {
        let was_unreachable = self.unreachable.swap(!ok, Ordering::Relaxed);
        if ok && was_unreachable {
            tracing::info!("bitcoind answers again");
            self.rebroadcast_now.notify_one();
        }
    }
}

/// The shared chain feed. Cheap to clone.
#[derive(Clone)]
pub struct ChainFeed {
    commands: mpsc::UnboundedSender<Command>,
    tip: watch::Receiver<BestBlock>,
    rpc: Arc<BitcoindRpc>,
    network: Network,
    handle: tokio::runtime::Handle,
    fanout: Arc<FanOut>,
    health: Arc<Health>,
}

impl ChainFeed {
    /// Starts the feed on its own thread. Returns once bitcoind has answered with its best tip.
    pub async fn start(rpc: Arc<BitcoindRpc>, config: FeedConfig) -> Result<ChainFeed, FeedError> {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let fanout = Arc::new(FanOut::default());
        let health = Arc::new(Health::default());
        let shared = Shared {
            rpc: rpc.clone(),
            fanout: fanout.clone(),
            health: health.clone(),
        };
        let thread_config = config.clone();
        std::thread::Builder::new()
            .name("micronode-chain-feed".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(FeedError::Spawn(e)));
                        return;
                    }
                };
                runtime.block_on(feed_thread(shared, thread_config, cmd_rx, ready_tx));
            })
            .map_err(FeedError::Spawn)?;
        let (tip, handle) = ready_rx.await.map_err(|_| FeedError::Stopped)??;
        Ok(ChainFeed {
            commands: cmd_tx,
            tip,
            rpc,
            network: config.network,
            handle,
            fanout,
            health,
        })
    }

    /// Whether bitcoind answered the feed's last poll.
    pub fn bitcoind_reachable(&self) -> bool {
        !self.health.unreachable.load(Ordering::Relaxed)
    }

    pub(crate) fn fanout(&self) -> &Arc<FanOut> {
        &self.fanout
    }

    pub(crate) fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The best block the feed has delivered to its listeners.
    pub fn tip(&self) -> BestBlock {
        *self.tip.borrow()
    }

    /// A receiver that changes each time the feed delivers a new tip.
    pub fn subscribe_tip(&self) -> watch::Receiver<BestBlock> {
        self.tip.clone()
    }

    /// The network of the chain.
    pub fn network(&self) -> Network {
        self.network
    }

    /// A handle to the feed thread's runtime, for short RPC tasks (broadcasts, fee refreshes)
    /// that must not run on the caller's thread.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// The RPC client the feed uses (for call statistics).
    pub fn rpc(&self) -> &Arc<BitcoindRpc> {
        &self.rpc
    }

    /// Brings each `catch_up` listener from its block to the feed's tip, then adds `live` to the
    /// fan-out. Both happen on the feed thread between polls, so `live` sees every later block
    /// exactly once. From then on `live` also gets mempool transactions and is offered every
    /// broadcast ([`FeedListener`]); what it kept from before is sent again at once.
    pub async fn register<L: FeedListener + 'static>(
        &self,
        catch_up: Vec<(BlockHash, SharedListener)>,
        live: Arc<L>,
    ) -> Result<ListenerId, FeedError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Register {
                catch_up,
                live,
                reply,
            })
            .map_err(|_| FeedError::Stopped)?;
        let id = rx.await.map_err(|_| FeedError::Stopped)??;
        self.health.rebroadcast_now.notify_one();
        Ok(id)
    }

    /// Brings listeners to the feed's tip without adding them to the fan-out (used for channel
    /// monitors before they are handed to their chain monitor). Returns the tip they reached.
    pub async fn catch_up(
        &self,
        catch_up: Vec<(BlockHash, SharedListener)>,
    ) -> Result<BestBlock, FeedError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::CatchUp { catch_up, reply })
            .map_err(|_| FeedError::Stopped)?;
        rx.await.map_err(|_| FeedError::Stopped)?
    }

    /// Removes a listener from the fan-out.
    pub fn unregister(&self, id: ListenerId) {
        let _ = self.commands.send(Command::Unregister(id));
    }

    /// Polls bitcoind now instead of waiting for the next interval; returns the new tip.
    pub async fn poll_now(&self) -> Result<BestBlock, FeedError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::PollNow(reply))
            .map_err(|_| FeedError::Stopped)?;
        rx.await.map_err(|_| FeedError::Stopped)?
    }
}

/// What the feed thread shares with the [`ChainFeed`] handles.
struct Shared {
    rpc: Arc<BitcoindRpc>,
    fanout: Arc<FanOut>,
    health: Arc<Health>,
}

struct FeedState {
    rpc: Arc<BitcoindRpc>,
    network: Network,
    tip: ValidatedBlockHeader,
    cache: BoundedCache,
    fanout: Arc<FanOut>,
    health: Arc<Health>,
    tip_tx: watch::Sender<BestBlock>,
    /// Txids that left the mempool, held until a block poll has delivered the blocks that
    /// may have mined them.
    removed: Vec<bitcoin::Txid>,
}

impl FeedState {
    async fn poll(&mut self) -> Result<BestBlock, FeedError> {
        let result = self.poll_inner().await;
        self.health.poll_result(result.is_ok());
        result
    }

    async fn poll_inner(&mut self) -> Result<BestBlock, FeedError> {
        let poller = ChainPoller::new(self.rpc.clone(), self.network);
        let mut client = SpvClient::new(self.tip, poller, &mut self.cache, self.fanout.clone());
        let polled = client.poll_best_tip().await;
        if let Some(reached) = self.cache.reached.take() {
            self.tip = reached;
        }
        polled?;
        let best = self.tip.to_best_block();
        self.tip_tx.send_if_modified(|t| {
            let changed = *t != best;
            *t = best;
            changed
        });
        Ok(best)
    }

    async fn catch_up(
        &mut self,
        listeners: &[(BlockHash, SharedListener)],
    ) -> Result<BestBlock, FeedError> {
        let tip = self.tip.to_best_block();
        let pending: Vec<(BlockHash, &(dyn Listen + Send + Sync))> = listeners
            .iter()
            .filter(|(hash, _)| *hash != tip.block_hash)
            .map(|(hash, l)| (*hash, &**l))
            .collect();
        if pending.is_empty() {
            return Ok(tip);
        }
        let source = PinnedTip {
            rpc: &self.rpc,
            tip,
        };
        lightning_block_sync::init::synchronize_listeners(
            &source,
            self.network,
            &mut self.cache,
            pending,
        )
        .await?;
        Ok(tip)
    }
}

impl FeedState {
    /// Hands a mempool diff to every listener. Removals wait for a successful block poll
    /// first, so a transaction that left the mempool because it was mined is seen mined.
    async fn mempool(&mut self, diff: MempoolDiff) {
        self.removed.extend(diff.removed);
        let removed = if self.poll().await.is_ok() {
            std::mem::take(&mut self.removed)
        } else {
            Vec::new()
        };
        if diff.added.is_empty() && removed.is_empty() {
            return;
        }
        for listener in self.fanout.snapshot() {
            listener.mempool_update(&diff.added, &removed);
        }
    }
}

async fn feed_thread(
    shared: Shared,
    config: FeedConfig,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Result<(watch::Receiver<BestBlock>, tokio::runtime::Handle), FeedError>>,
) {
    let Shared {
        rpc,
        fanout,
        health,
    } = shared;
    let tip = match lightning_block_sync::init::validate_best_block_header(&*rpc).await {
        Ok(tip) => tip,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let (tip_tx, tip_rx) = watch::channel(tip.to_best_block());
    let (mempool_tx, mut mempool_rx) = mpsc::channel::<MempoolDiff>(1);
    if let Some(every) = config.mempool_poll_interval {
        tokio::spawn(MempoolPoller::new(rpc.clone()).run(every, mempool_tx));
    }
    let mut state = FeedState {
        rpc,
        network: config.network,
        tip,
        cache: BoundedCache::new(config.header_cache_size),
        fanout,
        health,
        tip_tx,
        removed: Vec::new(),
    };
    if ready
        .send(Ok((tip_rx, tokio::runtime::Handle::current())))
        .is_err()
    {
        return;
    }
    let next_id = AtomicU64::new(1);
    let mut interval = tokio::time::interval(config.poll_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(diff) = mempool_rx.recv() => state.mempool(diff).await,
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                match cmd {
                    Command::Register { catch_up, live, reply } => {
                        let result = state.catch_up(&catch_up).await.map(|_| {
                            let id = ListenerId(next_id.fetch_add(1, Ordering::Relaxed));
                            state.fanout.insert(id, live);
                            id
                        });
                        // Release our references before answering: callers take their
                        // listeners back out of the `Arc`s.
                        drop(catch_up);
                        let _ = reply.send(result);
                    }
                    Command::CatchUp { catch_up, reply } => {
                        let result = state.catch_up(&catch_up).await;
                        drop(catch_up);
                        let _ = reply.send(result);
                    }
                    Command::Unregister(id) => state.fanout.remove(id),
                    Command::PollNow(reply) => {
                        let _ = reply.send(state.poll().await);
                    }
                }
            }
            _ = interval.tick() => {
                if let Err(e) = state.poll().await {
                    tracing::warn!(error = %e, "chain poll failed; will retry");
                }
            }
        }
    }
    tracing::debug!("chain feed stopped");
}
