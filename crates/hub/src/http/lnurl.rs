//! Lightning Addresses (LUD-16) over LNURL-pay (LUD-06): `name@domain` resolves to
//! `/.well-known/lnurlp/<name>`, whose callback makes an invoice committing to the SHA-256 of
//! the metadata shown, credited to the account holding the name (the tenant's own name credits
//! no account).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use micronode_client::InvoiceDescription;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{authenticated_params, failure, json_ok, json_with, refusal, Params};
use crate::accounts;
use crate::config::HubConfig;
use crate::error::Refusal;
use crate::service::Core;

/// LNURL-pay invoices stay payable this long (seconds).
const LNURL_INVOICE_EXPIRY: u32 = 600;

/// The least amount (msat) a payer may send.
pub const MIN_SENDABLE_MSAT: u64 = 1000;

/// The metadata string of `name@domain` (the exact text whose SHA-256 the invoice commits to).
pub fn metadata(name: &str, domain: &str) -> String {
    let id = format!("{name}@{domain}");
    serde_json::to_string(&[
        ["text/plain", &format!("Pay to {id}")],
        ["text/identifier", &id],
    ])
    .unwrap_or_default()
}

fn lnurl_error(status: StatusCode, reason: &str) -> Response {
    json_with(status, json!({"status": "ERROR", "reason": reason}))
}

/// Who receives payments to `name`: `Some(Some(account))`, `Some(None)` for the tenant's own
/// name, `None` for a name nobody holds.
async fn recipient(core: &Core, name: &str) -> Result<Option<Option<i64>>, Response> {
    if !accounts::valid_address_name(name) {
        return Ok(None);
    }
    if core.config.tenant_address.as_deref() == Some(name) {
        return Ok(Some(None));
    }
    let owned = name.to_string();
    match core
        .store
        .run(move |conn, _| accounts::by_address(conn, &owned))
        .await
    {
        Ok(found) => Ok(found.map(Some)),
        Err(e) => {
            tracing::warn!(error = %e, "looking up a Lightning Address failed");
            Err(lnurl_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server error",
            ))
        }
    }
}

fn max_sendable(config: &HubConfig) -> u64 {
    config.max_invoice_sat.saturating_mul(1000)
}

/// `GET /.well-known/lnurlp/{name}`: the payRequest.
pub async fn pay_request(State(core): State<Arc<Core>>, Path(name): Path<String>) -> Response {
    let name = name.to_ascii_lowercase();
    match recipient(&core, &name).await {
        Err(r) => r,
        Ok(None) => lnurl_error(StatusCode::NOT_FOUND, "unknown Lightning Address"),
        Ok(Some(_)) => json_ok(json!({
            "tag": "payRequest",
            "callback": format!("{}/lnurlp/{name}/callback", core.config.base_url()),
            "minSendable": MIN_SENDABLE_MSAT,
            "maxSendable": max_sendable(&core.config),
            "metadata": metadata(&name, &core.config.domain),
            "commentAllowed": 0,
        })),
    }
}

/// `GET /lnurlp/{name}/callback?amount=<msat>` → `{"pr": <bolt11>, "routes": []}`.
pub async fn callback(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let name = name.to_ascii_lowercase();
    let account = match recipient(&core, &name).await {
        Err(r) => return r,
        Ok(None) => return lnurl_error(StatusCode::NOT_FOUND, "unknown Lightning Address"),
        Ok(Some(account)) => account,
    };
    let p = match Params::parse(query.as_deref(), &headers, &Bytes::new()) {
        Ok(p) => p,
        Err(r) => return lnurl_error(StatusCode::BAD_REQUEST, &r.message),
    };
    let amount = match p.amount("amount") {
        Ok(Some(a)) if (MIN_SENDABLE_MSAT..=max_sendable(&core.config)).contains(&a) => a,
        _ => {
            return lnurl_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "amount must be between {MIN_SENDABLE_MSAT} and {} msat",
                    max_sendable(&core.config)
                ),
            )
        }
    };
    let hash: [u8; 32] = Sha256::digest(metadata(&name, &core.config.domain).as_bytes()).into();
    match core
        .make_invoice(
            account,
            Some(amount),
            InvoiceDescription::Hash(hash),
            LNURL_INVOICE_EXPIRY,
        )
        .await
    {
        Ok(invoice) => json_ok(json!({"pr": invoice.bolt11, "routes": []})),
        Err(e) => {
            tracing::warn!(error = %e, "making a Lightning Address invoice failed");
            lnurl_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot make an invoice now",
            )
        }
    }
}

/// `POST /address` `{"name": "alice"}` (authenticated): claims the Lightning Address
/// `name@domain` for the caller (replacing its previous one).
pub async fn claim(
    State(core): State<Arc<Core>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (account, p) = match authenticated_params(&core, query.as_deref(), &headers, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let Some(name) = p.text("name") else {
        return refusal(&Refusal::bad_arguments("name is required"));
    };
    let reserved = core.config.tenant_address.clone();
    let claimed = name.clone();
    let result = core
        .store
        .transaction(move |tx, _| {
            accounts::claim_address(tx, account, &claimed, reserved.as_deref())
        })
        .await;
    match result {
        Ok(()) => json_ok(json!({
            "address": format!("{name}@{}", core.config.domain),
            "lnurlp": format!("{}/.well-known/lnurlp/{name}", core.config.base_url()),
        })),
        Err(e) => failure(&e),
    }
}
