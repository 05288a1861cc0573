//! One gRPC endpoint for every tenant of a host.
//!
//! A host runs many tenant nodes in one process and serves their APIs on one address, the
//! front door. Each call names its tenant, by the `x-micronode-tenant` header (the tenant's
//! node id) or, without it, by the tenant a capability token claims; the door then hands the
//! call to that tenant's own guarded services, where the tenant's [`Authenticator`] checks the
//! credential against the tenant's keys. A claim is only a routing hint: tenant B's token sent
//! to tenant A fails A's verification, so nothing of A is reachable with B's credentials.
//! Unknown tenants and suspended ones are refused before the request is decoded, and so are a
//! tenant's calls beyond its [`RateLimit`] (`RATE_LIMITED`).
//!
//! ```text
//!  client ──▶ Door ── tenant? ──▶ TenantDirectory ──▶ AuthGuard(tenant's auth) ──▶ tenant's service
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use micronode_node::edge::{Bucket, PerIpLimiter, RateLimit};
use micronode_node::{KeysBackend, Node};
use micronode_proto::{ErrorCode, AUTHORIZATION_METADATA, TENANT_METADATA};
use tokio::sync::watch;
use tonic::body::Body;
use tonic::codegen::{http, Service};
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

use crate::auth::{bearer_token, Authenticator};
use crate::error::ApiError;
use crate::server::{guarded_services, serve_router, ServeOptions, ServerTask};
use crate::tokens::claimed_tenant;

/// A guarded gRPC service of one tenant, with its type erased.
type TenantService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// The API of one tenant behind a front door: its `Lightning` and `Tokens` services, each
/// behind the tenant's authenticator. Dropping it ends the tenant's event streams and payment
/// waits.
pub struct TenantApi {
    lightning: TenantService,
    tokens: TenantService,
    _stop: watch::Sender<bool>,
}

impl TenantApi {
    /// The API of `node`, every call of which must pass `auth`. If `auth` is a token authority,
    /// budget reservations a previous run left open are settled in the background.
    pub fn new<K: KeysBackend>(node: Arc<Node<K>>, auth: Arc<dyn Authenticator>) -> TenantApi {
        TenantApi::with_pairing(node, auth, None)
    }

    /// [`TenantApi::new`], serving the pairing RPCs with `pairing`.
    pub fn with_pairing<K: KeysBackend>(
        node: Arc<Node<K>>,
        auth: Arc<dyn Authenticator>,
        pairing: Option<Arc<dyn crate::PairingBackend>>,
    ) -> TenantApi {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (lightning, tokens) = guarded_services(node, auth, stop_rx, pairing);
        TenantApi {
            lightning: BoxCloneSyncService::new(lightning),
            tokens: BoxCloneSyncService::new(tokens),
            _stop: stop_tx,
        }
    }
}

impl Drop for TenantApi {
    fn drop(&mut self) {
        let _ = self._stop.send(true);
    }
}

/// What the front door knows of a tenant.
enum Entry {
    Serving(Arc<TenantApi>),
    Suspended,
}

/// The tenants a front door serves, by node id. Cheap to clone; the host changes it as tenants
/// start, stop, are suspended and resumed, and the door sees each change on the next call.
/// Each tenant's calls are limited to the directory's [`RateLimit`].
#[derive(Clone, Default)]
pub struct TenantDirectory {
    tenants: Arc<RwLock<HashMap<String, Entry>>>,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    limit: RateLimit,
    per_ip: Arc<PerIpLimiter>,
}

impl TenantDirectory {
    /// An empty directory with the default [`RateLimit`] per tenant.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty directory limiting each tenant's calls to `limit`.
    pub fn with_rate_limit(limit: RateLimit) -> Self {
        TenantDirectory {
            limit,
            ..Self::default()
        }
    }

    /// Limits the calls from each remote address to `limit`, over all tenants (default: no
    /// limit).
    pub fn with_ip_rate_limit(self, limit: RateLimit) -> Self {
        TenantDirectory {
            per_ip: Arc::new(PerIpLimiter::new(limit)),
            ..self
        }
    }

    /// Takes one call of `tenant` from its bucket; `false` when it is over its rate.
    fn admit(&self, tenant: &str) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let limit = self.limit;
        buckets
            .entry(tenant.to_string())
            .or_insert_with(|| Bucket::new(limit))
            .take(limit, Instant::now())
    }

    /// Serves `api` for the tenant whose node id is `node_id` (replacing what was there).
    pub fn serve(&self, node_id: &str, api: TenantApi) {
        self.write()
            .insert(node_id.to_string(), Entry::Serving(Arc::new(api)));
    }

    /// Refuses the tenant's calls with `TENANT_SUSPENDED` until [`serve`](Self::serve)d again;
    /// its event streams end.
    pub fn suspend(&self, node_id: &str) {
        self.write().insert(node_id.to_string(), Entry::Suspended);
    }

    /// Forgets the tenant: its calls are refused as an unknown tenant's.
    pub fn remove(&self, node_id: &str) {
        self.write().remove(node_id);
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node_id);
    }

    /// Whether the tenant's API is served now.
    pub fn is_serving(&self, node_id: &str) -> bool {
        matches!(self.read().get(node_id), Some(Entry::Serving(_)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave the map half-changed (each change is
        // one insert or remove), so a poisoned lock is still usable.
        self.tenants.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.tenants.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant's API a call goes to, or the status that refuses it.
    fn route(&self, headers: &http::HeaderMap) -> Result<Arc<TenantApi>, tonic::Status> {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let named = text(TENANT_METADATA).map(|s| s.trim().to_string());
        let tenant = match named {
            Some(tenant) => tenant,
            None => text(AUTHORIZATION_METADATA)
                .and_then(bearer_token)
                .and_then(claimed_tenant)
                .ok_or_else(|| {
                    ErrorCode::UnknownTenant.status(format!(
                        "name the tenant in the `{TENANT_METADATA}` header, or send a token \
                         of the tenant"
                    ))
                })?,
        };
        match self.read().get(&tenant) {
            Some(Entry::Serving(_)) if !self.admit(&tenant) => {
                Err(ErrorCode::RateLimited
                    .status("too many calls for this tenant; retry in a moment"))
            }
            Some(Entry::Serving(api)) => Ok(api.clone()),
            Some(Entry::Suspended) => Err(ErrorCode::TenantSuspended
                .status("this tenant is suspended by its host; its API is not served")),
            None => Err(ErrorCode::UnknownTenant.status("no tenant of this host has this node id")),
        }
    }
}

/// Which of a tenant's services a door serves.
trait DoorKind: Send + Sync + 'static {
    const NAME: &'static str;
    fn service(api: &TenantApi) -> TenantService;
}

struct LightningDoor;
impl DoorKind for LightningDoor {
    const NAME: &'static str = micronode_proto::LIGHTNING_SERVICE;
    fn service(api: &TenantApi) -> TenantService {
        api.lightning.clone()
    }
}

struct TokensDoor;
impl DoorKind for TokensDoor {
    const NAME: &'static str = micronode_proto::TOKENS_SERVICE;
    fn service(api: &TenantApi) -> TenantService {
        api.tokens.clone()
    }
}

/// The front door of one service: routes each call to the tenant's service.
struct Door<D> {
    directory: TenantDirectory,
    _kind: PhantomData<fn() -> D>,
}

impl<D> Clone for Door<D> {
    fn clone(&self) -> Self {
        Door {
            directory: self.directory.clone(),
            _kind: PhantomData,
        }
    }
}

impl<D: DoorKind> NamedService for Door<D> {
    const NAME: &'static str = D::NAME;
}

impl<D: DoorKind> Service<http::Request<Body>> for Door<D> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let from = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        if let Some(from) = from {
            if !self.directory.per_ip.admit(from.ip()) {
                let status = ErrorCode::RateLimited
                    .status("too many calls from your address; retry in a moment");
                return Box::pin(futures::future::ready(Ok(status.into_http())));
            }
        }
        match self.directory.route(req.headers()) {
            Ok(api) => {
                let service = D::service(&api);
                Box::pin(async move {
                    let response = service.oneshot(req).await;
                    // The tenant's API lives until its call ends, even if it is suspended
                    // meanwhile (the suspension ends its streams).
                    drop(api);
                    response
                })
            }
            Err(status) => Box::pin(futures::future::ready(Ok(status.into_http()))),
        }
    }
}

/// Serves the front door of `directory` on `addr` until `shutdown` resolves: the `Lightning`
/// and `Tokens` services of every tenant in it, with the limits and bounded shutdown of
/// [`serve`](crate::serve), to the addresses `options.allow` lets in. Binds first, so `addr`
/// may have port 0.
pub async fn serve_front_door(
    directory: TenantDirectory,
    addr: SocketAddr,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, ServerTask), ApiError> {
    let lightning: Door<LightningDoor> = Door {
        directory: directory.clone(),
        _kind: PhantomData,
    };
    let tokens: Door<TokensDoor> = Door {
        directory,
        _kind: PhantomData,
    };
    serve_router(addr, shutdown, options, move |mut server, _| {
        server.add_service(lightning).add_service(tokens)
    })
    .await
}
