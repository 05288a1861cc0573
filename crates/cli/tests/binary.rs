//! The `micronode` binary as a user runs it: `up` end to end, and clear errors at start-up.

use std::process::{Command, Stdio};
use std::time::Duration;

use micronode_testenv::nodes::TempDir;
use micronode_testenv::{find_bitcoind_exe, free_port};

fn micronode() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_micronode"));
    cmd.env("MICRONODE_LOG", "warn").stdin(Stdio::null());
    cmd
}

/// Runs a command with a deadline; returns (success, stdout, stderr).
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> (bool, String, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        _ => {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("command timed out after {timeout:?}");
        }
    }
}

/// Runs `micronode up --exit-after-summary` on `home`; returns its stdout and stderr once it
/// succeeded (`which` run, for the failure message).
fn run_up(home: &std::path::Path, which: &str) -> (String, String) {
    let exe = find_bitcoind_exe().expect("bitcoind (run scripts/install-bitcoind.sh)");
    let mut cmd = micronode();
    cmd.args(["up", "--exit-after-summary", "--api-port", "0"])
        .env("MICRONODE_HOME", home)
        .env("BITCOIND_EXE", exe);
    let (ok, stdout, stderr) = run_with_timeout(cmd, Duration::from_secs(300));
    assert!(ok, "{which} micronode up failed:\n{stderr}\n{stdout}");
    (stdout, stderr)
}

#[test]
fn up_brings_up_the_system_and_pays_both_ways() {
    let home = TempDir::new("up");
    let (stdout, stderr) = run_up(&home.0, "first");
    assert!(stdout.contains("micronode is up on regtest"), "{stdout}");
    // A new tenant, nothing on chain, no channel: its first payment comes through a JIT
    // channel, less the gateway's default opening fee (2,000 sat).
    assert!(
        stdout.contains("outside -> tenant 50000 sat, hash "),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "through a JIT channel the gateway opened on payment, its opening fee 2000 sat; \
             the tenant received 48000 sat)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("tenant -> gateway 1000 sat, hash "),
        "{stdout}"
    );
    assert!(
        stdout.contains("nostr+walletconnect://"),
        "an NWC URI is printed: {stdout}"
    );
    for step in 1..=9 {
        assert!(
            stderr.contains(&format!("[{step}/9] done")),
            "step {step} missing:\n{stderr}"
        );
    }
    // The tenant's LndHub hub answers, with the tenant node's identity.
    let hub = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("hub             http://"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the hub's address is printed: {stdout}"));
    assert!(stdout.contains("address         tenant@"), "{stdout}");
    // A user of the hub, paid by the outside node through its Lightning Address, and its
    // export for a wallet.
    assert!(
        stdout.contains("user            user-")
            && stdout.contains("(paid 10000 sat through its address)"),
        "{stdout}"
    );
    assert!(stdout.contains("wallet export   lndhub://"), "{stdout}");
    assert!(!hub.is_empty());
    // The tenant's browser wallet: its page and a 10-word phrase.
    assert!(stdout.contains("Browser wallet (tenant; "), "{stdout}");
    let phrase = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("phrase "))
        .unwrap_or_else(|| panic!("a pairing phrase is printed: {stdout}"));
    assert_eq!(phrase.split_whitespace().count(), 10, "{phrase}");
    // The tenant's keys are in a separate signer process; its node holds none.
    assert!(
        stdout.contains("keys            remote signer, pid "),
        "{stdout}"
    );
    assert!(
        stdout.contains("(asked by the tenant's app, its request checked by the tenant's signer)"),
        "{stdout}"
    );
    let regtest = home.0.join("regtest");
    // The tenant's signer approved that payment for the app `up` authorised, in its own ledger.
    let status = micronode()
        .args(["signer", "status", "--dir"])
        .arg(regtest.join("tenant-signer"))
        .output()
        .expect("signer status");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("signer status is JSON");
    let app = status["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["name"] == "micronode up app"))
        .unwrap_or_else(|| panic!("the app is at the signer: {status}"));
    let paid = &app["last_payments"][0];
    assert_eq!(paid["amount_msat"], 1_000_000, "{status}");
    assert!(
        stdout.contains(&format!(
            "tenant -> gateway 1000 sat, hash {}",
            paid["payment_hash"].as_str().expect("hash")
        )),
        "{stdout}"
    );
    assert!(regtest.join("tenant-signer/seed.vault").exists());
    // The hub's books balance, and its user holds what the outside node paid it.
    let check = micronode()
        .args(["hub", "check", "--data-dir"])
        .arg(regtest.join("hub"))
        .output()
        .expect("hub check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).expect("JSON");
    assert_eq!(report["users_total_msat"], 10_000_000, "{report}");
    // The host holds the gateway and the tenant, provisioned through its admin API.
    let host = regtest.join("host");
    let tenants: Vec<_> = std::fs::read_dir(host.join("tenants"))
        .expect("tenants")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(tenants.len(), 1, "one tenant: {tenants:?}");
    let tenant = &tenants[0];
    assert!(
        !tenant.join("keys_seed").exists(),
        "the tenant's node holds no key"
    );
    // Keys, vault, databases and cookies are owner-only.
    let private = [
        host.join("host.sqlite"),
        host.join("admin.cookie"),
        host.join("gateway.cookie"),
        host.join("gateway/keys_seed"),
        host.join("gateway/micronode.sqlite"),
        tenant.join("micronode.sqlite"),
        regtest.join("tenant-signer/seed.vault"),
        regtest.join("tenant-signer/signer.toml"),
    ];
    for file in private {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&file).expect("file").permissions(),
        );
        assert_eq!(
            mode & 0o077,
            0,
            "{} must be private, mode {mode:o}",
            file.display()
        );
    }

    // A second run reuses the chain, the nodes and their channel.
    let (stdout, stderr) = run_up(&home.0, "second");
    assert!(
        !stderr.contains("funding broadcast") && !stderr.contains("JIT invoice"),
        "the channels must be reused:\n{stderr}"
    );
    assert!(
        stdout.contains(
            "(through the tenant's channel with the gateway; the tenant received 50000 sat)"
        ),
        "{stdout}"
    );
    // A third run: the gateway's side of the channel can no longer carry 50,000 sat (its
    // reserve, the commitment fee and the anchors), so the tenant buys a new JIT channel.
    let (stdout, _) = run_up(&home.0, "third");
    assert!(
        stdout.contains("the tenant received 48000 sat)"),
        "{stdout}"
    );
}

#[test]
fn node_run_without_bitcoind_fails_clearly() {
    let dir = TempDir::new("nobtc");
    let port = free_port();
    let mut cmd = micronode();
    cmd.args([
        "node",
        "run",
        "--network",
        "regtest",
        "--api-listen",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(&dir.0)
    .arg("--bitcoind-rpc")
    .arg(format!("127.0.0.1:{port}"))
    .args(["--bitcoind-rpc-user", "u"])
    .env("MICRONODE_BITCOIND_RPC_PASSWORD", "p");
    let (ok, stdout, stderr) = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(!ok, "must fail without bitcoind");
    assert!(stdout.is_empty(), "no ready line: {stdout}");
    assert!(stderr.contains("not reachable"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn node_run_with_a_hung_bitcoind_gives_up_after_the_rpc_timeout() {
    let dir = TempDir::new("hungbtc");
    // Accepts connections (the kernel does) and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut cmd = micronode();
    cmd.args([
        "node",
        "run",
        "--network",
        "regtest",
        "--api-listen",
        "127.0.0.1:0",
        "--bitcoind-rpc-timeout-secs",
        "2",
    ])
    .arg("--data-dir")
    .arg(&dir.0)
    .arg("--bitcoind-rpc")
    .arg(format!("127.0.0.1:{port}"))
    .args(["--bitcoind-rpc-user", "u"])
    .env("MICRONODE_BITCOIND_RPC_PASSWORD", "p");
    let (ok, stdout, stderr) = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(!ok, "must fail when bitcoind never answers");
    assert!(stdout.is_empty(), "no ready line: {stdout}");
    assert!(stderr.contains("not reachable"), "{stderr}");
    assert!(stderr.contains("within 2s"), "{stderr}");
    drop(listener);
}

#[test]
fn mainnet_is_refused_without_the_flag() {
    let dir = TempDir::new("mainnet");
    let mut cmd = micronode();
    cmd.args(["node", "run", "--network", "mainnet"])
        .arg("--data-dir")
        .arg(&dir.0);
    let (ok, _, stderr) = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(!ok);
    assert!(stderr.contains("refusing to run on mainnet"), "{stderr}");
}

#[test]
fn bad_config_file_is_a_clear_error() {
    let dir = TempDir::new("badcfg");
    let file = dir.0.join("micronode.toml");
    std::fs::write(&file, "netwrok = \"regtest\"\n").expect("write");
    let mut cmd = micronode();
    cmd.args(["node", "run", "--config"]).arg(&file);
    let (ok, _, stderr) = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(!ok);
    assert!(
        stderr.contains("invalid config file") && stderr.contains("netwrok"),
        "{stderr}"
    );
}
