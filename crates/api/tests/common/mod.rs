//! Shared helpers for the API's integration tests: a real bitcoind, real nodes, the API served
//! on 127.0.0.1:0 and the generated client. (Copied in part from the node's test helpers, which
//! are not exported.)
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::Network;
use micronode_api::{bearer, read_cookie, Authenticator, CookieAuth, ServeOptions, ServerTask};
use micronode_chain::{BitcoindRpc, ChainServices, FeedConfig};
use micronode_node::{LocalKeys, Node, NodeConfig};
use micronode_proto::v1::lightning_client::LightningClient;
use micronode_proto::v1::tokens_client::TokensClient;
use micronode_proto::{ErrorCode, ERROR_CODE_METADATA};
use micronode_testenv::{wait_until, Bitcoind};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type TestNode = Node<LocalKeys>;

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> Self {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "micronode-api-test-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A bitcoind plus the chain services nodes share.
pub struct Env {
    pub bitcoind: Bitcoind,
    pub chain: ChainServices,
    pub dir: TempDir,
}

impl Env {
    pub async fn new(tag: &str) -> Env {
        init_tracing();
        let bitcoind = Bitcoind::start().await.expect("start bitcoind");
        let rpc = Arc::new(
            BitcoindRpc::new(
                bitcoind.rpc_host(),
                bitcoind.rpc_port(),
                bitcoind.rpc_auth(),
            )
            .expect("rpc client"),
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
        Env {
            bitcoind,
            chain,
            dir: TempDir::new(tag),
        }
    }

    pub fn node_config(&self, name: &str) -> NodeConfig {
        let mut config = NodeConfig::new(self.dir.0.join(name), Network::Regtest);
        config.alias = name.to_string();
        config.listen_addr = Some("127.0.0.1:0".parse().expect("addr"));
        config.channels.min_confirmations = 1;
        config
    }

    pub async fn start_node(&self, name: &str) -> Arc<TestNode> {
        let config = self.node_config(name);
        let keys =
            Arc::new(LocalKeys::load_or_create(&config.data_dir, Network::Regtest).expect("keys"));
        Arc::new(
            Node::start(config, keys, self.chain.clone())
                .await
                .expect("start node"),
        )
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
    pub async fn fund(&self, node: &TestNode, sat: u64) {
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
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MICRONODE_TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Adds `authorization: Bearer <token>` to every call, or nothing.
#[derive(Clone)]
pub struct Credentials(pub Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// The generated client with credentials.
pub type Client = LightningClient<InterceptedService<Channel, Credentials>>;
/// The generated token management client with credentials.
pub type Tokens = TokensClient<InterceptedService<Channel, Credentials>>;

/// A node's API, served until dropped (or [`Api::shutdown`]).
pub struct Api {
    pub addr: SocketAddr,
    pub cookie: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<ServerTask>,
}

impl Api {
    /// Serves with [`micronode_api::serve`] (default options).
    pub async fn serve(env: &Env, node: Arc<TestNode>, name: &str) -> Api {
        Self::serve_with(env, node, name, None).await
    }

    /// Serves with [`micronode_api::serve_with`] if `options` are given.
    pub async fn serve_with(
        env: &Env,
        node: Arc<TestNode>,
        name: &str,
        options: Option<ServeOptions>,
    ) -> Api {
        let cookie = env.dir.0.join(name).join("api.cookie");
        let auth = CookieAuth::create(&cookie).expect("cookie");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let addr = "127.0.0.1:0".parse().expect("addr");
        let shutdown = async move {
            let _ = stopped.await;
        };
        let (addr, task) = match options {
            None => micronode_api::serve(node, addr, Arc::new(auth), shutdown).await,
            Some(options) => {
                micronode_api::serve_with(node, addr, Arc::new(auth), shutdown, options).await
            }
        }
        .expect("serve");
        assert_ne!(addr.port(), 0, "the bound port is returned");
        Api {
            addr,
            cookie,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Serves with any authenticator (no cookie file).
    pub async fn serve_with_auth(node: Arc<TestNode>, auth: Arc<dyn Authenticator>) -> Api {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let addr = "127.0.0.1:0".parse().expect("addr");
        let (addr, task) = micronode_api::serve(node, addr, auth, async move {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
        Api {
            addr,
            cookie: PathBuf::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A token management client sending `token` (`None`: no credentials at all).
    pub async fn tokens_with(&self, token: Option<&str>) -> Tokens {
        let value = token.map(|t| bearer(t).parse().expect("ascii token"));
        TokensClient::with_interceptor(self.channel().await, Credentials(value))
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the API")
    }

    /// A client sending `token` (`None`: no credentials at all).
    pub async fn client_with(&self, token: Option<&str>) -> Client {
        let value = token.map(|t| bearer(t).parse().expect("ascii token"));
        LightningClient::with_interceptor(self.channel().await, Credentials(value))
    }

    /// A client with the cookie's token, as a real client reads it.
    pub async fn client(&self) -> Client {
        let token = read_cookie(&self.cookie).expect("read cookie");
        self.client_with(Some(&token)).await
    }

    /// Stops the server and waits (at most `limit`) for its task.
    pub async fn shutdown(&mut self, limit: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(limit, task)
                .await
                .expect("the server shuts down in time")
                .expect("server task")
                .expect("server result");
        }
    }
}

/// Asserts a failed call's gRPC code and `x-micronode-error`.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    error: ErrorCode,
) -> tonic::Status {
    let status = result.expect_err("the call must fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(
        status
            .metadata()
            .get(ERROR_CODE_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some(error.as_str()),
        "{status:?}"
    );
    status
}
