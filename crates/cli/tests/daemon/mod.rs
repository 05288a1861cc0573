//! Runs `micronode node run` as a child process against a test bitcoind and talks to it over
//! its gRPC API.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use micronode_proto::v1::lightning_client::LightningClient;
use micronode_testenv::nodes::Env;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

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
        let mut child = Command::new(env!("CARGO_BIN_EXE_micronode"))
            .args(["node", "run", "--network", "regtest"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
            .args(["--poll-interval-ms", "100", "--min-confirmations", "1"])
            .arg("--bitcoind-rpc")
            .arg(format!(
                "{}:{}",
                env.bitcoind.rpc_host(),
                env.bitcoind.rpc_port()
            ))
            .arg("--bitcoind-rpc-user")
            .arg(env.bitcoind.rpc_user())
            .args(extra)
            .env(
                "MICRONODE_BITCOIND_RPC_PASSWORD",
                env.bitcoind.rpc_password(),
            )
            .env("MICRONODE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn micronode");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("daemon ready line");
        let ready: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad ready line {line:?}: {e}"));
        assert_eq!(ready["event"], "ready");
        Daemon {
            child,
            node_id: ready["node_id"].as_str().expect("node_id").to_string(),
            p2p: ready["p2p_listen"].as_str().expect("p2p").to_string(),
            api: ready["api_listen"].as_str().expect("api").to_string(),
            cookie: PathBuf::from(ready["api_cookie"].as_str().expect("cookie")),
            data_dir: data_dir.to_path_buf(),
        }
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

    /// SIGKILL, no chance to clean up.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
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
