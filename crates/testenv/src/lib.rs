//! Test harness for micronode: real parts, one set per test.
//!
//! [`Bitcoind`] starts a real bitcoind on regtest with its own ports and datadir, so tests can
//! run in parallel, and removes it all on drop. [`wait_until`] and [`free_port`] are the small
//! helpers the node tests build on.
//!
//! bitcoind is found through `BITCOIND_EXE`, then `<workspace>/.bitcoind/bin/bitcoind` (what
//! `scripts/install-bitcoind.sh` installs), then `PATH`.
#![deny(missing_docs)]

pub mod bench;
mod bitcoind;
pub mod ldk_peer;
pub mod nodes;

use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bitcoin::Txid;

pub use bitcoind::{find_bitcoind_exe, Bitcoind, BitcoindOptions, WALLET_NAME};
pub use micronode_chain::rpc::{BitcoindRpc, RpcAuth, RpcError};

/// Errors from the test harness.
#[derive(Debug, thiserror::Error)]
pub enum TestEnvError {
    /// No bitcoind executable was found.
    #[error(
        "bitcoind not found (tried: {tried}). Run scripts/install-bitcoind.sh to install it into \
		 <repo>/.bitcoind, or set BITCOIND_EXE to a bitcoind executable"
    )]
    ExeNotFound {
        /// The places that were looked at.
        tried: String,
    },
    /// bitcoind could not be started.
    #[error("cannot start {}: {source}", exe.display())]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// The spawn error.
        #[source]
        source: io::Error,
    },
    /// bitcoind exited while starting.
    #[error(
        "bitcoind exited during startup ({status}); stderr: {stderr}; debug.log tail: {log_tail}"
    )]
    Exited {
        /// The exit status.
        status: String,
        /// What bitcoind wrote to stderr.
        stderr: String,
        /// The last lines of its `debug.log`.
        log_tail: String,
    },
    /// A file-system or other I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A bitcoind RPC call failed.
    #[error("bitcoind RPC failed: {0}")]
    Rpc(#[from] RpcError),
    /// bitcoind's wallet made a transaction that its mempool did not take (twice).
    #[error("bitcoind's mempool refused the funding transaction {txid}: {reason}")]
    NotInMempool {
        /// The wallet's transaction.
        txid: Txid,
        /// What bitcoind said of it (`testmempoolaccept`) and what its log says.
        reason: String,
    },
    /// Something did not happen in time.
    #[error("timed out waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
    },
}

impl TestEnvError {
    fn io(what: impl Into<String>, source: io::Error) -> Self {
        TestEnvError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Polls `f` every 50 ms until it returns `true`; fails with [`TestEnvError::Timeout`] naming
/// `what` once `timeout` has passed. `f` is always polled at least once.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<(), TestEnvError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(TestEnvError::Timeout {
                what: what.to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ports this process has handed out, never handed out twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Returns a TCP port on 127.0.0.1 that was free a moment ago and that this process has not
/// handed out before.
///
/// Another process may still take it before you bind it; [`Bitcoind`] retries on such a clash.
pub fn try_free_port() -> Result<u16, TestEnvError> {
    for _ in 0..100 {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| TestEnvError::io("binding 127.0.0.1:0 to find a free port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestEnvError::io("reading the bound port", e))?
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(TestEnvError::io(
        "finding a free port",
        io::Error::new(
            io::ErrorKind::AddrInUse,
            "100 ports in a row were handed out before",
        ),
    ))
}

/// Like [`try_free_port`], for tests.
///
/// # Panics
/// If no port can be bound on 127.0.0.1 at all, which means the test machine is broken.
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(e) => panic!("no free TCP port on 127.0.0.1: {e}"),
    }
}

/// Whether a process with this PID exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid_t) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let exists = unsafe { libc::kill(pid_t, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // A zombie still "exists" for kill(2); /proc tells them apart on Linux.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: "123 (name) Z ...".
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// The fee `tx` pays when its inputs are worth `inputs_sat` (a commitment spending a channel's
/// funding output: the channel's capacity).
///
/// # Panics
/// If the outputs are worth more than `inputs_sat`: the test named the wrong inputs.
pub fn fee_paid(inputs_sat: u64, tx: &bitcoin::Transaction) -> u64 {
    let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    inputs_sat
        .checked_sub(outputs)
        .unwrap_or_else(|| panic!("outputs of {outputs} sat exceed inputs of {inputs_sat} sat"))
}
