//! A small HTTP API for the tenant to manage connections remotely: create, list, revoke.
//!
//! | route | what it does |
//! |---|---|
//! | `POST /v1/connections` | creates a connection; the response carries its URI, **once** |
//! | `GET /v1/connections` | lists connections (no secrets) |
//! | `DELETE /v1/connections/{id}` | revokes a connection |
//!
//! Every request carries `Authorization: Nostr <base64(event JSON)>`: a NIP-98 kind-27235
//! event signed by the tenant's key recorded in the store ([`NwcStore::set_tenant_pubkey`]),
//! verified by [`verify_authorization_header`] against the request's method and the absolute
//! URL the client used (`http://<Host header><path and query>`), with a `payload` tag (SHA-256
//! of the body) on `POST`. An event is accepted once: a second use of the same event id is
//! refused.
//!
//! Errors are JSON `{"error": {"code": "...", "message": "..."}}`: `403 no_tenant` when no
//! tenant key is recorded; `401` with `missing_authorization`, `malformed_authorization`,
//! `wrong_kind`, `bad_signature`, `not_tenant`, `missing_tag`, `request_mismatch` (URL or
//! method), `stale_event`, `payload_mismatch` or `replayed`; `400 bad_json` /
//! `invalid_request`; `404 not_found`; `413 body_too_large`; `500 internal`.
//!
//! The server speaks plain HTTP and checks the signed URL against `http://<Host><path>`, so
//! bind it to loopback ([`loopback`]). Behind a TLS-terminating proxy the client would sign an
//! `https://` URL that does not match; that set-up is not supported yet.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method as HttpMethod, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use nostr_sdk::{Event, EventId, JsonUtil, RelayUrl};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::budget::{Budget, BudgetRenewal};
use crate::connections::{Connection, ConnectionSpec, ConnectionStatus};
use crate::error::{ManagementAuthError, NwcError};
use crate::management::verify_authorization_header;
use crate::protocol::Method;
use crate::service::db;
use crate::store::NwcStore;
use crate::util::now_secs;

/// The largest request body accepted (16 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The longest connection name accepted.
pub const MAX_NAME_CHARS: usize = 256;
/// How long a used event id is remembered (longer than the verifier's 60 s + 30 s window).
const SEEN_TTL_SECS: u64 = 180;

/// `127.0.0.1:<port>` (port 0 picks a free one): where the API should listen unless it sits
/// behind a proxy.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

struct Api {
    store: Arc<NwcStore>,
    relays: Vec<RelayUrl>,
    /// Event ids already used, with their `created_at`, so a captured event cannot be
    /// replayed within its validity window.
    seen: Mutex<HashMap<EventId, u64>>,
}

/// Binds `addr` and serves the management API until `shutdown` resolves. Returns the bound
/// address (useful with port 0) and the server task.
///
/// `relays` go into the URIs of new connections; when empty, the relays the service last ran
/// with ([`NwcStore::relays`]) are used.
pub async fn serve_management(
    store: Arc<NwcStore>,
    relays: Vec<String>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<Result<(), NwcError>>), NwcError> {
    let relays = relays
        .iter()
        .map(|r| RelayUrl::parse(r).map_err(|e| NwcError::Config(format!("relay {r:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| NwcError::Io {
            path: addr.to_string(),
            source: e,
        })?;
    let local = listener.local_addr().map_err(|e| NwcError::Io {
        path: addr.to_string(),
        source: e,
    })?;
    if !local.ip().is_loopback() {
        tracing::warn!(%local, "NWC management API listens beyond loopback over plain HTTP");
    }
    let api = Arc::new(Api {
        store,
        relays,
        seen: Mutex::new(HashMap::new()),
    });
    let app = router(api);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| NwcError::Io {
                path: local.to_string(),
                source: e,
            })
    });
    tracing::info!(%local, "NWC management API listening");
    Ok((local, task))
}

fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/v1/connections", get(list).post(create))
        .route("/v1/connections/{id}", delete(revoke))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .with_state(api)
}

/// An error answer: `{"error": {"code", "message"}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    fn internal(e: NwcError) -> Self {
        tracing::error!(error = %e, "NWC management API");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl From<ManagementAuthError> for ApiError {
    fn from(e: ManagementAuthError) -> Self {
        let code = match &e {
            ManagementAuthError::NoTenant => {
                return Self::new(
                    StatusCode::FORBIDDEN,
                    "no_tenant",
                    "no tenant key is recorded; remote management is disabled \
                     (record one with `micronode nwc tenant <npub>`)",
                )
            }
            ManagementAuthError::WrongKind(_) => "wrong_kind",
            ManagementAuthError::BadSignature => "bad_signature",
            ManagementAuthError::NotTenant(_) => "not_tenant",
            ManagementAuthError::MissingTag(_) => "missing_tag",
            ManagementAuthError::Mismatch { .. } => "request_mismatch",
            ManagementAuthError::Stale { .. } => "stale_event",
            ManagementAuthError::PayloadMismatch => "payload_mismatch",
            ManagementAuthError::Malformed(_) => "malformed_authorization",
        };
        Self::unauthorized(code, e.to_string())
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInner {
                code: self.code,
                message: &self.message,
            },
        };
        let mut resp = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Nostr"));
        }
        resp
    }
}

fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Checks the request's NIP-98 authorization; on success the event id is spent.
async fn authorize(
    api: &Arc<Api>,
    method: &HttpMethod,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Result<(), ApiError> {
    let tenant = db(&api.store, |s| s.tenant_pubkey())
        .await
        .map_err(ApiError::internal)?;
    if tenant.is_none() {
        return Err(ManagementAuthError::NoTenant.into());
    }
    let header = match headers.get(AUTHORIZATION) {
        None => {
            return Err(ApiError::unauthorized(
                "missing_authorization",
                "an Authorization: Nostr <base64 event> header (NIP-98) is required",
            ))
        }
        Some(h) => h.to_str().map_err(|_| {
            ApiError::unauthorized("malformed_authorization", "non-ASCII Authorization header")
        })?,
    };
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "missing_host", "no Host header"))?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("http://{host}{path}");
    let now = now_secs();
    verify_authorization_header(header, method.as_str(), &url, body, tenant.as_ref(), now)?;
    // Verified, so the header decodes; spend the event id.
    let id = event_id(header)
        .ok_or_else(|| ApiError::unauthorized("malformed_authorization", "undecodable event"))?;
    let mut seen = api.seen.lock().unwrap_or_else(|p| p.into_inner());
    seen.retain(|_, created| created.saturating_add(SEEN_TTL_SECS) >= now);
    if seen.insert(id, now).is_some() {
        return Err(ApiError::unauthorized(
            "replayed",
            "this authorization event was already used",
        ));
    }
    Ok(())
}

fn event_id(header: &str) -> Option<EventId> {
    use nostr_sdk::base64::engine::general_purpose::STANDARD;
    use nostr_sdk::base64::Engine;
    let json = STANDARD
        .decode(header.strip_prefix("Nostr ")?.trim())
        .ok()?;
    Event::from_json(&json).ok().map(|e| e.id)
}

/// A connection as listed: no secrets.
#[derive(Serialize)]
struct ConnectionView {
    id: i64,
    name: String,
    status: ConnectionStatus,
    app_pubkey: String,
    wallet_pubkey: String,
    methods: Vec<Method>,
    notifications: bool,
    budget: Option<Budget>,
    expires_at: Option<u64>,
    created_at: u64,
    revoked: bool,
    revoked_at: Option<u64>,
}

impl ConnectionView {
    fn new(c: &Connection, now: u64) -> Self {
        Self {
            id: c.id,
            name: c.name.clone(),
            status: c.status(now),
            app_pubkey: c.app_pubkey.to_hex(),
            wallet_pubkey: c.wallet_pubkey.to_hex(),
            methods: c.allowed_methods(),
            notifications: c.notifications,
            budget: c.budget,
            expires_at: c.expires_at,
            created_at: c.created_at,
            revoked: c.revoked_at.is_some(),
            revoked_at: c.revoked_at,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
    #[serde(default)]
    methods: Option<Vec<String>>,
    #[serde(default)]
    notifications: Option<bool>,
    #[serde(default)]
    budget_msat: Option<u64>,
    #[serde(default)]
    renewal: Option<BudgetRenewal>,
    #[serde(default)]
    expires_at: Option<u64>,
}

impl CreateRequest {
    fn into_spec(self, now: u64) -> Result<ConnectionSpec, ApiError> {
        let invalid = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m);
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid(format!(
                "name must be 1 to {MAX_NAME_CHARS} characters"
            )));
        }
        let mut spec = ConnectionSpec::full(name);
        if let Some(methods) = self.methods {
            let mut parsed = Vec::with_capacity(methods.len());
            for m in &methods {
                let method: Method = m.parse().map_err(|e| invalid(format!("{e}")))?;
                if !method.is_supported() {
                    return Err(invalid(format!("method {m:?} is not supported")));
                }
                parsed.push(method);
            }
            spec = spec.with_methods(parsed);
        }
        if let Some(n) = self.notifications {
            spec.notifications = n;
        }
        match (self.budget_msat, self.renewal) {
            (Some(amount), renewal) => {
                if amount == 0 || i64::try_from(amount).is_err() {
                    return Err(invalid(
                        "budget_msat must be positive and fit in i64".into(),
                    ));
                }
                spec = spec.with_budget(amount, renewal.unwrap_or(BudgetRenewal::Never));
            }
            (None, Some(_)) => return Err(invalid("renewal needs budget_msat".into())),
            (None, None) => {}
        }
        if let Some(at) = self.expires_at {
            if at <= now || i64::try_from(at).is_err() {
                return Err(invalid("expires_at must be a future unix time".into()));
            }
            spec = spec.with_expiry(at);
        }
        Ok(spec)
    }
}

#[derive(Serialize)]
struct Created {
    id: i64,
    /// The connection URI with the app's secret: shown in this response only.
    uri: String,
    connection: ConnectionView,
}

async fn create(
    State(api): State<Arc<Api>>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is over {MAX_BODY_BYTES} bytes (or could not be read)"),
        )
    })?;
    authorize(&api, &method, &uri, &headers, Some(&body)).await?;
    let req: CreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_json", e.to_string()))?;
    let now = now_secs();
    let spec = req.into_spec(now)?;
    let relays = api.relays.clone();
    let new = db(&api.store, move |s| {
        let relays = if relays.is_empty() {
            s.relays()?
        } else {
            relays
        };
        if relays.is_empty() {
            return Ok(None);
        }
        s.create_connection(&spec, &relays).map(Some)
    })
    .await
    .map_err(ApiError::internal)?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_relays",
            "no relays are configured for new connections",
        )
    })?;
    tracing::info!(id = new.connection.id, name = %new.connection.name, "NWC connection created over the management API");
    let created = Created {
        id: new.connection.id,
        uri: new.uri(),
        connection: ConnectionView::new(&new.connection, now),
    };
    let mut resp = json_response(StatusCode::CREATED, &created);
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

#[derive(Serialize)]
struct Listed {
    connections: Vec<ConnectionView>,
}

async fn list(
    State(api): State<Arc<Api>>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_optional_body(body).await?;
    authorize(&api, &method, &uri, &headers, body.as_deref()).await?;
    let all = db(&api.store, |s| s.list_connections())
        .await
        .map_err(ApiError::internal)?;
    let now = now_secs();
    Ok(json_response(
        StatusCode::OK,
        &Listed {
            connections: all.iter().map(|c| ConnectionView::new(c, now)).collect(),
        },
    ))
}

#[derive(Serialize)]
struct Revoked {
    id: i64,
    /// False when it was already revoked.
    revoked_now: bool,
    connection: ConnectionView,
}

async fn revoke(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_optional_body(body).await?;
    authorize(&api, &method, &uri, &headers, body.as_deref()).await?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no connection {id:?}"),
        )
    };
    let num: i64 = id.parse().map_err(|_| not_found())?;
    let result = db(&api.store, move |s| match s.revoke_connection(num) {
        Ok(changed) => Ok(s.connection(num)?.map(|c| (changed, c))),
        Err(NwcError::UnknownConnection(_)) => Ok(None),
        Err(e) => Err(e),
    })
    .await
    .map_err(ApiError::internal)?;
    let (changed, conn) = result.ok_or_else(not_found)?;
    if changed {
        tracing::info!(id = num, "NWC connection revoked over the management API");
    }
    Ok(json_response(
        StatusCode::OK,
        &Revoked {
            id: num,
            revoked_now: changed,
            connection: ConnectionView::new(&conn, now_secs()),
        },
    ))
}

/// A body on GET/DELETE is unusual; if there is one, it must be covered by the `payload` tag.
async fn read_optional_body(body: Body) -> Result<Option<axum::body::Bytes>, ApiError> {
    let bytes = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is over {MAX_BODY_BYTES} bytes (or could not be read)"),
        )
    })?;
    Ok((!bytes.is_empty()).then_some(bytes))
}
