//! The NWC management HTTP API: tenant-signed (NIP-98) create, list and revoke, and the
//! refusals. Needs no relay and no node: the API works on the store alone. Requests are raw
//! HTTP/1.1 over a TCP stream, so the test controls every header.

use std::path::PathBuf;
use std::sync::Arc;

use micronode_nwc::http_api::{loopback, serve_management};
use micronode_nwc::nostr_sdk::base64::engine::general_purpose::STANDARD;
use micronode_nwc::nostr_sdk::base64::Engine;
use micronode_nwc::nostr_sdk::hashes::sha256::Hash as Sha256Hash;
use micronode_nwc::nostr_sdk::hashes::Hash;
use micronode_nwc::nostr_sdk::nips::nip47::NostrWalletConnectURI;
use micronode_nwc::nostr_sdk::{
    EventBuilder, JsonUtil, Keys, Kind, PublicKey, Tag, TagKind, Timestamp,
};
use micronode_nwc::{now_secs, ConnectionStatus, NwcStore};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const RELAY: &str = "ws://127.0.0.1:7777";

/// A temporary directory (on /dev/shm when present), removed on drop.
struct Tmp(PathBuf);
impl Tmp {
    fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        Self(base.join(format!(
            "micronode-nwc-http-{tag}-{}-{n}",
            std::process::id()
        )))
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Server {
    _dir: Tmp,
    store: Arc<NwcStore>,
    host: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), micronode_nwc::NwcError>>,
}

impl Server {
    async fn start(tag: &str, tenant: Option<PublicKey>) -> Self {
        let dir = Tmp::new(tag);
        let store = Arc::new(NwcStore::open(&dir.0).expect("open store"));
        if let Some(t) = tenant {
            store.set_tenant_pubkey(&t).unwrap();
        }
        let (tx, rx) = oneshot::channel::<()>();
        let (addr, task) = serve_management(
            store.clone(),
            vec![RELAY.to_string()],
            loopback(0),
            async move {
                let _ = rx.await;
            },
        )
        .await
        .expect("serve");
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        Self {
            _dir: dir,
            store,
            host: addr.to_string(),
            stop: Some(tx),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A NIP-98 event: kind 27235 with `u`, `method` and (with a body) `payload` tags.
fn nip98(keys: &Keys, method: &str, url: &str, at: u64, payload: Option<&[u8]>) -> String {
    let mut tags = vec![
        Tag::custom(TagKind::custom("u"), [url]),
        Tag::custom(TagKind::custom("method"), [method]),
    ];
    if let Some(p) = payload {
        tags.push(Tag::custom(
            TagKind::custom("payload"),
            [Sha256Hash::hash(p).to_string()],
        ));
    }
    let event = EventBuilder::new(Kind::from(27235u16), "")
        .tags(tags)
        .custom_created_at(Timestamp::from(at))
        .sign_with_keys(keys)
        .unwrap();
    format!("Nostr {}", STANDARD.encode(event.as_json()))
}

struct Resp {
    status: u16,
    headers: String,
    body: Value,
}

/// One raw HTTP/1.1 request (`Connection: close`); the response body parsed as JSON.
async fn send(host: &str, method: &str, path: &str, auth: Option<&str>, body: &[u8]) -> Resp {
    let mut stream = TcpStream::connect(host).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    // The server may answer (413) and close before reading a large body: tolerate a reset.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON body {body:?}: {e}"))
    };
    Resp {
        status,
        headers: head.to_ascii_lowercase(),
        body,
    }
}

fn error_code(r: &Resp) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn tenant_creates_lists_and_revokes() {
    let tenant = Keys::generate();
    let srv = Server::start("crud", Some(tenant.public_key())).await;
    let path = "/v1/connections";
    let url = srv.url(path);

    // Create.
    let body = serde_json::to_vec(&json!({
        "name": "shop",
        "methods": ["make_invoice", "lookup_invoice"],
        "budget_msat": 21_000_000,
        "renewal": "daily",
        "expires_at": now_secs() + 86_400,
    }))
    .unwrap();
    let auth = nip98(&tenant, "POST", &url, now_secs(), Some(&body));
    let r = send(&srv.host, "POST", path, Some(&auth), &body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(r.headers.contains("cache-control: no-store"));
    let uri = r.body["uri"].as_str().expect("uri");
    assert!(uri.starts_with("nostr+walletconnect://"), "{uri}");
    let parsed = NostrWalletConnectURI::parse(uri).expect("valid NWC URI");
    let id = r.body["id"].as_i64().expect("id");
    let stored = srv.store.connection(id).unwrap().expect("stored");
    assert_eq!(stored.name, "shop");
    assert_eq!(parsed.public_key, stored.wallet_pubkey);
    assert_eq!(
        Keys::new(parsed.secret.clone()).public_key(),
        stored.app_pubkey
    );
    assert_eq!(stored.budget.unwrap().amount_msat, 21_000_000);
    assert_eq!(parsed.relays[0].as_str().trim_end_matches('/'), RELAY);
    let secret_hex = parsed.secret.to_secret_hex();

    // The same event again is refused (spent), even for the same URL and body.
    let r = send(&srv.host, "POST", path, Some(&auth), &body).await;
    assert_eq!((r.status, error_code(&r)), (401, "replayed"));

    // List: the connection, without any secret.
    let auth = nip98(&tenant, "GET", &url, now_secs(), None);
    let r = send(&srv.host, "GET", path, Some(&auth), b"").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let list = r.body["connections"].as_array().expect("list");
    assert_eq!(list.len(), 1);
    let c = &list[0];
    assert_eq!(c["id"].as_i64(), Some(id));
    assert_eq!(c["name"], "shop");
    assert_eq!(c["status"], "active");
    assert_eq!(c["revoked"], false);
    assert_eq!(c["budget"]["amount_msat"], 21_000_000);
    assert_eq!(c["budget"]["renewal"], "daily");
    let methods: Vec<&str> = c["methods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert!(methods.contains(&"make_invoice") && !methods.contains(&"pay_invoice"));
    let text = r.body.to_string();
    assert!(!text.contains(&secret_hex), "the list leaks the app secret");
    assert!(!text.contains("secret"), "{text}");

    // Revoke.
    let del_path = format!("{path}/{id}");
    let auth = nip98(&tenant, "DELETE", &srv.url(&del_path), now_secs(), None);
    let r = send(&srv.host, "DELETE", &del_path, Some(&auth), b"").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["revoked_now"], true);
    let stored = srv.store.connection(id).unwrap().unwrap();
    assert!(stored.revoked_at.is_some());
    assert_eq!(stored.status(now_secs()), ConnectionStatus::Revoked);

    // Unknown ids are 404 (after authorisation).
    for bad in ["9999", "abc"] {
        let p = format!("{path}/{bad}");
        let auth = nip98(&tenant, "DELETE", &srv.url(&p), now_secs(), None);
        let r = send(&srv.host, "DELETE", &p, Some(&auth), b"").await;
        assert_eq!((r.status, error_code(&r)), (404, "not_found"), "{bad}");
    }

    // Defaults: all methods, no budget.
    let body = br#"{"name":"wallet"}"#;
    let auth = nip98(&tenant, "POST", &url, now_secs(), Some(body));
    let r = send(&srv.host, "POST", path, Some(&auth), body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(r.body["connection"]["budget"].is_null());
    assert!(r.body["connection"]["methods"]
        .as_array()
        .unwrap()
        .contains(&json!("pay_invoice")));

    srv.stop().await;
}

#[tokio::test]
async fn refuses_bad_authorization() {
    let tenant = Keys::generate();
    let other = Keys::generate();
    let srv = Server::start("refuse", Some(tenant.public_key())).await;
    let path = "/v1/connections";
    let url = srv.url(path);
    let body = br#"{"name":"app"}"#;
    let now = now_secs();

    let check = |r: Resp, code: &str| {
        assert_eq!(r.status, 401, "{code}: {:?}", r.body);
        assert_eq!(error_code(&r), code, "{:?}", r.body);
        assert!(r.body["error"]["message"].as_str().is_some());
        assert!(r.headers.contains("www-authenticate: nostr"));
    };

    // Missing header.
    check(
        send(&srv.host, "POST", path, None, body).await,
        "missing_authorization",
    );
    // Garbage header.
    check(
        send(&srv.host, "GET", path, Some("Nostr !!!"), b"").await,
        "malformed_authorization",
    );
    check(
        send(&srv.host, "GET", path, Some("Bearer abc"), b"").await,
        "malformed_authorization",
    );
    // Signed by another key.
    let auth = nip98(&other, "POST", &url, now, Some(body));
    check(
        send(&srv.host, "POST", path, Some(&auth), body).await,
        "not_tenant",
    );
    // A tenant event for another URL, or another method, replayed here.
    let auth = nip98(&tenant, "GET", &srv.url("/v1/other"), now, None);
    check(
        send(&srv.host, "GET", path, Some(&auth), b"").await,
        "request_mismatch",
    );
    let auth = nip98(&tenant, "GET", &srv.url("/v1/connections/1"), now, None);
    check(
        send(&srv.host, "DELETE", "/v1/connections/1", Some(&auth), b"").await,
        "request_mismatch",
    );
    let auth = nip98(
        &tenant,
        "GET",
        "http://evil.example/v1/connections",
        now,
        None,
    );
    check(
        send(&srv.host, "GET", path, Some(&auth), b"").await,
        "request_mismatch",
    );
    // Stale: 10 minutes old.
    let auth = nip98(&tenant, "POST", &url, now - 600, Some(body));
    check(
        send(&srv.host, "POST", path, Some(&auth), body).await,
        "stale_event",
    );
    // The payload hash is for another body.
    let auth = nip98(&tenant, "POST", &url, now, Some(br#"{"name":"other"}"#));
    check(
        send(&srv.host, "POST", path, Some(&auth), body).await,
        "payload_mismatch",
    );
    // No payload tag on a POST.
    let auth = nip98(&tenant, "POST", &url, now, None);
    check(
        send(&srv.host, "POST", path, Some(&auth), body).await,
        "missing_tag",
    );
    assert!(
        srv.store.list_connections().unwrap().is_empty(),
        "a refused request created a connection"
    );

    // Authorised, but bad input: 400, no panic.
    for (bad, code) in [
        (&b"{not json"[..], "bad_json"),
        (&br#"{"name":"x","surprise":1}"#[..], "bad_json"),
        (&br#"{"name":""}"#[..], "invalid_request"),
        (
            &br#"{"name":"x","methods":["steal"]}"#[..],
            "invalid_request",
        ),
        (
            &br#"{"name":"x","methods":["multi_pay_invoice"]}"#[..],
            "invalid_request",
        ),
        (&br#"{"name":"x","renewal":"daily"}"#[..], "invalid_request"),
        (&br#"{"name":"x","expires_at":1}"#[..], "invalid_request"),
    ] {
        let auth = nip98(&tenant, "POST", &url, now_secs(), Some(bad));
        let r = send(&srv.host, "POST", path, Some(&auth), bad).await;
        assert_eq!((r.status, error_code(&r)), (400, code), "{:?}", r.body);
    }
    // Too large: 413, refused before anything else.
    let big = vec![b' '; 17 * 1024];
    let auth = nip98(&tenant, "POST", &url, now_secs(), Some(&big));
    let r = send(&srv.host, "POST", path, Some(&auth), &big).await;
    assert_eq!((r.status, error_code(&r)), (413, "body_too_large"));
    assert!(srv.store.list_connections().unwrap().is_empty());

    srv.stop().await;
}

#[tokio::test]
async fn no_tenant_is_forbidden() {
    let srv = Server::start("notenant", None).await;
    let path = "/v1/connections";
    let someone = Keys::generate();
    let auth = nip98(&someone, "GET", &srv.url(path), now_secs(), None);
    for auth in [Some(auth.as_str()), None] {
        let r = send(&srv.host, "GET", path, auth, b"").await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        assert_eq!(error_code(&r), "no_tenant");
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tenant"));
    }
    srv.stop().await;
}
