//! Shared helpers for the hub's tests: a small LndHub client written from the API (raw
//! HTTP/1.1 over TCP), and starting a hub.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use micronode_client::NodeClient;
use micronode_hub::{Hub, HubConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An HTTP answer: status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The LndHub error code, if the body is an error.
    pub fn code(&self) -> Option<u64> {
        (self.body["error"] == Value::Bool(true)).then(|| self.body["code"].as_u64().unwrap_or(0))
    }

    /// Asserts an LndHub error with `code` in an HTTP 200.
    #[track_caller]
    pub fn assert_code(&self, code: u64) {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.code(), Some(code), "{self:?}");
    }

    /// Asserts a 200 without an error.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.code(), None, "{self:?}");
        self.body
    }
}

/// One HTTP request. `body` is `(content type, text)`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the hub");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body_text = match body {
        Some((ct, text)) => {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
            text
        }
        None => String::new(),
    };
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body_text.len()));
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body_text.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "unexpected chunked answer"
    );
    let body = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()))
    };
    Answer { status, body }
}

/// A JSON POST.
pub async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: Value) -> Answer {
    request(
        addr,
        "POST",
        path,
        token,
        Some(("application/json", body.to_string())),
    )
    .await
}

/// A GET.
pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Answer {
    request(addr, "GET", path, token, None).await
}

/// A user of the hub: credentials and tokens.
#[derive(Debug, Clone)]
pub struct User {
    pub login: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

impl User {
    /// `POST /create` then `POST /auth?type=auth`.
    pub async fn create(addr: SocketAddr) -> User {
        let created = post(
            addr,
            "/create",
            None,
            serde_json::json!({"partnerid": "bluewallet", "accounttype": "common"}),
        )
        .await
        .ok();
        let login = created["login"].as_str().expect("login").to_string();
        let password = created["password"].as_str().expect("password").to_string();
        User::login(addr, login, password).await
    }

    /// `POST /auth?type=auth`.
    pub async fn login(addr: SocketAddr, login: String, password: String) -> User {
        let tokens = post(
            addr,
            "/auth?type=auth",
            None,
            serde_json::json!({"login": login, "password": password}),
        )
        .await
        .ok();
        User {
            login,
            password,
            access: tokens["access_token"].as_str().expect("access").to_string(),
            refresh: tokens["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_string(),
        }
    }

    /// `GET /balance` in sat.
    pub async fn balance(&self, addr: SocketAddr) -> u64 {
        get(addr, "/balance", Some(&self.access)).await.ok()["BTC"]["AvailableBalance"]
            .as_u64()
            .expect("AvailableBalance")
    }

    /// `POST /addinvoice`: (payment_request, r_hash).
    pub async fn add_invoice(&self, addr: SocketAddr, sat: u64, memo: &str) -> (String, String) {
        let v = post(
            addr,
            "/addinvoice",
            Some(&self.access),
            serde_json::json!({"amt": sat.to_string(), "memo": memo}),
        )
        .await
        .ok();
        assert_eq!(v["payment_request"], v["pay_req"]);
        (
            v["payment_request"].as_str().expect("pr").to_string(),
            v["r_hash"].as_str().expect("r_hash").to_string(),
        )
    }

    /// `POST /payinvoice`.
    pub async fn pay(&self, addr: SocketAddr, invoice: &str) -> Answer {
        post(
            addr,
            "/payinvoice",
            Some(&self.access),
            serde_json::json!({"invoice": invoice}),
        )
        .await
    }
}

/// Starts a hub with `config` (its `public_url` set to the bound address) on `client`.
pub async fn start_hub(mut config: HubConfig, dir: &Path, client: NodeClient) -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    config.public_url = format!("http://{addr}");
    Hub::start(config, dir, client, listener)
        .await
        .expect("start the hub")
}

/// Asserts the hub's ledger invariants.
pub async fn assert_ledger(hub: &Hub) {
    let report = hub.admin().check_ledger().await.expect("ledger check");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(hub.admin().ledger_sum().await.expect("sum"), 0);
}
