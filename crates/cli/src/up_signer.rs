//! The tenant's signer in `micronode up`: a separate `micronode signer run` process that
//! holds the tenant's keys and dials the tenant node, which keeps none.
//!
//! On the first run it creates the signer (`signer init`) in `regtest/tenant-signer`, with a
//! random passphrase kept beside it in `regtest/tenant-signer.passphrase` (0600). That is a
//! regtest demo convenience: a real tenant runs `micronode signer init` on their own device,
//! keeps the passphrase to themselves and writes the recovery words down.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

/// How long the signer may take to unlock its vault and start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The running signer process; stopped (SIGTERM) on drop.
pub struct SignerChild {
    child: Child,
    /// The signer's directory.
    pub dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// The node id its seed gives.
    pub node_id: String,
    /// The demo vault's passphrase (regtest only, see the module docs).
    pass: String,
}

impl SignerChild {
    /// A `micronode signer` command on this signer's directory, unlocked with its passphrase.
    pub fn command(&self) -> anyhow::Result<Command> {
        signer_command(&self.dir, &self.pass)
    }

    /// The signer's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn passphrase(regtest: &Path) -> anyhow::Result<String> {
    let path = regtest.join("tenant-signer.passphrase");
    if path.exists() {
        return Ok(std::fs::read_to_string(&path)?.trim().to_string());
    }
    let pass = hex::encode(rand::random::<[u8; 16]>());
    micronode_files::write_private(&path, pass.as_bytes())?;
    Ok(pass)
}

fn signer_command(dir: &Path, pass: &str) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("finding the micronode binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("signer")
        .arg("--dir")
        .arg(dir)
        .env("MICRONODE_SIGNER_PASSPHRASE", pass);
    Ok(cmd)
}

/// Creates the tenant's signer if needed and starts it dialling `node_addr` (with the node's
/// one-time `pairing_code` on the first run), following the chain of `bitcoind` (on a real
/// deployment, the tenant's own); returns once it has unlocked its seed.
pub async fn start(
    regtest: &Path,
    node_addr: SocketAddr,
    pairing_code: Option<&str>,
    bitcoind: &micronode_testenv::Bitcoind,
) -> anyhow::Result<SignerChild> {
    let dir = regtest.join("tenant-signer");
    let pass = passphrase(regtest)?;
    if !dir.join("seed.vault").exists() {
        eprintln!("      creating the tenant's signer in {}", dir.display());
        let out = signer_command(&dir, &pass)?
            .args(["init", "--network", "regtest", "--skip-confirm"])
            .stdin(Stdio::null())
            .output()
            .context("running `micronode signer init`")?;
        if !out.status.success() {
            bail!(
                "creating the tenant's signer failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The recovery words went to our stdout capture and are dropped here: this demo
        // signer is recovered with its vault and passphrase file.
    }
    let log = dir.join("signer.log");
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut cmd = signer_command(&dir, &pass)?;
    cmd.args(["run", "--node", &node_addr.to_string()])
        .arg("--bitcoind-rpc")
        .arg(format!("{}:{}", bitcoind.rpc_host(), bitcoind.rpc_port()))
        .arg("--bitcoind-rpc-user")
        .arg(bitcoind.rpc_user())
        .args(["--poll-interval-ms", "200"])
        .env("MICRONODE_BITCOIND_RPC_PASSWORD", bitcoind.rpc_password());
    if let Some(code) = pairing_code {
        cmd.args(["--pair", code]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .context("starting `micronode signer run`")?;
    let stdout = child.stdout.take().context("signer stdout")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok);
        let _ = tx.send(first);
        for _ in lines {} // keep the pipe drained
    });
    let line = match tokio::time::timeout(START_TIMEOUT, rx).await {
        Ok(Ok(Some(line))) => line,
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the tenant's signer did not start; see {}", log.display());
        }
    };
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
    let node_id = ready["node_id"].as_str().unwrap_or_default().to_string();
    Ok(SignerChild {
        child,
        dir,
        log,
        node_id,
        pass,
    })
}

impl Drop for SignerChild {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
