//! One set of relay connections for every tenant of a host: [`SharedRelays`].
//!
//! A host with thousands of tenants cannot open thousands of websockets to each relay, nor
//! hold one subscription per tenant (relays cap subscriptions per connection). The host opens
//! one [`RelayPool`] and one subscription for the wallet keys of all its tenants; each request
//! is handed to the tenant that owns the wallet key it is addressed to (its `p` tag), and to
//! no other. That tenant's service then checks the request against its own connections,
//! budgets and rate limits, in its own database, exactly as a service on its own does: a
//! request signed by tenant B's app but addressed to tenant A's wallet key is A's to judge,
//! and A has no connection for B's app (`UNAUTHORIZED`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use nostr_sdk::prelude::{RelayPool, RelayStatus, RelayUrl, SubscribeOptions, SubscriptionId};
use nostr_sdk::{Event, PublicKey};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{NwcConfig, RateLimit};
use crate::error::NwcError;
use crate::service::{connect_pool, each_request, request_filter, stopped};

const SUBSCRIPTION_ID: &str = "nwc-host-requests";
/// How long a tenant waits for the relays' subscription to cover its new keys.
const SUBSCRIBE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where requests for one tenant go: its service.
pub(crate) trait RequestSink: Send + Sync {
    /// Handles `event` (in a task of its own).
    fn deliver(self: Arc<Self>, event: Event);
}

/// A tenant's service's link to the host's relays.
#[derive(Clone)]
pub(crate) struct TenantLink {
    /// The host's relays.
    pub(crate) relays: SharedRelays,
    /// The tenant's name in them.
    pub(crate) tenant: String,
}

/// One tenant as the shared relays know it.
struct Route {
    sink: Arc<dyn RequestSink>,
    keys: BTreeSet<PublicKey>,
    last_request_at: Option<u64>,
    /// The key set's generation when this tenant's keys last changed.
    generation: u64,
}

#[derive(Default)]
struct Routes {
    /// Tenants by name.
    tenants: HashMap<String, Route>,
    /// Each wallet key's tenant.
    owners: HashMap<PublicKey, String>,
    /// Counts the key set's changes: the subscription covers those up to
    /// [`Hub::subscribed`], and is renewed while it lags.
    generation: u64,
}

impl Routes {
    /// Notes a change of the key set; returns its generation.
    fn change(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }
}

struct Hub {
    pool: RelayPool,
    relays: Vec<RelayUrl>,
    config: NwcConfig,
    tenant_rate: RateLimit,
    routes: Mutex<Routes>,
    /// The key set's generation the relays' subscription covers.
    subscribed: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A host's relay connections, shared by the NWC services of all its tenants
/// ([`crate::NwcService::start_shared`]).
#[derive(Clone)]
pub struct SharedRelays {
    hub: Arc<Hub>,
}

impl SharedRelays {
    /// Connects to `config.relays` (retrying those that are down) and starts routing
    /// requests. `tenant_rate` limits each tenant's requests together, over all of its
    /// connections; `config.data_dir` is not used.
    pub async fn start(config: NwcConfig, tenant_rate: RateLimit) -> Result<Self, NwcError> {
        let (pool, relays) = connect_pool(&config).await?;
        let (stop, _) = watch::channel(false);
        let hub = Arc::new(Hub {
            pool,
            relays,
            config,
            tenant_rate,
            routes: Mutex::default(),
            subscribed: watch::channel(0).0,
            stop,
            tasks: Mutex::default(),
        });
        let tasks = vec![
            tokio::spawn(route_requests(hub.clone(), hub.stop.subscribe())),
            tokio::spawn(keep_subscribed(hub.clone(), hub.stop.subscribe())),
        ];
        *hub.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        Ok(Self { hub })
    }

    /// The relays.
    pub fn relays(&self) -> &[RelayUrl] {
        &self.hub.relays
    }

    /// How many tenants' services use the relays now.
    pub fn tenants(&self) -> usize {
        self.routes().tenants.len()
    }

    /// Disconnects from the relays. Every tenant's service stops getting requests.
    pub async fn stop(&self) {
        let _ = self.hub.stop.send(true);
        let tasks = std::mem::take(&mut *self.hub.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        self.hub.pool.shutdown().await;
    }

    pub(crate) fn pool(&self) -> &RelayPool {
        &self.hub.pool
    }

    pub(crate) fn tenant_rate(&self) -> RateLimit {
        self.hub.tenant_rate
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.hub.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a tenant's service (no keys yet: its supervisor sets them).
    pub(crate) fn register(&self, tenant: &str, sink: Arc<dyn RequestSink>) {
        let mut routes = self.routes();
        let old = routes.tenants.insert(
            tenant.to_string(),
            Route {
                sink,
                keys: BTreeSet::new(),
                last_request_at: None,
                generation: 0,
            },
        );
        if let Some(old) = old {
            for key in old.keys {
                routes.owners.remove(&key);
            }
            routes.change();
        }
    }

    /// Removes a tenant's service: requests to its keys go nowhere.
    pub(crate) fn unregister(&self, tenant: &str) {
        let mut routes = self.routes();
        if let Some(route) = routes.tenants.remove(tenant) {
            for key in route.keys {
                routes.owners.remove(&key);
            }
            routes.change();
        }
    }

    /// Sets the wallet keys a tenant answers for, and when it last saw a request, and waits
    /// until the relays' subscription covers them: a tenant publishes its info events (which
    /// tell apps it listens) only after that, or an app's first request could be missed.
    pub(crate) async fn set_keys(
        &self,
        tenant: &str,
        keys: &BTreeSet<PublicKey>,
        last: Option<u64>,
    ) -> Result<(), NwcError> {
        let Some(generation) = self.update_keys(tenant, keys, last) else {
            return Ok(());
        };
        let mut subscribed = self.hub.subscribed.subscribe();
        let covered = tokio::time::timeout(
            SUBSCRIBE_WAIT,
            subscribed.wait_for(|covered| *covered >= generation),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if covered {
            Ok(())
        } else {
            Err(NwcError::Relay(
                "the host's relays have not subscribed to this tenant's keys yet".into(),
            ))
        }
    }

    /// Records a tenant's keys; the generation the subscription must reach to cover them
    /// (`None` for a tenant no longer registered).
    fn update_keys(
        &self,
        tenant: &str,
        keys: &BTreeSet<PublicKey>,
        last: Option<u64>,
    ) -> Option<u64> {
        let mut routes = self.routes();
        let Routes {
            tenants, owners, ..
        } = &mut *routes;
        let route = tenants.get_mut(tenant)?;
        route.last_request_at = last;
        if route.keys == *keys {
            return Some(route.generation);
        }
        for key in route.keys.difference(keys) {
            owners.remove(key);
        }
        for key in keys.difference(&route.keys) {
            match owners.get(key) {
                // A wallet key is random; two tenants with one key would be an operator
                // writing into a tenant's database. The first keeps it.
                Some(other) if other != tenant => tracing::warn!(
                    tenant,
                    owner = %other,
                    "a wallet key of this tenant belongs to another; ignored"
                ),
                _ => {
                    owners.insert(*key, tenant.to_string());
                }
            }
        }
        route.keys = keys.clone();
        let generation = routes.change();
        if let Some(route) = routes.tenants.get_mut(tenant) {
            route.generation = generation;
        }
        Some(generation)
    }

    /// The service of the tenant owning `wallet_key`.
    fn sink_for(&self, wallet_key: &PublicKey) -> Option<Arc<dyn RequestSink>> {
        let routes = self.routes();
        let tenant = routes.owners.get(wallet_key)?;
        routes.tenants.get(tenant).map(|r| r.sink.clone())
    }
}

/// Hands every request event to the tenant owning the wallet key it is addressed to.
async fn route_requests(hub: Arc<Hub>, stop: watch::Receiver<bool>) {
    let relays = SharedRelays { hub: hub.clone() };
    each_request(&hub.pool, stop, |event| {
        let Some(wallet_key) = event.tags.public_keys().next().copied() else {
            return;
        };
        match relays.sink_for(&wallet_key) {
            Some(sink) => sink.deliver(event),
            None => tracing::debug!(%wallet_key, "NWC request for no tenant here"),
        }
    })
    .await;
}

/// Keeps one subscription for the keys of every tenant: again when they change and when a
/// relay (re)connects.
async fn keep_subscribed(hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let mut sessions: HashMap<RelayUrl, usize> = HashMap::new();
    // The last attempt failed: try again on the next tick even if nothing changed.
    let mut failed = false;
    let mut tick = tokio::time::interval(hub.config.supervise_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tick.tick() => {}
        }
        let mut reconnected = false;
        for (url, relay) in hub.pool.relays().await {
            let count = relay.stats().success();
            if relay.status() == RelayStatus::Connected
                && sessions.insert(url, count) != Some(count)
            {
                reconnected = true;
            }
        }
        let (keys, last, generation) = {
            let routes = hub.routes.lock().unwrap_or_else(|e| e.into_inner());
            let generation = routes.generation;
            if generation == *hub.subscribed.borrow() && !reconnected && !failed {
                continue;
            }
            let keys: Vec<PublicKey> = routes.owners.keys().copied().collect();
            // Catch up from the tenant that has waited longest.
            let last = routes
                .tenants
                .values()
                .filter(|r| !r.keys.is_empty())
                .filter_map(|r| r.last_request_at)
                .min();
            (keys, last, generation)
        };
        let id = SubscriptionId::new(SUBSCRIPTION_ID);
        if keys.is_empty() {
            hub.pool.unsubscribe(&id).await;
            failed = false;
            hub.subscribed.send_replace(generation);
            continue;
        }
        let filter = request_filter(&hub.config, keys, last);
        if let Err(e) = hub
            .pool
            .subscribe_with_id(id, filter, SubscribeOptions::default())
            .await
        {
            tracing::warn!(error = %e, "cannot subscribe to NWC requests");
            failed = true;
        } else {
            failed = false;
            hub.subscribed.send_replace(generation);
        }
    }
}
