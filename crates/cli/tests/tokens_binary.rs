//! Capability tokens through the real binary: `node init --stateless` prints the admin token
//! once and writes it nowhere, `node run` then authenticates with tokens instead of the cookie,
//! and `cli token bake | list | revoke | inspect` work against it.

mod daemon;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use daemon::watch_only::files_under;
use micronode_testenv::nodes::Env;

fn micronode() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_micronode"));
    cmd.env("MICRONODE_LOG", "warn")
        .env_remove("MICRONODE_TOKEN")
        .env_remove("MICRONODE_COOKIE")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run micronode")
}

/// Runs `micronode cli --endpoint <api> [--token T] <args>`.
fn cli(api: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = micronode();
    cmd.args(["cli", "--endpoint", api]);
    if let Some(token) = token {
        // Through the environment, as documented (flags show up in `ps`).
        cmd.env("MICRONODE_TOKEN", token);
    }
    run(cmd.args(args))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `node run` on `data_dir`; returns it with its ready line.
fn start_daemon(env: &Env, data_dir: &Path) -> (Daemon, serde_json::Value) {
    let mut child = env
        .bitcoind
        .point_daemon(
            micronode()
                .args(["node", "run", "--network", "regtest", "--data-dir"])
                .arg(data_dir)
                .args(["--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
                .args(["--poll-interval-ms", "100"]),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn micronode");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let daemon = Daemon(child);
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ready line");
    let ready: serde_json::Value = serde_json::from_str(&line).expect("ready JSON");
    assert_eq!(ready["event"], "ready");
    (daemon, ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_init_then_tokens_through_the_binary() {
    let env = Env::new("tokens-binary").await;
    let data_dir = env.dir.0.join("a");

    // Without --stateless there is nothing to do.
    let refused = run(micronode()
        .args(["node", "init", "--network", "regtest", "--data-dir"])
        .arg(&data_dir));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--stateless"),
        "{}",
        stderr(&refused)
    );

    let init = run(micronode()
        .args([
            "node",
            "init",
            "--stateless",
            "--network",
            "regtest",
            "--data-dir",
        ])
        .arg(&data_dir));
    assert!(init.status.success(), "init: {}", stderr(&init));
    let admin = stdout(&init).trim().to_string();
    assert!(
        !admin.is_empty() && !admin.contains(char::is_whitespace),
        "one line: {admin:?}"
    );
    assert!(stderr(&init).contains("shown once"), "{}", stderr(&init));
    // A second init would orphan every token.
    let again = run(micronode()
        .args([
            "node",
            "init",
            "--stateless",
            "--network",
            "regtest",
            "--data-dir",
        ])
        .arg(&data_dir));
    assert!(!again.status.success());

    let (daemon, ready) = start_daemon(&env, &data_dir);
    assert!(
        ready["api_cookie"].is_null(),
        "no cookie with tokens: {ready}"
    );
    assert!(!data_dir.join("api.cookie").exists());
    let api = ready["api_listen"].as_str().expect("api").to_string();

    let info = cli(&api, Some(&admin), &["--json", "getinfo"]);
    assert!(info.status.success(), "{}", stderr(&info));
    assert!(stdout(&info).contains(ready["node_id"].as_str().expect("id")));

    let forged = cli(&api, Some("bm90LWEtdG9rZW4"), &["getinfo"]);
    assert!(!forged.status.success());
    assert!(
        stderr(&forged).contains("UNAUTHENTICATED [TOKEN_INVALID]"),
        "{}",
        stderr(&forged)
    );

    // Bake a read-only token that expires in a day: attenuated offline, registered.
    let baked = cli(
        &api,
        Some(&admin),
        &[
            "--json",
            "token",
            "bake",
            "--methods",
            "read",
            "--expiry",
            "24h",
            "--label",
            "dash",
        ],
    );
    assert!(baked.status.success(), "{}", stderr(&baked));
    let baked: serde_json::Value = serde_json::from_str(&stdout(&baked)).expect("JSON");
    assert_eq!(baked["registered"], true, "{baked}");
    let reader = baked["token"].as_str().expect("token").to_string();
    let reader_id = baked["id"].as_str().expect("id").to_string();
    assert!(baked["caveats"]
        .as_str()
        .expect("caveats")
        .contains("time($time)"));

    let channels = cli(&api, Some(&reader), &["channels"]);
    assert!(channels.status.success(), "{}", stderr(&channels));
    let address = cli(&api, Some(&reader), &["newaddress"]);
    assert!(
        stderr(&address).contains("PERMISSION_DENIED [METHOD_NOT_ALLOWED]"),
        "{}",
        stderr(&address)
    );
    // A pay token baked from the reader cannot pay: attenuation only narrows.
    let narrower = cli(
        &api,
        Some(&reader),
        &[
            "--json",
            "token",
            "bake",
            "--methods",
            "pay",
            "--budget",
            "1000/day",
        ],
    );
    assert!(narrower.status.success(), "{}", stderr(&narrower));
    let narrower: serde_json::Value = serde_json::from_str(&stdout(&narrower)).expect("JSON");
    assert_eq!(narrower["registered"], false, "only admin tokens register");
    let payer = narrower["token"].as_str().expect("token").to_string();
    let keysend = cli(
        &api,
        Some(&payer),
        &["keysend", ready["node_id"].as_str().expect("id"), "1000"],
    );
    assert!(
        stderr(&keysend).contains("[METHOD_NOT_ALLOWED]"),
        "{}",
        stderr(&keysend)
    );

    let listed = cli(&api, Some(&admin), &["--json", "token", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&listed)).expect("JSON");
    let entries = listed.as_array().expect("array");
    assert_eq!(entries.len(), 2, "the admin token and the reader: {listed}");
    assert!(entries
        .iter()
        .any(|t| t["id"] == reader_id && t["label"] == "dash"));
    let text = stdout(&cli(&api, Some(&admin), &["token", "list"]));
    assert!(text.contains("check if time($time)"), "{text}");

    let inspected = stdout(&cli(&api, None, &["token", "inspect", &payer]));
    assert!(
        inspected.contains(&format!("parent_id: {reader_id}")),
        "{inspected}"
    );

    let revoked = cli(&api, Some(&admin), &["token", "revoke", &reader_id]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    for token in [&reader, &payer] {
        let after = cli(&api, Some(token), &["channels"]);
        assert!(
            stderr(&after).contains("UNAUTHENTICATED [TOKEN_REVOKED]"),
            "{}",
            stderr(&after)
        );
    }
    drop(daemon);

    // Nothing in the data directory holds a token: not the admin token, not the baked ones.
    for file in files_under(&data_dir) {
        let bytes = std::fs::read(&file).expect("read");
        for (what, token) in [("admin", &admin), ("reader", &reader), ("payer", &payer)] {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "the {what} token is in {}",
                file.display()
            );
        }
    }
}

/// A node whose keys live in the tenant's signer has no token root of its own: `node init
/// --stateless` is refused and points to the signer, whose root derives from the seed. Once
/// the signer connects, a token it baked works from the CLI, and no key or token is kept on
/// the operator's host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_signer_tenants_tokens_are_baked_by_its_signer() {
    let env = Env::new("tokens-remote").await;
    let data_dir = env.dir.0.join("a");
    let signer_dir = env.dir.0.join("a-signer");
    std::fs::create_dir_all(&signer_dir).expect("dir");
    let words = daemon::signer::init(&signer_dir);
    let (ok, public, err) = daemon::signer::run_once(&signer_dir, &["export-public"]);
    assert!(ok, "{err}");
    let public: serde_json::Value = serde_json::from_str(&public).expect("JSON");
    let node_id = public["node_id"].as_str().expect("node id").to_string();

    let refused = run(micronode()
        .args(["node", "init", "--stateless", "--network", "regtest"])
        .args(["--signer", "remote", "--data-dir"])
        .arg(&data_dir)
        .args(["--node-id", &node_id]));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("micronode signer token bake"),
        "{}",
        stderr(&refused)
    );
    assert!(
        !data_dir.join("tokens").exists(),
        "no token store is made on the operator's host"
    );

    // The node starts watch-only and its signer connects.
    let (mut launch, listen, code) = daemon::tenant::launch_remote(&env, &data_dir);
    let signer =
        daemon::signer::SignerProcess::start(&signer_dir, &listen, Some(&code), &env.bitcoind);
    let ready = launch.event("ready");
    assert_eq!(ready["node_id"], node_id.as_str());
    let api = ready["api_listen"].as_str().expect("api").to_string();

    // The tenant bakes a read-only app credential at its signer; the node verifies it with the
    // root public key the signer gave it.
    let (ok, credential, err) = daemon::signer::run_once(
        &signer_dir,
        &[
            "token",
            "bake",
            "--name",
            "reader",
            "--rights",
            "read",
            "--budget-sat",
            "0",
        ],
    );
    assert!(ok, "{err}");
    let credential = credential.trim().to_string();
    assert!(credential.starts_with("micronode-app:v1:"), "{credential}");
    let info = cli(&api, Some(&credential), &["--json", "getinfo"]);
    assert!(info.status.success(), "{}", stderr(&info));
    assert!(stdout(&info).contains(&node_id));
    let keysend = cli(&api, Some(&credential), &["keysend", &node_id, "1000"]);
    assert!(
        stderr(&keysend).contains("[METHOD_NOT_ALLOWED]"),
        "{}",
        stderr(&keysend)
    );
    // A token naming this tenant with every right, signed by another root (the operator's
    // own), is refused: only the tenant's signer mints this node's tokens.
    let forged = {
        use biscuit_auth::builder::{fact, string};
        let operator_root = biscuit_auth::KeyPair::new();
        biscuit_auth::Biscuit::builder()
            .fact(fact("tenant", &[string(&node_id)]))
            .and_then(|b| b.fact(fact("token_id", &[string("0011")])))
            .and_then(|b| b.fact(fact("right", &[string("admin")])))
            .and_then(|b| b.build(&operator_root))
            .and_then(|t| t.to_base64())
            .expect("forged token")
    };
    let refused = cli(&api, Some(&forged), &["getinfo"]);
    assert!(
        stderr(&refused).contains("UNAUTHENTICATED [TOKEN_INVALID]"),
        "{}",
        stderr(&refused)
    );
    drop(signer);
    let _ = launch.child.kill();
    let _ = launch.child.wait();
    let token = credential.rsplit(':').next().expect("token part");
    for file in files_under(&data_dir) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the app's token is in {}",
            file.display()
        );
    }
    daemon::watch_only::assert_no_secrets(
        &data_dir,
        &data_dir.with_extension("log"),
        &words,
        &node_id,
    );
}
