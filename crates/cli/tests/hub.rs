//! `micronode hub` and `micronode wall` as processes on a real tenant: a watch-only node whose
//! signer keeps the default policy (only the tenant's apps may spend), a peer, and the hub
//! paying with an app credential the tenant's signer baked.
//!
//! - The hub pays within the budget the tenant's signer keeps for it, and a payment over it is
//!   refused to the user with code 10 and words that say why, the held amount refunded to the
//!   sat.
//! - `kill -9` of the hub during a burst of external payments: once it is back and the payments
//!   are resolved, the user's balance is exactly what it had less what the peer received, each
//!   invoice is paid at most once, and the ledger balances (`micronode hub check`).
//! - `micronode wall` answers a priced route with both L402 challenges, its invoice made by
//!   the tenant's node.

mod daemon;
#[path = "../../hub/tests/common/mod.rs"]
mod lndhub;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use daemon::signer::{self, SignerProcess};
use daemon::tenant::*;
use daemon::{forward_lines, next_event, run_micronode as micronode};
use lndhub::User;
use micronode_node::PaymentDirection;
use micronode_node::PaymentStatus;
use micronode_testenv::nodes::{TestNode, TIMEOUT};
use micronode_testenv::wait_until;

/// The hub's budget at the tenant's signer, in sat.
const HUB_BUDGET_SAT: u64 = 60_000;

/// An app credential baked by the tenant's signer, `budget_sat` a day.
fn bake(signer_dir: &Path, name: &str, budget_sat: u64, rights: &str) -> String {
    let budget = budget_sat.to_string();
    let (ok, out, err) = signer::run_once(
        signer_dir,
        &[
            "token",
            "bake",
            "--name",
            name,
            "--budget-sat",
            &budget,
            "--rights",
            rights,
        ],
    );
    assert!(ok, "bake {name}: {err}");
    out.trim().to_string()
}

/// Writes a secret for a child process to read, owner-only.
fn secret_file(path: &Path, secret: &str) {
    micronode_files::write_private(path, secret.as_bytes()).expect("write the secret file");
}

/// A `micronode hub run` or `micronode wall` child, killed when dropped.
struct Service {
    child: Child,
    addr: SocketAddr,
}

impl Service {
    /// Spawns `micronode <args>` and waits for its `ready_event` line.
    fn start(args: &[String], ready_event: &str, log: &Path) -> Service {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_micronode"))
            .args(args)
            .env("MICRONODE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn micronode");
        let lines = forward_lines(child.stdout.take().expect("stdout"));
        let ready = next_event(&lines, ready_event);
        let addr = ready["listen"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("the ready line names its address");
        Service { child, addr }
    }

    /// SIGKILL: no chance to finish anything.
    fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `micronode hub run` on `dir` for the node at `api` with the credential in `credential`.
fn start_hub(dir: &Path, api: &str, credential: &Path) -> Service {
    let args: Vec<String> = [
        "hub",
        "run",
        "--data-dir",
        &dir.display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--signup",
        "open",
        "--node",
        &format!("http://{api}"),
        "--credential-file",
        &credential.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    Service::start(&args, "hub_ready", &dir.with_extension("log"))
}

/// `micronode hub check`'s report; panics if the ledger does not balance.
fn hub_check(dir: &Path) -> serde_json::Value {
    let (ok, out, err) = micronode(
        &["hub", "check", "--data-dir", &dir.display().to_string()],
        None,
    );
    assert!(ok, "the hub's ledger does not balance: {out} {err}");
    serde_json::from_str(&out).expect("the report is JSON")
}

/// What `node` received for the invoice with `hash` (msat), once settled.
fn received_msat(node: &TestNode, hash: &str) -> Option<u64> {
    let hash = micronode_node::pay::parse_hash(hash).expect("hash");
    node.payment_in(PaymentDirection::Inbound, &hash)
        .filter(|p| p.status == PaymentStatus::Succeeded)
        .and_then(|p| p.amount_msat)
}

/// The payment hash of a BOLT11 invoice, hex.
fn hash_of(invoice: &str) -> String {
    micronode_client::invoice_terms(invoice, Some(1))
        .expect("invoice")
        .0
}

/// `POST /payinvoice` whose answer may never come (the hub is killed meanwhile).
async fn pay_and_ignore_the_answer(addr: SocketAddr, token: String, invoice: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::json!({ "invoice": invoice }).to_string();
    let request = format!(
        "POST /payinvoice HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    if stream.write_all(request.as_bytes()).await.is_ok() {
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hub_spends_within_its_budget_and_survives_kill_9() {
    let env = micronode_testenv::nodes::Env::new("hub-cli").await;
    let b = env.start_node("b").await;

    // The tenant: the signer's default policy (apps only), velocity limits lifted.
    let signer_dir = env.dir.0.join("a-signer");
    std::fs::create_dir_all(&signer_dir).expect("dir");
    signer::init(&signer_dir);
    signer::set_policy(&signer_dir, UNLIMITED_VELOCITY);
    let (launch, listen, code) = launch_remote(&env, &env.dir.0.join("a"));
    let _signer = SignerProcess::start(&signer_dir, &listen, Some(&code), &env.bitcoind);
    let a = launch.ready();
    let mut operator = a.client().await;
    fund(&env, &mut operator, 2_000_000).await;
    connect_to(&mut operator, &b).await;
    open_to(&env, &mut operator, &b).await;

    // The peer gets room to pay the hub's users: an app of the tenant pays it 400,000 sat.
    let liquidity = bake(&signer_dir, "liquidity", 500_000, "read,pay");
    let invoice = b
        .create_invoice(Some(400_000_000), "liquidity", 3600)
        .expect("invoice");
    let (ok, _, err) = micronode(
        &["cli", "--endpoint", &a.api, "pay", &invoice.invoice],
        Some(&liquidity),
    );
    assert!(ok, "{err}");

    // The hub: an app of the tenant's signer with its own budget.
    let hub_dir = env.dir.0.join("hub");
    std::fs::create_dir_all(&hub_dir).expect("dir");
    let credential_file = env.dir.0.join("hub.credential");
    secret_file(
        &credential_file,
        &bake(&signer_dir, "hub", HUB_BUDGET_SAT, "read,invoice,pay"),
    );
    let mut hub = start_hub(&hub_dir, &a.api, &credential_file);

    // A user of the hub is paid 200,000 sat by the peer.
    let alice = User::create(hub.addr).await;
    let (invoice, _) = alice.add_invoice(hub.addr, 200_000, "top up").await;
    b.pay_invoice(&invoice, None, None)
        .expect("the peer pays the user");
    wait_until("the user is credited", TIMEOUT, || async {
        alice.balance(hub.addr).await == 200_000
    })
    .await
    .expect("credited");

    // An account the operator adds (`hub add-account`) with a Lightning Address, paid by the
    // peer through LNURL-pay (the invoice checked against the metadata it was shown).
    let (ok, out, err) = micronode(
        &[
            "hub",
            "add-account",
            "--data-dir",
            &hub_dir.display().to_string(),
            "--address",
            "bob",
        ],
        None,
    );
    assert!(ok, "{err}");
    let bob: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(
        bob["lndhub"]
            .as_str()
            .is_some_and(|u| u.starts_with("lndhub://")),
        "{bob}"
    );
    let invoice = micronode_hub::invoice_for_address(&format!("bob@{}", hub.addr), 5_000_000)
        .await
        .expect("an invoice from bob's address");
    b.pay_invoice(&invoice, None, None)
        .expect("the peer pays bob");
    let bob_login = bob["login"].as_str().expect("login").to_string();
    wait_until("bob is credited", TIMEOUT, || async {
        let (_, out, _) = micronode(
            &[
                "hub",
                "accounts",
                "--data-dir",
                &hub_dir.display().to_string(),
            ],
            None,
        );
        let accounts: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        accounts.as_array().is_some_and(|all| {
            all.iter()
                .any(|a| a["login"] == bob_login.as_str() && a["balance_msat"] == 5_000_000)
        })
    })
    .await
    .expect("bob credited");

    // 1. Within the hub's budget: an external payment of 20,000 sat (a direct channel: no
    //    routing fee); the fee reserve comes back.
    let invoice = b
        .create_invoice(Some(20_000_000), "within", 3600)
        .expect("invoice");
    let paid = alice.pay(hub.addr, &invoice.invoice).await.ok();
    assert!(paid["payment_preimage"].is_string(), "{paid}");
    assert_eq!(
        received_msat(&b, &hash_of(&invoice.invoice)),
        Some(20_000_000)
    );
    assert_eq!(alice.balance(hub.addr).await, 180_000);

    // 2. Over the hub's budget at the tenant's signer: refused, in words, nothing kept.
    let invoice = b
        .create_invoice(Some(50_000_000), "over", 3600)
        .expect("invoice");
    let refused = alice.pay(hub.addr, &invoice.invoice).await;
    refused.assert_code(10);
    let message = refused.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("allowance"), "{message}");
    assert_eq!(received_msat(&b, &hash_of(&invoice.invoice)), None);
    assert_eq!(
        alice.balance(hub.addr).await,
        180_000,
        "the hold is refunded"
    );
    hub_check(&hub_dir);

    // 3. kill -9 during a burst of external payments.
    let burst: Vec<String> = (0..8)
        .map(|i| {
            b.create_invoice(Some(1_000_000), format!("burst {i}"), 3600)
                .expect("invoice")
                .invoice
        })
        .collect();
    let addr = hub.addr;
    let mut calls = Vec::new();
    for invoice in &burst {
        let (token, invoice) = (alice.access.clone(), invoice.clone());
        calls.push(tokio::spawn(pay_and_ignore_the_answer(
            addr, token, invoice,
        )));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    hub.kill_9();
    for call in calls {
        let _ = call.await;
    }
    let in_flight_at_restart = hub_check(&hub_dir)["pending_holds_msat"].clone();
    let hub = start_hub(&hub_dir, &a.api, &credential_file);
    // The resolver settles every payment against the node (or refunds one the node never
    // saw once its grace has passed).
    wait_until("no payment in flight", Duration::from_secs(120), || async {
        hub_check(&hub_dir)["pending_holds_msat"].as_i64() == Some(0)
    })
    .await
    .expect("resolved");
    let paid_in_burst: u64 = burst
        .iter()
        .filter_map(|invoice| received_msat(&b, &hash_of(invoice)))
        .sum();
    eprintln!("burst: {paid_in_burst} msat paid, {in_flight_at_restart} msat held at the kill");
    assert_eq!(
        alice.balance(hub.addr).await * 1000,
        180_000_000 - paid_in_burst,
        "the user paid exactly what the peer received ({paid_in_burst} msat)"
    );
    hub_check(&hub_dir);
}

/// The wall's directory and configuration pricing `/paid` at 5 sat in front of `upstream`.
fn wall_files(dir: &Path, upstream: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let config = dir.join("wall.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\nservice = \"demo\"\n\n\
             [[route]]\npath_prefix = \"/paid\"\nprice_sat = 5\n"
        ),
    )
    .expect("wall.toml");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_binary_challenges_with_an_invoice_of_the_tenant() {
    let env = micronode_testenv::nodes::Env::new("wall-cli").await;
    let a = daemon::Daemon::start(&env, &env.dir.0.join("a"));
    let token_file = env.dir.0.join("wall.token");
    secret_file(
        &token_file,
        std::fs::read_to_string(&a.cookie).expect("cookie").trim(),
    );
    let dir = env.dir.0.join("wall");
    let config = wall_files(&dir, "http://127.0.0.1:9");
    let args: Vec<String> = [
        "wall",
        "--config",
        &config.display().to_string(),
        "--data-dir",
        &dir.display().to_string(),
        "--node",
        &format!("http://{}", a.api),
        "--token-file",
        &token_file.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let wall = Service::start(&args, "wall_ready", &dir.join("wall.log"));
    let answer = lndhub::request(wall.addr, "GET", "/paid/thing", None, None).await;
    assert_eq!(answer.status, 402, "{answer:?}");
    // The challenge's invoice is the tenant node's: a 5 sat invoice it recorded, unpaid.
    let mut client = a.client().await;
    let payments = client
        .list_payments(micronode_proto::v1::ListPaymentsRequest::default())
        .await
        .expect("payments")
        .into_inner()
        .payments;
    assert!(
        payments.iter().any(|p| {
            p.direction() == micronode_proto::v1::PaymentDirection::Inbound
                && p.status() == micronode_proto::v1::PaymentStatus::Pending
                && p.amount_msat == Some(5_000)
        }),
        "{payments:?}"
    );
    let mode = std::fs::metadata(dir.join("wall.secret"))
        .expect("the wall made its secret")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}
