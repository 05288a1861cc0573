//! The HTTP API: the LndHub routes ([`lndhub`]) and the Lightning Address routes
//! ([`lnurl`]), request parsing (JSON or form bodies, query strings) and the LndHub error body.
//!
//! Every LndHub error is an HTTP 200 with `{"error":true,"code":N,"message":...}`: BlueWallet
//! and Alby re-authenticate on code 1 only when it comes in a 2xx answer.

pub mod lndhub;
pub mod lnurl;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use micronode_edge::{PerIpLimiter, RateLimit};
use serde_json::{json, Value};

use crate::error::{HubError, Refusal};
use crate::service::Core;

/// The largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// The hub's router over `core`. Serve it with connection info
/// (`into_make_service_with_connect_info::<SocketAddr>()`): the calls anyone may make are
/// limited per remote address.
pub fn router(core: Arc<Core>) -> Router {
    let limiter = Arc::new(PerIpLimiter::new(RateLimit {
        per_second: core.config.open_calls_per_ip_per_sec,
        burst: core.config.open_calls_burst,
    }));
    // Sign-up, login and LNURL need no account: each makes a row or an invoice for whoever
    // asks, so each address gets a bucket.
    let open = Router::new()
        .route("/create", post(lndhub::create))
        .route("/auth", post(lndhub::auth))
        .route("/.well-known/lnurlp/{name}", get(lnurl::pay_request))
        .route("/lnurlp/{name}/callback", get(lnurl::callback))
        .route_layer(middleware::from_fn_with_state(limiter, limit_per_address));
    Router::new()
        .merge(open)
        .route("/addinvoice", post(lndhub::add_invoice))
        .route("/payinvoice", post(lndhub::pay_invoice))
        .route("/keysend", post(lndhub::keysend))
        .route("/balance", get(lndhub::balance))
        .route("/gettxs", get(lndhub::get_txs))
        .route("/getuserinvoices", get(lndhub::get_user_invoices))
        .route("/getinfo", get(lndhub::get_info))
        .route("/getbtc", get(lndhub::get_btc))
        .route("/getpending", get(lndhub::get_pending))
        .route("/checkpayment/{hash}", get(lndhub::check_payment))
        .route("/decodeinvoice", get(lndhub::decode_invoice))
        .route("/address", post(lnurl::claim))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(core)
}

/// Refuses a call from an address over its rate with 429 and a body both LndHub clients
/// (`error`, `code`) and LNURL wallets (`status`, `reason`) read. Without connection info (a
/// router served without it) nothing is limited.
async fn limit_per_address(
    State(limiter): State<Arc<PerIpLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if peer.is_some_and(|ip| !limiter.admit(ip)) {
        return json_with(
            StatusCode::TOO_MANY_REQUESTS,
            json!({
                "error": true,
                "code": 6,
                "message": "too many requests from this address; try again shortly",
                "status": "ERROR",
                "reason": "too many requests from this address; try again shortly",
            }),
        );
    }
    next.run(request).await
}

/// A JSON answer with status 200.
pub fn json_ok(value: Value) -> Response {
    json_with(StatusCode::OK, value)
}

/// A JSON answer with `status`.
pub fn json_with(status: StatusCode, value: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The LndHub error body (HTTP 200).
pub fn refusal(r: &Refusal) -> Response {
    json_ok(json!({"error": true, "code": r.code as u8, "message": r.message}))
}

/// The answer for a failed operation: its refusal, or a logged server error.
pub fn failure(e: &HubError) -> Response {
    if !matches!(e, HubError::Refused(_)) {
        tracing::warn!(error = %e, source = ?std::error::Error::source(e), "request failed");
    }
    refusal(&e.to_refusal())
}

/// Request parameters: the query string's, overlaid by the body's (JSON object or form).
#[derive(Debug, Default)]
pub struct Params(HashMap<String, Value>);

impl Params {
    /// Parses the query string and body.
    pub fn parse(
        query: Option<&str>,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Params, Refusal> {
        let mut map = HashMap::new();
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                map.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let trimmed = body.trim_ascii();
        if trimmed.is_empty() {
            return Ok(Params(map));
        }
        let is_form = content_type.starts_with("application/x-www-form-urlencoded")
            || (!content_type.contains("json") && trimmed.first() != Some(&b'{'));
        if is_form {
            for (k, v) in form_urlencoded::parse(trimmed) {
                map.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        } else {
            match serde_json::from_slice::<Value>(trimmed) {
                Ok(Value::Object(object)) => map.extend(object),
                _ => return Err(Refusal::bad_arguments("the body is not a JSON object")),
            }
        }
        Ok(Params(map))
    }

    /// A parameter as text (numbers are turned into text).
    pub fn text(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A non-negative whole amount given as a number or a string; `None` when absent or empty.
    pub fn amount(&self, name: &str) -> Result<Option<u64>, Refusal> {
        let bad = || Refusal::bad_arguments(format!("{name} must be a whole number of sat"));
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(v), _) => Ok(Some(v)),
                (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < 2.1e15 => Ok(Some(f as u64)),
                _ => Err(bad()),
            },
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse::<u64>().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }
}

/// The bearer token of a request (`Authorization: Bearer <token>`, or the bare token).
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or(value)
        .trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// The account behind a request's access token.
pub async fn authenticate(core: &Core, headers: &HeaderMap) -> Result<i64, HubError> {
    let token = bearer(headers).ok_or_else(Refusal::bad_auth)?;
    if token.len() > 200 {
        return Err(Refusal::bad_auth().into());
    }
    core.store
        .run(move |conn, _| crate::accounts::authenticate(conn, &token))
        .await
}

/// The caller's account and the request's parameters, or the answer refusing the request
/// (code 1 for bad auth, 8 for unreadable parameters).
pub async fn authenticated_params(
    core: &Core,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(i64, Params), Response> {
    let account = authenticate(core, headers).await.map_err(|e| failure(&e))?;
    let params = Params::parse(query, headers, body).map_err(|r| refusal(&r))?;
    Ok((account, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(ct: &str, body: &str) -> Params {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, ct.parse().expect("header"));
        Params::parse(
            Some("type=auth&amt=7"),
            &headers,
            &Bytes::from(body.to_string()),
        )
        .expect("params")
    }

    #[test]
    fn json_form_and_query_amounts() {
        let p = parse("application/json", r#"{"amt": "12", "memo": "x"}"#);
        assert_eq!(p.amount("amt").expect("amt"), Some(12));
        assert_eq!(p.text("type").as_deref(), Some("auth"));
        let p = parse("application/json", r#"{"amt": 13}"#);
        assert_eq!(p.amount("amt").expect("amt"), Some(13));
        let p = parse("application/x-www-form-urlencoded", "amt=14&memo=a+b");
        assert_eq!(p.amount("amt").expect("amt"), Some(14));
        assert_eq!(p.text("memo").as_deref(), Some("a b"));
        let p = parse("application/json", r#"{"amt": -1}"#);
        assert!(p.amount("amt").is_err());
        let p = parse("application/json", r#"{"amt": 1.5}"#);
        assert!(p.amount("amt").is_err());
        let p = parse("application/json", r#"{"amt": "abc"}"#);
        assert!(p.amount("amt").is_err());
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().expect("h"));
        assert!(Params::parse(None, &headers, &Bytes::from_static(b"[1]")).is_err());
    }

    #[test]
    fn bearer_forms() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().expect("h"));
        assert_eq!(bearer(&headers).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, "abc".parse().expect("h"));
        assert_eq!(bearer(&headers).as_deref(), Some("abc"));
    }
}
