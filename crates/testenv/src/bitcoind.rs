//! A real bitcoind on regtest, one per test.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Once, OnceLock};
use std::time::{Duration, Instant};

use bitcoin::{Address, Amount, BlockHash, Txid};
use micronode_chain::rpc::{BitcoindRpc, RpcAuth, RpcError};
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};

use crate::{process_alive, try_free_port, wait_until, TestEnvError};

/// The wallet [`Bitcoind`] creates and that [`Bitcoind::wallet_rpc`] targets.
pub const WALLET_NAME: &str = "testenv";

/// Prefix of every datadir this crate creates, followed by the owning process's PID.
const DATADIR_PREFIX: &str = "micronode-testenv-bitcoind-";
/// bitcoind's `RPC_WALLET_INSUFFICIENT_FUNDS`.
const RPC_WALLET_INSUFFICIENT_FUNDS: i64 = -6;
/// How often a startup is retried after a port clash.
const START_ATTEMPTS: usize = 5;
/// How long [`Bitcoind::stop`] waits for a clean exit before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for [`Bitcoind::start_with`].
#[derive(Clone, Debug)]
pub struct BitcoindOptions {
    /// Extra command-line arguments, appended after the harness's own (so they win where
    /// bitcoind takes the last value), e.g. `-txindex` or `-zmqpubrawblock=tcp://127.0.0.1:N`.
    pub extra_args: Vec<String>,
    /// How long to wait for the RPC server to answer (default 30 s).
    pub startup_timeout: Duration,
    /// The executable to run; `None` means [`find_bitcoind_exe`].
    pub exe: Option<PathBuf>,
    /// A datadir to use and keep (created if missing); `None` makes a throw-away one that is
    /// removed on drop.
    pub persistent_datadir: Option<PathBuf>,
}

impl Default for BitcoindOptions {
    fn default() -> Self {
        Self {
            extra_args: Vec::new(),
            startup_timeout: Duration::from_secs(30),
            exe: None,
            persistent_datadir: None,
        }
    }
}

/// A bitcoind on regtest, owned by one test.
///
/// It has its own RPC port, its own random RPC credentials and its own datadir (on `/dev/shm`
/// when possible). Dropping it kills the process (SIGKILL, by PID) and removes the datadir.
/// The process is also killed if the test process dies without dropping it.
pub struct Bitcoind {
    child: Option<Child>,
    pid: u32,
    exe: PathBuf,
    datadir: PathBuf,
    rpc_host: String,
    rpc_port: u16,
    p2p_port: u16,
    rpc_user: String,
    rpc_password: String,
    rpc: BitcoindRpc,
    wallet: BitcoindRpc,
    mining_address: tokio::sync::OnceCell<Address>,
    has_mature_coins: AtomicBool,
    keep_datadir: bool,
    /// The command line, for [`Bitcoind::restart`].
    args: Vec<String>,
}

impl std::fmt::Debug for Bitcoind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitcoind")
            .field("pid", &self.pid)
            .field("rpc_port", &self.rpc_port)
            .field("datadir", &self.datadir)
            .finish_non_exhaustive()
    }
}

/// Why one startup attempt failed.
enum AttemptError {
    /// A port was taken after we picked it: try again with new ports.
    PortClash(TestEnvError),
    /// Anything else.
    Fatal(TestEnvError),
}

impl Bitcoind {
    /// Starts bitcoind with default options; see [`start_with`](Self::start_with).
    pub async fn start() -> Result<Bitcoind, TestEnvError> {
        Self::start_with(BitcoindOptions::default()).await
    }

    /// Starts bitcoind, waits until its RPC server answers and creates (or loads) the wallet
    /// [`WALLET_NAME`]. Retries with new ports when a port was taken meanwhile.
    pub async fn start_with(options: BitcoindOptions) -> Result<Bitcoind, TestEnvError> {
        let exe = match &options.exe {
            Some(exe) => exe.clone(),
            None => find_bitcoind_exe()?,
        };
        sweep_stale_datadirs();
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::attempt(&exe, &options).await {
                Ok(bitcoind) => return Ok(bitcoind),
                Err(AttemptError::PortClash(e)) => last = Some(e),
                Err(AttemptError::Fatal(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or(TestEnvError::Timeout {
            what: "a bitcoind startup".into(),
        }))
    }

    async fn attempt(exe: &Path, options: &BitcoindOptions) -> Result<Bitcoind, AttemptError> {
        use AttemptError::Fatal;
        let rpc_port = try_free_port().map_err(Fatal)?;
        let p2p_port = try_free_port().map_err(Fatal)?;
        let datadir = match &options.persistent_datadir {
            Some(dir) => {
                fs::create_dir_all(dir).map_err(|e| {
                    Fatal(TestEnvError::io(format!("creating {}", dir.display()), e))
                })?;
                dir.clone()
            }
            None => new_datadir().map_err(Fatal)?,
        };
        let rpc_host = "127.0.0.1".to_string();
        let rpc_user = format!("testenv-{}", random_string(8));
        let rpc_password = random_string(32);
        let auth = RpcAuth::UserPass {
            user: rpc_user.clone(),
            pass: rpc_password.clone(),
        };
        // Both clients are fresh, so their call counters start at zero even when the
        // harness's own startup calls were needed.
        let make_rpc = || BitcoindRpc::new(&rpc_host, rpc_port, auth.clone());
        let (startup_rpc, rpc) = match (make_rpc(), make_rpc()) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Err(Fatal(e.into())),
        };
        let wallet = rpc.with_wallet(WALLET_NAME);

        let stderr_path = datadir.join("stderr.log");
        let stderr = File::create(&stderr_path).map_err(|e| {
            Fatal(TestEnvError::io(
                format!("creating {}", stderr_path.display()),
                e,
            ))
        })?;
        let args: Vec<String> = [
            "-regtest".to_string(),
            "-server".to_string(),
            "-listen=0".to_string(),
            "-rpcbind=127.0.0.1".to_string(),
            "-rpcallowip=127.0.0.1".to_string(),
            format!("-rpcport={rpc_port}"),
            format!("-port={p2p_port}"),
            format!("-rpcuser={rpc_user}"),
            format!("-rpcpassword={rpc_password}"),
            "-fallbackfee=0.0002".to_string(),
            // Tests look confirmed transactions up by txid.
            "-txindex=1".to_string(),
            "-debug=rpc".to_string(),
            // What the mempool took, refused or dropped, for a test's failure message.
            "-debug=mempool".to_string(),
            "-printtoconsole=0".to_string(),
            format!("-datadir={}", datadir.display()),
        ]
        .into_iter()
        .chain(options.extra_args.iter().cloned())
        .collect();
        let mut cmd = Command::new(exe);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = match spawn_child(cmd) {
            Ok(child) => child,
            Err(source) => {
                if options.persistent_datadir.is_none() {
                    let _ = fs::remove_dir_all(&datadir);
                }
                return Err(Fatal(TestEnvError::Spawn {
                    exe: exe.to_path_buf(),
                    source,
                }));
            }
        };
        let mut bitcoind = Bitcoind {
            pid: child.id(),
            child: Some(child),
            exe: exe.to_path_buf(),
            datadir,
            rpc_host: rpc_host.clone(),
            rpc_port,
            p2p_port,
            rpc_user,
            rpc_password,
            rpc,
            wallet,
            mining_address: tokio::sync::OnceCell::new(),
            has_mature_coins: AtomicBool::new(false),
            keep_datadir: options.persistent_datadir.is_some(),
            args,
        };
        // From here on, dropping `bitcoind` cleans up on every error path.
        bitcoind
            .wait_ready(&startup_rpc, options.startup_timeout)
            .await?;
        startup_rpc
            .create_wallet(WALLET_NAME)
            .await
            .map_err(|e| Fatal(e.into()))?;
        Ok(bitcoind)
    }

    /// Polls `getblockchaininfo` until it answers, watching for an early exit.
    async fn wait_ready(
        &mut self,
        rpc: &BitcoindRpc,
        timeout: Duration,
    ) -> Result<(), AttemptError> {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => {
                    return Err(AttemptError::Fatal(TestEnvError::io(
                        "waiting for bitcoind",
                        e,
                    )))
                }
                None => Some("not running".to_string()),
            };
            if let Some(status) = exited {
                self.child = None;
                let stderr =
                    fs::read_to_string(self.datadir.join("stderr.log")).unwrap_or_default();
                let log_tail = self.debug_log_tail(12);
                let clash = [&stderr, &log_tail].iter().any(|t| {
                    let t = t.to_ascii_lowercase();
                    t.contains("unable to bind") || t.contains("address already in use")
                });
                let e = TestEnvError::Exited {
                    status,
                    stderr: stderr.trim().to_string(),
                    log_tail,
                };
                return Err(if clash {
                    AttemptError::PortClash(e)
                } else {
                    AttemptError::Fatal(e)
                });
            }
            // A 401 here may be another test's bitcoind on a port we both picked: keep polling
            // until ours either answers or exits.
            let last_error = match rpc.get_blockchain_info().await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(AttemptError::Fatal(TestEnvError::Timeout {
                    what: format!(
						"bitcoind (pid {}) to answer RPC on port {} within {timeout:?}; last error: \
						 {last_error}",
						self.pid, self.rpc_port
					),
                }));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client for the node, without a wallet path. Its call counters count only the calls
    /// made through it (and its clones), not the harness's startup calls.
    pub fn rpc(&self) -> &BitcoindRpc {
        &self.rpc
    }

    /// A client for the [`WALLET_NAME`] wallet (shares [`rpc`](Self::rpc)'s counters).
    pub fn wallet_rpc(&self) -> BitcoindRpc {
        self.wallet.clone()
    }

    /// The RPC host, `127.0.0.1`.
    pub fn rpc_host(&self) -> &str {
        &self.rpc_host
    }

    /// The RPC port.
    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// The P2P port passed as `-port` (nothing listens on it: the node runs with `-listen=0`
    /// unless `extra_args` say otherwise).
    pub fn p2p_port(&self) -> u16 {
        self.p2p_port
    }

    /// The RPC user name (random).
    pub fn rpc_user(&self) -> &str {
        &self.rpc_user
    }

    /// The RPC password (random).
    pub fn rpc_password(&self) -> &str {
        &self.rpc_password
    }

    /// Points a `micronode node run` or `host run` command at this bitcoind: its RPC address
    /// and user as flags, its password in the environment (never on a command line).
    pub fn point_daemon<'c>(
        &self,
        command: &'c mut std::process::Command,
    ) -> &'c mut std::process::Command {
        command
            .arg("--bitcoind-rpc")
            .arg(format!("{}:{}", self.rpc_host(), self.rpc_port()))
            .arg("--bitcoind-rpc-user")
            .arg(self.rpc_user())
            .env("MICRONODE_BITCOIND_RPC_PASSWORD", self.rpc_password())
    }

    /// The RPC credentials, for building more clients.
    pub fn rpc_auth(&self) -> RpcAuth {
        RpcAuth::UserPass {
            user: self.rpc_user.clone(),
            pass: self.rpc_password.clone(),
        }
    }

    /// The datadir (removed on drop).
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// `<datadir>/regtest/debug.log`.
    pub fn debug_log_path(&self) -> PathBuf {
        self.datadir.join("regtest").join("debug.log")
    }

    /// The process ID. The process is the glibc loader running bitcoind when bitcoind is the
    /// wrapper `scripts/install-bitcoind.sh` writes, so look it up by PID, never by name.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The executable that was started.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Mines `n` blocks to an address of the [`WALLET_NAME`] wallet.
    pub async fn mine(&self, n: u64) -> Result<Vec<BlockHash>, TestEnvError> {
        let address = self
            .mining_address
            .get_or_try_init(|| async { self.wallet.get_new_address().await })
            .await?;
        let hashes = self.mine_to(address, n).await?;
        if n >= 101 {
            self.has_mature_coins.store(true, Ordering::Relaxed);
        }
        Ok(hashes)
    }

    /// Mines `n` blocks to `address`.
    pub async fn mine_to(&self, address: &Address, n: u64) -> Result<Vec<BlockHash>, TestEnvError> {
        Ok(self.rpc.generate_to_address(n, address).await?)
    }

    /// Pays `sat` satoshis to `address` from the [`WALLET_NAME`] wallet (`sendtoaddress`) and
    /// returns the txid; the transaction is in the mempool, not mined. Mines 101 blocks first
    /// when the wallet has no mature coins yet, and once more if the wallet runs out.
    pub async fn fund_address(&self, address: &Address, sat: u64) -> Result<Txid, TestEnvError> {
        if !self.has_mature_coins.load(Ordering::Relaxed) {
            let needed = Amount::from_sat(sat) + Amount::from_sat(100_000);
            if self.wallet.get_balance().await? < needed {
                self.mine(101).await?;
            }
            self.has_mature_coins.store(true, Ordering::Relaxed);
        }
        let txid = self.send_from_wallet(address, sat).await?;
        let Some(reason) = self.mempool_refusal(&txid).await? else {
            return Ok(txid);
        };
        // `sendtoaddress` returns the txid even when the mempool refuses the transaction (the
        // wallet keeps it to broadcast later), and a test waiting for the funds then waits in
        // vain. Say why, give the coins back to the wallet, and pay once more on a new block.
        eprintln!("bitcoind's mempool refused {txid} ({reason}); paying again on a new block");
        let _ = self
            .wallet
            .call::<Value>("abandontransaction", &[json!(txid.to_string())])
            .await;
        self.mine(1).await?;
        let retry = self.send_from_wallet(address, sat).await?;
        match self.mempool_refusal(&retry).await? {
            None => Ok(retry),
            Some(reason) => Err(TestEnvError::NotInMempool {
                txid: retry,
                reason,
            }),
        }
    }

    async fn send_from_wallet(&self, address: &Address, sat: u64) -> Result<Txid, TestEnvError> {
        match self.wallet.send_to_address(address, sat).await {
            Err(RpcError::Rpc {
                code: RPC_WALLET_INSUFFICIENT_FUNDS,
                ..
            }) => {
                self.mine(101).await?;
                Ok(self.wallet.send_to_address(address, sat).await?)
            }
            other => Ok(other?),
        }
    }

    /// `None` when `txid` is in the mempool; otherwise what `testmempoolaccept` says of the
    /// wallet's copy, and the lines of bitcoind's log that name it.
    async fn mempool_refusal(&self, txid: &Txid) -> Result<Option<String>, TestEnvError> {
        let id = json!(txid.to_string());
        if self
            .rpc
            .call::<Value>("getmempoolentry", std::slice::from_ref(&id))
            .await
            .is_ok()
        {
            return Ok(None);
        }
        let wallet_tx: Value = self.wallet.call("gettransaction", &[id]).await?;
        if wallet_tx["confirmations"].as_i64().is_some_and(|c| c > 0) {
            return Ok(None);
        }
        let verdict = match wallet_tx["hex"].as_str() {
            Some(hex) => self
                .rpc
                .call::<Value>("testmempoolaccept", &[json!([hex])])
                .await
                .map(|v| v.to_string())
                .unwrap_or_else(|e| e.to_string()),
            None => "the wallet has no copy".to_string(),
        };
        Ok(Some(format!(
            "confirmations {}, testmempoolaccept {verdict}, log {:?}",
            wallet_tx["confirmations"],
            self.log_lines_naming(&txid.to_string())
        )))
    }

    /// The lines of bitcoind's `debug.log` that contain `needle` (a txid, say), for a test's
    /// failure message. Empty when the log cannot be read.
    pub fn log_lines_naming(&self, needle: &str) -> Vec<String> {
        fs::read_to_string(self.debug_log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Waits until `txid` is in the mempool.
    pub async fn wait_for_mempool_tx(
        &self,
        txid: &Txid,
        timeout: Duration,
    ) -> Result<(), TestEnvError> {
        let rpc = &self.rpc;
        wait_until(
            &format!("transaction {txid} in the mempool"),
            timeout,
            move || async move {
                rpc.get_raw_mempool()
                    .await
                    .is_ok_and(|txids| txids.contains(txid))
            },
        )
        .await
    }

    /// How many calls of `method` bitcoind has logged in its `debug.log` (lines
    /// `... [rpc] ThreadRPCServer method=<method> user=<user>`; the name must match exactly).
    ///
    /// This counts every request bitcoind handled, from any client, including the harness's
    /// own. LDK's HTTP client sends a request twice when bitcoind answers with an error, so a
    /// failed call shows up twice here.
    pub fn count_rpc_calls(&self, method: &str) -> Result<usize, TestEnvError> {
        let path = self.debug_log_path();
        let log = fs::read_to_string(&path)
            .map_err(|e| TestEnvError::io(format!("reading {}", path.display()), e))?;
        Ok(count_method_lines(&log, method))
    }

    /// Stops bitcoind: RPC `stop`, then waits up to 30 s for it to exit, then SIGKILL by PID.
    /// The datadir stays until drop.
    pub async fn stop(&mut self) -> Result<(), TestEnvError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        if child
            .try_wait()
            .map_err(|e| TestEnvError::io("checking bitcoind", e))?
            .is_none()
        {
            // An error here (e.g. it is already exiting) is settled by the wait below.
            let _ = self.rpc.call::<Value>("stop", &[]).await;
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                match child.try_wait() {
                    Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                    _ => break,
                }
            }
        }
        let result = kill_and_reap(child);
        self.child = None;
        result.map_err(|e| TestEnvError::io(format!("killing bitcoind (pid {})", self.pid), e))
    }

    /// Starts bitcoind again after [`stop`](Self::stop): same executable, datadir, ports and
    /// credentials, so clients made before keep working. Waits until it answers and has its
    /// wallet loaded. Does nothing if it is running.
    pub async fn restart(&mut self) -> Result<(), TestEnvError> {
        if self.child.is_some() {
            return Ok(());
        }
        let stderr_path = self.datadir.join("stderr.log");
        let stderr = File::create(&stderr_path)
            .map_err(|e| TestEnvError::io(format!("creating {}", stderr_path.display()), e))?;
        let mut cmd = Command::new(&self.exe);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = spawn_child(cmd).map_err(|source| TestEnvError::Spawn {
            exe: self.exe.clone(),
            source,
        })?;
        self.pid = child.id();
        self.child = Some(child);
        let startup = BitcoindRpc::new(&self.rpc_host, self.rpc_port, self.rpc_auth())?;
        self.wait_ready(&startup, Duration::from_secs(30))
            .await
            .map_err(|e| match e {
                AttemptError::PortClash(e) | AttemptError::Fatal(e) => e,
            })?;
        startup.create_wallet(WALLET_NAME).await?;
        Ok(())
    }

    /// Freezes bitcoind (SIGSTOP): it still accepts connections (the kernel does) but answers
    /// nothing, like a hung bitcoind. [`resume`](Self::resume) it before [`stop`](Self::stop);
    /// drop kills it either way.
    pub fn pause(&self) -> Result<(), TestEnvError> {
        self.signal(libc::SIGSTOP, "pausing")
    }

    /// Lets a [`pause`](Self::pause)d bitcoind run again (SIGCONT).
    pub fn resume(&self) -> Result<(), TestEnvError> {
        self.signal(libc::SIGCONT, "resuming")
    }

    fn signal(&self, signal: libc::c_int, what: &str) -> Result<(), TestEnvError> {
        let pid = libc::pid_t::try_from(self.pid).map_err(|_| {
            TestEnvError::io(what, io::Error::new(io::ErrorKind::InvalidInput, "pid"))
        })?;
        if self.child.is_none() {
            return Err(TestEnvError::io(
                what,
                io::Error::new(io::ErrorKind::NotFound, "bitcoind is not running"),
            ));
        }
        // SAFETY: kill(2) on our own child, which is not reaped while `child` is set.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(TestEnvError::io(
                format!("{what} bitcoind (pid {pid})"),
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn debug_log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(self.debug_log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Bitcoind {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill_and_reap(&mut child);
        }
        if !self.keep_datadir {
            let _ = fs::remove_dir_all(&self.datadir);
        }
    }
}

/// SIGKILLs the child by PID if it is still running, then reaps it.
fn kill_and_reap(child: &mut Child) -> io::Result<()> {
    if child.try_wait()?.is_none() {
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: plain kill(2) on our own, not yet reaped, child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        child.wait()?;
    }
    Ok(())
}

/// Counts `ThreadRPCServer method=<method> ` lines, matching the name exactly.
fn count_method_lines(log: &str, method: &str) -> usize {
    const MARKER: &str = "ThreadRPCServer method=";
    log.lines()
        .filter_map(|line| line.split_once(MARKER).map(|(_, rest)| rest))
        .filter(|rest| rest.split_whitespace().next() == Some(method))
        .count()
}

/// Finds bitcoind: `BITCOIND_EXE`, else `<workspace>/.bitcoind/bin/bitcoind`, else `PATH`.
pub fn find_bitcoind_exe() -> Result<PathBuf, TestEnvError> {
    if let Some(exe) = std::env::var_os("BITCOIND_EXE").filter(|v| !v.is_empty()) {
        let exe = PathBuf::from(exe);
        return if is_executable(&exe) {
            Ok(exe)
        } else {
            Err(TestEnvError::ExeNotFound {
                tried: format!("BITCOIND_EXE={} (not an executable file)", exe.display()),
            })
        };
    }
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.bitcoind/bin/bitcoind");
    if is_executable(&installed) {
        return Ok(installed.canonicalize().unwrap_or(installed));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("bitcoind"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if let Some(exe) = on_path.into_iter().find(|p| is_executable(p)) {
        return Ok(exe);
    }
    Err(TestEnvError::ExeNotFound {
        tried: format!(
            "BITCOIND_EXE (unset), {}, bitcoind on PATH",
            installed.display()
        ),
    })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn random_string(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

/// `/dev/shm` when it is a writable directory, else the system temp dir.
fn datadir_base() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let probe = shm.join(format!("{DATADIR_PREFIX}{}-probe", std::process::id()));
        if fs::create_dir(&probe).is_ok() && fs::remove_dir(&probe).is_ok() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
    .clone()
}

/// Creates a fresh, unique datadir: `<base>/micronode-testenv-bitcoind-<pid>-<n>-<random>`.
fn new_datadir() -> Result<PathBuf, TestEnvError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = datadir_base();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!(
        "{DATADIR_PREFIX}{}-{n}-{}",
        std::process::id(),
        random_string(6).to_ascii_lowercase()
    ));
    fs::create_dir(&dir).map_err(|e| TestEnvError::io(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

/// Removes datadirs left behind by test processes that died without dropping their
/// [`Bitcoind`] (their PID is in the name). Runs once per process; errors are ignored.
fn sweep_stale_datadirs() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        let Ok(entries) = fs::read_dir(datadir_base()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DATADIR_PREFIX)) else {
                continue;
            };
            let owner = rest
                .split('-')
                .next()
                .and_then(|pid| pid.parse::<u32>().ok());
            if owner.is_some_and(|pid| pid != std::process::id() && !process_alive(pid)) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    });
}

/// A job for the spawner thread.
struct SpawnJob {
    cmd: Command,
    reply: mpsc::SyncSender<io::Result<Child>>,
}

/// Spawns `cmd` so that the child gets SIGKILL when this process dies (`PR_SET_PDEATHSIG`).
///
/// Linux sends that signal when the *thread* that forked the child exits, so children are
/// forked by one thread that lives as long as the process, never by a test's own (short-lived)
/// threads.
fn spawn_child(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        let thread = std::thread::Builder::new()
            .name("testenv-spawner".into())
            .spawn(move || {
                for mut job in rx {
                    let parent = std::process::id() as libc::pid_t;
                    // SAFETY: the closure runs between fork and exec and only makes two
                    // async-signal-safe system calls, without allocating.
                    unsafe {
                        job.cmd.pre_exec(move || {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
                                != 0
                            {
                                return Err(io::Error::last_os_error());
                            }
                            if libc::getppid() != parent {
                                // The test process is already gone.
                                return Err(io::Error::from_raw_os_error(libc::ESRCH));
                            }
                            Ok(())
                        });
                    }
                    let _ = job.reply.send(job.cmd.spawn());
                }
            });
        thread.ok().map(|_| tx)
    });
    let Some(spawner) = spawner else {
        // No spawner thread: spawn here, without the parent-death signal.
        let mut cmd = cmd;
        return cmd.spawn();
    };
    let (reply, result) = mpsc::sync_channel(1);
    let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "testenv spawner thread is gone");
    spawner.send(SpawnJob { cmd, reply }).map_err(|_| gone())?;
    result.recv().map_err(|_| gone())?
}

#[cfg(test)]
mod tests {
    use super::count_method_lines;

    #[test]
    fn bitcoind_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Bitcoind>();
    }

    #[test]
    fn counts_exact_method_names() {
        let log = "\
2026-11-21T23:21:19Z [rpc] ThreadRPCServer method=getblockchaininfo user=u
2026-11-21T23:21:19Z [rpc] ThreadRPCServer method=getblock user=u
2026-11-21T23:21:19Z [rpc] ThreadRPCServer method=getblockhash user=u
2026-11-21T23:21:19Z [rpc] ThreadRPCServer method=getblock user=u
2026-11-21T23:21:19Z Something else method=getblock
";
        assert_eq!(count_method_lines(log, "getblock"), 2);
        assert_eq!(count_method_lines(log, "getblockhash"), 1);
        assert_eq!(count_method_lines(log, "getblockheader"), 0);
    }
}
