//! The client against a real node's API on a real regtest bitcoind: every kind of command, the
//! error text (gRPC code, `x-micronode-error`, message), JSON output and the event stream's end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::Network;
use micronode_api::CookieAuth;
use micronode_chain::{BitcoindRpc, ChainServices, FeedConfig};
use micronode_node::{LocalKeys, Node, NodeConfig};
use micronode_testenv::Bitcoind;
use serde_json::Value;

use super::{execute, ClientArgs, ClientCommand, Printer};

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start_node(
    dir: &std::path::Path,
    name: &str,
    chain: &ChainServices,
) -> Arc<Node<LocalKeys>> {
    let mut config = NodeConfig::new(dir.join(name), Network::Regtest);
    config.alias = name.into();
    config.listen_addr = Some("127.0.0.1:0".parse().expect("addr"));
    let keys =
        Arc::new(LocalKeys::load_or_create(&config.data_dir, Network::Regtest).expect("keys"));
    Arc::new(
        Node::start(config, keys, chain.clone())
            .await
            .expect("start node"),
    )
}

struct Cli {
    endpoint: String,
    cookie: PathBuf,
}

impl Cli {
    fn args(&self, json: bool, command: ClientCommand) -> ClientArgs {
        ClientArgs {
            endpoint: self.endpoint.clone(),
            cookie: Some(self.cookie.clone()),
            token: None,
            tenant: None,
            json,
            command,
        }
    }

    /// Runs a command that must succeed; returns its output.
    async fn ok(&self, json: bool, command: ClientCommand) -> String {
        let what = format!("{command:?}");
        let mut out = Printer::capture();
        if let Err(e) = execute(self.args(json, command), &mut out).await {
            panic!("{what} failed: {e:#}");
        }
        out.lines().join("\n")
    }

    /// Runs a command with `--json` that must succeed; returns its document.
    async fn json(&self, command: ClientCommand) -> Value {
        let text = self.ok(true, command).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// Runs a command that must fail; returns the error text and the output.
    async fn fails(&self, json: bool, command: ClientCommand) -> (String, Vec<String>) {
        Self::fails_with(self.args(json, command)).await
    }

    async fn fails_with(args: ClientArgs) -> (String, Vec<String>) {
        let what = format!("{:?}", args.command);
        let mut out = Printer::capture();
        match execute(args, &mut out).await {
            Ok(()) => panic!("{what} succeeded: {:?}", out.lines()),
            Err(e) => (format!("{e:#}"), out.lines().to_vec()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_against_a_real_node() {
    let bitcoind = Bitcoind::start().await.expect("start bitcoind");
    let rpc = Arc::new(
        BitcoindRpc::new(
            bitcoind.rpc_host(),
            bitcoind.rpc_port(),
            bitcoind.rpc_auth(),
        )
        .expect("rpc"),
    );
    let chain = ChainServices::start(
        rpc,
        FeedConfig {
            network: Network::Regtest,
            poll_interval: Duration::from_millis(100),
            ..Default::default()
        },
    )
    .await
    .expect("chain services");
    let dir = TempDir(std::env::temp_dir().join(format!(
        "micronode-cli-client-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    )));
    let a = start_node(&dir.0, "a", &chain).await;
    let b = start_node(&dir.0, "b", &chain).await;
    let cookie = dir.0.join("a").join("api.cookie");
    let auth = CookieAuth::create(&cookie).expect("cookie");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = micronode_api::serve(
        a.clone(),
        "127.0.0.1:0".parse().expect("addr"),
        Arc::new(auth),
        async move {
            let _ = stopped.await;
        },
    )
    .await
    .expect("serve");
    let cli = Cli {
        // No scheme: the client adds http://.
        endpoint: addr.to_string(),
        cookie: cookie.clone(),
    };

    // Reads.
    let info = cli.json(ClientCommand::Getinfo).await;
    assert_eq!(info["node_id"], a.node_id().to_string());
    assert_eq!(info["network"], "regtest");
    let text = cli.ok(false, ClientCommand::Getinfo).await;
    assert!(
        text.contains(&format!("node_id:       {}", a.node_id())),
        "{text}"
    );
    let address = cli.ok(false, ClientCommand::Newaddress).await;
    assert!(address.starts_with("bcrt1"), "{address}");
    let balance = cli.json(ClientCommand::Balance).await;
    assert_eq!(balance["onchain"]["total_sat"], 0);
    assert_eq!(balance["lightning"]["claimable_sat"], 0);
    assert!(cli
        .ok(false, ClientCommand::Balance)
        .await
        .contains("onchain_total:              0 sat"));
    assert_eq!(cli.ok(false, ClientCommand::Peers).await, "no peers");
    assert_eq!(cli.ok(false, ClientCommand::Channels).await, "no channels");

    // Invoices and payments.
    let invoice = cli
        .json(ClientCommand::Invoice {
            amount_msat: "any".into(),
            description: "tea".into(),
            expiry: Some(600),
        })
        .await;
    let hash = invoice["payment_hash"].as_str().expect("hash").to_string();
    let payment = cli.json(ClientCommand::Payment { id: hash.clone() }).await;
    assert_eq!(payment["direction"], "inbound");
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["kind"], "bolt11");
    let all = ClientCommand::Payments {
        limit: None,
        cursor: None,
    };
    let payments = cli.ok(false, all).await;
    assert!(
        payments.starts_with("ID") && payments.contains(&hash) && payments.contains("tea"),
        "{payments}"
    );
    let page = cli
        .json(ClientCommand::Payments {
            limit: Some(1),
            cursor: None,
        })
        .await;
    assert_eq!(page["payments"][0]["id"], hash.as_str());
    assert_eq!(page["payments"][0]["description"], "tea");

    // Peers.
    let peer = format!("{}@{}", b.node_id(), b.listen_addr().expect("b listens"));
    let connected = cli.ok(false, ClientCommand::Connect { peer }).await;
    assert!(connected.starts_with("connected to"), "{connected}");
    let peers = cli.json(ClientCommand::Peers).await;
    assert_eq!(peers["peers"][0]["node_id"], b.node_id().to_string());

    // Failures carry the gRPC code, the API's code and the message.
    let (err, _) = cli
        .fails(
            false,
            ClientCommand::Openchannel {
                node_id: b.node_id().to_string(),
                amount_sat: 10_000_000,
                push_msat: 0,
                announce: false,
                private: false,
            },
        )
        .await;
    assert!(
        err.starts_with("FAILED_PRECONDITION [INSUFFICIENT_FUNDS]: insufficient funds"),
        "{err}"
    );
    let (err, out) = cli
        .fails(
            true,
            ClientCommand::Pay {
                invoice: "lnbcrt1garbage".into(),
                amount_msat: None,
                max_fee_msat: None,
                no_wait: false,
                timeout: Some(5),
            },
        )
        .await;
    assert!(
        err.starts_with("INVALID_ARGUMENT [INVALID_INPUT]: invalid input"),
        "{err}"
    );
    let doc: Value = serde_json::from_str(&out[0]).expect("a JSON error document");
    assert_eq!(doc["error"]["grpc_code"], "INVALID_ARGUMENT");
    assert_eq!(doc["error"]["code"], "INVALID_INPUT");
    let (err, _) = cli
        .fails(
            false,
            ClientCommand::Closechannel {
                channel_id: "zz".into(),
                force: false,
            },
        )
        .await;
    assert!(err.starts_with("INVALID_ARGUMENT [INVALID_INPUT]"), "{err}");
    let (err, _) = cli
        .fails(
            false,
            ClientCommand::Payment {
                id: "ab".repeat(32),
            },
        )
        .await;
    assert!(err.starts_with("NOT_FOUND [UNKNOWN_PAYMENT]"), "{err}");
    let (err, _) = cli
        .fails(
            false,
            ClientCommand::Keysend {
                node_id: "nope".into(),
                amount_msat: 1000,
                max_fee_msat: None,
                no_wait: true,
                timeout: None,
            },
        )
        .await;
    assert!(err.starts_with("INVALID_ARGUMENT [INVALID_INPUT]"), "{err}");
    let (err, _) = cli
        .fails(
            false,
            ClientCommand::Sendonchain {
                address: address.clone(),
                amount: "lots".into(),
                sat_per_vbyte: None,
            },
        )
        .await;
    assert!(err.contains("not an amount"), "{err}");

    // Credentials and reachability.
    let other_cookie = dir.0.join("other.cookie");
    CookieAuth::create(&other_cookie).expect("another cookie");
    let mut args = cli.args(false, ClientCommand::Getinfo);
    args.cookie = Some(other_cookie);
    let (err, _) = Cli::fails_with(args).await;
    assert!(
        err.starts_with("UNAUTHENTICATED [UNAUTHENTICATED]"),
        "{err}"
    );
    let mut args = cli.args(false, ClientCommand::Getinfo);
    args.cookie = Some(dir.0.join("missing.cookie"));
    let (err, _) = Cli::fails_with(args).await;
    assert!(
        err.starts_with("cannot read the node's API cookie"),
        "{err}"
    );
    assert!(err.contains("missing.cookie: No such file"), "{err}");
    let mut args = cli.args(false, ClientCommand::Getinfo);
    args.endpoint = "http://127.0.0.1:1".into();
    let (err, _) = Cli::fails_with(args).await;
    assert!(err.contains("cannot connect to the node's API"), "{err}");

    // `events` follows the stream until the server goes away.
    let args = cli.args(true, ClientCommand::Events);
    let events = tokio::spawn(async move {
        let mut out = Printer::capture();
        let result = execute(args, &mut out).await;
        (result, out)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!events.is_finished(), "events waits for events");
    let _ = stop.send(());
    let (result, _) = tokio::time::timeout(Duration::from_secs(15), events)
        .await
        .expect("events ends with the server")
        .expect("events task");
    result.expect("the stream ended cleanly");
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("server stops")
        .expect("server task")
        .expect("server result");
}
