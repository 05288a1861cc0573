//! Only the tenant's own apps can spend: every payment the signer approves is bound to a
//! request signed by an app the tenant authorised here, and charged to that app's budget in
//! the signer's own ledger.
//!
//! - [`root`]: the token root derived from the seed; the node gets only its public key.
//! - [`nwc`]: a Nostr Wallet Connect app's request event, read and checked.
//! - [`delegation`]: an NWC app a tenant's app (the browser wallet) delegated part of its
//!   budget to, recorded as that app's child on first use and charged to both budgets.
//! - [`store`]: the apps and every approval (nonces included), in `state/apps.sqlite`.
//! - [`AppGate::authorize`]: the checks, in order: the token chains to the root, the app is
//!   known, live and allowed the method, the client's signature is valid, the request is the
//!   payment exactly (method, hash or payee, amount), it is fresh, its nonce is new, and the
//!   budget allows it. Each refusal has its own rule (see `docs/apps.md`).

pub mod delegation;
pub mod nwc;
pub mod pairing;
pub mod root;
pub mod store;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use micronode_signer_protocol::{AppCredential, AppMethod, PaymentAuthorization, SignedAppRequest};

use self::root::AppRoot;
use self::store::{AppRecord, AppStore, Approval, Charge, Recording};
use crate::outcome::Outcome;
use crate::store::StoreError;

/// How far a request's time may be from the signer's clock, either way, in seconds.
pub const FRESHNESS_SECS: u64 = 300;

/// The file of the ledger inside the signer's state directory.
pub const APPS_FILE: &str = "apps.sqlite";

/// Refusal rules; the node maps them to the app-facing codes (`UNAUTHORIZED`,
/// `QUOTA_EXCEEDED`).
pub mod rules {
    /// The node started a payment no app asked for.
    pub const MISSING: &str = "app-request-missing";
    /// The token does not chain to the tenant's root.
    pub const TOKEN: &str = "app-token-invalid";
    /// The token's app is unknown, revoked, expired or not allowed the method.
    pub const APP: &str = "app-not-allowed";
    /// The client's signature does not verify.
    pub const SIGNATURE: &str = "app-request-signature";
    /// The request is not this payment.
    pub const MISMATCH: &str = "app-request-mismatch";
    /// The request's time is too far from now.
    pub const STALE: &str = "app-request-stale";
    /// The request was approved before.
    pub const REPLAYED: &str = "app-request-replayed";
    /// The app's budget would be exceeded.
    pub const BUDGET: &str = "app-budget-exceeded";
}

/// The payment the node asks the signer to approve, as the signer sees it.
#[derive(Clone, Debug)]
pub struct PaymentClaim {
    /// Invoice or keysend.
    pub method: AppMethod,
    /// The payment hash (hex) for an invoice, the payee's node id (hex) for a keysend.
    pub target: String,
    /// The payment hash (hex).
    pub payment_hash: String,
    /// What the payee gets, msat.
    pub amount_msat: u64,
    /// What it may cost at most (amount plus fee allowance), charged to the budget.
    pub cost_msat: u64,
    /// An on-chain send of the whole wallet (one output): a request for amount 0 ("send
    /// everything") matches it.
    pub sends_everything: bool,
}

/// What an app with the node rights `rights` may ask the signer for: Lightning payments with
/// `pay` or `admin` (or no rights at all: an NWC app, whose token-less connection pays), and
/// on-chain sends with `admin` (the node's `SendOnchain` needs it too). A read-only app's
/// signed request is refused even if the node let it through.
pub fn methods_for(rights: &[String]) -> Vec<AppMethod> {
    let has = |right: &str| rights.iter().any(|r| r == right);
    let mut methods = Vec::new();
    if rights.is_empty() || has("pay") || has("admin") {
        methods.extend([AppMethod::PayInvoice, AppMethod::Keysend]);
    }
    if has("admin") {
        methods.push(AppMethod::SendOnchain);
    }
    methods
}

/// What an identified app asked for.
struct Asked {
    app: AppRecord,
    /// The app that delegated to `app` (an NWC app a browser wallet made), charged too.
    parent: Option<AppRecord>,
    method: AppMethod,
    target: String,
    amount_msat: u64,
    /// The request's nonce, or the NWC event's id.
    nonce: String,
    time: u64,
}

/// An approval recorded for an app, to take back if the payment is refused afterwards.
#[derive(Clone, Debug)]
pub struct Recorded {
    app_id: String,
    /// The delegating app, charged the same approval.
    parent_id: Option<String>,
    nonce: String,
}

/// A new app: its record and its credential (shown once; the signer keeps only the public key).
pub struct NewApp {
    /// What the ledger keeps.
    pub record: AppRecord,
    /// What the app holds.
    pub credential: AppCredential,
}

/// The tenant's apps and their checks.
pub struct AppGate {
    root: AppRoot,
    store: AppStore,
    tenant: String,
}

/// Seconds since the Unix epoch by the signer's clock.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl AppGate {
    /// The gate of the tenant whose signer seed is `seed` and node id `tenant`, with its ledger
    /// in `state_dir`.
    pub fn open(state_dir: &Path, seed: &[u8; 32], tenant: &str) -> Result<AppGate, StoreError> {
        let store = AppStore::open(&state_dir.join(APPS_FILE))?;
        if store.meta(store::META_TENANT)?.as_deref() != Some(tenant) {
            store.set_meta(store::META_TENANT, tenant)?;
        }
        Ok(AppGate {
            root: AppRoot::from_seed(seed),
            store,
            tenant: tenant.to_string(),
        })
    }

    /// The gate for the tenant's commands while the signer may be running (baking a token):
    /// the tenant's node id comes from the ledger, where the signer wrote it when it first
    /// started. `Ok(None)` if it never started.
    pub fn open_beside_signer(
        state_dir: &Path,
        seed: &[u8; 32],
    ) -> Result<Option<AppGate>, StoreError> {
        let store = AppStore::open(&state_dir.join(APPS_FILE))?;
        let Some(tenant) = store.meta(store::META_TENANT)? else {
            return Ok(None);
        };
        Ok(Some(AppGate {
            root: AppRoot::from_seed(seed),
            store,
            tenant,
        }))
    }

    /// The tenant's node id.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The token root's public key, for the node.
    pub fn root_public_key(&self) -> String {
        self.root.public_key()
    }

    /// The ledger.
    pub fn store(&self) -> &AppStore {
        &self.store
    }

    /// Authorises a new app: makes its client key, records it and bakes its token with
    /// `rights` (the node's method groups; none for an NWC app, which needs no token).
    /// `budget_msat` per `period_secs` (0: its life). What it may ask the signer for follows
    /// from its rights ([`methods_for`]).
    pub fn add_app(
        &self,
        name: &str,
        rights: &[String],
        budget_msat: u64,
        period_secs: u64,
        expires_at: Option<u64>,
    ) -> Result<NewApp, String> {
        if name.is_empty() || name.len() > 64 {
            return Err("an app's name is 1 to 64 bytes".into());
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        let credential_key = micronode_signer_protocol::app_request::new_client_key();
        let public = credential_key.x_only_public_key().0.to_string();
        let token = self.root.bake(&self.tenant, &id, rights, &public)?;
        let methods = methods_for(rights)
            .into_iter()
            .map(|m| m.as_str().to_string())
            .collect();
        let record = AppRecord {
            id,
            name: name.to_string(),
            client_key: public,
            methods,
            budget_msat,
            period_secs,
            expires_at,
            created_at: now(),
            revoked_at: None,
            parent_id: None,
        };
        self.store.add(&record).map_err(|e| e.to_string())?;
        Ok(NewApp {
            record,
            credential: AppCredential {
                token,
                client_key: credential_key,
            },
        })
    }

    /// Checks that an app of the tenant asked for `claim` and records the approval against its
    /// budget. `None` when no app request came with it and `required` is off.
    pub fn authorize(
        &self,
        authorization: Option<&PaymentAuthorization>,
        claim: &PaymentClaim,
        required: bool,
    ) -> Result<Option<Recorded>, Outcome> {
        let Some(authorization) = authorization else {
            if required {
                return Err(Outcome::refused(
                    rules::MISSING,
                    "no app of the tenant asked for this payment (the node started it on its own)",
                ));
            }
            return Ok(None);
        };
        let asked = self.identify(authorization)?;
        let app = asked.app;
        let now = now();
        live(&app, claim.method, now).map_err(|why| Outcome::refused(rules::APP, why))?;
        if let Some(parent) = &asked.parent {
            live(parent, claim.method, now).map_err(|why| {
                Outcome::refused(
                    rules::APP,
                    format!(
                        "{why}; it delegated to {}, which asks for this payment",
                        app.name
                    ),
                )
            })?;
        }
        let amount_matches = asked.amount_msat == claim.amount_msat
            || (asked.amount_msat == 0 && claim.sends_everything);
        if asked.method != claim.method
            || !asked.target.eq_ignore_ascii_case(&claim.target)
            || !amount_matches
        {
            return Err(Outcome::refused(
                rules::MISMATCH,
                format!(
                    "the app asked to {} {} msat to {}; the node asks to {} {} msat to {}",
                    asked.method.as_str(),
                    asked.amount_msat,
                    asked.target,
                    claim.method.as_str(),
                    claim.amount_msat,
                    claim.target
                ),
            ));
        }
        if asked.time.abs_diff(now) > FRESHNESS_SECS {
            return Err(Outcome::refused(
                rules::STALE,
                format!(
                    "the request was made at {}, {} s from now (at most {FRESHNESS_SECS} s)",
                    asked.time,
                    asked.time.abs_diff(now)
                ),
            ));
        }
        let approval_for = |app: &AppRecord| Approval {
            app_id: app.id.clone(),
            nonce: asked.nonce.clone(),
            time: now,
            method: claim.method.as_str().to_string(),
            target: claim.target.clone(),
            payment_hash: claim.payment_hash.clone(),
            amount_msat: claim.amount_msat,
            cost_msat: claim.cost_msat,
        };
        // The app, then the app that delegated to it: both budgets must allow the cost.
        let chain: Vec<&AppRecord> = std::iter::once(&app).chain(&asked.parent).collect();
        let approvals: Vec<Approval> = chain.iter().map(|a| approval_for(a)).collect();
        let charges: Vec<Charge<'_>> = chain
            .iter()
            .zip(&approvals)
            .map(|(app, approval)| Charge {
                approval,
                since: match app.period_secs {
                    0 => 0,
                    period => now.saturating_sub(period),
                },
                budget_msat: app.budget_msat,
            })
            .collect();
        let recording = self
            .store
            .record_chain(&charges)
            .map_err(|e| Outcome::bad(e.to_string()))?;
        match recording {
            Recording::Recorded => Ok(Some(Recorded {
                app_id: app.id.clone(),
                parent_id: asked.parent.map(|p| p.id),
                nonce: asked.nonce,
            })),
            Recording::Replayed(_) => Err(Outcome::refused(
                rules::REPLAYED,
                "this request was approved before; an app signs each payment once",
            )),
            Recording::OverBudget { app_id, spent_msat } => {
                let over = chain
                    .iter()
                    .copied()
                    .find(|a| a.id == app_id)
                    .unwrap_or(&app);
                let through = if over.id == app.id {
                    String::new()
                } else {
                    format!(
                        " (it delegated to {}, which asks for this payment)",
                        app.name
                    )
                };
                Err(Outcome::refused(
                    rules::BUDGET,
                    format!(
                        "the app {} spent {spent_msat} msat of its {} msat{through}; \
                         this payment may cost {} msat",
                        over.name, over.budget_msat, claim.cost_msat
                    ),
                ))
            }
        }
    }

    /// Which app made the request, and what it asked, once its credential and signature are
    /// checked. An NWC app unknown here that comes with a browser wallet's delegation is
    /// recorded, on first use, as the child of the delegating app ([`delegation`]).
    fn identify(&self, authorization: &PaymentAuthorization) -> Result<Asked, Outcome> {
        match authorization {
            PaymentAuthorization::Client { token, request } => {
                let app = self.verify_signed(token, request)?;
                let parent = self.parent_of(&app)?;
                let asked = &request.request;
                Ok(Asked {
                    app,
                    parent,
                    method: asked.method,
                    target: asked.target.clone(),
                    amount_msat: asked.amount_msat,
                    nonce: asked.nonce.clone(),
                    time: asked.time,
                })
            }
            PaymentAuthorization::Nwc {
                event,
                service_key,
                delegation,
            } => {
                let request = nwc::read_request(event, service_key)
                    .map_err(|e| Outcome::refused(rules::SIGNATURE, e))?;
                let known = self
                    .store
                    .app_by_key(&request.app_key)
                    .map_err(|e| Outcome::bad(e.to_string()))?;
                let (app, parent) = match (known, delegation) {
                    (Some(app), _) => {
                        let parent = self.parent_of(&app)?;
                        (app, parent)
                    }
                    (None, Some(delegation)) => {
                        let (child, parent) = self.delegated(delegation, &request.app_key)?;
                        (child, Some(parent))
                    }
                    (None, None) => {
                        return Err(Outcome::refused(rules::APP, "the request's app is unknown"))
                    }
                };
                Ok(Asked {
                    app,
                    parent,
                    method: request.method,
                    target: request.target,
                    amount_msat: request.amount_msat,
                    nonce: request.event_id,
                    time: request.created_at,
                })
            }
        }
    }

    /// The app whose `token` (chaining to the root, naming the app and its client key) and
    /// signature over `request` are valid, with a 16-byte hex nonce. Freshness, the method and
    /// the budget are the caller's to check.
    fn verify_signed(&self, token: &str, request: &SignedAppRequest) -> Result<AppRecord, Outcome> {
        let claims = self
            .root
            .verify(token)
            .map_err(|e| Outcome::refused(rules::TOKEN, e))?;
        let app = self
            .store
            .app(&claims.app_id)
            .map_err(|e| Outcome::bad(e.to_string()))?
            .ok_or_else(|| Outcome::refused(rules::APP, "the request's app is unknown"))?;
        if app.client_key != claims.client_key {
            return Err(Outcome::refused(
                rules::APP,
                "the token's key is not its app's",
            ));
        }
        request
            .verify(&app.client_key)
            .map_err(|e| Outcome::refused(rules::SIGNATURE, e))?;
        let nonce = &request.request.nonce;
        if nonce.len() != 32 || hex::decode(nonce).is_err() {
            return Err(Outcome::refused(
                rules::SIGNATURE,
                "the nonce is not 16 bytes of hex",
            ));
        }
        Ok(app)
    }

    /// Takes back an approval whose payment was then refused by another rule (from the
    /// delegating app's budget too).
    pub fn forget(&self, recorded: &Recorded) {
        for app_id in std::iter::once(&recorded.app_id).chain(&recorded.parent_id) {
            if let Err(e) = self.store.forget(app_id, &recorded.nonce) {
                tracing::warn!(error = %e, "cannot take back an app approval; its budget stays charged");
            }
        }
    }
}

/// Why `app` may not ask for `method` at `now`, if it may not: revoked, expired, or not
/// allowed the method.
fn live(app: &AppRecord, method: AppMethod, now: u64) -> Result<(), String> {
    if let Some(at) = app.revoked_at {
        return Err(format!("the app {} was revoked at {at}", app.name));
    }
    if app.expires_at.is_some_and(|t| now >= t) {
        return Err(format!("the app {} has expired", app.name));
    }
    if !app.methods.iter().any(|m| m == method.as_str()) {
        return Err(format!("the app {} may not {}", app.name, method.as_str()));
    }
    Ok(())
}
