//! Runs the tenant's `micronode signer` as a separate process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

use super::{forward_lines, next_event};

/// The passphrase the test signers are created with.
pub const PASSPHRASE: &str = "correct horse battery staple";

fn signer_command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_micronode"));
    cmd.arg("signer")
        .arg("--dir")
        .arg(dir)
        .env("MICRONODE_SIGNER_PASSPHRASE", PASSPHRASE)
        .env(
            "MICRONODE_LOG",
            std::env::var("MICRONODE_TEST_DAEMON_LOG").unwrap_or_else(|_| "info".into()),
        );
    cmd
}

/// Points a signer command at `bitcoind` as its chain source.
pub fn with_chain(cmd: &mut Command, bitcoind: &micronode_testenv::Bitcoind) {
    cmd.arg("--bitcoind-rpc")
        .arg(format!("{}:{}", bitcoind.rpc_host(), bitcoind.rpc_port()))
        .arg("--bitcoind-rpc-user")
        .arg(bitcoind.rpc_user())
        .env("MICRONODE_BITCOIND_RPC_PASSWORD", bitcoind.rpc_password());
}

/// `micronode signer init` without the word check; returns the recovery words.
pub fn init(dir: &Path) -> String {
    let out = signer_command(dir)
        .args(["init", "--network", "regtest", "--skip-confirm"])
        .stdin(Stdio::null())
        .output()
        .expect("run signer init");
    assert!(
        out.status.success(),
        "signer init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words = String::from_utf8(out.stdout).expect("utf-8 words");
    let words = words.trim().to_string();
    assert_eq!(words.split_whitespace().count(), 24, "24 words: {words:?}");
    words
}

/// What `micronode signer export-public` prints, parsed.
pub fn export_public(dir: &Path) -> serde_json::Value {
    let (ok, out, err) = run_once(dir, &["export-public"]);
    assert!(ok, "export-public: {err}");
    serde_json::from_str(&out).expect("export-public prints JSON")
}

/// Replaces the signer's `[policy]` table with `body` (TOML key = value lines).
pub fn set_policy(dir: &Path, body: &str) {
    let text = format!("network = \"regtest\"\n\n[policy]\n{body}\n");
    std::fs::write(dir.join("signer.toml"), text).expect("write signer.toml");
}

/// Runs `micronode signer <args>` to completion and returns (success, stdout, stderr).
pub fn run_once(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = signer_command(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run signer");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Spawns `micronode signer recover <args>` with the test bitcoind's credentials; returns
/// the child and its stdout lines. Its log goes to `<dir>/recover.log`.
pub fn spawn_recover(
    dir: &Path,
    bitcoind: &micronode_testenv::Bitcoind,
    args: &[&str],
) -> (Child, Receiver<String>) {
    let log = std::fs::File::create(dir.join("recover.log")).expect("recover log");
    let mut cmd = signer_command(dir);
    cmd.arg("recover");
    with_chain(&mut cmd, bitcoind);
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn signer recover");
    let lines = forward_lines(child.stdout.take().expect("stdout"));
    (child, lines)
}

/// A running `micronode signer run`.
pub struct SignerProcess {
    pub child: Child,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub node_id: String,
    _lines: Receiver<String>,
}

impl SignerProcess {
    /// Starts the signer dialling `node` (the node's signer link address), pairing with
    /// `pair` when given, following `bitcoind`'s chain; waits for its ready line. Its logs go
    /// to `<dir>/signer.log`.
    pub fn start(
        dir: &Path,
        node: &str,
        pair: Option<&str>,
        bitcoind: &micronode_testenv::Bitcoind,
    ) -> SignerProcess {
        let log = dir.join("signer.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("signer log");
        let mut cmd = signer_command(dir);
        cmd.args(["run", "--node", node]);
        with_chain(&mut cmd, bitcoind);
        cmd.args(["--poll-interval-ms", "100"]);
        if let Some(code) = pair {
            cmd.args(["--pair", code]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn signer");
        let lines = forward_lines(child.stdout.take().expect("stdout"));
        let ready = next_event(&lines, "signer_ready");
        SignerProcess {
            child,
            dir: dir.to_path_buf(),
            log,
            node_id: ready["node_id"].as_str().expect("node id").to_string(),
            _lines: lines,
        }
    }

    /// Waits up to `timeout` for the signer to exit on its own.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The signer's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SignerProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}
