//! Starting a node: load or create every LDK part from the store, catch it up with the shared
//! chain feed, and start its background work.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::BlockHash;
use lightning::chain::chainmonitor::ChainMonitor as LdkChainMonitor;
use lightning::chain::{BestBlock, ChannelMonitorUpdateStatus, Watch};
use lightning::ln::channelmanager::{ChainParameters, ChannelManagerReadArgs};
use lightning::ln::peer_handler::{IgnoringMessageHandler, MessageHandler};
use lightning::onion_message::messenger::DefaultMessageRouter;
use lightning::routing::gossip::P2PGossipSync;
use lightning::routing::router::DefaultRouter;
use lightning::routing::scoring::{
    ProbabilisticScorer, ProbabilisticScoringDecayParameters, ProbabilisticScoringFeeParameters,
};
use lightning::sign::Recipient;
use lightning::util::config::UserConfig;
use lightning::util::persist::{self as ldk_persist, KVStoreSync};
use lightning::util::ser::ReadableArgs;
use lightning_background_processor::{
    process_events_async_with_kv_store_sync, GossipSync as BpGossipSync, NO_ONION_MESSENGER,
};
use micronode_chain::{ChainServices, SharedListener};
use tokio::sync::{broadcast, watch};

use crate::chain_listener::NodeChainListener;
use crate::config::{ChannelSettings, NodeConfig};
use crate::error::NodeError;
use crate::keys::{KeysBackend, WalletSigner};
use crate::logger::NodeLogger;
use crate::node::{Node, NodeInner, Running};
use crate::payments::PaymentStore;
use crate::peer_net::InboundGate;
use crate::peers::PeerStore;
use crate::persist::{ManagerWriter, OrderedMonitorPersister, ProcessorStore};
use crate::seam::WalletScriptsSignerProvider;
use crate::types::{
    ChannelManager, GossipSync, GossipUtxoLookup, GraphLogger, NetworkGraph, PeerManager,
    RapidSync, Store, Sweeper,
};
use crate::wallet::OnchainWallet;

/// Events buffered for slow subscribers before they are told they lagged. Every slot is
/// allocated up front, per node, so this is kept small (4096 slots cost ~0.4 MiB per node).
const EVENT_BUFFER: usize = 512;

/// How often the node checks that it is connected to every channel peer.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(5);

fn read_optional(store: &Store, ns: &str, key: &str) -> Result<Option<Vec<u8>>, NodeError> {
    match store.read(ns, "", key) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == lightning::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn decode_err(what: &str, e: impl std::fmt::Debug) -> NodeError {
    NodeError::Internal(format!("cannot decode stored {what}: {e:?}"))
}

/// LDK's settings from ours, within the signer's limits when it has any.
pub(crate) fn user_config(
    settings: &ChannelSettings,
    limits: Option<crate::keys::SignerLimits>,
) -> UserConfig {
    let mut config = UserConfig::default();
    config.channel_handshake_config.minimum_depth = settings.min_confirmations.max(1);
    config.channel_handshake_config.announce_for_forwarding = settings.announce_channels;
    config.channel_handshake_config.our_max_accepted_htlcs = settings.max_accepted_htlcs;
    config
        .channel_handshake_config
        .max_inbound_htlc_value_in_flight_percent_of_channel = 100;
    // Anchor channels (`option_anchors_zero_fee_htlc_tx`): commitments are bumped by CPFP from
    // the wallet (`bump`), HTLC transactions are zero-fee and aggregated with wallet inputs.
    config
        .channel_handshake_config
        .negotiate_anchors_zero_fee_htlc_tx = true;
    // Inbound channels are accepted by the node (`anchors`), which checks the on-chain reserve
    // an anchor channel needs first.
    config.manually_accept_inbound_channels = true;
    config
        .channel_handshake_limits
        .force_announced_channel_preference = false;
    config.channel_handshake_limits.max_minimum_depth = 144;
    config.channel_config.forwarding_fee_base_msat = settings.forwarding_fee_base_msat;
    config.channel_config.forwarding_fee_proportional_millionths =
        settings.forwarding_fee_proportional_millionths;
    config.accept_inbound_channels = true;
    if let Some(limits) = limits {
        if !limits.allow_routing {
            // Private channels, and LDK refuses forwards to private channels by default: the
            // node never asks the signer to sign a forward it would refuse.
            config.channel_handshake_config.announce_for_forwarding = false;
            config.accept_forwards_to_priv_channels = false;
        }
        config.channel_config.max_dust_htlc_exposure =
            lightning::util::config::MaxDustHTLCExposure::FixedLimitMsat(
                limits.max_dust_in_flight_sat.saturating_mul(1000),
            );
    }
    config
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl<K: KeysBackend> Node<K> {
    /// Starts a node with the given keys on the shared chain services.
    pub async fn start(
        config: NodeConfig,
        keys: Arc<K>,
        chain: ChainServices,
    ) -> Result<Node<K>, NodeError> {
        if chain.feed.network() != config.network {
            return Err(NodeError::Config(format!(
                "node is configured for {} but bitcoind is on {}",
                config.network,
                chain.feed.network()
            )));
        }
        micronode_files::own_private_dir(&config.data_dir)?;
        let dir_lock = lock_data_dir(&config.data_dir)?;
        let store = match &config.store {
            crate::config::StoreChoice::SqliteInDataDir => Arc::new(
                Store::open(&config.data_dir)
                    .map_err(|e| NodeError::Storage(std::io::Error::other(e.to_string())))?,
            ),
            crate::config::StoreChoice::Given(store) => store.clone(),
        };
        let node_id = keys
            .get_node_id(Recipient::Node)
            .map_err(|()| NodeError::Signer("the signer did not give a node id".into()))?;
        let label = format!("{}:{}", config.alias, &node_id.to_string()[..8]);
        let logger = Arc::new(NodeLogger::new(label.clone()));
        let tip = chain.feed.tip();
        let network = config.network;

        // The process-wide gossip graph, and this node's own scorer over it.
        let network_graph = chain.graph.clone();
        let graph_logger = logger.clone();
        let decay = ProbabilisticScoringDecayParameters::default();
        let scorer = Arc::new(Mutex::new(
            match read_optional(&store, "", ldk_persist::SCORER_PERSISTENCE_KEY)? {
                Some(bytes) => ProbabilisticScorer::read(
                    &mut &bytes[..],
                    (decay, network_graph.clone(), graph_logger.clone()),
                )
                .map_err(|e| decode_err("scorer", e))?,
                None => {
                    ProbabilisticScorer::new(decay, network_graph.clone(), graph_logger.clone())
                }
            },
        ));
        let router = Arc::new(DefaultRouter::new(
            network_graph.clone(),
            graph_logger.clone(),
            keys.clone(),
            scorer.clone(),
            ProbabilisticScoringFeeParameters::default(),
        ));
        let message_router = Arc::new(DefaultMessageRouter::new(
            network_graph.clone(),
            keys.clone(),
        ));

        // Wallet, through the signing seam.
        let wallet_signer: Arc<dyn WalletSigner> = keys.clone();
        let wallet = Arc::new(OnchainWallet::load_or_create(
            wallet_signer,
            store.clone(),
            network,
            tip,
        )?);
        {
            let wallet = wallet.clone();
            keys.attach_wallet_paths(Arc::new(move |script| wallet.derivation_of(script)));
        }
        let signer_provider = Arc::new(WalletScriptsSignerProvider::new(
            keys.clone(),
            wallet.clone(),
        ));

        // Monitor updates reach disk only after a manager that knows them (see `persist`).
        let persister = Arc::new(OrderedMonitorPersister::new(store.clone()));
        let manager_writer = Arc::new(ManagerWriter::<K>::new(store.clone()));
        let processor_store = Arc::new(ProcessorStore::new(store.clone(), persister.clone()));
        let chain_monitor = Arc::new(LdkChainMonitor::new(
            None,
            chain.broadcaster.clone(),
            logger.clone(),
            chain.fees.clone(),
            persister.clone(),
            keys.clone(),
            keys.get_peer_storage_key(),
        ));

        // Channel monitors and the channel manager.
        let monitors = crate::persist::read_monitors(
            store.clone(),
            logger.clone(),
            keys.clone(),
            signer_provider.clone(),
            chain.broadcaster.clone(),
            chain.fees.clone(),
        )?;
        let mut ldk_config = user_config(&config.channels, keys.payment_limits());
        if config.liquidity.lsps2_service.is_some() {
            // A gateway holds the HTLCs of a JIT channel's first payment until it is open, and
            // forwards later payments over it although it is private.
            ldk_config.accept_intercept_htlcs = true;
            ldk_config.accept_forwards_to_priv_channels = true;
        }
        let (manager_block, channel_manager) =
            match read_optional(&store, "", ldk_persist::CHANNEL_MANAGER_PERSISTENCE_KEY)? {
                Some(bytes) => {
                    let args = ChannelManagerReadArgs::new(
                        keys.clone(),
                        keys.clone(),
                        signer_provider.clone(),
                        chain.fees.clone(),
                        chain_monitor.clone(),
                        chain.broadcaster.clone(),
                        router.clone(),
                        message_router.clone(),
                        logger.clone(),
                        ldk_config,
                        monitors.iter().map(|(_, m)| m).collect(),
                    );
                    <(BlockHash, ChannelManager<K>)>::read(&mut &bytes[..], args)
                        .map_err(|e| decode_err("channel manager", e))?
                }
                None => (
                    tip.block_hash,
                    ChannelManager::<K>::new(
                        chain.fees.clone(),
                        chain_monitor.clone(),
                        chain.broadcaster.clone(),
                        router.clone(),
                        message_router.clone(),
                        logger.clone(),
                        keys.clone(),
                        keys.clone(),
                        signer_provider.clone(),
                        ldk_config,
                        ChainParameters {
                            network,
                            best_block: tip,
                        },
                        now().as_secs() as u32,
                    ),
                ),
            };
        let channel_manager = Arc::new(channel_manager);
        manager_writer.attach(&channel_manager);
        let liquidity = crate::liquidity::Liquidity::new(
            &config.liquidity,
            keys.clone(),
            channel_manager.clone(),
            store.clone(),
            chain.broadcaster.clone(),
        )
        .await?;

        let sweeper: Arc<Sweeper<K>> = Arc::new(
            match read_optional(&store, "", ldk_persist::OUTPUT_SWEEPER_PERSISTENCE_KEY)? {
                Some(bytes) => {
                    let (_, sweeper) = <(BestBlock, Sweeper<K>)>::read(
                        &mut &bytes[..],
                        (
                            chain.broadcaster.clone(),
                            chain.fees.clone(),
                            None,
                            keys.clone(),
                            wallet.clone(),
                            processor_store.clone(),
                            logger.clone(),
                        ),
                    )
                    .map_err(|e| decode_err("output sweeper", e))?;
                    sweeper
                }
                None => Sweeper::<K>::new(
                    tip,
                    chain.broadcaster.clone(),
                    chain.fees.clone(),
                    None,
                    keys.clone(),
                    wallet.clone(),
                    processor_store.clone(),
                    logger.clone(),
                ),
            },
        );

        // Catch everything up with the feed: first the monitors (before their chain monitor
        // watches them), then the live listener joins the fan-out.
        let mut monitor_catch_up: Vec<(BlockHash, SharedListener)> = Vec::new();
        let mut monitor_holders = Vec::new();
        for (block, monitor) in monitors {
            let holder = Arc::new((
                monitor,
                chain.broadcaster.clone(),
                chain.fees.clone(),
                logger.clone(),
            ));
            monitor_catch_up.push((block, holder.clone()));
            monitor_holders.push(holder);
        }
        let mut first: Vec<(BlockHash, SharedListener)> = monitor_catch_up;
        first.push((manager_block, channel_manager.clone()));
        first.push((sweeper.current_best_block().block_hash, sweeper.clone()));
        first.push((wallet.best_block().block_hash, wallet.clone()));
        let caught_up = chain.feed.catch_up(first).await?;
        for holder in monitor_holders {
            let (monitor, ..) = Arc::try_unwrap(holder)
                .map_err(|_| NodeError::Internal("channel monitor still shared".into()))?;
            let channel_id = monitor.channel_id();
            // Re-watching a loaded monitor queues a rewrite of it (completed by the monitor
            // writer once it runs).
            match chain_monitor.watch_channel(channel_id, monitor) {
                Ok(ChannelMonitorUpdateStatus::InProgress) => {}
                other => {
                    return Err(NodeError::Internal(format!(
                        "cannot watch channel {channel_id}: {other:?}"
                    )))
                }
            }
        }
        let live = Arc::new(NodeChainListener::new(
            chain_monitor.clone(),
            channel_manager.clone(),
            sweeper.clone(),
            wallet.clone(),
        ));
        let feed_listener = chain
            .feed
            .register(
                vec![(caught_up.block_hash, live.clone() as SharedListener)],
                live,
            )
            .await?;

        // Peers.
        let gossip_sync = Arc::new(P2PGossipSync::new(
            network_graph.clone(),
            None,
            graph_logger,
        ));
        let ephemeral = keys.get_secure_random_bytes();
        let peer_manager: Arc<PeerManager<K>> = Arc::new(PeerManager::<K>::new(
            MessageHandler {
                chan_handler: channel_manager.clone(),
                route_handler: gossip_sync.clone(),
                onion_message_handler: IgnoringMessageHandler {},
                custom_message_handler: liquidity.manager.clone(),
                send_only_message_handler: chain_monitor.clone(),
            },
            now().as_secs() as u32,
            &ephemeral,
            logger.clone(),
            keys.clone(),
        ));
        // Verify channel announcements against the chain. The verifier and the gossip sync hold
        // each other; `Node::stop` breaks the cycle.
        let verifier = Arc::new(GossipUtxoLookup::new(
            chain.rpc.clone(),
            lightning_block_sync::gossip::TokioSpawner,
            gossip_sync.clone(),
            peer_manager.clone(),
        ));
        gossip_sync.add_utxo_lookup(Some(verifier));

        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let bumper = Arc::new(crate::bump::Bumper::new(
            wallet.clone(),
            keys.clone(),
            chain.broadcaster.clone(),
            logger.clone(),
        ));
        let inner = Arc::new(NodeInner {
            bumper,
            gossip_sync,
            keys: keys.clone(),
            store: store.clone(),
            payments: PaymentStore::load(store.clone())?,
            peers: PeerStore::new(store.clone()),
            config,
            node_id,
            logger_label: label.clone(),
            logger: logger.clone(),
            monitor_persister: persister.clone(),
            manager_writer: manager_writer.clone(),
            processor_store: processor_store.clone(),
            chain,
            wallet,
            chain_monitor,
            channel_manager,
            peer_manager,
            sweeper,
            network_graph,
            scorer,
            events,
            liquidity,
        });
        // Payment records changed by LDK events go to disk with the next manager write.
        let requests = persister.clone();
        inner
            .payments
            .on_manager_write_needed(Box::new(move || requests.request_manager_write()));

        inner.allow_lsp_skims();
        let lost = inner.fail_payments_lost_before_sending()?;
        if lost > 0 {
            tracing::warn!(node = %label, lost, "payments interrupted before sending marked failed");
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        // Every log line of this node's background work carries the node, so an operator can
        // follow one node among many in one process.
        let span = tracing::info_span!("node", node = %label);
        let listen_addr = match inner.config.listen_addr {
            Some(addr) => {
                let (bound, task) = spawn_listener(
                    inner.peer_manager.clone(),
                    addr,
                    InboundGate::new(&inner.config.peer_network),
                    inner.store.clone(),
                )
                .await?;
                tasks.push(task);
                Some(bound)
            }
            None => None,
        };
        tasks.push(spawn_in(
            &span,
            reconnect_loop(inner.clone(), listen_addr, stop_rx.clone()),
        ));
        tasks.push(spawn_in(
            &span,
            monitor_write_loop(inner.clone(), stop_rx.clone()),
        ));
        if let Some(connections) = inner.keys.signer_connections() {
            tasks.push(spawn_in(
                &span,
                signer_reconnect_loop(inner.clone(), connections),
            ));
            tasks.push(spawn_in(
                &span,
                signer_retry_loop(inner.clone(), stop_rx.clone()),
            ));
        }
        tasks.push(spawn_in(
            &span,
            inner.clone().liquidity_event_loop(stop_rx.clone()),
        ));
        if let Some(interval) = inner.config.htlc_processing_interval {
            tasks.push(spawn_in(
                &span,
                htlc_processing_loop(inner.clone(), interval),
            ));
        }
        let background = spawn_background(inner.clone(), stop_rx, span);
        tracing::info!(node = %label, %node_id, ?listen_addr, height = caught_up.height, "node started");
        Ok(Node {
            inner,
            running: Mutex::new(Some(Running {
                stop: stop_tx,
                tasks,
                background,
                feed_listener,
                _dir_lock: dir_lock,
            })),
            listen_addr,
        })
    }
}

/// Takes an exclusive lock on `<dir>/node.lock`: two processes running one node would publish
/// conflicting channel states, which can cost the channel's funds.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, NodeError> {
    let path = dir.join("node.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(NodeError::Config(format!(
            "{} is in use by another running node",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// When the remote signer (re)connects: replay validations queued while it was away, then tell
/// LDK to retry the signatures it is waiting for.
async fn signer_reconnect_loop<K: KeysBackend>(
    inner: Arc<NodeInner<K>>,
    mut connections: watch::Receiver<u64>,
) {
    while connections.changed().await.is_ok() {
        if resume_signing(&inner).await {
            tracing::info!(node = %inner.logger_label, "signer connected; resuming signing");
        }
    }
}

/// How often the node retries what the signer refused temporarily.
const SIGNER_RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// Retries, shortly after, what the signer refused only temporarily (its view of the chain
/// was behind the node's): LDK would otherwise wait for a signature until the next reconnect.
async fn signer_retry_loop<K: KeysBackend>(
    inner: Arc<NodeInner<K>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SIGNER_RETRY_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if inner.keys.take_retry_hint() && resume_signing(&inner).await {
            tracing::debug!(node = %inner.logger_label, "retrying signatures the signer deferred");
        }
    }
}

/// Replays queued validations (off the async runtime), then has LDK retry its pending
/// signatures; `false` if the replay could not finish.
async fn resume_signing<K: KeysBackend>(inner: &Arc<NodeInner<K>>) -> bool {
    let keys = inner.keys.clone();
    match tokio::task::spawn_blocking(move || keys.resume_signing()).await {
        Ok(Ok(())) => {
            inner.channel_manager.signer_unblocked(None);
            inner.chain_monitor.signer_unblocked(None);
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "resuming signing failed");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "resuming signing panicked");
            false
        }
    }
}

async fn spawn_listener<K: KeysBackend>(
    peer_manager: Arc<PeerManager<K>>,
    addr: SocketAddr,
    gate: InboundGate,
    store: Arc<Store>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), NodeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::Config(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, from)) => match gate.admit(from) {
                    Ok(()) => stream,
                    Err(why) => {
                        tracing::debug!(%from, why, "peer connection refused");
                        continue;
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a peer failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let pm = peer_manager.clone();
            let store = store.clone();
            match stream.into_std() {
                // The lease is checked in the connection's own task, so a slow database never
                // holds up the accept loop.
                Ok(std_stream) => {
                    tokio::spawn(async move {
                        if crate::peer_net::lease_current(store).await {
                            lightning_net_tokio::setup_inbound(pm, std_stream).await;
                        } else {
                            tracing::debug!(
                                "peer connection refused: the node's lease is not current"
                            );
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "cannot take over a peer socket"),
            }
        }
    });
    Ok((bound, task))
}

/// Spawns `task` inside `span`.
fn spawn_in<F>(span: &tracing::Span, task: F) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(tracing::Instrument::instrument(task, span.clone()))
}

fn spawn_background<K: KeysBackend>(
    inner: Arc<NodeInner<K>>,
    stop: watch::Receiver<bool>,
    span: tracing::Span,
) -> tokio::task::JoinHandle<Result<(), std::io::Error>> {
    let handler_inner = inner.clone();
    let event_handler = move |event| {
        let inner = handler_inner.clone();
        async move { inner.handle_event(event).await }
    };
    let sleeper = move |d: Duration| {
        let mut stop = stop.clone();
        Box::pin(async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => false,
                _ = stop.wait_for(|s| *s) => true,
            }
        })
    };
    let processor = async move {
        process_events_async_with_kv_store_sync(
            inner.processor_store.clone(),
            event_handler,
            inner.chain_monitor.clone(),
            inner.channel_manager.clone(),
            NO_ONION_MESSENGER,
            // The graph is shared and maintained by `ChainServices`, so the node's processor
            // neither persists nor prunes it; payment-failure updates are applied in `events`.
            BpGossipSync::<
                Arc<GossipSync>,
                Arc<RapidSync>,
                Arc<NetworkGraph>,
                Arc<GossipUtxoLookup>,
                Arc<GraphLogger>,
            >::None,
            inner.peer_manager.clone(),
            Some(inner.liquidity.manager.clone()),
            Some(inner.sweeper.clone()),
            inner.logger.clone(),
            Some(inner.scorer.clone()),
            sleeper,
            false,
            || Some(now()),
        )
        .await
        .map_err(std::io::Error::from)
    };
    tokio::spawn(tracing::Instrument::instrument(processor, span))
}

/// Writes queued monitor updates (after the manager) as soon as they are queued.
async fn monitor_write_loop<K: KeysBackend>(
    inner: Arc<NodeInner<K>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = inner.monitor_persister.wake.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let node = inner.clone();
        let flushed = tokio::task::spawn_blocking(move || {
            node.manager_writer
                .flush(&node.monitor_persister, &node.chain_monitor, &node.payments)
        })
        .await;
        if let Err(e) = flushed {
            tracing::error!(error = %e, "monitor writer failed");
        }
        if inner.store.is_fenced() {
            // Another host runs this node now. Nothing this copy does can reach the store, so
            // nothing it would send its peers is backed by state: it leaves them alone.
            tracing::warn!(
                node = %inner.logger_label,
                "the node's lease moved to another host: disconnecting and no longer writing"
            );
            inner.peer_manager.disconnect_all_peers();
            return;
        }
    }
}

/// Processes pending HTLCs at a fixed cadence (see `NodeConfig::htlc_processing_interval`).
async fn htlc_processing_loop<K: KeysBackend>(inner: Arc<NodeInner<K>>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if inner.channel_manager.needs_pending_htlc_processing() {
            let cm = inner.channel_manager.clone();
            // It takes locks and may persist: keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || cm.process_pending_htlc_forwards()).await;
        }
    }
}

/// Keeps the node connected to every peer it has a channel with (its LSP at the configured
/// address), and re-announces the node
/// when it has public channels and a listening address.
async fn reconnect_loop<K: KeysBackend>(
    inner: Arc<NodeInner<K>>,
    listen_addr: Option<SocketAddr>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(RECONNECT_INTERVAL);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        ticks += 1;
        if inner.store.is_fenced() {
            // Another host runs this node: this copy stays away from its peers (each dial
            // also checks the lease first, see `NodeInner::dial`).
            inner.peer_manager.disconnect_all_peers();
            continue;
        }
        if let Err(e) = inner
            .payments
            .fail_expired_invoices(crate::payments::now_secs())
        {
            tracing::warn!(error = %e, "could not mark expired invoices");
        }
        let connected: std::collections::HashSet<_> = inner
            .peer_manager
            .list_peers()
            .into_iter()
            .map(|p| p.counterparty_node_id)
            .collect();
        let wanted: std::collections::HashSet<_> = inner
            .channel_manager
            .list_channels()
            .into_iter()
            .map(|c| c.counterparty.node_id)
            .collect();
        if let Ok(mut known) = inner.peers.all() {
            // The configured LSP's address is the current one (a host's gateway may have
            // moved since the address was remembered).
            if let Some(lsp) = &inner.config.liquidity.lsp {
                known.retain(|(node_id, _)| *node_id != lsp.node_id);
                known.push((lsp.node_id, lsp.addr));
            }
            for (node_id, addr) in known {
                if wanted.contains(&node_id) && !connected.contains(&node_id) {
                    if let Some(conn) = inner.dial(node_id, addr).await {
                        tokio::spawn(conn);
                    }
                }
            }
        }
        if let Some(addr) = listen_addr {
            if ticks % 12 == 1 {
                let mut alias = [0u8; 32];
                let name = inner.config.alias.as_bytes();
                alias[..name.len().min(32)].copy_from_slice(&name[..name.len().min(32)]);
                let address = lightning::ln::msgs::SocketAddress::from(addr);
                inner
                    .peer_manager
                    .broadcast_node_announcement([0; 3], alias, vec![address]);
            }
        }
    }
}
