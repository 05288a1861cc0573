//! In-process nodes on a real bitcoind: the harness for integration tests and benchmarks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::{wait_until, Bitcoind};
use bitcoin::{Network, Transaction};
use micronode_chain::{BitcoindRpc, ChainServices, FeedConfig};
use micronode_node::{KeysBackend, LocalKeys, Node, NodeConfig, NodeEvent};

/// A node with in-process keys.
pub type TestNode = Node<LocalKeys>;

/// How long helpers wait before failing.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A bitcoind plus the chain services nodes share.
pub struct Env {
    /// The bitcoind.
    pub bitcoind: Bitcoind,
    /// Chain services the nodes share.
    pub chain: ChainServices,
    /// Where node data goes.
    pub dir: TempDir,
}

/// A directory removed on drop (kept, for post-mortems, when `MICRONODE_TEST_KEEP` is set).
pub struct TempDir(pub PathBuf);
impl TempDir {
    /// A new directory, on /dev/shm when possible.
    pub fn new(tag: &str) -> Self {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "micronode-test-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MICRONODE_TEST_KEEP").is_some() {
            eprintln!("kept test directory {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Env {
    /// Starts bitcoind and the chain services: blocks polled every 100 ms, the mempool every
    /// 200 ms, kept broadcasts sent again every second, bitcoind RPC calls bounded by 300 s.
    pub async fn new(tag: &str) -> Env {
        Self::with_rpc_timeout(tag, micronode_chain::rpc::DEFAULT_RPC_TIMEOUT).await
    }

    /// [`Env::new`] with every bitcoind RPC call of the chain services bounded by `timeout`.
    pub async fn with_rpc_timeout(tag: &str, timeout: Duration) -> Env {
        let _ = tracing_subscriber_init();
        let bitcoind = Bitcoind::start().await.expect("start bitcoind");
        let rpc = Arc::new(
            BitcoindRpc::new(
                bitcoind.rpc_host(),
                bitcoind.rpc_port(),
                bitcoind.rpc_auth(),
            )
            .expect("rpc client")
            .with_timeout(timeout),
        );
        let chain = ChainServices::start(
            rpc,
            FeedConfig {
                network: Network::Regtest,
                poll_interval: Duration::from_millis(100),
                mempool_poll_interval: Some(Duration::from_millis(200)),
                rebroadcast_interval: Duration::from_secs(1),
                ..Default::default()
            },
        )
        .await
        .expect("chain services");
        Env {
            bitcoind,
            chain,
            dir: TempDir::new(tag),
        }
    }

    /// A regtest config for a node called `name`: listening on a free port, 1 confirmation,
    /// and no on-chain reserve for anchor channels (so an unfunded node accepts channels;
    /// tests of the reserve set it).
    pub fn node_config(&self, name: &str) -> NodeConfig {
        let mut config = NodeConfig::new(self.dir.0.join(name), Network::Regtest);
        config.alias = name.to_string();
        config.listen_addr = Some("127.0.0.1:0".parse().expect("addr"));
        config.channels.set_min_confirmations(1);
        config.channels.anchor_reserve_sat = 0;
        config
    }

    /// Starts a node with [`Env::node_config`].
    pub async fn start_node(&self, name: &str) -> TestNode {
        self.start_node_with(self.node_config(name)).await
    }

    /// Starts a node with this config and keys kept in its data dir.
    pub async fn start_node_with(&self, config: NodeConfig) -> TestNode {
        let keys =
            Arc::new(LocalKeys::load_or_create(&config.data_dir, Network::Regtest).expect("keys"));
        Node::start(config, keys, self.chain.clone())
            .await
            .expect("start node")
    }

    /// Mines `n` blocks and waits until the feed has delivered them.
    pub async fn mine(&self, n: u64) {
        let hashes = self.bitcoind.mine(n).await.expect("mine");
        let last = *hashes.last().expect("mined");
        let feed = self.chain.feed.clone();
        wait_until("feed reaches the mined tip", TIMEOUT, || {
            let feed = feed.clone();
            async move {
                feed.poll_now()
                    .await
                    .map(|t| t.block_hash == last)
                    .unwrap_or(false)
            }
        })
        .await
        .expect("feed caught up");
    }

    /// Sends `sat` to the node's wallet and confirms it.
    pub async fn fund<K: KeysBackend>(&self, node: &Node<K>, sat: u64) {
        let before = node.onchain_balance().confirmed_sat;
        let address = node.new_address().expect("address");
        let address = address
            .parse::<bitcoin::Address<_>>()
            .expect("parse")
            .assume_checked();
        self.bitcoind
            .fund_address(&address, sat)
            .await
            .expect("fund");
        self.mine(1).await;
        wait_until("wallet sees the funds", TIMEOUT, || async {
            node.onchain_balance().confirmed_sat >= before + sat
        })
        .await
        .expect("funded");
    }

    /// Every transaction in bitcoind's mempool.
    pub async fn mempool(&self) -> Vec<Transaction> {
        let rpc = self.bitcoind.rpc();
        let mut txs = Vec::new();
        for txid in rpc.get_raw_mempool().await.expect("mempool") {
            let hex: String = rpc
                .call("getrawtransaction", &[serde_json::json!(txid.to_string())])
                .await
                .expect("getrawtransaction");
            let bytes = hex::decode(hex).expect("hex");
            txs.push(bitcoin::consensus::deserialize(&bytes).expect("tx"));
        }
        txs
    }

    /// The mempool transaction that spends `outpoint`, once there is one.
    pub async fn wait_for_spend(&self, outpoint: &bitcoin::OutPoint) -> Transaction {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let spend = self
                .mempool()
                .await
                .into_iter()
                .find(|tx| tx.input.iter().any(|i| i.previous_output == *outpoint));
            if let Some(tx) = spend {
                return tx;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no transaction spent {outpoint}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A transaction, confirmed or in the mempool (the test bitcoind keeps a transaction index).
    pub async fn transaction(&self, txid: &bitcoin::Txid) -> Transaction {
        let hex: String = self
            .bitcoind
            .rpc()
            .call("getrawtransaction", &[serde_json::json!(txid.to_string())])
            .await
            .expect("getrawtransaction");
        bitcoin::consensus::encode::deserialize_hex(&hex).expect("transaction")
    }

    /// The transaction that spends `outpoint`, in the mempool or in the last 500 blocks.
    pub async fn spend_of(&self, outpoint: &bitcoin::OutPoint) -> Option<Transaction> {
        let spends = |tx: &Transaction| tx.input.iter().any(|i| i.previous_output == *outpoint);
        if let Some(tx) = self.mempool().await.into_iter().find(spends) {
            return Some(tx);
        }
        let rpc = self.bitcoind.rpc();
        let tip = rpc.get_block_count().await.expect("block count");
        for height in (tip.saturating_sub(500)..=tip).rev() {
            let hash = rpc.get_block_hash(height).await.expect("block hash");
            let block = rpc.get_block(&hash).await.expect("block");
            if let Some(tx) = block.txdata.into_iter().find(spends) {
                return Some(tx);
            }
        }
        None
    }

    /// The transaction spending `outpoint`, mining a few blocks at a time until there is one
    /// (a sweep waiting for its timelock). Looks in the mempool and in each block mined since
    /// it started (and the 500 before, once).
    pub async fn mine_until_spent(&self, outpoint: &bitcoin::OutPoint) -> Transaction {
        if let Some(tx) = self.spend_of(outpoint).await {
            return tx;
        }
        let rpc = self.bitcoind.rpc();
        let spends = |tx: &Transaction| tx.input.iter().any(|i| i.previous_output == *outpoint);
        let mut scanned = rpc.get_block_count().await.expect("block count");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(tx) = self.mempool().await.into_iter().find(spends) {
                return tx;
            }
            let tip = rpc.get_block_count().await.expect("block count");
            for height in scanned + 1..=tip {
                let hash = rpc.get_block_hash(height).await.expect("block hash");
                let block = rpc.get_block(&hash).await.expect("block");
                if let Some(tx) = block.txdata.into_iter().find(spends) {
                    return tx;
                }
            }
            scanned = tip;
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing spent {outpoint}"
            );
            self.mine(5).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The short channel id (block height, index in the block, output) of a confirmed output.
    pub async fn short_channel_id(&self, outpoint: &bitcoin::OutPoint) -> u64 {
        let rpc = self.bitcoind.rpc();
        let raw: serde_json::Value = rpc
            .call(
                "getrawtransaction",
                &[
                    serde_json::json!(outpoint.txid.to_string()),
                    serde_json::json!(true),
                ],
            )
            .await
            .expect("transaction");
        let block: serde_json::Value = rpc
            .call("getblock", &[raw["blockhash"].clone()])
            .await
            .expect("its block");
        let index = block["tx"]
            .as_array()
            .expect("txs")
            .iter()
            .position(|t| t == &serde_json::json!(outpoint.txid.to_string()))
            .expect("in its block") as u64;
        let height = block["height"].as_u64().expect("height");
        (height << 40) | (index << 16) | u64::from(outpoint.vout)
    }

    /// The fee `tx` pays, from its inputs' values on chain.
    pub async fn fee_of(&self, tx: &Transaction) -> u64 {
        let mut inputs = 0;
        for input in &tx.input {
            inputs += self.prevout_value_any(&input.previous_output).await;
        }
        crate::fee_paid(inputs, tx)
    }

    /// The CPFP child spending one of `commitment`'s anchor outputs (330 sat), once it is in
    /// the mempool.
    pub async fn wait_for_anchor_child(&self, commitment: &Transaction) -> Transaction {
        let txid = commitment.compute_txid();
        let anchors: Vec<u32> = (0..commitment.output.len() as u32)
            .filter(|v| commitment.output[*v as usize].value.to_sat() == 330)
            .collect();
        assert_eq!(anchors.len(), 2, "one anchor per side: {commitment:?}");
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let child = self.mempool().await.into_iter().find(|tx| {
                tx.input.iter().any(|i| {
                    i.previous_output.txid == txid && anchors.contains(&i.previous_output.vout)
                })
            });
            if let Some(child) = child {
                return child;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no CPFP child of {txid}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of an output, spent or not (the test bitcoind keeps a transaction index).
    pub async fn prevout_value_any(&self, outpoint: &bitcoin::OutPoint) -> u64 {
        let tx = self.transaction(&outpoint.txid).await;
        tx.output
            .get(outpoint.vout as usize)
            .map(|o| o.value.to_sat())
            .unwrap_or_else(|| panic!("{outpoint} does not exist"))
    }

    /// The value of an output on chain or in the mempool.
    pub async fn prevout_value(&self, outpoint: &bitcoin::OutPoint) -> u64 {
        let tx: serde_json::Value = self
            .bitcoind
            .rpc()
            .call(
                "gettxout",
                &[
                    serde_json::json!(outpoint.txid.to_string()),
                    serde_json::json!(outpoint.vout),
                    serde_json::json!(true),
                ],
            )
            .await
            .expect("gettxout");
        let btc = tx["value"].as_f64().expect("value");
        (btc * 100_000_000.0).round() as u64
    }
}

fn tracing_subscriber_init() -> Result<(), ()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MICRONODE_TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init()
        .map_err(|_| ())
}

/// Waits for an event matching `pred`.
pub async fn expect_event(
    rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    what: &str,
    pred: impl Fn(&NodeEvent) -> bool,
) -> NodeEvent {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if pred(&ev) => return ev,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => panic!("event stream closed waiting for {what}: {e}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Connects `a` to `b` and opens an announced channel of `sat` from `a`, confirmed and
/// usable on both.
pub async fn open_channel<A: KeysBackend, B: KeysBackend>(
    env: &Env,
    a: &Node<A>,
    b: &Node<B>,
    sat: u64,
) -> String {
    open_channel_with(env, a, b, sat, true).await
}

/// [`open_channel`], announced or private: a tenant whose signer does not allow routing
/// opens private channels only.
pub async fn open_channel_with<A: KeysBackend, B: KeysBackend>(
    env: &Env,
    a: &Node<A>,
    b: &Node<B>,
    sat: u64,
    announce: bool,
) -> String {
    a.connect_peer(b.node_id(), b.listen_addr().expect("listening"))
        .await
        .expect("connect");
    let mut events = a.subscribe_events();
    a.open_channel(b.node_id(), sat, 0, Some(announce))
        .expect("open channel");
    let pending = expect_event(&mut events, "channel pending", |e| {
        matches!(e, NodeEvent::ChannelPending { .. })
    })
    .await;
    let NodeEvent::ChannelPending { channel_id, .. } = pending else {
        unreachable!()
    };
    // Wait for the funding tx in the mempool, then confirm it deep enough to announce.
    wait_until("funding tx in mempool", TIMEOUT, || async {
        !env.mempool().await.is_empty()
    })
    .await
    .expect("funding broadcast");
    env.mine(6).await;
    let id = channel_id.clone();
    wait_until("channel usable on both sides", TIMEOUT, || async {
        let usable = |channels: Vec<micronode_node::ChannelInfo>| {
            channels.iter().any(|c| c.channel_id == id && c.is_usable)
        };
        usable(a.list_channels()) && usable(b.list_channels())
    })
    .await
    .expect("channel usable");
    channel_id
}

/// The output of `tx` holding exactly `sat` (there must be one).
pub fn output_paying(tx: &Transaction, sat: u64) -> bitcoin::OutPoint {
    let vout = tx
        .output
        .iter()
        .position(|o| o.value.to_sat() == sat)
        .unwrap_or_else(|| panic!("no output of {sat} sat: {tx:?}"));
    bitcoin::OutPoint::new(tx.compute_txid(), vout as u32)
}
