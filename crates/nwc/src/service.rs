//! The running service: relays, the request subscription, info events, notifications, and a
//! supervisor that keeps them right across relay drops and connection changes.
//!
//! The service holds only NWC keys (one wallet-service key per connection, in its own
//! database); it never sees the node's keys.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use nostr_sdk::prelude::{
    Filter, Kind, RelayLimits, RelayMessage, RelayOptions, RelayPool, RelayPoolNotification,
    RelayStatus, RelayUrl, SubscribeOptions, SubscriptionId, Timestamp,
};
use nostr_sdk::{Event, EventBuilder, Keys, PublicKey, Tag, TagKind};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::backend::{PaymentEvent, TxState, WalletBackend};
use crate::config::NwcConfig;
use crate::connections::{Connection, ConnectionSpec, ConnectionStatus, NewConnection};
use crate::crypto::{self, Scheme};
use crate::error::NwcError;
use crate::handler::{self, RateLimiter};
use crate::protocol::{
    self, KIND_INFO, KIND_NOTIFICATION_NIP04, KIND_NOTIFICATION_NIP44, KIND_REQUEST,
    NOTIFICATION_TYPES,
};
use crate::shared::{RequestSink, SharedRelays, TenantLink};
use crate::store::NwcStore;
use crate::util::now_secs;

const SUBSCRIPTION_ID: &str = "nwc-requests";
/// How often processed request ids are pruned and reserved spends reconciled.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

/// The parts shared by the service's tasks.
pub(crate) struct Inner<B> {
    pub(crate) config: NwcConfig,
    pub(crate) store: Arc<NwcStore>,
    pub(crate) backend: Arc<B>,
    pub(crate) pool: RelayPool,
    pub(crate) limiter: RateLimiter,
    pub(crate) permits: Semaphore,
    /// Its place in a host, if it is one tenant's service on shared relays.
    pub(crate) tenancy: Tenancy,
}

/// A service's place in a host: the shared relays that route its requests, the limit on all
/// of its requests together, and whether the host has paused it. A service on its own has
/// none of these.
#[derive(Default)]
pub(crate) struct Tenancy {
    /// The host's relays and this tenant's name in them.
    pub(crate) link: Option<TenantLink>,
    /// The tenant's token bucket (key 0), over all its connections.
    pub(crate) limiter: Option<RateLimiter>,
    /// Whether the host has paused the tenant.
    pub(crate) paused: Arc<AtomicBool>,
}

impl Tenancy {
    /// Whether the host has paused the tenant.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Takes a token from the tenant's bucket, if it has one.
    pub(crate) fn allow(&self) -> bool {
        self.limiter.as_ref().is_none_or(|l| l.allow(0))
    }
}

/// Runs a store operation on the blocking pool (SQLite commits fsync).
pub(crate) async fn db<T, F>(store: &Arc<NwcStore>, f: F) -> Result<T, NwcError>
where
    T: Send + 'static,
    F: FnOnce(&NwcStore) -> Result<T, NwcError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| NwcError::Internal(format!("store task failed: {e}")))?
}

/// The NWC service.
pub struct NwcService;

impl NwcService {
    /// Starts the service and runs it until `shutdown` completes.
    pub async fn run<B: WalletBackend>(
        config: NwcConfig,
        backend: B,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), NwcError> {
        let handle = Self::start(config, backend).await?;
        shutdown.await;
        handle.stop().await;
        Ok(())
    }

    /// Starts the service in the background: opens its database, connects to the relays,
    /// subscribes to requests, publishes info events and forwards payment notifications.
    /// Relays that are down are retried; the service starts without them.
    pub async fn start<B: WalletBackend>(
        config: NwcConfig,
        backend: B,
    ) -> Result<NwcHandle, NwcError> {
        let (pool, relays) = connect_pool(&config).await?;
        let (inner, handle) =
            Self::open(config, backend, pool.clone(), relays, Tenancy::default()).await?;
        let mut tasks = handle.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let stop = handle.stop.subscribe();
        tasks.push(tokio::spawn(request_loop(inner, stop)));
        drop(tasks);
        Ok(handle)
    }

    /// Starts one tenant's service on a host's [`SharedRelays`]: the tenant's own database,
    /// wallet and budgets, but the host's relay connections and request subscription. A
    /// request reaches this tenant only when it is addressed to one of this tenant's wallet
    /// keys; `tenant` names it in the host (its id). Its requests together are limited to
    /// the host's per-tenant rate.
    pub async fn start_shared<B: WalletBackend>(
        shared: &SharedRelays,
        tenant: &str,
        mut config: NwcConfig,
        backend: B,
    ) -> Result<NwcHandle, NwcError> {
        config.relays = shared.relays().iter().map(ToString::to_string).collect();
        let tenancy = Tenancy {
            link: Some(TenantLink {
                relays: shared.clone(),
                tenant: tenant.to_string(),
            }),
            limiter: Some(RateLimiter::new(shared.tenant_rate())),
            paused: Arc::default(),
        };
        let relays = shared.relays().to_vec();
        let (inner, handle) =
            Self::open(config, backend, shared.pool().clone(), relays, tenancy).await?;
        let sink: Arc<dyn RequestSink> = inner;
        shared.register(tenant, sink);
        Ok(handle)
    }

    /// Opens the database and starts the payment and supervise tasks on `pool`.
    async fn open<B: WalletBackend>(
        config: NwcConfig,
        backend: B,
        pool: RelayPool,
        relays: Vec<RelayUrl>,
        tenancy: Tenancy,
    ) -> Result<(Arc<Inner<B>>, NwcHandle), NwcError> {
        let data_dir = config.data_dir.clone();
        let store = Arc::new(
            tokio::task::spawn_blocking(move || NwcStore::open(&data_dir))
                .await
                .map_err(|e| NwcError::Internal(e.to_string()))??,
        );
        {
            let relays = relays.clone();
            db(&store, move |s| s.set_relays(&relays)).await?;
        }
        let interrupted = db(&store, |s| s.interrupted_requests()).await?;
        if !interrupted.is_empty() {
            tracing::warn!(
                count = interrupted.len(),
                "NWC requests were interrupted by a stop; they will not run again"
            );
        }
        let paused = tenancy.paused.clone();
        let link = tenancy.link.clone();
        let inner = Arc::new(Inner {
            limiter: RateLimiter::new(config.rate_limit),
            permits: Semaphore::new(config.max_concurrent_requests),
            config,
            store: store.clone(),
            backend: Arc::new(backend),
            pool: pool.clone(),
            tenancy,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(payment_loop(inner.clone(), stop_rx.clone())),
            tokio::spawn(supervise(inner.clone(), stop_rx)),
        ];
        let handle = NwcHandle {
            store,
            relays,
            pool,
            link,
            paused,
            stop: stop_tx,
            tasks: std::sync::Mutex::new(tasks),
        };
        Ok((inner, handle))
    }
}

/// A pool connecting to `config`'s relays (retrying those that are down), and their URLs.
pub(crate) async fn connect_pool(
    config: &NwcConfig,
) -> Result<(RelayPool, Vec<RelayUrl>), NwcError> {
    let relays = config.validate()?;
    let pool = crate::transport::relay_pool();
    let opts = relay_options(config);
    for url in &relays {
        pool.add_relay(url.clone(), opts.clone())
            .await
            .map_err(|e| NwcError::Relay(e.to_string()))?;
    }
    pool.connect().await;
    Ok((pool, relays))
}

/// How the service talks to its relays: reconnecting, and dropping messages larger than a
/// request may be.
fn relay_options(config: &NwcConfig) -> RelayOptions {
    // Requests may be large (up to max_request_bytes) plus JSON overhead; anything
    // bigger is dropped by the pool before it costs us more.
    let mut limits = RelayLimits::default();
    limits.messages.max_size =
        Some(u32::try_from(config.max_request_bytes * 4 + 65_536).unwrap_or(u32::MAX));
    RelayOptions::new()
        .reconnect(true)
        .retry_interval(config.reconnect_interval)
        .adjust_retry_interval(false)
        .limits(limits)
}

impl<B: WalletBackend> RequestSink for Inner<B> {
    fn deliver(self: Arc<Self>, event: Event) {
        tokio::spawn(handler::handle_event(self, event));
    }
}

/// A running service.
pub struct NwcHandle {
    store: Arc<NwcStore>,
    relays: Vec<RelayUrl>,
    pool: RelayPool,
    link: Option<TenantLink>,
    paused: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl NwcHandle {
    /// The service's database (connections, budgets).
    pub fn store(&self) -> &Arc<NwcStore> {
        &self.store
    }

    /// The relays the service uses.
    pub fn relays(&self) -> &[RelayUrl] {
        &self.relays
    }

    /// Creates a connection on the service's relays. The service starts answering it
    /// within its supervise interval.
    pub fn create_connection(&self, spec: &ConnectionSpec) -> Result<NewConnection, NwcError> {
        self.store.create_connection(spec, &self.relays)
    }

    /// Pauses the service (a host suspended its tenant) or resumes it. A paused service
    /// answers its apps' requests with `RESTRICTED` and sends no notifications.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Stops the service. On its own relays it disconnects from them; on a host's
    /// [`SharedRelays`] it stops taking requests, and the relays serve the other tenants on.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        match &self.link {
            Some(link) => link.relays.unregister(&link.tenant),
            None => self.pool.shutdown().await,
        }
    }
}

pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Receives request events from all relays and handles each in its own task.
async fn request_loop<B: WalletBackend>(inner: Arc<Inner<B>>, stop: watch::Receiver<bool>) {
    let pool = inner.pool.clone();
    each_request(&pool, stop, |event| {
        tokio::spawn(handler::handle_event(inner.clone(), event));
    })
    .await;
}

/// Hands every request event `pool` receives to `handle`, until `stop`. Every copy of an
/// event arrives, also ones the pool has seen before: duplicates must reach the handler,
/// which answers them from the stored response.
pub(crate) async fn each_request(
    pool: &RelayPool,
    mut stop: watch::Receiver<bool>,
    mut handle: impl FnMut(Event),
) {
    let mut notifications = pool.notifications();
    loop {
        let notification = tokio::select! {
            _ = stopped(&mut stop) => return,
            n = notifications.recv() => n,
        };
        match notification {
            Ok(RelayPoolNotification::Message {
                message: RelayMessage::Event { event, .. },
                ..
            }) if event.kind == Kind::from(KIND_REQUEST) => handle(event.into_owned()),
            Ok(RelayPoolNotification::Shutdown) => return,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "NWC fell behind its relays; some requests were dropped"
                );
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Settles budgets and sends notifications as payments complete.
async fn payment_loop<B: WalletBackend>(inner: Arc<Inner<B>>, mut stop: watch::Receiver<bool>) {
    let mut events = inner.backend.payment_events();
    loop {
        let event = tokio::select! {
            _ = stopped(&mut stop) => return,
            e = events.next() => e,
        };
        let Some(event) = event else {
            tracing::info!("the wallet's payment events ended");
            return;
        };
        match event {
            PaymentEvent::Received { payment_hash } => {
                notify(&inner, "payment_received", payment_hash).await;
            }
            PaymentEvent::Sent { payment_hash } => {
                settle(&inner, payment_hash).await;
                notify(&inner, "payment_sent", payment_hash).await;
            }
            PaymentEvent::Failed { payment_hash } => settle(&inner, payment_hash).await,
            PaymentEvent::Lagged => reconcile(&inner).await,
        }
    }
}

/// Settles or releases the reserved spends of one payment, from the wallet's record.
async fn settle<B: WalletBackend>(inner: &Arc<Inner<B>>, payment_hash: [u8; 32]) {
    let spends = match db(&inner.store, move |s| s.spends_for_hash(&payment_hash)).await {
        Ok(s) if s.is_empty() => return,
        Ok(s) => s,
        Err(e) => return tracing::warn!(error = %e, "cannot read spends"),
    };
    let tx = match inner.backend.lookup_payment(payment_hash).await {
        Ok(Some(tx)) => tx,
        Ok(None) => return,
        Err(e) => return tracing::warn!(error = %e, "cannot look up a payment"),
    };
    let now = now_secs();
    let cost = tx.amount_msat.saturating_add(tx.fees_paid_msat);
    let result = match tx.state {
        TxState::Settled => {
            db(&inner.store, move |s| {
                spends
                    .iter()
                    .try_for_each(|id| s.settle_spend(*id, cost, now))
            })
            .await
        }
        TxState::Failed | TxState::Expired => {
            db(&inner.store, move |s| {
                spends.iter().try_for_each(|id| s.release_spend(*id, now))
            })
            .await
        }
        TxState::Pending => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot update spends");
    }
}

/// Resolves every reserved spend whose payment has an outcome (after a restart or missed
/// events).
async fn reconcile<B: WalletBackend>(inner: &Arc<Inner<B>>) {
    match db(&inner.store, |s| s.pending_spends()).await {
        Ok(pending) => {
            for spend in pending {
                if let Some(hash) = spend.payment_hash {
                    settle(inner, hash).await;
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot reconcile spends"),
    }
}

/// Sends a notification to every active connection that wants them, as NIP-44 (kind 23197)
/// and NIP-04 (kind 23196) events.
async fn notify<B: WalletBackend>(inner: &Arc<Inner<B>>, kind: &str, payment_hash: [u8; 32]) {
    if inner.tenancy.is_paused() {
        return;
    }
    let tx = match inner.backend.lookup_payment(payment_hash).await {
        Ok(Some(tx)) => tx,
        Ok(None) => return,
        Err(e) => return tracing::warn!(error = %e, "cannot look up a payment to notify"),
    };
    let body = protocol::notification_json(kind, &tx);
    let connections = match db(&inner.store, |s| s.connections_with_keys()).await {
        Ok(c) => c,
        Err(e) => return tracing::warn!(error = %e, "cannot list connections"),
    };
    let now = now_secs();
    for (connection, keys) in connections {
        if !connection.notifications || connection.status(now) != ConnectionStatus::Active {
            continue;
        }
        for (scheme, event_kind) in [
            (Scheme::Nip44V2, KIND_NOTIFICATION_NIP44),
            (Scheme::Nip04, KIND_NOTIFICATION_NIP04),
        ] {
            let event = crypto::encrypt(scheme, keys.secret_key(), &connection.app_pubkey, &body)
                .map_err(|e| e.to_string())
                .and_then(|content| {
                    EventBuilder::new(Kind::from(event_kind), content)
                        .tag(Tag::public_key(connection.app_pubkey))
                        .sign_with_keys(&keys)
                        .map_err(|e| e.to_string())
                });
            match event {
                Ok(ev) => {
                    if let Err(e) = inner.pool.send_event(&ev).await {
                        tracing::warn!(error = %e, "cannot publish NWC notification");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot build NWC notification"),
            }
        }
    }
}

/// The info event of one connection (kind 13194, replaceable, signed by its wallet key).
pub(crate) fn info_event(connection: &Connection, keys: &Keys) -> Result<Event, NwcError> {
    let mut capabilities: Vec<&str> = connection
        .allowed_methods()
        .iter()
        .map(|m| m.as_str())
        .collect();
    let mut tags = vec![Tag::custom(
        TagKind::custom(crypto::ENCRYPTION_TAG),
        [crypto::SUPPORTED_SCHEMES],
    )];
    if connection.notifications {
        capabilities.push("notifications");
        tags.push(Tag::custom(
            TagKind::custom("notifications"),
            [NOTIFICATION_TYPES],
        ));
    }
    EventBuilder::new(Kind::from(KIND_INFO), capabilities.join(" "))
        .tags(tags)
        .sign_with_keys(keys)
        .map_err(|e| NwcError::Nostr(e.to_string()))
}

/// Keeps the subscription and info events right: on start, when connections change, and
/// when a relay (re)connects. Also prunes old request ids and reconciles budgets.
async fn supervise<B: WalletBackend>(inner: Arc<Inner<B>>, mut stop: watch::Receiver<bool>) {
    let mut subscribed: Option<BTreeSet<PublicKey>> = None;
    let mut published: HashMap<i64, ConnectionStatus> = HashMap::new();
    let mut relay_sessions: HashMap<RelayUrl, usize> = HashMap::new();
    let mut last_housekeeping: Option<Instant> = None;
    let mut tick = tokio::time::interval(inner.config.supervise_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tick.tick() => {}
        }
        let connections = match db(&inner.store, |s| s.connections_with_keys()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read connections");
                continue;
            }
        };
        // Relays that came (back) up need the subscription again and the info events (an
        // in-memory relay forgets them when it restarts).
        let mut reconnected = Vec::new();
        let mut connected = Vec::new();
        for (url, relay) in inner.pool.relays().await {
            // Count successful connections rather than sampling the status: a drop and a
            // reconnect can both happen between two ticks.
            let up = relay.status() == RelayStatus::Connected;
            let sessions = relay.stats().success();
            let seen = relay_sessions.insert(url.clone(), sessions);
            if up {
                connected.push(url.clone());
                if seen != Some(sessions) {
                    reconnected.push(url);
                }
            }
        }
        // Subscribe to every connection's wallet key, revoked ones included, so their
        // requests get UNAUTHORIZED instead of silence.
        let keys: BTreeSet<PublicKey> = connections.iter().map(|(c, _)| c.wallet_pubkey).collect();
        if subscribed.as_ref() != Some(&keys) || !reconnected.is_empty() {
            match subscribe(&inner, &keys).await {
                Ok(()) => subscribed = Some(keys),
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to NWC requests"),
            }
        }
        let now = now_secs();
        for (connection, keys) in &connections {
            let status = connection.status(now);
            let changed = published.get(&connection.id) != Some(&status);
            if status == ConnectionStatus::Active && (changed || !reconnected.is_empty()) {
                if connected.is_empty() {
                    // Not published yet: try again once a relay is up.
                    continue;
                }
                match info_event(connection, keys) {
                    Ok(ev) => {
                        if let Err(e) = inner.pool.send_event_to(connected.clone(), &ev).await {
                            tracing::debug!(error = %e, "cannot publish info event yet");
                            continue;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot build info event"),
                }
            }
            published.insert(connection.id, status);
        }
        if last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING_INTERVAL) {
            last_housekeeping = Some(Instant::now());
            let before = now.saturating_sub(inner.config.request_retention.as_secs());
            if let Err(e) = db(&inner.store, move |s| s.prune_requests(before)).await {
                tracing::warn!(error = %e, "cannot prune request ids");
            }
            reconcile(&inner).await;
        }
    }
}

/// (Re)subscribes to requests for `keys`, from the last request seen (less a margin) so
/// requests a relay kept while we were away are caught up; duplicates are harmless.
async fn subscribe<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    keys: &BTreeSet<PublicKey>,
) -> Result<(), NwcError> {
    if let Some(link) = &inner.tenancy.link {
        // On a host's relays the host subscribes for every tenant at once.
        let last = db(&inner.store, |s| s.last_request_at()).await?;
        return link.relays.set_keys(&link.tenant, keys, last).await;
    }
    let id = SubscriptionId::new(SUBSCRIPTION_ID);
    if keys.is_empty() {
        inner.pool.unsubscribe(&id).await;
        return Ok(());
    }
    let last = db(&inner.store, |s| s.last_request_at()).await?;
    let filter = request_filter(&inner.config, keys.iter().copied(), last);
    inner
        .pool
        .subscribe_with_id(id, filter, SubscribeOptions::default())
        .await
        .map_err(|e| NwcError::Relay(e.to_string()))?;
    Ok(())
}

/// The filter for requests to `keys`, from the last request seen (`last`, less a margin, but
/// never older than a request may be).
pub(crate) fn request_filter(
    config: &NwcConfig,
    keys: impl IntoIterator<Item = PublicKey>,
    last: Option<u64>,
) -> Filter {
    let now = now_secs();
    let oldest = now.saturating_sub(config.max_request_age.as_secs());
    let since = match last {
        Some(t) => t
            .saturating_sub(config.catch_up_margin.as_secs())
            .max(oldest),
        None => now.saturating_sub(config.catch_up_margin.as_secs()),
    };
    Filter::new()
        .kind(Kind::from(KIND_REQUEST))
        .pubkeys(keys)
        .since(Timestamp::from(since))
}
