//! The reverse proxy: free routes straight through, priced routes challenged with a 402 or let
//! through with a valid token, everything forwarded to the upstream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use micronode_edge::PerIpLimiter;

use crate::config::{RouteConfig, WallConfig, WallSecret};
use crate::invoices::InvoiceSource;
use crate::l402::{self, Grant, Refusal};
use crate::WallError;

/// Headers that belong to one connection and are not forwarded (RFC 9110, section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The upstream service: scheme and authority, and a base path requests are appended to.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    authority: Authority,
    base_path: String,
}

impl Upstream {
    /// Parses `http://host:port[/base]`.
    pub(crate) fn parse(url: &str) -> Result<Upstream, WallError> {
        let invalid = |why: &str| WallError::InvalidConfig(format!("upstream {url:?}: {why}"));
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(invalid(
                "must be http:// (the wall speaks plain HTTP upstream)",
            ));
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        if uri.query().is_some() {
            return Err(invalid("must not have a query"));
        }
        Ok(Upstream {
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    fn uri_for(&self, path_and_query: &str) -> Option<Uri> {
        let pq: PathAndQuery = format!("{}{path_and_query}", self.base_path).parse().ok()?;
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .ok()
    }
}

/// The wall's state: configuration, secret, invoice source and the upstream client.
pub struct Wall {
    config: WallConfig,
    secret: WallSecret,
    invoices: Arc<dyn InvoiceSource>,
    upstream: Upstream,
    client: Client<HttpConnector, Body>,
    challenges: PerIpLimiter,
}

impl std::fmt::Debug for Wall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wall")
            .field("service", &self.config.service)
            .field("upstream", &self.config.upstream)
            .finish_non_exhaustive()
    }
}

impl Wall {
    /// A wall for `config` (validated here), minting and checking tokens with `secret` and
    /// charging with invoices from `invoices`.
    pub fn new(
        config: WallConfig,
        secret: WallSecret,
        invoices: Arc<dyn InvoiceSource>,
    ) -> Result<Wall, WallError> {
        config.validate()?;
        let upstream = Upstream::parse(&config.upstream)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let challenges = PerIpLimiter::new(config.challenge_limit());
        Ok(Wall {
            config,
            secret,
            invoices,
            upstream,
            client,
            challenges,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WallConfig {
        &self.config
    }

    /// The axum router serving every path through the wall. Serve it with connection info
    /// (`into_make_service_with_connect_info::<SocketAddr>()`) so challenges are limited per
    /// remote address; without it they are not.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn json_error(status: StatusCode, error: &str, reason: &str) -> Response {
    let body = serde_json::json!({ "error": error, "reason": reason }).to_string();
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// Whether a path is safe to match against prefixes: no `.` or `..` segments and no empty
/// segments (also percent-encoded), no encoded `/` or `\`. An upstream that normalises such
/// paths could otherwise be reached at a priced route through a free-looking path.
fn path_is_plain(path: &str) -> bool {
    if !path.starts_with('/') {
        return false;
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    segments.iter().enumerate().all(|(i, segment)| {
        if segment.is_empty() {
            // Only a trailing slash (or the root) leaves an empty segment.
            return i == last;
        }
        let lower = segment.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") || segment.contains('\\') {
            return false;
        }
        let decoded = lower.replace("%2e", ".");
        decoded != "." && decoded != ".."
    })
}

async fn handle(State(wall): State<Arc<Wall>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    if !path_is_plain(&path) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad request",
            "the path has empty, '.' or '..' segments or an encoded separator",
        );
    }
    let route = match wall.config.route_for(&path) {
        Some(route) if route.price_sat > 0 => route.clone(),
        _ => return forward(&wall, request).await,
    };
    let credential = l402::parse_authorization(
        request
            .headers()
            .get_all(AUTHORIZATION)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    let refusal = match credential {
        Ok(None) => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip());
            if peer.is_some_and(|ip| !wall.challenges.admit(ip)) {
                return json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests",
                    "too many challenges for this address; try again shortly",
                );
            }
            return challenge(&wall, &route).await;
        }
        Ok(Some(credential)) => l402::verify(
            wall.secret.expose(),
            &credential,
            &wall.config.service,
            &route.path_prefix,
            &path,
            now_secs(),
        )
        .err(),
        Err(e) => Some(Refusal::Malformed(e)),
    };
    match refusal {
        None => forward(&wall, request).await,
        Some(refusal) => {
            tracing::debug!(path = %path, reason = %refusal, "L402 token refused");
            json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                &refusal.to_string(),
            )
        }
    }
}

/// Answers 402 with a fresh invoice and a token bound to it.
async fn challenge(wall: &Wall, route: &RouteConfig) -> Response {
    let description = format!("{} {}", wall.config.service, route.path_prefix);
    let amount_msat = route.price_sat.saturating_mul(1000);
    let invoice = match wall
        .invoices
        .create_invoice(amount_msat, description, wall.config.invoice_expiry())
        .await
    {
        Ok(invoice) => invoice,
        Err(e) => {
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "cannot make a challenge invoice");
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable",
                "cannot make an invoice right now",
            );
        }
    };
    let grant = Grant {
        service: wall.config.service.clone(),
        route: route.path_prefix.clone(),
        valid_until: route.valid_secs.map(|secs| now_secs().saturating_add(secs)),
    };
    let macaroon = l402::mint(wall.secret.expose(), invoice.payment_hash, &grant);
    let mut response = json_error(
        StatusCode::PAYMENT_REQUIRED,
        "payment required",
        &format!(
            "pay the invoice ({} sat) and send Authorization: L402 <macaroon>:<preimage>",
            route.price_sat
        ),
    );
    for value in l402::challenge_headers(&macaroon, &invoice.bolt11) {
        match HeaderValue::from_str(&value) {
            Ok(value) => {
                response.headers_mut().append(WWW_AUTHENTICATE, value);
            }
            Err(_) => {
                return json_error(
                    StatusCode::BAD_GATEWAY,
                    "bad gateway",
                    "the node's invoice cannot be sent in a header",
                )
            }
        }
    }
    response
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Sends the request upstream without its `Authorization` and hop-by-hop headers, and
/// returns the upstream's answer.
async fn forward(wall: &Wall, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(PathAndQuery::as_str)
        .unwrap_or("/");
    let Some(uri) = wall.upstream.uri_for(path_and_query) else {
        return json_error(StatusCode::BAD_REQUEST, "bad request", "unusable path");
    };
    parts.uri = uri;
    parts.headers.remove(AUTHORIZATION);
    // The client sets Host from the upstream's URI.
    parts.headers.remove(HOST);
    strip_hop_by_hop(&mut parts.headers);
    parts.version = axum::http::Version::HTTP_11;
    let upstream = axum::http::Request::from_parts(parts, body);
    match wall.client.request(upstream).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => {
            tracing::warn!(error = %e, "upstream request failed");
            json_error(
                StatusCode::BAD_GATEWAY,
                "bad gateway",
                "the upstream service did not answer",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths() {
        for ok in ["/", "/a", "/a/", "/a/b", "/a.b/c..d"] {
            assert!(path_is_plain(ok), "{ok}");
        }
        for bad in [
            "",
            "//a",
            "/a//b",
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/%2e%2E/b",
            "/a%2fb",
            "/a\\b",
        ] {
            assert!(!path_is_plain(bad), "{bad}");
        }
    }

    #[test]
    fn upstream_urls() {
        let u = Upstream::parse("http://127.0.0.1:8080/base/").unwrap();
        assert_eq!(
            u.uri_for("/x?y=1").unwrap().to_string(),
            "http://127.0.0.1:8080/base/x?y=1"
        );
        let u = Upstream::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            u.uri_for("/x").unwrap().to_string(),
            "http://127.0.0.1:8080/x"
        );
        assert!(Upstream::parse("https://example.com").is_err());
        assert!(Upstream::parse("example.com").is_err());
        assert!(Upstream::parse("http://h/?q").is_err());
    }
}
