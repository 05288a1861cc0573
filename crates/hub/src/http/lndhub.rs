//! The LndHub routes (BlueWallet's LndHub API; docs/hub.md has the compatibility table).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use micronode_client::InvoiceDescription;
use serde_json::{json, Value};

use super::{authenticate, authenticated_params, failure, json_ok, refusal, Params};
use crate::accounts;
use crate::config::SignupMode;
use crate::error::{HubError, Refusal};
use crate::invoices::{self, InvoiceRecord};
use crate::ledger;
use crate::payments::{self, PaymentRecord, PaymentStatus};
use crate::service::{parse_invoice, Core};

type Hub = State<Arc<Core>>;

fn params(query: &Option<String>, headers: &HeaderMap, body: &Bytes) -> Result<Params, Refusal> {
    Params::parse(query.as_deref(), headers, body)
}

fn answer(result: Result<Value, HubError>) -> Response {
    match result {
        Ok(v) => json_ok(v),
        Err(e) => failure(&e),
    }
}

/// `POST /create`: a new account, `{login, password}`. Import it in a wallet as
/// `lndhub://<login>:<password>@<public url>` ([`crate::lndhub_uri`]).
pub async fn create(
    State(core): Hub,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match params(&query, &headers, &body) {
        Ok(p) => p,
        Err(r) => return refusal(&r),
    };
    let invite = match core.config.signup {
        SignupMode::Closed => {
            return refusal(&Refusal::bad_arguments(
                "account creation is closed on this hub",
            ))
        }
        SignupMode::Open => None,
        SignupMode::Invite => match p.text("invite_code").or_else(|| p.text("invite")) {
            Some(code) if !code.trim().is_empty() && code.len() <= 200 => Some(code),
            _ => {
                return refusal(&Refusal::bad_arguments(
                    "an invite code is needed to create an account",
                ))
            }
        },
    };
    answer(
        core.store
            .transaction(move |tx, _| accounts::create(tx, invite.as_deref()))
            .await
            .map(|c| json!({"login": c.login, "password": c.password})),
    )
}

/// `POST /auth`: `{login, password}` or `{refresh_token}` → `{refresh_token, access_token}`.
/// A refresh token works once.
pub async fn auth(
    State(core): Hub,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match params(&query, &headers, &body) {
        Ok(p) => p,
        Err(r) => return refusal(&r),
    };
    let (access, refresh) = (
        core.config.access_token_secs,
        core.config.refresh_token_secs,
    );
    let wants_refresh = p.text("type").as_deref() == Some("refresh_token");
    let result = match (p.text("login"), p.text("password"), p.text("refresh_token")) {
        (Some(login), Some(password), _) if !wants_refresh => {
            core.store
                .transaction(move |tx, _| {
                    let account = accounts::check_password(tx, &login, &password)?;
                    accounts::issue_tokens(tx, account, access, refresh)
                })
                .await
        }
        (_, _, Some(token)) => {
            core.store
                .transaction(move |tx, _| {
                    let account = accounts::spend_refresh_token(tx, &token)?;
                    accounts::issue_tokens(tx, account, access, refresh)
                })
                .await
        }
        _ => Err(Refusal::bad_auth().into()),
    };
    answer(
        result.map(|t| json!({"refresh_token": t.refresh_token, "access_token": t.access_token})),
    )
}

/// `POST /addinvoice` `{amt, memo}` → `{r_hash, payment_request, pay_req, add_index,
/// payment_hash}`; `r_hash` is hex (as lndhub.go answers; BlueWallet, Zeus and Alby accept it).
pub async fn add_invoice(
    State(core): Hub,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (account, p) = match authenticated_params(&core, query.as_deref(), &headers, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let amt = match p.amount("amt") {
        Ok(Some(a)) if a > 0 => a,
        Ok(_) => return refusal(&Refusal::bad_arguments("amt must be more than 0")),
        Err(r) => return refusal(&r),
    };
    if amt > core.config.max_invoice_sat {
        return refusal(&Refusal::bad_arguments(format!(
            "amt must be at most {} sat",
            core.config.max_invoice_sat
        )));
    }
    let memo = p
        .text("memo")
        .or_else(|| p.text("description"))
        .unwrap_or_default();
    if memo.len() > 639 {
        return refusal(&Refusal::bad_arguments("memo must be at most 639 bytes"));
    }
    let result = core
        .make_invoice(
            Some(account),
            Some(amt * 1000),
            InvoiceDescription::Text(memo),
            core.config.invoice_expiry_secs,
        )
        .await;
    answer(result.map(|i| {
        json!({
            "r_hash": i.payment_hash,
            "payment_hash": i.payment_hash,
            "payment_request": i.bolt11,
            "pay_req": i.bolt11,
            "add_index": i.id.to_string(),
        })
    }))
}

fn payment_json(p: &PaymentRecord) -> Value {
    let fee = p.fee_msat.unwrap_or(0);
    json!({
        "payment_error": "",
        "payment_preimage": p.preimage.clone().unwrap_or_default(),
        "payment_hash": p.payment_hash.clone().unwrap_or_default(),
        "payment_route": {
            "total_amt": (p.amount_msat + fee) / 1000,
            "total_fees": fee / 1000,
            "total_amt_msat": p.amount_msat + fee,
            "total_fees_msat": fee,
        },
    })
}

/// `POST /payinvoice` `{invoice, amount?}`: pays, internally if the invoice is this hub's.
/// Answers within `payment_wait_secs` (code 9 while the outcome is unknown).
pub async fn pay_invoice(
    State(core): Hub,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (account, p) = match authenticated_params(&core, query.as_deref(), &headers, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let Some(text) = p.text("invoice").filter(|t| t.len() <= 8192) else {
        return refusal(&Refusal::bad_arguments("invoice is required"));
    };
    let amount = match p.amount("amount") {
        Ok(a) => a,
        Err(r) => return refusal(&r),
    };
    match core.pay_invoice(account, &text, amount).await {
        Ok(paid) => {
            let mut v = payment_json(&paid);
            v["pay_req"] = json!(text.trim());
            if let Ok(invoice) = parse_invoice(&text) {
                v["decoded"] = crate::decode::decode_pay_req(&invoice);
            }
            json_ok(v)
        }
        Err(e) => failure(&e),
    }
}

/// `POST /keysend` `{destination, amount}` (sat): a spontaneous payment.
pub async fn keysend(
    State(core): Hub,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (account, p) = match authenticated_params(&core, query.as_deref(), &headers, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let Some(destination) = p.text("destination") else {
        return refusal(&Refusal::bad_arguments("destination is required"));
    };
    let amount = match p.amount("amount") {
        Ok(Some(a)) if a > 0 => a,
        Ok(_) => return refusal(&Refusal::bad_arguments("amount must be more than 0")),
        Err(r) => return refusal(&r),
    };
    answer(
        core.keysend(account, &destination, amount)
            .await
            .map(|paid| payment_json(&paid)),
    )
}

/// `GET /balance` → `{"BTC":{"AvailableBalance": <sat>}}`.
pub async fn balance(State(core): Hub, headers: HeaderMap) -> Response {
    let result = async {
        let account = authenticate(&core, &headers).await?;
        core.store
            .run(move |conn, _| ledger::balance(conn, account))
            .await
    }
    .await;
    answer(result.map(|msat| json!({"BTC": {"AvailableBalance": msat.max(0) / 1000}})))
}

fn tx_json(p: &PaymentRecord) -> Value {
    let pending = p.status == PaymentStatus::Pending;
    let fee = if pending {
        p.reserve_msat
    } else {
        p.fee_msat.unwrap_or(0)
    };
    json!({
        "type": "paid_invoice",
        "fee": fee / 1000,
        "value": (p.amount_msat + fee) / 1000,
        "fee_msat": fee,
        "value_msat": p.amount_msat + fee,
        "timestamp": p.created_at,
        "memo": if pending { "Payment in transition".to_string() } else { p.memo.clone() },
        "payment_preimage": p.preimage.clone().unwrap_or_default(),
        "payment_hash": p.payment_hash.clone().unwrap_or_default(),
        "pay_req": p.bolt11.clone().unwrap_or_default(),
        "keysend": p.kind == "keysend",
        "status": if pending { "pending" } else { "settled" },
    })
}

/// `GET /gettxs?limit&offset`: the account's payments, newest first (pending ones shown as
/// "Payment in transition", with the fee reserve held as `fee`).
pub async fn get_txs(State(core): Hub, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let p = match params(&query, &headers, &Bytes::new()) {
        Ok(p) => p,
        Err(r) => return refusal(&r),
    };
    let limit = p.amount("limit").ok().flatten().unwrap_or(1000).min(1000) as u32;
    let offset = p.amount("offset").ok().flatten().unwrap_or(0).min(1 << 30) as u32;
    let result = async {
        let account = authenticate(&core, &headers).await?;
        core.store
            .run(move |conn, _| payments::for_account(conn, account, limit.max(1), offset))
            .await
    }
    .await;
    answer(result.map(|list| Value::Array(list.iter().map(tx_json).collect())))
}

fn invoice_json(i: &InvoiceRecord) -> Value {
    let paid = i.paid_at.is_some();
    let amt_msat = i.paid_msat.or(i.amount_msat).unwrap_or(0);
    json!({
        "r_hash": i.payment_hash,
        "payment_hash": i.payment_hash,
        "payment_request": i.bolt11,
        "pay_req": i.bolt11,
        "add_index": i.id.to_string(),
        "description": i.memo,
        "description_hash": i.description_hash.clone().unwrap_or_default(),
        "ispaid": paid,
        "amt": amt_msat / 1000,
        "expire_time": i.expires_at - i.created_at,
        "timestamp": i.created_at,
        "type": "user_invoice",
        "keysend": false,
    })
}

/// `GET /getuserinvoices?limit=N`: the account's invoices, newest first.
pub async fn get_user_invoices(
    State(core): Hub,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = match params(&query, &headers, &Bytes::new()) {
        Ok(p) => p,
        Err(r) => return refusal(&r),
    };
    let limit = p
        .amount("limit")
        .ok()
        .flatten()
        .unwrap_or(1000)
        .clamp(1, 1000) as u32;
    let result = async {
        let account = authenticate(&core, &headers).await?;
        core.store
            .run(move |conn, _| invoices::for_account(conn, account, limit))
            .await
    }
    .await;
    answer(result.map(|list| Value::Array(list.iter().map(invoice_json).collect())))
}

/// `GET /getinfo`: the node's `identity_pubkey`, `alias` and a few more LND GetInfo fields.
/// Without a valid token: code 1 (BlueWallet's URL check accepts it).
pub async fn get_info(State(core): Hub, headers: HeaderMap) -> Response {
    let result = async {
        authenticate(&core, &headers).await?;
        let info = core.client.get_info().await?;
        Ok::<_, HubError>(json!({
            "identity_pubkey": info.node_id,
            "alias": info.alias,
            "num_active_channels": info.num_usable_channels,
            "num_peers": info.num_peers,
            "block_height": info.block_height,
            "block_hash": info.block_hash,
            "synced_to_chain": info.bitcoind_reachable,
            "testnet": info.network != "bitcoin",
            "chains": [{"chain": "bitcoin", "network": info.network}],
            "uris": info.listen_addr.map(|a| vec![format!("{}@{}", info.node_id, a)]).unwrap_or_default(),
            "version": concat!("micronode-hub ", env!("CARGO_PKG_VERSION")),
        }))
    }
    .await;
    answer(result)
}

/// `GET /getbtc` → `[]`: no on-chain refill address (accounts are funded over Lightning).
pub async fn get_btc(State(core): Hub, headers: HeaderMap) -> Response {
    answer(
        authenticate(&core, &headers)
            .await
            .map(|_| Value::Array(vec![])),
    )
}

/// `GET /getpending` → `[]`: no on-chain transactions.
pub async fn get_pending(State(core): Hub, headers: HeaderMap) -> Response {
    get_btc(State(core), headers).await
}

/// `GET /checkpayment/{hash}` → `{"paid": bool}`, for the caller's own invoices only.
pub async fn check_payment(
    State(core): Hub,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let account = authenticate(&core, &headers).await?;
        let hash = hash.trim().to_ascii_lowercase();
        let found = core
            .store
            .run(move |conn, _| invoices::by_hash(conn, &hash))
            .await?;
        match found {
            Some(i) if i.account_id == Some(account) => Ok(json!({"paid": i.paid_at.is_some()})),
            _ => Err(Refusal::bad_arguments("invoice not found").into()),
        }
    }
    .await;
    answer(result)
}

/// `GET /decodeinvoice?invoice=`: LND's DecodePayReq fields.
pub async fn decode_invoice(
    State(core): Hub,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authenticate(&core, &headers).await {
        return failure(&e);
    }
    let p = match params(&query, &headers, &Bytes::new()) {
        Ok(p) => p,
        Err(r) => return refusal(&r),
    };
    let Some(text) = p.text("invoice") else {
        return refusal(&Refusal::bad_arguments("invoice is required"));
    };
    match parse_invoice(&text) {
        Ok(invoice) => json_ok(crate::decode::decode_pay_req(&invoice)),
        Err(r) => refusal(&r),
    }
}
