//! Helpers for tests of a tenant node (a `node run` child process) with its signer as a
//! separate process: start the pair, fund, open, and read balances through the API.

use std::path::Path;
use std::process::Stdio;

use micronode_proto::v1;
use micronode_testenv::nodes::{Env, TestNode, TIMEOUT};
use micronode_testenv::wait_until;

use super::proxy::SignerProxy;
use super::signer::{self, SignerProcess};
use super::{Client, Daemon, Launch};

/// A `[policy]` body lifting the payment velocity limits, for tests about something else
/// that pay more than the defaults allow in an hour.
pub const UNLIMITED_VELOCITY: &str = "max_sat_per_hour = 0\nmax_sat_per_day = 0";

/// A `[policy]` line letting the node start payments without an app's signed request (the
/// default refuses them): for tests about something else that pay through the operator's
/// cookie. `app_requests.rs` tests the default.
pub const NODE_PAYS_ALONE: &str = "require_app_requests = false";

/// `policy` (a `[policy]` body, or none) with [`NODE_PAYS_ALONE`].
pub fn node_pays_alone(policy: Option<&str>) -> String {
    match policy {
        Some(body) => format!("{NODE_PAYS_ALONE}\n{body}"),
        None => NODE_PAYS_ALONE.to_string(),
    }
}

/// The size of every channel these tests open.
pub const CHANNEL_SAT: u64 = 1_000_000;

/// B's forwarding fee for an amount, per the default channel settings (1000 msat + 100 ppm).
pub fn forwarding_fee_msat(amount_msat: u64) -> u64 {
    1000 + amount_msat * 100 / 1_000_000
}

/// The flags that make `node run` use a remote signer on an ephemeral port.
pub fn remote_flags() -> Vec<String> {
    ["--signer", "remote", "--signer-listen", "127.0.0.1:0"]
        .map(String::from)
        .to_vec()
}

/// Spawns a remote-signer node on `dir` (its log goes to `<dir>.log`) and returns it with
/// the address its signer dials and the one-time pairing code it shows.
pub fn launch_remote(env: &Env, dir: &Path) -> (Launch, String, String) {
    launch_remote_with(env, dir, &[])
}

/// [`launch_remote`] with more `node run` flags.
pub fn launch_remote_with(env: &Env, dir: &Path, extra: &[String]) -> (Launch, String, String) {
    std::fs::create_dir_all(dir).expect("node dir");
    let log = std::fs::File::create(dir.with_extension("log")).expect("node log");
    let mut flags = remote_flags();
    flags.extend_from_slice(extra);
    let launch = Launch::spawn(env, dir, &flags, Stdio::from(log));
    let waiting = launch.event("waiting_for_signer");
    let listen = waiting["signer_listen"].as_str().expect("signer_listen");
    let code = waiting["pairing_code"]
        .as_str()
        .expect("a fresh node shows a code");
    (launch, listen.to_string(), code.to_string())
}

/// A tenant: its watch-only node and the signer holding its keys.
pub struct Tenant {
    /// The node process.
    pub node: Daemon,
    /// The signer process.
    pub signer: SignerProcess,
    /// The signer's recovery words.
    pub words: String,
    /// Where the signer dials the node.
    pub signer_listen: String,
}

/// Starts a remote-signer node on `dir` and a freshly initialised signer for it (with
/// `policy`, a `[policy]` table body, when given, and [`NODE_PAYS_ALONE`]); returns both once
/// the node is ready.
pub fn start_pair(env: &Env, dir: &Path, signer_dir: &Path, policy: Option<&str>) -> Tenant {
    start_pair_with(env, dir, signer_dir, policy, &[])
}

/// [`start_pair`] with more `node run` flags.
pub fn start_pair_with(
    env: &Env,
    dir: &Path,
    signer_dir: &Path,
    policy: Option<&str>,
    extra: &[String],
) -> Tenant {
    std::fs::create_dir_all(signer_dir).expect("signer dir");
    let words = signer::init(signer_dir);
    signer::set_policy(signer_dir, &node_pays_alone(policy));
    let (launch, listen, code) = launch_remote_with(env, dir, extra);
    let signer = SignerProcess::start(signer_dir, &listen, Some(&code), &env.bitcoind);
    let node = launch.ready();
    assert_eq!(
        node.node_id, signer.node_id,
        "the node's identity is the signer's"
    );
    Tenant {
        node,
        signer,
        words,
        signer_listen: listen,
    }
}

/// Connects the daemon to `peer`.
pub async fn connect_to(client: &mut Client, peer: &TestNode) {
    client
        .connect_peer(v1::ConnectPeerRequest {
            node_id: peer.node_id().to_string(),
            address: peer.listen_addr().expect("peer listens").to_string(),
        })
        .await
        .expect("connect");
}

/// Pays a fresh invoice of `peer` for `sat` through the API and checks it succeeded.
pub async fn pays_peer(client: &mut Client, peer: &TestNode, sat: u64) -> v1::Payment {
    let invoice = peer
        .create_invoice(Some(sat * 1000), "paid by the tenant", 600)
        .expect("invoice");
    let paid = pay(client, invoice.invoice, true).await.expect("pay");
    assert_eq!(paid.status, v1::PaymentStatus::Succeeded as i32, "{paid:?}");
    paid
}

/// Checks that none of the events `peer` has seen since `events` was made closed a channel.
pub fn assert_no_close(events: &mut tokio::sync::broadcast::Receiver<micronode_node::NodeEvent>) {
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, micronode_node::NodeEvent::ChannelClosed { .. }),
            "no close: {event:?}"
        );
    }
}

/// Pays `invoice` through the API; with `wait`, returns the final payment (60 s at most).
pub async fn pay(
    client: &mut Client,
    invoice: String,
    wait: bool,
) -> Result<v1::Payment, tonic::Status> {
    client
        .pay_invoice(v1::PayInvoiceRequest {
            invoice,
            wait,
            timeout_secs: Some(60),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn onchain(client: &mut Client) -> v1::OnchainBalanceResponse {
    client
        .onchain_balance(v1::OnchainBalanceRequest {})
        .await
        .expect("onchain balance")
        .into_inner()
}

pub async fn in_channels_sat(client: &mut Client) -> u64 {
    client
        .lightning_balance(v1::LightningBalanceRequest {})
        .await
        .expect("lightning balance")
        .into_inner()
        .in_channels_sat
}

pub async fn channels(client: &mut Client) -> Vec<v1::Channel> {
    client
        .list_channels(v1::ListChannelsRequest {})
        .await
        .expect("list channels")
        .into_inner()
        .channels
}

pub async fn settled(client: &Client, node: &TestNode) {
    wait_until("no HTLC in flight", TIMEOUT, || {
        let mut c = client.clone();
        async move {
            channels(&mut c)
                .await
                .iter()
                .all(|ch| ch.is_usable && ch.pending_htlcs == 0)
                && node.list_channels().iter().all(|ch| ch.pending_htlcs == 0)
        }
    })
    .await
    .expect("settled");
}

/// A fresh receive address of the daemon's wallet, from its API.
pub async fn new_address(client: &mut Client) -> bitcoin::Address {
    client
        .new_address(v1::NewAddressRequest {})
        .await
        .expect("address")
        .into_inner()
        .address
        .parse::<bitcoin::Address<_>>()
        .expect("address parses")
        .assume_checked()
}

/// Funds the daemon's watch-only wallet through its API and waits for the confirmation.
pub async fn fund(env: &Env, client: &mut Client, sat: u64) {
    let before = onchain(client).await.confirmed_sat;
    let address = new_address(client).await;
    let txid = env
        .bitcoind
        .fund_address(&address, sat)
        .await
        .expect("fund");
    env.mine(1).await;
    let funded = wait_until("wallet funded", TIMEOUT, || {
        let mut c = client.clone();
        async move { onchain(&mut c).await.confirmed_sat >= before + sat }
    })
    .await;
    if funded.is_err() {
        // Say which side lagged: the node's view of the chain, or its wallet.
        let info = client
            .get_info(v1::GetInfoRequest {})
            .await
            .map(|i| i.into_inner());
        let tip = env.bitcoind.rpc().call::<u64>("getblockcount", &[]).await;
        let tx = env
            .bitcoind
            .rpc()
            .call::<serde_json::Value>(
                "getrawtransaction",
                &[serde_json::json!(txid.to_string()), serde_json::json!(true)],
            )
            .await
            .map(|t| t["confirmations"].clone());
        panic!(
            "wallet not funded within {TIMEOUT:?}: node at height {:?}, bitcoind at {tip:?}, \
             funding {txid} confirmations {tx:?}, balance {:?}, bitcoind's log of it {:?}",
            info.map(|i| i.block_height),
            onchain(client).await,
            env.bitcoind.log_lines_naming(&txid.to_string())
        );
    }
}

/// Opens a channel from the daemon to `peer`, confirms it and returns its id.
pub async fn open_to(env: &Env, client: &mut Client, peer: &TestNode) -> String {
    let known: Vec<String> = channels(client)
        .await
        .into_iter()
        .map(|c| c.channel_id)
        .collect();
    client
        .open_channel(v1::OpenChannelRequest {
            node_id: peer.node_id().to_string(),
            amount_sat: CHANNEL_SAT,
            push_msat: 0,
            announce: Some(false),
        })
        .await
        .expect("open channel");
    // The funding transaction is signed by the remote signer once the peer has signed the
    // first commitment; then it reaches the mempool.
    wait_until("funding in mempool", TIMEOUT, || async {
        !env.mempool().await.is_empty()
    })
    .await
    .expect("funding broadcast");
    env.mine(6).await;
    let found = std::sync::Mutex::new(None);
    wait_until("channel usable", TIMEOUT, || {
        let mut c = client.clone();
        let known = known.clone();
        let found = &found;
        async move {
            let new = channels(&mut c)
                .await
                .into_iter()
                .find(|ch| !known.contains(&ch.channel_id) && ch.is_usable);
            let usable = new.is_some();
            *found.lock().expect("lock") = new.map(|ch| ch.channel_id);
            usable
        }
    })
    .await
    .expect("usable");
    found.into_inner().expect("lock").expect("found")
}

/// A node's balance in a channel, in whole sats (exact with no HTLC in flight).
pub fn channel_balance_sat(node: &TestNode, channel_id: &str) -> u64 {
    node.list_channels()
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .expect("channel")
        .balance_sat
}

pub async fn funding_of(client: &mut Client, channel_id: &str) -> bitcoin::OutPoint {
    channels(client)
        .await
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .and_then(|c| c.funding_txo)
        .expect("funded channel")
        .parse()
        .expect("outpoint")
}

/// A tenant whose signer reaches its node through the operator's man in the middle.
pub struct ProxiedTenant {
    /// The node process.
    pub node: Daemon,
    /// The operator between node and signer.
    pub proxy: SignerProxy,
    /// The signer process.
    pub signer: SignerProcess,
    /// The signer's directory.
    pub signer_dir: std::path::PathBuf,
    /// What `signer export-public` printed (node id, wallet xpub, descriptors).
    pub public: serde_json::Value,
}

/// Starts a tenant node in `<env>/a` and its signer in `<env>/a-signer` (with `policy`, a
/// `[policy]` table body, when given, and [`NODE_PAYS_ALONE`]), linked through a
/// [`SignerProxy`].
pub async fn start_behind_proxy(env: &Env, policy: Option<&str>) -> ProxiedTenant {
    let signer_dir = env.dir.0.join("a-signer");
    std::fs::create_dir_all(&signer_dir).expect("signer dir");
    signer::init(&signer_dir);
    signer::set_policy(&signer_dir, &node_pays_alone(policy));
    let public = signer::export_public(&signer_dir);
    let (launch, node_listen, node_code) = launch_remote(env, &env.dir.0.join("a"));
    let proxy = SignerProxy::start(node_listen, node_code).await;
    let signer = SignerProcess::start(&signer_dir, &proxy.listen, Some(&proxy.code), &env.bitcoind);
    ProxiedTenant {
        node: launch.ready(),
        proxy,
        signer,
        signer_dir,
        public,
    }
}

/// Waits for the outcome of `payer`'s payment `id`, mining a block whenever a transaction waits
/// in the mempool (a JIT channel's funding must confirm before the payment goes on).
pub async fn outcome_mining(
    env: &Env,
    payer: &TestNode,
    id: &[u8; 32],
) -> micronode_node::PaymentRecord {
    let deadline = tokio::time::Instant::now() + 3 * TIMEOUT;
    loop {
        if let Ok(record) = payer
            .wait_payment(id, std::time::Duration::from_millis(500))
            .await
        {
            if record.status != micronode_node::PaymentStatus::Pending {
                return record;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the payment has no outcome"
        );
        if !env.mempool().await.is_empty() {
            env.mine(1).await;
        }
    }
}
