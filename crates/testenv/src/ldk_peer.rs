//! An independent Lightning peer for interop tests: `interop/ldk-peer`, one ldk-node 0.7.1
//! node in its own process, on the same regtest bitcoind as the test.
//!
//! [`LdkPeer::start`] spawns the binary, waits for its ready line and then drives it through
//! its JSON-lines protocol (one command per line on stdin, one answer per line on stdout; the
//! shapes are in `interop/ldk-peer/src/protocol.rs`). Each command has a typed async method.
//!
//! The binary is `LDK_PEER_EXE` if set, else `<workspace>/interop/ldk-peer/target/debug/ldk-peer`;
//! when that is missing it is built once per test process with `cargo build --manifest-path
//! <workspace>/interop/ldk-peer/Cargo.toml` (a separate cargo project: ldk-node's rusqlite
//! conflicts with the workspace's).
//!
//! [`teach_fee_rate`] makes bitcoind's `estimatesmartfee`, and so ldk-node, use a chosen fee
//! rate on regtest.

mod fees;
mod types;

pub use fees::{teach_fee_rate, TaughtFeeRate};
pub use types::{
    PeerBalances, PeerChannel, PeerConnection, PeerEvent, PeerInfo, PeerInvoice,
    PeerLightningBalance, PeerPayment, PeerPendingSweep, UserChannelId,
};

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bitcoin::address::NetworkUnchecked;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{Address, Txid};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::{free_port, Bitcoind, RpcError, TestEnvError};
use types::de_str;

/// How long an ordinary command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How long start-up may take (ldk-node syncs with bitcoind before it is ready).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How often start-up is retried when the chosen port was taken meanwhile.
const START_ATTEMPTS: usize = 5;

/// Errors from [`LdkPeer`] and [`teach_fee_rate`].
#[derive(Debug, thiserror::Error)]
pub enum LdkPeerError {
    /// The binary was missing and `cargo build` failed.
    #[error("building the ldk-peer binary failed ({command}): {output}")]
    Build {
        /// The command that was run.
        command: String,
        /// Its exit status and the tail of its output.
        output: String,
    },
    /// The process could not be started.
    #[error("cannot start {}: {source}", exe.display())]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// The peer refused to start (it printed `{"error": ...}` instead of its ready line).
    #[error("ldk-peer did not start: {message}; stderr: {stderr_tail}")]
    Startup {
        /// Its message.
        message: String,
        /// The tail of its stderr.
        stderr_tail: String,
    },
    /// The process is gone (or its stdout closed) before answering.
    #[error("ldk-peer exited ({status}) while {doing}; stderr: {stderr_tail}")]
    Exited {
        /// Its exit status, if it has one yet.
        status: String,
        /// What we were waiting for.
        doing: String,
        /// The tail of its stderr.
        stderr_tail: String,
    },
    /// A command answered `{"error": ...}`; the message starts with ldk-node's error variant
    /// (e.g. `InsufficientFunds: ...`) where ldk-node gave one.
    #[error("ldk-peer {command}: {message}")]
    Command {
        /// The command's name.
        command: String,
        /// The peer's message.
        message: String,
    },
    /// No answer in time. The protocol is out of step afterwards: later calls fail.
    #[error("timed out waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
    },
    /// An answer could not be decoded.
    #[error("cannot decode the answer to {command}: {detail} (line: {line})")]
    Decode {
        /// The command.
        command: String,
        /// What was wrong.
        detail: String,
        /// The line received.
        line: String,
    },
    /// Reading from or writing to the process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A bitcoind call of [`teach_fee_rate`] failed.
    #[error("bitcoind: {0}")]
    Rpc(#[from] RpcError),
    /// A harness call (mining) failed.
    #[error("{0}")]
    Harness(#[from] TestEnvError),
    /// bitcoind's estimates did not settle on the taught rate.
    #[error("fee rate not taught: {0}")]
    FeeRate(String),
}

type Result<T> = std::result::Result<T, LdkPeerError>;

#[derive(Deserialize)]
struct Ready {
    #[serde(deserialize_with = "de_str")]
    node_id: PublicKey,
    #[serde(deserialize_with = "de_str")]
    listen: std::net::SocketAddr,
}

struct Pipe {
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Set once an answer went missing: the next line would answer the wrong command.
    out_of_step: Option<String>,
}

/// A running `ldk-peer` process: one ldk-node node. Dropping it kills the process (SIGKILL);
/// its data directory, which the caller owns, is left alone.
pub struct LdkPeer {
    child: Child,
    pipe: tokio::sync::Mutex<Pipe>,
    node_id: PublicKey,
    listen: std::net::SocketAddr,
    dir: PathBuf,
}

impl fmt::Debug for LdkPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdkPeer")
            .field("pid", &self.child.id())
            .field("node_id", &self.node_id)
            .field("listen", &self.listen)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// `<workspace>/interop/ldk-peer`.
fn peer_project() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize()
        .unwrap_or(root)
        .join("interop")
        .join("ldk-peer")
}

/// The ldk-peer executable: `LDK_PEER_EXE`, else the debug build in the peer's project,
/// built (once per process) if it is missing.
pub async fn ldk_peer_exe() -> Result<PathBuf> {
    if let Some(exe) = std::env::var_os("LDK_PEER_EXE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(exe));
    }
    let project = peer_project();
    let exe = project.join("target").join("debug").join("ldk-peer");
    if exe.is_file() {
        return Ok(exe);
    }
    static BUILT: tokio::sync::OnceCell<std::result::Result<(), (String, String)>> =
        tokio::sync::OnceCell::const_new();
    let built = BUILT
        .get_or_init(|| async {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let manifest = project.join("Cargo.toml");
            let target = project.join("target");
            let command = format!(
                "cargo build --manifest-path {} --target-dir {}",
                manifest.display(),
                target.display()
            );
            eprintln!("ldk-peer is not built; running {command} (a few minutes the first time)");
            let output = tokio::process::Command::new(&cargo)
                .arg("build")
                .arg("--manifest-path")
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&target)
                .stdin(Stdio::null())
                .output()
                .await;
            match output {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err((
                    command,
                    format!(
                        "{}: {}",
                        out.status,
                        tail(&String::from_utf8_lossy(&out.stderr), 30)
                    ),
                )),
                Err(e) => Err((command, format!("cannot run cargo: {e}"))),
            }
        })
        .await;
    match built {
        Ok(()) if exe.is_file() => Ok(exe),
        Ok(()) => Err(LdkPeerError::Build {
            command: "cargo build".into(),
            output: format!("succeeded but {} is missing", exe.display()),
        }),
        Err((command, output)) => Err(LdkPeerError::Build {
            command: command.clone(),
            output: output.clone(),
        }),
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl LdkPeer {
    /// Starts a peer on `bitcoind` with its data in `dir` (created if missing; the caller owns
    /// it), listening on a free port of 127.0.0.1, with ldk-node's default anchor reserve.
    pub async fn start(bitcoind: &Bitcoind, dir: &Path) -> Result<LdkPeer> {
        Self::start_with(bitcoind, dir, &[]).await
    }

    /// [`start`](Self::start) with extra arguments for the binary, e.g.
    /// `["--anchor-reserve-sat", "10000"]` or `["--alias", "carol"]`.
    pub async fn start_with(bitcoind: &Bitcoind, dir: &Path, extra: &[&str]) -> Result<LdkPeer> {
        let exe = ldk_peer_exe().await?;
        std::fs::create_dir_all(dir).map_err(|e| LdkPeerError::Io {
            what: format!("creating {}", dir.display()),
            source: e,
        })?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::attempt(&exe, bitcoind, dir, extra).await {
                // ldk-node could not bind the port we picked: someone took it meanwhile.
                Err(LdkPeerError::Startup { message, .. })
                    if message.contains("InvalidSocketAddress") =>
                {
                    last = Some(message);
                }
                other => return other,
            }
        }
        Err(LdkPeerError::Startup {
            message: last.unwrap_or_default(),
            stderr_tail: "(the listening port was taken on every attempt)".into(),
        })
    }

    async fn attempt(
        exe: &Path,
        bitcoind: &Bitcoind,
        dir: &Path,
        extra: &[&str],
    ) -> Result<LdkPeer> {
        let listen = format!("127.0.0.1:{}", free_port());
        let stderr_path = dir.join("ldk-peer.stderr");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .map_err(|e| LdkPeerError::Io {
                what: format!("opening {}", stderr_path.display()),
                source: e,
            })?;
        let mut child = tokio::process::Command::new(exe)
            .arg("--data-dir")
            .arg(dir)
            .args(["--bitcoind-rpc-host", bitcoind.rpc_host()])
            .args(["--bitcoind-rpc-port", &bitcoind.rpc_port().to_string()])
            .args(["--rpc-user", bitcoind.rpc_user()])
            .args(["--rpc-password", bitcoind.rpc_password()])
            .args(["--listen", &listen])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LdkPeerError::Spawn {
                exe: exe.to_path_buf(),
                source: e,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("stdin and stdout are piped");
        };
        let mut pipe = Pipe {
            stdin,
            stdout: BufReader::new(stdout).lines(),
            out_of_step: None,
        };
        let line = match tokio::time::timeout(START_TIMEOUT, pipe.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = child.wait().await.map(|s| s.to_string());
                return Err(LdkPeerError::Exited {
                    status: status.unwrap_or_else(|e| e.to_string()),
                    doing: "starting".into(),
                    stderr_tail: tail(
                        &std::fs::read_to_string(&stderr_path).unwrap_or_default(),
                        20,
                    ),
                });
            }
            Err(_) => {
                return Err(LdkPeerError::Timeout {
                    what: format!(
                        "ldk-peer's ready line (stderr in {})",
                        stderr_path.display()
                    ),
                })
            }
        };
        let value: Value = serde_json::from_str(&line).map_err(|e| LdkPeerError::Decode {
            command: "start".into(),
            detail: e.to_string(),
            line: line.clone(),
        })?;
        if let Some(message) = value.get("error") {
            let _ = child.wait().await;
            return Err(LdkPeerError::Startup {
                message: message.as_str().unwrap_or_default().to_string(),
                stderr_tail: tail(
                    &std::fs::read_to_string(&stderr_path).unwrap_or_default(),
                    20,
                ),
            });
        }
        let ready: Ready =
            serde_json::from_value(value["ready"].clone()).map_err(|e| LdkPeerError::Decode {
                command: "start".into(),
                detail: e.to_string(),
                line: line.clone(),
            })?;
        Ok(LdkPeer {
            child,
            pipe: tokio::sync::Mutex::new(pipe),
            node_id: ready.node_id,
            listen: ready.listen,
            dir: dir.to_path_buf(),
        })
    }

    /// The node id.
    pub fn node_id(&self) -> PublicKey {
        self.node_id
    }

    /// Where it listens for Lightning peers.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        self.listen
    }

    /// Its data directory (ldk-node's `ldk_node.log` and our `ldk-peer.stderr` are there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends one command and decodes the `ok` part of its answer as `T`.
    async fn call<T: DeserializeOwned>(&self, command: Value, timeout: Duration) -> Result<T> {
        let name = command["cmd"].as_str().unwrap_or("?").to_string();
        let mut pipe = self.pipe.lock().await;
        if let Some(what) = &pipe.out_of_step {
            return Err(LdkPeerError::Timeout {
                what: format!("{what} (earlier; the peer is out of step)"),
            });
        }
        let mut line = command.to_string();
        line.push('\n');
        if let Err(e) = pipe.stdin.write_all(line.as_bytes()).await {
            return Err(self.exited(&name, e.to_string()));
        }
        let _ = pipe.stdin.flush().await;
        let answer = match tokio::time::timeout(timeout, pipe.stdout.next_line()).await {
            Ok(Ok(Some(answer))) => answer,
            Ok(Ok(None)) => return Err(self.exited(&name, "end of output".into())),
            Ok(Err(e)) => return Err(self.exited(&name, e.to_string())),
            Err(_) => {
                let what = format!("ldk-peer's answer to {name}");
                pipe.out_of_step = Some(what.clone());
                return Err(LdkPeerError::Timeout { what });
            }
        };
        drop(pipe);
        let decode = |detail: String| LdkPeerError::Decode {
            command: name.clone(),
            detail,
            line: answer.clone(),
        };
        let mut value: Value = serde_json::from_str(&answer).map_err(|e| decode(e.to_string()))?;
        if let Some(message) = value.get("error") {
            return Err(LdkPeerError::Command {
                command: name,
                message: message.as_str().unwrap_or_default().to_string(),
            });
        }
        let ok = value
            .get_mut("ok")
            .map(Value::take)
            .ok_or_else(|| decode("neither ok nor error".into()))?;
        serde_json::from_value(ok).map_err(|e| decode(e.to_string()))
    }

    fn exited(&self, command: &str, detail: String) -> LdkPeerError {
        LdkPeerError::Exited {
            status: detail,
            doing: format!("answering {command}"),
            stderr_tail: tail(
                &std::fs::read_to_string(self.dir.join("ldk-peer.stderr")).unwrap_or_default(),
                20,
            ),
        }
    }

    /// The node's id, addresses, best block and sync timestamps.
    pub async fn info(&self) -> Result<PeerInfo> {
        self.call(json!({"cmd": "info"}), COMMAND_TIMEOUT).await
    }

    /// `Node::sync_wallets`: refreshes ldk-node's fee-rate cache and catches its wallet and
    /// channels up with bitcoind's tip, before returning.
    pub async fn sync(&self) -> Result<()> {
        self.call(json!({"cmd": "sync"}), COMMAND_TIMEOUT).await
    }

    /// A fresh address of the node's on-chain wallet.
    pub async fn new_address(&self) -> Result<Address> {
        #[derive(Deserialize)]
        struct A {
            address: Address<NetworkUnchecked>,
        }
        let a: A = self
            .call(json!({"cmd": "new_address"}), COMMAND_TIMEOUT)
            .await?;
        Ok(a.address.assume_checked())
    }

    /// Every balance ldk-node knows.
    pub async fn balances(&self) -> Result<PeerBalances> {
        self.call(json!({"cmd": "balances"}), COMMAND_TIMEOUT).await
    }

    /// Connects to `node_id` at `addr` (and remembers it).
    pub async fn connect(&self, node_id: PublicKey, addr: std::net::SocketAddr) -> Result<()> {
        let cmd =
            json!({"cmd": "connect", "node_id": node_id.to_string(), "addr": addr.to_string()});
        self.call(cmd, COMMAND_TIMEOUT).await
    }

    /// The peers ldk-node knows.
    pub async fn peers(&self) -> Result<Vec<PeerConnection>> {
        self.call(json!({"cmd": "peers"}), COMMAND_TIMEOUT).await
    }

    /// Connects to `node_id` at `addr` and opens a channel of `sat`, pushing `push_msat`;
    /// `announce` opens an announced channel. Returns when the open is under way (watch for
    /// [`PeerEvent::ChannelPending`]).
    pub async fn open_channel(
        &self,
        node_id: PublicKey,
        addr: std::net::SocketAddr,
        sat: u64,
        push_msat: u64,
        announce: bool,
    ) -> Result<UserChannelId> {
        #[derive(Deserialize)]
        struct Opened {
            user_channel_id: UserChannelId,
        }
        let cmd = json!({
            "cmd": "open_channel", "node_id": node_id.to_string(), "addr": addr.to_string(),
            "sat": sat, "push_msat": push_msat, "announce": announce,
        });
        let opened: Opened = self.call(cmd, COMMAND_TIMEOUT).await?;
        Ok(opened.user_channel_id)
    }

    /// Every channel.
    pub async fn channels(&self) -> Result<Vec<PeerChannel>> {
        self.call(json!({"cmd": "channels"}), COMMAND_TIMEOUT).await
    }

    /// A BOLT11 invoice for `amount_msat`.
    pub async fn invoice(
        &self,
        amount_msat: u64,
        description: &str,
        expiry_secs: u32,
    ) -> Result<PeerInvoice> {
        let cmd = json!({
            "cmd": "invoice", "amount_msat": amount_msat, "description": description,
            "expiry_secs": expiry_secs,
        });
        self.call(cmd, COMMAND_TIMEOUT).await
    }

    /// A hold invoice for `amount_msat` paying to `payment_hash` (32 bytes, hex), whose
    /// preimage only the caller knows: a payment to it stays in flight
    /// ([`PeerEvent::PaymentClaimable`]) until [`claim_for_hash`](Self::claim_for_hash) or
    /// [`fail_for_hash`](Self::fail_for_hash).
    pub async fn hold_invoice(
        &self,
        amount_msat: u64,
        payment_hash: &str,
        description: &str,
        expiry_secs: u32,
    ) -> Result<PeerInvoice> {
        let cmd = json!({
            "cmd": "hold_invoice", "amount_msat": amount_msat, "payment_hash": payment_hash,
            "description": description, "expiry_secs": expiry_secs,
        });
        self.call(cmd, COMMAND_TIMEOUT).await
    }

    /// Claims a held payment with its preimage (hex); `claimable_amount_msat` is the amount of
    /// its [`PeerEvent::PaymentClaimable`]. Works after the channel closed too: ldk-node then
    /// claims the HTLC on chain.
    pub async fn claim_for_hash(
        &self,
        payment_hash: &str,
        claimable_amount_msat: u64,
        preimage: &str,
    ) -> Result<()> {
        let cmd = json!({
            "cmd": "claim_for_hash", "payment_hash": payment_hash,
            "claimable_amount_msat": claimable_amount_msat, "preimage": preimage,
        });
        self.call(cmd, COMMAND_TIMEOUT).await
    }

    /// Fails a held payment back to the payer.
    pub async fn fail_for_hash(&self, payment_hash: &str) -> Result<()> {
        let cmd = json!({"cmd": "fail_for_hash", "payment_hash": payment_hash});
        self.call(cmd, COMMAND_TIMEOUT).await
    }

    /// Starts paying a BOLT11 invoice; returns the payment id (hex). See
    /// [`wait_payment`](Self::wait_payment).
    pub async fn pay(&self, bolt11: &str) -> Result<String> {
        self.payment_id(json!({"cmd": "pay", "bolt11": bolt11}))
            .await
    }

    /// Starts a keysend payment; returns the payment id (hex).
    pub async fn keysend(&self, node_id: PublicKey, amount_msat: u64) -> Result<String> {
        let cmd =
            json!({"cmd": "keysend", "node_id": node_id.to_string(), "amount_msat": amount_msat});
        self.payment_id(cmd).await
    }

    async fn payment_id(&self, cmd: Value) -> Result<String> {
        #[derive(Deserialize)]
        struct Started {
            payment_id: String,
        }
        let started: Started = self.call(cmd, COMMAND_TIMEOUT).await?;
        Ok(started.payment_id)
    }

    /// One payment by id.
    pub async fn payment(&self, payment_id: &str) -> Result<PeerPayment> {
        let cmd = json!({"cmd": "payment", "payment_id": payment_id});
        self.call(cmd, COMMAND_TIMEOUT).await
    }

    /// Polls [`payment`](Self::payment) until it is no longer pending.
    pub async fn wait_payment(&self, payment_id: &str, timeout: Duration) -> Result<PeerPayment> {
        let deadline = Instant::now() + timeout;
        loop {
            let payment = self.payment(payment_id).await?;
            if payment.status != "pending" {
                return Ok(payment);
            }
            if Instant::now() >= deadline {
                return Err(LdkPeerError::Timeout {
                    what: format!("payment {payment_id} to resolve"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Pays `sat` on chain to `address`; `sat_per_vb` of `None` uses ldk-node's estimate for
    /// on-chain payments (`estimatesmartfee 6 ECONOMICAL`).
    pub async fn send_onchain(
        &self,
        address: &Address,
        sat: u64,
        sat_per_vb: Option<u64>,
    ) -> Result<Txid> {
        #[derive(Deserialize)]
        struct Sent {
            #[serde(deserialize_with = "de_str")]
            txid: Txid,
        }
        let cmd = json!({
            "cmd": "send_onchain", "address": address.to_string(), "sat": sat,
            "sat_per_vb": sat_per_vb,
        });
        let sent: Sent = self.call(cmd, COMMAND_TIMEOUT).await?;
        Ok(sent.txid)
    }

    /// Starts a cooperative close.
    pub async fn close(&self, id: UserChannelId, counterparty: PublicKey) -> Result<()> {
        let cmd = json!({
            "cmd": "close", "user_channel_id": id.to_string(),
            "counterparty": counterparty.to_string(),
        });
        self.call(cmd, COMMAND_TIMEOUT).await
    }

    /// Force-closes, broadcasting our commitment.
    pub async fn force_close(
        &self,
        id: UserChannelId,
        counterparty: PublicKey,
        reason: Option<&str>,
    ) -> Result<()> {
        let cmd = json!({
            "cmd": "force_close", "user_channel_id": id.to_string(),
            "counterparty": counterparty.to_string(), "reason": reason,
        });
        self.call(cmd, COMMAND_TIMEOUT).await
    }

    /// The event at the head of the queue, if any, without waiting. It stays there until
    /// [`event_handled`](Self::event_handled).
    pub async fn next_event(&self) -> Result<Option<PeerEvent>> {
        self.call(json!({"cmd": "next_event"}), COMMAND_TIMEOUT)
            .await
    }

    /// Like [`next_event`](Self::next_event), waiting up to `timeout` for one.
    pub async fn wait_event(&self, timeout: Duration) -> Result<Option<PeerEvent>> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let cmd = json!({"cmd": "wait_event", "timeout_ms": ms});
        self.call(cmd, timeout + COMMAND_TIMEOUT).await
    }

    /// Removes the event at the head of the queue.
    pub async fn event_handled(&self) -> Result<()> {
        self.call(json!({"cmd": "event_handled"}), COMMAND_TIMEOUT)
            .await
    }

    /// Takes events off the queue (marking each handled) until one matches `pred`, and
    /// returns it; fails after `timeout`.
    pub async fn expect_event(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&PeerEvent) -> bool,
    ) -> Result<PeerEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(event) = self.wait_event(left).await? else {
                return Err(LdkPeerError::Timeout {
                    what: format!("ldk-peer event: {what}"),
                });
            };
            self.event_handled().await?;
            if pred(&event) {
                return Ok(event);
            }
        }
    }

    /// Stops the node cleanly and waits for the process to exit.
    pub async fn stop(mut self) -> Result<()> {
        self.call::<()>(json!({"cmd": "stop"}), COMMAND_TIMEOUT)
            .await?;
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(LdkPeerError::Io {
                what: "waiting for ldk-peer to exit".into(),
                source: e,
            }),
            Err(_) => Err(LdkPeerError::Timeout {
                what: "ldk-peer to exit after stop".into(),
            }),
        }
    }
}

impl Drop for LdkPeer {
    fn drop(&mut self) {
        // SIGKILL by PID, then reap it so no zombie is left behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.start_kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
