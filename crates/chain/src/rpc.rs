//! An async bitcoind JSON-RPC client built on LDK's [`RpcClient`].
//!
//! [`BitcoindRpc`] adds three things to the bare LDK client:
//! - typed methods for the calls micronode needs (chain queries, fee estimation, broadcast) and
//!   for tests and development (wallet, mining);
//! - a typed [`RpcError`] that keeps its cause and tells apart "bitcoind is not running",
//!   "wrong credentials", "bitcoind said no" and "the answer made no sense";
//! - per-method call counters, so tests and benchmarks can check how many RPC calls the chain
//!   feed costs.
//!
//! It also implements [`BlockSource`] and [`UtxoSource`] by delegating to the inner
//! [`RpcClient`], so LDK's poller and gossip verifier can use it directly.
//!
//! # Behaviour of the underlying LDK client worth knowing
//! - On any failed HTTP exchange, including a JSON-RPC error that bitcoind sends with HTTP status
//!   500 or 404, LDK's HTTP client waits 100 ms, reconnects and sends the request once more. A
//!   call that fails at bitcoind therefore reaches bitcoind twice (bitcoind's `debug.log` shows
//!   two lines), while [`BitcoindRpc::call_count`] counts it once.
//! - The TCP connect is a blocking `connect` with a 5 s timeout, made on the calling task.
//! - With tokio, the socket read timeouts LDK sets do not apply, so a hung bitcoind would hang a
//!   call forever: every call here is bounded by [`BitcoindRpc::with_timeout`] (300 s by default,
//!   LDK's own bound for bitcoind's slowest answers).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use base64::Engine as _;
use bitcoin::address::NetworkUnchecked;
use bitcoin::block::Header;
use bitcoin::consensus::encode;
use bitcoin::{
    Address, Amount, Block, BlockHash, Denomination, Network, OutPoint, Transaction, Txid,
};
use lightning_block_sync::gossip::UtxoSource;
use lightning_block_sync::http::HttpEndpoint;
use lightning_block_sync::rpc::{RpcClient, RpcError as LdkRpcError};
use lightning_block_sync::{
    AsyncBlockSourceResult, BlockData, BlockHeaderData, BlockSource, BlockSourceError,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// Default bound on one RPC call, see [`BitcoindRpc::with_timeout`].
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(300);

/// bitcoind's `RPC_WALLET_ERROR`, returned by `createwallet` when the wallet already exists.
const RPC_WALLET_ERROR: i64 = -4;
/// bitcoind's `RPC_WALLET_ALREADY_LOADED`.
const RPC_WALLET_ALREADY_LOADED: i64 = -35;
/// bitcoind's `RPC_VERIFY_REJECTED`.
const RPC_VERIFY_REJECTED: i64 = -26;
/// bitcoind's `RPC_VERIFY_ALREADY_IN_CHAIN` ("Transaction already in block chain", since v28
/// "Transaction outputs already in utxo set").
const RPC_VERIFY_ALREADY_IN_CHAIN: i64 = -27;

/// How a [`BitcoindRpc`] authenticates to bitcoind.
#[derive(Clone, PartialEq, Eq)]
pub enum RpcAuth {
    /// `-rpcuser`/`-rpcpassword` (or an `-rpcauth` entry).
    UserPass {
        /// The RPC user name.
        user: String,
        /// The RPC password.
        pass: String,
    },
    /// bitcoind's cookie file (`<datadir>/<network>/.cookie`), which holds `user:password`.
    ///
    /// The file is read by [`BitcoindRpc::new`] and read again whenever bitcoind rejects the
    /// credentials, because bitcoind writes a new cookie each time it starts.
    CookieFile(PathBuf),
}

impl fmt::Debug for RpcAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcAuth::UserPass { user, .. } => f
                .debug_struct("UserPass")
                .field("user", user)
                .field("pass", &"<redacted>")
                .finish(),
            RpcAuth::CookieFile(path) => f.debug_tuple("CookieFile").field(path).finish(),
        }
    }
}

/// Errors from [`BitcoindRpc`].
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No answer from bitcoind: connection refused or reset, or no response in time.
    #[error("bitcoind is not reachable at {url} (is it running, and are -rpcbind/-rpcport right?): {source}")]
    Unreachable {
        /// The URL that was called, `http://host:port/path`.
        url: String,
        /// The transport error.
        #[source]
        source: io::Error,
    },
    /// bitcoind rejected the credentials (HTTP 401).
    #[error("bitcoind rejected the RPC credentials (HTTP 401)")]
    Auth,
    /// bitcoind answered with a JSON-RPC error.
    #[error("bitcoind RPC error {code}: {message}")]
    Rpc {
        /// bitcoind's error code (`RPC_*` in bitcoind's `rpc/protocol.h`).
        code: i64,
        /// bitcoind's error message.
        message: String,
    },
    /// bitcoind's answer could not be understood.
    #[error("could not decode bitcoind's answer to {method}: {detail}")]
    Decode {
        /// The RPC method called.
        method: String,
        /// What was wrong with the answer.
        detail: String,
    },
    /// Any other HTTP or I/O failure (for example HTTP 403 when `-rpcallowip` does not admit us,
    /// or 503 when bitcoind's work queue is full).
    #[error("HTTP/I/O error calling bitcoind method {method}: {source}")]
    Io {
        /// The RPC method called.
        method: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The cookie file could not be read or has no `user:password` line.
    #[error("cannot use bitcoind cookie file {}: {source}", path.display())]
    Cookie {
        /// The cookie file's path.
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: io::Error,
    },
}

impl RpcError {
    /// Whether bitcoind answered that it is still starting (`RPC_IN_WARMUP`): it is not there
    /// yet, rather than refusing.
    pub fn is_warming_up(&self) -> bool {
        matches!(self, RpcError::Rpc { code: -28, .. })
    }
}

/// A subset of `getblockchaininfo`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BlockchainInfo {
    /// The chain name as bitcoind says it: `main`, `test`, `testnet4`, `signet` or `regtest`.
    pub chain: String,
    /// The height of the best validated block.
    pub blocks: u32,
    /// The hash of the best validated block.
    #[serde(rename = "bestblockhash")]
    pub best_block_hash: BlockHash,
    /// Whether bitcoind is still in initial block download.
    #[serde(rename = "initialblockdownload")]
    pub initial_block_download: bool,
}

/// State shared by a client, its clones and the clients made from it by
/// [`BitcoindRpc::with_wallet`].
struct Shared {
    host: String,
    port: u16,
    auth: RpcAuth,
    /// Base64 `user:password`, as HTTP basic auth wants it.
    credentials: RwLock<String>,
    counters: RwLock<HashMap<String, Arc<AtomicU64>>>,
    total: AtomicU64,
    network: OnceLock<Network>,
}

impl Shared {
    fn count(&self, method: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let read = self.counters.read().unwrap_or_else(|e| e.into_inner());
        if let Some(counter) = read.get(method) {
            counter.fetch_add(1, Ordering::Relaxed);
            return;
        }
        drop(read);
        let mut write = self.counters.write().unwrap_or_else(|e| e.into_inner());
        write
            .entry(method.to_string())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    fn credentials(&self) -> String {
        self.credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the cookie file; returns whether the credentials changed.
    fn refresh_cookie(&self) -> bool {
        let RpcAuth::CookieFile(path) = &self.auth else {
            return false;
        };
        let Ok(fresh) = read_cookie(path) else {
            return false;
        };
        let mut current = self.credentials.write().unwrap_or_else(|e| e.into_inner());
        if *current == fresh {
            return false;
        }
        *current = fresh;
        true
    }
}

/// One [`RpcClient`] per URL path, rebuilt when the credentials change.
struct ClientSlot {
    path: String,
    current: RwLock<(String, Arc<RpcClient>)>,
}

/// An async bitcoind JSON-RPC client.
///
/// Cloning is cheap (two `Arc`s) and clones share the connection and the call counters.
/// Clients made by [`with_wallet`](Self::with_wallet) share the counters too but have their
/// own connection.
#[derive(Clone)]
pub struct BitcoindRpc {
    shared: Arc<Shared>,
    slot: Arc<ClientSlot>,
    timeout: Duration,
}

impl fmt::Debug for BitcoindRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitcoindRpc")
            .field("url", &self.url())
            .field("auth", &self.shared.auth)
            .field("total_calls", &self.total_calls())
            .finish()
    }
}

impl BitcoindRpc {
    /// Creates a client for bitcoind's RPC server at `host:port`, without a wallet path.
    ///
    /// Nothing is sent yet; the first call connects. Fails only when `auth` is a cookie file that
    /// cannot be read. Use an IP address such as `127.0.0.1` for a local bitcoind: `localhost`
    /// may resolve to `::1` first, where bitcoind usually does not listen.
    pub fn new(host: &str, port: u16, auth: RpcAuth) -> Result<Self, RpcError> {
        let credentials = match &auth {
            RpcAuth::UserPass { user, pass } => encode_credentials(&format!("{user}:{pass}")),
            RpcAuth::CookieFile(path) => read_cookie(path).map_err(|source| RpcError::Cookie {
                path: path.clone(),
                source,
            })?,
        };
        let shared = Arc::new(Shared {
            host: host.to_string(),
            port,
            auth,
            credentials: RwLock::new(credentials),
            counters: RwLock::new(HashMap::new()),
            total: AtomicU64::new(0),
            network: OnceLock::new(),
        });
        let slot = Self::new_slot(&shared, "/".to_string());
        Ok(Self {
            shared,
            slot,
            timeout: DEFAULT_RPC_TIMEOUT,
        })
    }

    fn new_slot(shared: &Shared, path: String) -> Arc<ClientSlot> {
        let credentials = shared.credentials();
        let client = Self::make_client(shared, &path, &credentials);
        Arc::new(ClientSlot {
            path,
            current: RwLock::new((credentials, client)),
        })
    }

    fn make_client(shared: &Shared, path: &str, credentials: &str) -> Arc<RpcClient> {
        let endpoint = HttpEndpoint::for_host(shared.host.clone())
            .with_port(shared.port)
            .with_path(path.to_string());
        Arc::new(RpcClient::new(credentials, endpoint))
    }

    /// Returns a client for the wallet `name`: the same bitcoind, URL path `/wallet/<name>`.
    ///
    /// It shares this client's credentials and call counters.
    pub fn with_wallet(&self, name: &str) -> BitcoindRpc {
        let path = format!("/wallet/{}", percent_encode(name));
        let slot = Self::new_slot(&self.shared, path);
        Self {
            shared: Arc::clone(&self.shared),
            slot,
            timeout: self.timeout,
        }
    }

    /// Returns this client with every call bounded by `timeout` (default
    /// [`DEFAULT_RPC_TIMEOUT`]). A call that takes longer fails with [`RpcError::Unreachable`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL this client calls, `http://host:port/path`.
    pub fn url(&self) -> String {
        format!(
            "http://{}:{}{}",
            self.shared.host, self.shared.port, self.slot.path
        )
    }

    /// How many calls of `method` this client, its clones and its wallet clients have made
    /// (including the calls made through [`BlockSource`] and [`UtxoSource`]).
    pub fn call_count(&self, method: &str) -> u64 {
        let counters = self
            .shared
            .counters
            .read()
            .unwrap_or_else(|e| e.into_inner());
        counters
            .get(method)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// How many calls of any method this client, its clones and its wallet clients have made.
    pub fn total_calls(&self) -> u64 {
        self.shared.total.load(Ordering::Relaxed)
    }

    /// The current inner client, rebuilt first if the credentials changed.
    fn client(&self) -> Arc<RpcClient> {
        let credentials = self.shared.credentials();
        {
            let current = self.slot.current.read().unwrap_or_else(|e| e.into_inner());
            if current.0 == credentials {
                return Arc::clone(&current.1);
            }
        }
        let client = Self::make_client(&self.shared, &self.slot.path, &credentials);
        let mut current = self.slot.current.write().unwrap_or_else(|e| e.into_inner());
        *current = (credentials, Arc::clone(&client));
        client
    }

    /// Calls `method` with `params` and decodes the JSON `result` as `T`.
    ///
    /// With cookie authentication, a 401 makes the client re-read the cookie file and, if it
    /// changed, retry once.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &[Value],
    ) -> Result<T, RpcError> {
        let value = self.call_value(method, params).await?;
        serde_json::from_value(value).map_err(|e| RpcError::Decode {
            method: method.to_string(),
            detail: e.to_string(),
        })
    }

    async fn call_value(&self, method: &str, params: &[Value]) -> Result<Value, RpcError> {
        match self.call_once(method, params).await {
            Err(RpcError::Auth) if self.shared.refresh_cookie() => {
                self.call_once(method, params).await
            }
            other => other,
        }
    }

    async fn call_once(&self, method: &str, params: &[Value]) -> Result<Value, RpcError> {
        let client = self.client();
        self.shared.count(method);
        let call = client.call_method::<Value>(method, params);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.classify(method, e).await),
            Err(_) => Err(RpcError::Unreachable {
                url: self.url(),
                source: io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer to {method} within {:?}", self.timeout),
                ),
            }),
        }
    }

    /// Turns the `io::Error` of LDK's client into an [`RpcError`].
    async fn classify(&self, method: &str, e: io::Error) -> RpcError {
        use io::ErrorKind::*;
        if let Some(rpc) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<LdkRpcError>())
        {
            return RpcError::Rpc {
                code: rpc.code,
                message: rpc.message.clone(),
            };
        }
        let text = e.to_string();
        match e.kind() {
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
            | AddrNotAvailable | TimedOut | BrokenPipe | UnexpectedEof | HostUnreachable
            | NetworkUnreachable | WouldBlock => RpcError::Unreachable {
                url: self.url(),
                source: e,
            },
            // HTTP errors whose body was not JSON: "status_code: 401, contents: ...".
            Other if text.starts_with("status_code: 401") => RpcError::Auth,
            // bitcoind answers 401 and 403 with an empty body, which LDK's client rejects as
            // "invalid response length: 0 bytes" before it looks at the status: ask for the
            // status ourselves.
            InvalidData if text.starts_with("invalid response length: 0") => {
                match self.probe_status().await {
                    Ok(401) => RpcError::Auth,
                    Ok(403) => RpcError::Io {
                        method: method.to_string(),
                        source: io::Error::new(
                            PermissionDenied,
                            "HTTP 403: bitcoind refused this client (check -rpcallowip)",
                        ),
                    },
                    Ok(status) => RpcError::Decode {
                        method: method.to_string(),
                        detail: format!("empty HTTP response body (HTTP status {status})"),
                    },
                    Err(probe) => RpcError::Unreachable {
                        url: self.url(),
                        source: probe,
                    },
                }
            }
            InvalidData => RpcError::Decode {
                method: method.to_string(),
                detail: text,
            },
            _ => RpcError::Io {
                method: method.to_string(),
                source: e,
            },
        }
    }

    /// Sends an empty authenticated POST and returns the HTTP status. bitcoind checks the
    /// credentials before it parses the body, so this runs no RPC method.
    async fn probe_status(&self) -> io::Result<u16> {
        let probe = async {
            let addr = (self.shared.host.as_str(), self.shared.port);
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            let request = format!(
                "POST {} HTTP/1.1\r\nHost: {}:{}\r\nAuthorization: Basic {}\r\n\
				 Content-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.slot.path,
                self.shared.host,
                self.shared.port,
                self.shared.credentials()
            );
            stream.write_all(request.as_bytes()).await?;
            let mut line = String::new();
            tokio::io::BufReader::new(stream)
                .read_line(&mut line)
                .await?;
            // "HTTP/1.1 401 Unauthorized"
            line.split_whitespace()
                .nth(1)
                .and_then(|code| code.parse::<u16>().ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad status line {line:?}"),
                    )
                })
        };
        tokio::time::timeout(Duration::from_secs(10), probe)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "status probe")))
    }

    /// The network bitcoind runs on, from `getblockchaininfo` (asked once, then cached).
    pub async fn network(&self) -> Result<Network, RpcError> {
        if let Some(network) = self.shared.network.get() {
            return Ok(*network);
        }
        let chain = self.get_blockchain_info().await?.chain;
        let network = Network::from_core_arg(&chain).map_err(|e| RpcError::Decode {
            method: "getblockchaininfo".to_string(),
            detail: e.to_string(),
        })?;
        Ok(*self.shared.network.get_or_init(|| network))
    }

    // ---- chain -------------------------------------------------------------------------------

    /// `getblockchaininfo`.
    pub async fn get_blockchain_info(&self) -> Result<BlockchainInfo, RpcError> {
        self.call("getblockchaininfo", &[]).await
    }

    /// `getblockcount`: the height of the best block.
    pub async fn get_block_count(&self) -> Result<u32, RpcError> {
        self.call("getblockcount", &[]).await
    }

    /// `getbestblockhash`.
    pub async fn get_best_block_hash(&self) -> Result<BlockHash, RpcError> {
        self.call("getbestblockhash", &[]).await
    }

    /// `getblockhash height`: the hash of the best chain's block at `height`.
    pub async fn get_block_hash(&self, height: u32) -> Result<BlockHash, RpcError> {
        self.call("getblockhash", &[json!(height)]).await
    }

    /// `getblock hash 0`: the whole block, checked to have the requested hash.
    pub async fn get_block(&self, hash: &BlockHash) -> Result<Block, RpcError> {
        const METHOD: &str = "getblock";
        let hex: String = self
            .call(METHOD, &[json!(hash.to_string()), json!(0)])
            .await?;
        let block: Block = encode::deserialize_hex(&hex).map_err(|e| decode(METHOD, e))?;
        if block.block_hash() != *hash {
            return Err(decode(
                METHOD,
                format!("asked for {hash}, got {}", block.block_hash()),
            ));
        }
        Ok(block)
    }

    /// `getblockheader hash true`: the header and the block's height, checked to have the
    /// requested hash.
    pub async fn get_block_header(&self, hash: &BlockHash) -> Result<(Header, u32), RpcError> {
        const METHOD: &str = "getblockheader";
        let value: Value = self
            .call(METHOD, &[json!(hash.to_string()), json!(true)])
            .await?;
        let data = BlockHeaderData::try_from(value)
            .map_err(|()| decode(METHOD, "missing or malformed header fields"))?;
        if data.header.block_hash() != *hash {
            return Err(decode(
                METHOD,
                format!("asked for {hash}, got {}", data.header.block_hash()),
            ));
        }
        Ok((data.header, data.height))
    }

    /// `estimatesmartfee conf_target mode`: the fee rate in BTC/kvB, or `None` when bitcoind
    /// has too little data (usual on regtest). `mode` is `economical`, `conservative` or
    /// `unset`.
    pub async fn estimate_smart_fee(
        &self,
        conf_target: u16,
        mode: &str,
    ) -> Result<Option<f64>, RpcError> {
        #[derive(Deserialize)]
        struct Estimate {
            feerate: Option<f64>,
        }
        let estimate: Estimate = self
            .call("estimatesmartfee", &[json!(conf_target), json!(mode)])
            .await?;
        Ok(estimate.feerate)
    }

    /// `getmempoolinfo`'s `mempoolminfee`: the lowest fee rate, in BTC/kvB, the mempool accepts
    /// now (at least `-minrelaytxfee`).
    pub async fn get_mempool_min_fee(&self) -> Result<f64, RpcError> {
        #[derive(Deserialize)]
        struct MempoolInfo {
            mempoolminfee: f64,
        }
        let info: MempoolInfo = self.call("getmempoolinfo", &[]).await?;
        Ok(info.mempoolminfee)
    }

    /// `getrawmempool`: the txids in the mempool.
    pub async fn get_raw_mempool(&self) -> Result<Vec<Txid>, RpcError> {
        self.call("getrawmempool", &[]).await
    }

    /// `sendrawtransaction`: broadcasts `tx` and returns its txid.
    ///
    /// A transaction bitcoind already has counts as broadcast: error -27 (already in the chain,
    /// or its outputs already in the UTXO set) and -26 with `txn-already-known`,
    /// `txn-already-in-mempool` or `txn-same-nonwitness-data-in-mempool` (same txid, other
    /// witness) all return `Ok(txid)`.
    pub async fn send_raw_transaction(&self, tx: &Transaction) -> Result<Txid, RpcError> {
        let txid = tx.compute_txid();
        match self
            .call::<Txid>("sendrawtransaction", &[json!(encode::serialize_hex(tx))])
            .await
        {
            Ok(sent) => Ok(sent),
            Err(RpcError::Rpc { code, message }) if is_already_known(code, &message) => Ok(txid),
            Err(e) => Err(e),
        }
    }

    // ---- wallet and mining, for tests and development ----------------------------------------

    /// Creates the wallet `name`, or loads it if it exists; success if it is already loaded.
    /// Call it on the base client (without a wallet path).
    pub async fn create_wallet(&self, name: &str) -> Result<(), RpcError> {
        match self.call::<Value>("createwallet", &[json!(name)]).await {
            Ok(_) => return Ok(()),
            Err(RpcError::Rpc {
                code: RPC_WALLET_ERROR | RPC_WALLET_ALREADY_LOADED,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        match self.call::<Value>("loadwallet", &[json!(name)]).await {
            Ok(_)
            | Err(RpcError::Rpc {
                code: RPC_WALLET_ALREADY_LOADED,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `getnewaddress "" bech32`, checked against bitcoind's network. Needs a wallet client.
    pub async fn get_new_address(&self) -> Result<Address, RpcError> {
        const METHOD: &str = "getnewaddress";
        let text: String = self.call(METHOD, &[json!(""), json!("bech32")]).await?;
        let unchecked =
            Address::<NetworkUnchecked>::from_str(&text).map_err(|e| decode(METHOD, e))?;
        let network = self.network().await?;
        unchecked
            .require_network(network)
            .map_err(|e| decode(METHOD, e))
    }

    /// `generatetoaddress n address`: mines `n` blocks and returns their hashes.
    pub async fn generate_to_address(
        &self,
        n: u64,
        address: &Address,
    ) -> Result<Vec<BlockHash>, RpcError> {
        self.call("generatetoaddress", &[json!(n), json!(address.to_string())])
            .await
    }

    /// `sendtoaddress address amount`: pays `sat` satoshis from the wallet. Needs a wallet
    /// client whose wallet has spendable coins (or `-fallbackfee` on regtest).
    pub async fn send_to_address(&self, address: &Address, sat: u64) -> Result<Txid, RpcError> {
        // A decimal string, so no float rounding between us and bitcoind.
        let amount = Amount::from_sat(sat).to_string_in(Denomination::Bitcoin);
        self.call(
            "sendtoaddress",
            &[json!(address.to_string()), json!(amount)],
        )
        .await
    }

    /// `getbalance`: the wallet's trusted, mature balance. Needs a wallet client.
    pub async fn get_balance(&self) -> Result<Amount, RpcError> {
        let btc: f64 = self.call("getbalance", &[]).await?;
        Amount::from_btc(btc).map_err(|e| decode("getbalance", e))
    }

    // ---- LDK block source plumbing -------------------------------------------------------------

    /// Runs one [`BlockSource`]/[`UtxoSource`] call on the inner client: counted, bounded by
    /// the timeout, and followed by a cookie re-read when it fails.
    fn ldk_call<'a, T: 'a>(
        &'a self,
        method: &'static str,
        call: impl FnOnce(Arc<RpcClient>) -> AsyncBlockSourceResult<'a, T> + Send + 'a,
    ) -> AsyncBlockSourceResult<'a, T> {
        Box::pin(async move {
            let client = self.client();
            self.shared.count(method);
            let result = match tokio::time::timeout(self.timeout, call(client)).await {
                Ok(result) => result,
                Err(_) => Err(BlockSourceError::transient(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no answer to {method} from {} within {:?}",
                        self.url(),
                        self.timeout
                    ),
                ))),
            };
            if result.is_err() {
                self.shared.refresh_cookie();
            }
            result
        })
    }
}

/// Counted as `getblockheader`, `getblock` and `getblockchaininfo`: the methods LDK's
/// [`RpcClient`] calls (its `get_best_block` uses `getblockchaininfo`, not `getbestblockhash`).
impl BlockSource for BitcoindRpc {
    fn get_header<'a>(
        &'a self,
        header_hash: &'a BlockHash,
        height_hint: Option<u32>,
    ) -> AsyncBlockSourceResult<'a, BlockHeaderData> {
        self.ldk_call("getblockheader", move |c| {
            Box::pin(async move { c.get_header(header_hash, height_hint).await })
        })
    }

    fn get_block<'a>(
        &'a self,
        header_hash: &'a BlockHash,
    ) -> AsyncBlockSourceResult<'a, BlockData> {
        self.ldk_call("getblock", move |c| {
            Box::pin(async move { c.get_block(header_hash).await })
        })
    }

    fn get_best_block(&self) -> AsyncBlockSourceResult<'_, (BlockHash, Option<u32>)> {
        self.ldk_call("getblockchaininfo", |c| {
            Box::pin(async move { c.get_best_block().await })
        })
    }
}

/// Counted as `getblockhash` and `gettxout`.
impl UtxoSource for BitcoindRpc {
    fn get_block_hash_by_height<'a>(
        &'a self,
        block_height: u32,
    ) -> AsyncBlockSourceResult<'a, BlockHash> {
        self.ldk_call("getblockhash", move |c| {
            Box::pin(async move { c.get_block_hash_by_height(block_height).await })
        })
    }

    fn is_output_unspent<'a>(&'a self, outpoint: OutPoint) -> AsyncBlockSourceResult<'a, bool> {
        self.ldk_call("gettxout", move |c| {
            Box::pin(async move { c.is_output_unspent(outpoint).await })
        })
    }
}

fn decode(method: &str, detail: impl fmt::Display) -> RpcError {
    RpcError::Decode {
        method: method.to_string(),
        detail: detail.to_string(),
    }
}

fn is_already_known(code: i64, message: &str) -> bool {
    code == RPC_VERIFY_ALREADY_IN_CHAIN
        || (code == RPC_VERIFY_REJECTED
            && [
                "txn-already-known",
                "txn-already-in-mempool",
                "txn-same-nonwitness-data-in-mempool",
            ]
            .iter()
            .any(|m| message.contains(m)))
}

fn encode_credentials(user_pass: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(user_pass)
}

/// Reads a cookie file (`__cookie__:<hex>`) into base64 credentials.
fn read_cookie(path: &std::path::Path) -> io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let line = text.lines().next().unwrap_or("").trim();
    if !line.contains(':') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "expected a user:password line",
        ));
    }
    Ok(encode_credentials(line))
}

/// Percent-encodes a wallet name for the URL path (everything but RFC 3986 unreserved bytes).
fn percent_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[path = "rpc_tests.rs"]
mod tests;
