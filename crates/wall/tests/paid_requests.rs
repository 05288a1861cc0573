//! End to end on loopback: a real regtest bitcoind, two real LDK nodes with a channel (the
//! tenant, whose gRPC API makes the wall's invoices, and a payer), an upstream HTTP service,
//! and the wall in front of it. A raw HTTP client walks the L402 flow and every refusal; then
//! the stock npm client (`@getalby/lightning-tools`' `fetchWithL402`) pays through the wall.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use micronode_api::{read_cookie, CookieAuth};
use micronode_node::{PaymentDirection, PaymentStatus};
use micronode_testenv::nodes::{open_channel, Env, TestNode, TIMEOUT};
use micronode_wall::l402::{self, Grant, Identifier};
use micronode_wall::macaroon::{Caveat, Macaroon};
use micronode_wall::{NodeInvoices, RouteConfig, WallConfig, WallSecret};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

type HttpClient = Client<HttpConnector, Body>;

/// How many challenges one address may get at once in this test (then one a second).
const CHALLENGE_BURST: u32 = 40;

/// An HTTP server on 127.0.0.1:0, stopped on [`Served::stop`].
struct Served {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Served {
    async fn start(router: Router) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Served { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops in time")
            .expect("server task");
    }
}

/// The upstream: echoes what reached it as JSON, with a header of its own; `/a/teapot`
/// answers 418.
async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let echo = serde_json::json!({
        "upstream": "weather",
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "authorization": parts.headers.contains_key(AUTHORIZATION),
        "x_test": parts.headers.get("x-test").and_then(|v| v.to_str().ok()),
        "body": String::from_utf8_lossy(&body),
    });
    let status = if parts.uri.path() == "/a/teapot" {
        StatusCode::IM_A_TEAPOT
    } else {
        StatusCode::OK
    };
    (status, [("x-upstream", "yes")], echo.to_string()).into_response()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut request = axum::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::from(body.to_string())).expect("request");
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .expect("in time")
        .expect("the wall answers");
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(Body::new(body), 1 << 20)
        .await
        .expect("body");
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).expect("utf-8"),
    }
}

async fn get(client: &HttpClient, url: &str, authorization: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    send(client, Method::GET, url, &headers, "").await
}

/// The value of `key="..."` in a challenge.
fn param<'a>(challenge: &'a str, key: &str) -> &'a str {
    let start = challenge
        .find(&format!("{key}=\""))
        .unwrap_or_else(|| panic!("no {key} in {challenge}"))
        + key.len()
        + 2;
    let end = challenge[start..].find('"').expect("closing quote") + start;
    &challenge[start..end]
}

/// Asserts a 402 with the LSAT then the L402 challenge, and returns (macaroon, invoice).
fn expect_challenge(reply: &Reply) -> (String, String) {
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED, "{}", reply.body);
    let challenges: Vec<&str> = reply
        .headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(
        challenges[0].starts_with("LSAT macaroon=\""),
        "{challenges:?}"
    );
    assert!(
        challenges[1].starts_with("L402 macaroon=\""),
        "{challenges:?}"
    );
    let macaroon = param(challenges[1], "macaroon").to_string();
    let invoice = param(challenges[1], "invoice").to_string();
    assert_eq!(param(challenges[0], "macaroon"), macaroon);
    assert_eq!(param(challenges[0], "invoice"), invoice);
    (macaroon, invoice)
}

/// Has `payer` pay `invoice` and returns the preimage from its payment record.
async fn pay(payer: &TestNode, invoice: &str) -> [u8; 32] {
    let id = payer.pay_invoice(invoice, None, None).expect("pay");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(record) = payer.payment(&id) {
            match record.status {
                PaymentStatus::Succeeded => return record.preimage.expect("preimage"),
                PaymentStatus::Failed => panic!("payment failed: {:?}", record.failure_reason),
                PaymentStatus::Pending => {}
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "payment timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn settled(node: &TestNode, direction: PaymentDirection) -> Vec<u64> {
    node.list_payments()
        .into_iter()
        .filter(|p| p.direction == direction && p.status == PaymentStatus::Succeeded)
        .map(|p| p.amount_msat.unwrap_or(0))
        .collect()
}

/// Waits until `node` has settled exactly `expected` (msat, in any order) inbound.
async fn expect_received(node: &TestNode, expected: &[u64]) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let mut got = settled(node, PaymentDirection::Inbound);
        got.sort_unstable();
        let mut want = expected.to_vec();
        want.sort_unstable();
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tenant received {got:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The payer endpoint the npm client's wallet calls: pays `{"invoice"}` with the payer node
/// and answers `{"preimage"}`.
#[derive(Clone)]
struct Payer {
    node: Arc<TestNode>,
    paid: Arc<AtomicUsize>,
}

async fn pay_endpoint(State(payer): State<Payer>, body: String) -> Response {
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let Some(invoice) = request["invoice"].as_str() else {
        return (StatusCode::BAD_REQUEST, "no invoice").into_response();
    };
    payer.paid.fetch_add(1, Ordering::SeqCst);
    let preimage = pay(&payer.node, invoice).await;
    serde_json::json!({ "preimage": hex::encode(preimage) })
        .to_string()
        .into_response()
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Runs `node interop/l402-client/fetch.mjs <wall> <payer>` and returns its JSON line.
async fn run_stock_client(wall_url: &str, payer_url: &str) -> Value {
    let node = find_on_path("node")
        .expect("`node` (Node.js 18 or newer) must be on PATH for the stock L402 client test");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/l402-client");
    if !dir.join("node_modules/@getalby/lightning-tools").is_dir() {
        let npm = find_on_path("npm").expect(
            "interop/l402-client/node_modules is missing and `npm` is not on PATH to install it",
        );
        let status = tokio::process::Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .await
            .expect("run npm ci");
        assert!(
            status.success(),
            "`npm ci` in interop/l402-client failed ({status}); run it by hand to see why"
        );
    }
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(node)
            .arg("fetch.mjs")
            .args([wall_url, payer_url])
            .current_dir(&dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the stock client finishes in time")
    .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "fetch.mjs failed ({}): {stderr}{stdout}",
        output.status
    );
    let line = stdout.lines().last().expect("one line of output");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l402_flow_with_real_nodes_and_the_stock_client() {
    // Two real nodes on a real regtest chain, with a channel from the payer to the tenant.
    let env = Env::new("wall").await;
    let tenant = Arc::new(env.start_node("tenant").await);
    let payer = Arc::new(env.start_node("payer").await);
    env.fund(&payer, 1_000_000).await;
    open_channel(&env, &*payer, &*tenant, 500_000).await;

    // The tenant's gRPC API, which the wall reaches through micronode-client.
    let cookie = env.dir.0.join("tenant-api").join("api.cookie");
    let auth = CookieAuth::create(&cookie).expect("cookie");
    let (api_stop, api_stopped) = oneshot::channel::<()>();
    let (api_addr, api_task) = micronode_api::serve(
        tenant.clone(),
        "127.0.0.1:0".parse().expect("addr"),
        Arc::new(auth),
        async move {
            let _ = api_stopped.await;
        },
    )
    .await
    .expect("serve the API");
    let token = read_cookie(&cookie).expect("cookie token");
    let invoices = NodeInvoices::connect(&format!("http://{api_addr}"), &token, None)
        .await
        .expect("connect to the tenant's API");

    let upstream = Served::start(Router::new().fallback(echo)).await;

    // The wall.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let wall_addr = listener.local_addr().expect("addr");
    let route = |path_prefix: &str, price_sat, valid_secs| RouteConfig {
        path_prefix: path_prefix.into(),
        price_sat,
        valid_secs,
    };
    let config = WallConfig {
        listen: wall_addr,
        upstream: format!("http://{}", upstream.addr),
        service: "weather".into(),
        invoice_expiry_secs: Some(600),
        routes: vec![
            route("/a", 7, Some(3600)),
            route("/b", 5, None),
            route("/c", 11, Some(600)),
            route("/free", 0, None),
        ],
        challenges_per_ip_per_sec: Some(1),
        challenges_burst: Some(CHALLENGE_BURST),
    };
    let secret = WallSecret::random();
    let secret_bytes = *secret.expose();
    let (wall_stop, wall_stopped) = oneshot::channel::<()>();
    let wall_task = tokio::spawn(micronode_wall::serve(
        config,
        secret,
        Arc::new(invoices),
        listener,
        async move {
            let _ = wall_stopped.await;
        },
    ));
    let wall = format!("http://{wall_addr}");
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());

    // Free routes pass through without a challenge.
    for path in ["/free", "/free/x?y=1", "/unpriced"] {
        let reply = get(&client, &format!("{wall}{path}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        assert_eq!(reply.json()["upstream"], "weather");
    }

    // An unpaid request to a priced route: 402, LSAT then L402, and nothing reaches upstream.
    let challenge = get(&client, &format!("{wall}/a/data?x=1"), None).await;
    let (macaroon, invoice) = expect_challenge(&challenge);
    assert!(
        invoice.starts_with("lnbcrt70n1"),
        "7 sat on regtest: {invoice}"
    );
    // A Bearer token for someone else is no L402 credential: challenged too.
    expect_challenge(&get(&client, &format!("{wall}/a"), Some("Bearer xyz")).await);

    // The payer pays; the tenant receives exactly the price, once.
    let preimage = pay(&payer, &invoice).await;
    expect_received(&tenant, &[7_000]).await;
    let preimage_hex = hex::encode(preimage);
    let authorization = format!("L402 {macaroon}:{preimage_hex}");

    // Paid: through to the upstream, without the Authorization header.
    let reply = get(&client, &format!("{wall}/a/data?x=1"), Some(&authorization)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.headers.get("x-upstream").map(|v| v.as_bytes()),
        Some(&b"yes"[..])
    );
    let echo = reply.json();
    assert_eq!(echo["path"], "/a/data");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(
        echo["authorization"], false,
        "the credential is not forwarded"
    );

    // The same token again (method, headers and body forwarded; LSAT scheme, any case).
    let lsat = format!("lsat {macaroon}:{preimage_hex}");
    let reply = send(
        &client,
        Method::POST,
        &format!("{wall}/a/post"),
        &[("authorization", &lsat), ("x-test", "1")],
        "hello",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let echo = reply.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"], "hello");
    assert_eq!(echo["x_test"], "1");
    // The upstream's status comes back as it is.
    let reply = get(&client, &format!("{wall}/a/teapot"), Some(&authorization)).await;
    assert_eq!(reply.status, StatusCode::IM_A_TEAPOT);
    // No second payment for any of it.
    expect_received(&tenant, &[7_000]).await;
    assert_eq!(settled(&payer, PaymentDirection::Outbound).len(), 1);

    // Refusals: 401 with the reason.
    let refused = |reply: Reply, reason: &str| {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
        let why = reply.json()["reason"].as_str().unwrap_or("").to_string();
        assert!(why.contains(reason), "expected {reason:?} in {why:?}");
    };
    let url_a = format!("{wall}/a/data");
    refused(
        get(
            &client,
            &url_a,
            Some(&format!("L402 {macaroon}:{}", "00".repeat(32))),
        )
        .await,
        "preimage does not match",
    );
    // A tampered macaroon: one signature bit flipped, or a caveat added without re-signing.
    let original = Macaroon::from_base64(&macaroon).expect("the challenge's macaroon decodes");
    let mut flipped = original.clone();
    flipped.signature[31] ^= 0x01;
    refused(
        get(
            &client,
            &url_a,
            Some(&format!("L402 {}:{preimage_hex}", flipped.to_base64())),
        )
        .await,
        "signature",
    );
    let mut extended = original.clone();
    extended.caveats.push(Caveat {
        location: None,
        identifier: b"weather_route=/b".to_vec(),
        vid: None,
    });
    refused(
        get(
            &client,
            &url_a,
            Some(&format!("L402 {}:{preimage_hex}", extended.to_base64())),
        )
        .await,
        "signature",
    );
    // Expired: the same paid invoice, a valid signature, a past expiry.
    let payment_hash = Identifier::decode(&original.identifier)
        .expect("identifier")
        .payment_hash;
    let expired = l402::mint(
        &secret_bytes,
        payment_hash,
        &Grant {
            service: "weather".into(),
            route: "/a".into(),
            valid_until: Some(now_secs() - 10),
        },
    );
    refused(
        get(
            &client,
            &url_a,
            Some(&format!("L402 {}:{preimage_hex}", expired.to_base64())),
        )
        .await,
        "expired",
    );
    // Another service's token signed by the same secret.
    let other_service = l402::mint(
        &secret_bytes,
        payment_hash,
        &Grant {
            service: "other".into(),
            route: "/a".into(),
            valid_until: None,
        },
    );
    refused(
        get(
            &client,
            &url_a,
            Some(&format!(
                "L402 {}:{preimage_hex}",
                other_service.to_base64()
            )),
        )
        .await,
        "not for this service",
    );
    // Route A's token on route B.
    refused(
        get(&client, &format!("{wall}/b"), Some(&authorization)).await,
        "not for this route",
    );
    // Malformed credentials.
    refused(
        get(&client, &url_a, Some("L402 garbage")).await,
        "malformed",
    );
    refused(
        get(&client, &url_a, Some(&format!("L402 %%%%:{preimage_hex}"))).await,
        "base64",
    );
    refused(
        get(&client, &url_a, Some(&format!("L402 AgEE:{preimage_hex}"))).await,
        "truncated",
    );
    // Paths an upstream might normalise onto a priced route are refused outright.
    let reply = get(&client, &format!("{wall}/free/../a/data"), None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    // Still exactly one payment received.
    expect_received(&tenant, &[7_000]).await;

    // The stock npm client pays through the wall: the payer endpoint its wallet calls.
    let paid = Arc::new(AtomicUsize::new(0));
    let payer_service = Served::start(
        Router::new()
            .route("/pay", axum::routing::post(pay_endpoint))
            .with_state(Payer {
                node: payer.clone(),
                paid: paid.clone(),
            }),
    )
    .await;
    let result = run_stock_client(
        &format!("{wall}/c/report?day=1"),
        &format!("http://{}/pay", payer_service.addr),
    )
    .await;
    assert_eq!(result["status"], 200, "{result}");
    assert_eq!(result["paid"], true, "{result}");
    assert_eq!(result["amount_sat"], 11, "{result}");
    let body: Value = serde_json::from_str(result["body"].as_str().expect("body")).expect("json");
    assert_eq!(body["upstream"], "weather");
    assert_eq!(body["path"], "/c/report");
    assert_eq!(body["query"], "day=1");
    assert_eq!(body["authorization"], false);
    assert_eq!(paid.load(Ordering::SeqCst), 1, "the stock client paid once");
    expect_received(&tenant, &[7_000, 11_000]).await;

    // A flood of unpaid requests from one address: challenges (each an invoice on the node)
    // stop at the address's bucket, with 429 and no invoice.
    let mut challenged = 0;
    let mut limited = 0;
    for _ in 0..CHALLENGE_BURST + 5 {
        let reply = get(&client, &format!("{wall}/b"), None).await;
        match reply.status {
            StatusCode::PAYMENT_REQUIRED => challenged += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(reply.headers.get("www-authenticate").is_none());
                limited += 1
            }
            other => panic!("{other}: {}", reply.body),
        }
    }
    assert!(limited >= 5, "{challenged} challenged, {limited} limited");
    assert!(challenged <= CHALLENGE_BURST, "{challenged} challenged");
    expect_received(&tenant, &[7_000, 11_000]).await;

    // Clean up: servers, the wall, the API, the nodes (bitcoind and the directory go with env).
    payer_service.stop().await;
    let _ = wall_stop.send(());
    tokio::time::timeout(Duration::from_secs(10), wall_task)
        .await
        .expect("the wall stops in time")
        .expect("wall task")
        .expect("wall result");
    upstream.stop().await;
    let _ = api_stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), api_task).await;
    payer.stop().await.expect("stop payer");
    tenant.stop().await.expect("stop tenant");
}
