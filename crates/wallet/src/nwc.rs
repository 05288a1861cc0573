//! Wallet connections (Nostr Wallet Connect) made from the browser: the `nwc_*` methods of the
//! tunnel, answered by whatever runs the tenant's NWC service.
//!
//! The browser makes the NWC app's key pair (its secret never reaches the node) and signs a
//! delegation with the session's app key: a `delegate_nwc` request naming that key, the budget
//! per period and an expiry (`docs/apps.md`, "Connections a browser wallet makes"). The node
//! keeps it with the connection and attaches it to every payment; the tenant's signer approves
//! a payment only within the delegation and within the session app's own budget. The node-side
//! budget set here mirrors the delegation's; the signer's is the one that counts.

use std::sync::Arc;

use micronode_nwc::nostr_sdk::{PublicKey, RelayUrl};
use micronode_nwc::{BudgetRenewal, Connection, ConnectionSpec, NwcError, NwcHandle, NwcStore};
use micronode_signer_protocol::app_request::{
    delegation_target, parse_delegation_target, Delegation,
};
use micronode_signer_protocol::{AppMethod, SignedAppRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::now_secs;
use crate::tunnel::TunnelError;

/// Lists, creates and revokes the tenant's NWC connections for the tunnel.
#[tonic::async_trait]
pub trait NwcControl: Send + Sync + 'static {
    /// Answers `nwc_list`, `nwc_create` or `nwc_revoke` for the session whose token is `token`.
    async fn call(&self, method: &str, params: Value, token: &str) -> Result<Value, TunnelError>;
}

/// The longest connection name.
pub const MAX_NAME_LEN: usize = 64;

/// The budget periods the browser offers, in seconds, and the node-side renewal of each: a
/// day, a week, 30 days, or the connection's life (0).
const PERIODS: [(u64, BudgetRenewal); 4] = [
    (86_400, BudgetRenewal::Daily),
    (604_800, BudgetRenewal::Weekly),
    (2_592_000, BudgetRenewal::Monthly),
    (0, BudgetRenewal::Never),
];

/// The tenant's NWC service as the tunnel sees it: each session lists and revokes only the
/// connections it made (those whose delegation carries its token).
#[derive(Clone)]
pub struct NwcTunnel {
    store: Arc<NwcStore>,
    relays: Vec<RelayUrl>,
}

impl NwcTunnel {
    /// The tunnel's view of a running NWC service.
    pub fn new(handle: &NwcHandle) -> NwcTunnel {
        NwcTunnel::with_store(handle.store().clone(), handle.relays().to_vec())
    }

    /// The tunnel's view of the service's store, whose connections are reached over
    /// `relays`.
    pub fn with_store(store: Arc<NwcStore>, relays: Vec<RelayUrl>) -> NwcTunnel {
        NwcTunnel { store, relays }
    }

    /// Runs a store call on the blocking pool (SQLite commits fsync).
    async fn db<T, F>(&self, f: F) -> Result<T, TunnelError>
    where
        T: Send + 'static,
        F: FnOnce(&NwcStore) -> Result<T, NwcError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| internal("the connection store stopped"))?
            .map_err(|e| match e {
                NwcError::Config(message) => TunnelError::bad_request(message),
                NwcError::UnknownConnection(_) => not_found(),
                other => internal(format!("the connection store failed: {other}")),
            })
    }

    async fn list(&self, token: &str) -> Result<Value, TunnelError> {
        let now = now_secs();
        let token = token.to_string();
        let rows = self
            .db(move |s| {
                let mut rows = Vec::new();
                for c in s.list_connections()? {
                    if !is_sessions(&c, &token) {
                        continue;
                    }
                    let used_msat = s.budget_status(c.id, now)?.map_or(0, |b| b.used_msat);
                    rows.push((c, used_msat));
                }
                Ok(rows)
            })
            .await?;
        let connections: Vec<Value> = rows
            .iter()
            .map(|(c, used_msat)| connection_json(c, *used_msat, now))
            .collect();
        Ok(json!({ "connections": connections }))
    }

    async fn create(&self, p: Create, token: &str) -> Result<Value, TunnelError> {
        let name = p.name.trim().to_string();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(TunnelError::bad_request(format!(
                "a connection's name is 1 to {MAX_NAME_LEN} bytes"
            )));
        }
        let app_pubkey = PublicKey::from_hex(&p.app_pubkey)
            .ok()
            .filter(|_| p.app_pubkey.len() == 64)
            .ok_or_else(|| {
                TunnelError::bad_request("app_pubkey is not a public key (64 hex characters)")
            })?;
        let budget_msat = p
            .budget_sat
            .checked_mul(1000)
            .filter(|m| *m > 0)
            .ok_or_else(|| TunnelError::bad_request("the budget must be at least 1 sat"))?;
        let renewal = PERIODS
            .iter()
            .find(|(secs, _)| *secs == p.period_secs)
            .map(|(_, renewal)| *renewal)
            .ok_or_else(|| {
                TunnelError::bad_request(
                    "period_secs is 86400 (a day), 604800 (a week), 2592000 (30 days) or 0 (no \
                     renewal)",
                )
            })?;
        if p.expires_at.is_some_and(|at| at <= now_secs()) {
            return Err(TunnelError::bad_request("the expiry is in the past"));
        }
        check_delegation(
            &p.delegation,
            &app_pubkey,
            budget_msat,
            p.period_secs,
            p.expires_at,
        )?;
        if self.relays.is_empty() {
            return Err(TunnelError {
                code: "NOT_RUNNING".into(),
                message: "wallet connections (NWC) have no relay on this node".into(),
            });
        }
        let mut spec = ConnectionSpec::full(name).with_budget(budget_msat, renewal);
        spec.expires_at = p.expires_at;
        let delegation = Delegation {
            token: token.to_string(),
            request: p.delegation,
        };
        let relays = self.relays.clone();
        let connection = self
            .db(move |s| {
                s.create_connection_for_app_with(&spec, &relays, app_pubkey, Some(delegation))
            })
            .await?;
        let relays: Vec<&str> = self.relays.iter().map(|r| r.as_str()).collect();
        Ok(json!({
            "id": connection.id,
            "wallet_pubkey": connection.wallet_pubkey.to_hex(),
            "relays": relays,
        }))
    }

    async fn revoke(&self, p: Revoke, token: &str) -> Result<Value, TunnelError> {
        let id = match &p.id {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| TunnelError::bad_request("id is a connection's number"))?;
        let token = token.to_string();
        self.db(move |s| match s.connection(id)? {
            Some(c) if is_sessions(&c, &token) => s.revoke_connection(id).map(|_| ()),
            // Another session's connection, or the operator's, is not this session's to see.
            _ => Err(NwcError::UnknownConnection(id.to_string())),
        })
        .await?;
        Ok(json!({}))
    }
}

#[tonic::async_trait]
impl NwcControl for NwcTunnel {
    async fn call(&self, method: &str, params: Value, token: &str) -> Result<Value, TunnelError> {
        match method {
            "nwc_list" => {
                if !(params.is_null() || params.as_object().is_some_and(|o| o.is_empty())) {
                    return Err(TunnelError::bad_request("nwc_list takes no params"));
                }
                self.list(token).await
            }
            "nwc_create" => self.create(parse(params)?, token).await,
            "nwc_revoke" => self.revoke(parse(params)?, token).await,
            other => Err(TunnelError {
                code: "UNKNOWN_METHOD".into(),
                message: format!("there is no method {other:?}"),
            }),
        }
    }
}

/// Whether the session whose token is `token` made `c`.
fn is_sessions(c: &Connection, token: &str) -> bool {
    c.delegation.as_ref().is_some_and(|d| d.token == token)
}

/// Refuses a delegation that is not for exactly this connection: a `delegate_nwc` of the
/// connection's key, period and expiry for its budget. The signer checks its signature.
fn check_delegation(
    signed: &SignedAppRequest,
    app_pubkey: &PublicKey,
    budget_msat: u64,
    period_secs: u64,
    expires_at: Option<u64>,
) -> Result<(), TunnelError> {
    let request = &signed.request;
    let refuse = |what: String| {
        TunnelError::bad_request(format!(
            "the delegation does not match the connection: {what}"
        ))
    };
    if request.method != AppMethod::DelegateNwc {
        return Err(refuse(format!(
            "it is a {} request, not delegate_nwc",
            request.method.as_str()
        )));
    }
    let expected = delegation_target(&app_pubkey.to_hex(), period_secs, expires_at);
    if request.target != expected {
        let said = parse_delegation_target(&request.target)
            .map(|t| {
                format!(
                    "it names the key {}, period {} s and expiry {}",
                    t.app_pubkey,
                    t.period_secs,
                    t.expires_at.map_or("none".into(), |at| at.to_string())
                )
            })
            .unwrap_or_else(|e| e.to_string());
        return Err(refuse(format!("{said}; the connection is {expected}")));
    }
    if request.amount_msat != budget_msat {
        return Err(refuse(format!(
            "it delegates {} msat, the connection's budget is {budget_msat} msat",
            request.amount_msat
        )));
    }
    Ok(())
}

/// A connection as `nwc_list` shows it.
fn connection_json(c: &Connection, used_msat: u64, now: u64) -> Value {
    let terms = c
        .delegation
        .as_ref()
        .and_then(|d| parse_delegation_target(&d.request.request.target).ok());
    let budget_msat = c
        .delegation
        .as_ref()
        .map(|d| d.request.request.amount_msat)
        .or(c.budget.map(|b| b.amount_msat))
        .unwrap_or(0);
    let status = serde_json::to_value(c.status(now)).unwrap_or(Value::Null);
    json!({
        "id": c.id,
        "name": c.name,
        "app_pubkey": c.app_pubkey.to_hex(),
        "budget_sat": budget_msat / 1000,
        "period_secs": terms.map_or(0, |t| t.period_secs),
        "spent_sat": used_msat / 1000,
        "expires_at": c.expires_at,
        "status": status,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    name: String,
    app_pubkey: String,
    budget_sat: u64,
    period_secs: u64,
    expires_at: Option<u64>,
    delegation: SignedAppRequest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    id: Value,
}

fn parse<T: for<'de> Deserialize<'de>>(params: Value) -> Result<T, TunnelError> {
    serde_json::from_value(params).map_err(|e| TunnelError::bad_request(format!("params: {e}")))
}

fn internal(message: impl Into<String>) -> TunnelError {
    TunnelError {
        code: "INTERNAL".into(),
        message: message.into(),
    }
}

fn not_found() -> TunnelError {
    TunnelError {
        code: "NOT_FOUND".into(),
        message: "this session made no such connection".into(),
    }
}
