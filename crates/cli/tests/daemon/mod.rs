//! Runs `micronode node run` as a child process against a test bitcoind and talks to it over
//! its gRPC API.
#![allow(dead_code)]

pub mod host;
pub mod proxy;
pub mod recovery;
pub mod signer;
pub mod tenant;
pub mod wallet_psbt;
pub mod watch_only;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use micronode_proto::v1::lightning_client::LightningClient;
use micronode_testenv::nodes::Env;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Runs `micronode <args>` to completion (with `token` as MICRONODE_TOKEN, if given): (success,
/// stdout trimmed, stderr).
pub fn run_micronode(args: &[&str], token: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_micronode"));
    cmd.args(args)
        .env("MICRONODE_LOG", "warn")
        .env_remove("MICRONODE_TOKEN")
        .stdin(Stdio::null());
    if let Some(token) = token {
        cmd.env("MICRONODE_TOKEN", token);
    }
    let out = cmd.output().expect("run micronode");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Attaches the API cookie to every call.
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// The client type with the cookie attached to every call.
pub type Client = LightningClient<InterceptedService<Channel, Bearer>>;

/// A daemon that has been spawned and may not be ready yet (a remote-signer node first waits
/// for its signer). Its stdout JSON lines arrive on a channel.
pub struct Launch {
    pub child: Child,
    pub data_dir: PathBuf,
    lines: Receiver<String>,
}

impl Launch {
    /// Spawns `micronode node run` on `data_dir` with the test bitcoind and extra flags;
    /// stderr (the logs) goes to `stderr`.
    pub fn spawn(env: &Env, data_dir: &Path, extra: &[String], stderr: Stdio) -> Launch {
        let mut child = env
            .bitcoind
            .point_daemon(
                Command::new(env!("CARGO_BIN_EXE_micronode"))
                    .args(["node", "run", "--network", "regtest"])
                    .arg("--data-dir")
                    .arg(data_dir)
                    .args(["--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
                    .args(["--poll-interval-ms", "100", "--min-confirmations", "1"])
                    // As in `Env::node_config`: nodes accept channels with an empty wallet here; the
                    // anchor reserve has its own tests (crates/node/tests/anchors.rs).
                    .args(["--anchor-reserve-sat", "0"]),
            )
            .args(extra)
            .env(
                "MICRONODE_LOG",
                std::env::var("MICRONODE_TEST_DAEMON_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn micronode");
        let lines = forward_lines(child.stdout.take().expect("stdout"));
        Launch {
            child,
            data_dir: data_dir.to_path_buf(),
            lines,
        }
    }

    /// Waits for the stdout JSON line whose `event` is `name`, skipping others.
    pub fn event(&self, name: &str) -> serde_json::Value {
        next_event(&self.lines, name)
    }

    /// The stdout JSON line whose `event` is `name`, if it comes within `timeout`.
    pub fn try_event(&self, name: &str, timeout: Duration) -> Option<serde_json::Value> {
        try_next_event(&self.lines, name, timeout)
    }

    /// Waits for the ready line.
    pub fn ready(mut self) -> Daemon {
        let Some(ready) = self.try_event("ready", Duration::from_secs(60)) else {
            // Not left running after the test: nothing else would stop it.
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("no \"ready\" line from the process");
        };
        Daemon {
            child: self.child,
            node_id: ready["node_id"].as_str().expect("node_id").to_string(),
            p2p: ready["p2p_listen"].as_str().expect("p2p").to_string(),
            api: ready["api_listen"].as_str().expect("api").to_string(),
            cookie: PathBuf::from(ready["api_cookie"].as_str().expect("cookie")),
            data_dir: self.data_dir,
        }
    }
}

/// Forwards every stdout line of a child to a channel, from a thread.
pub fn forward_lines(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Keep draining after the receiver is gone so the child never writes to a closed pipe.
            let _ = tx.send(line);
        }
    });
    rx
}

/// The next JSON line with `"event": name`, within a minute.
pub fn next_event(lines: &Receiver<String>, name: &str) -> serde_json::Value {
    try_next_event(lines, name, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no {name:?} line from the process"))
}

/// The next JSON line with `"event": name` if one comes within `timeout`; other lines are
/// skipped.
pub fn try_next_event(
    lines: &Receiver<String>,
    name: &str,
    timeout: Duration,
) -> Option<serde_json::Value> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines.recv_timeout(left).ok()?;
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(value) if value["event"] == name => return Some(value),
            _ => continue,
        }
    }
}

/// Waits until none of the outbound payments `hashes` is pending at the daemon, and returns
/// the ones that succeeded, sorted (a payment the daemon never recorded counts as failed).
pub async fn succeeded_payments<'a>(
    client: &mut Client,
    hashes: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    use micronode_proto::v1;
    let mut succeeded = Vec::new();
    for hash in hashes {
        let deadline = tokio::time::Instant::now() + micronode_testenv::nodes::TIMEOUT;
        loop {
            let status = match client
                .get_payment(v1::GetPaymentRequest {
                    id: hash.to_string(),
                    direction: Some(v1::PaymentDirection::Outbound as i32),
                })
                .await
            {
                Ok(p) => p.into_inner().status,
                Err(s) if s.code() == tonic::Code::NotFound => v1::PaymentStatus::Failed as i32,
                Err(s) => panic!("get_payment: {s}"),
            };
            if status == v1::PaymentStatus::Succeeded as i32 {
                succeeded.push(hash.to_string());
            }
            if status != v1::PaymentStatus::Pending as i32 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "payment {hash} stuck pending"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    succeeded.sort();
    succeeded
}

/// A running daemon.
pub struct Daemon {
    pub child: Child,
    pub node_id: String,
    pub p2p: String,
    pub api: String,
    pub cookie: PathBuf,
    pub data_dir: PathBuf,
}

impl Daemon {
    /// Starts a daemon on `data_dir` and waits for its ready line.
    pub fn start(env: &Env, data_dir: &Path) -> Daemon {
        Self::start_with_args(env, data_dir, &[])
    }

    /// Like [`Daemon::start`], with extra flags.
    pub fn start_with_args(env: &Env, data_dir: &Path, extra: &[String]) -> Daemon {
        Launch::spawn(env, data_dir, extra, Stdio::inherit()).ready()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// A client with the cookie attached.
    pub async fn client(&self) -> Client {
        let token = std::fs::read_to_string(&self.cookie).expect("cookie");
        let value: tonic::metadata::MetadataValue<_> = format!("Bearer {}", token.trim())
            .parse()
            .expect("metadata");
        let channel = Channel::from_shared(format!("http://{}", self.api))
            .expect("uri")
            .connect()
            .await
            .expect("connect to API");
        LightningClient::with_interceptor(channel, Bearer(value))
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "daemon exited with {status}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes an NWC app connection named `app` (1,000 sat a day) with `micronode nwc connect` on
/// the service directory `nwc_dir`; its URI.
pub fn nwc_connect(nwc_dir: &Path, relay: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_micronode"))
        .args(["nwc", "--data-dir"])
        .arg(nwc_dir)
        .args(["connect", "app", "--budget-sat", "1000", "--relay", relay])
        .env("MICRONODE_LOG", "warn")
        .output()
        .expect("micronode nwc connect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
