//! The browser wallet in a real browser against the system `micronode up` brings up: headless
//! Chromium (Debian's) driven by Playwright (`web/e2e/wallet.e2e.mjs`) pairs with the phrase
//! `up` printed, sees the balance, receives a payment from the gateway (another LDK node) and
//! sees it arrive, pays the gateway's invoice, creates and revokes an NWC connection, reloads and
//! unlocks with its password. Screenshots of each screen are saved in
//! `target/web-wallet-screenshots/`. Needs `chromium` and `web/node_modules` (scripts/test.sh
//! installs both).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use micronode_testenv::find_bitcoind_exe;
use micronode_testenv::nodes::TempDir;

/// A bound so that a broken side fails the test instead of hanging it. Not a speed check.
const DEADLINE: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A child whose stdout lines arrive on a channel; killed when dropped.
struct Lines {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn spawn(mut cmd: Command, what: &str) -> Lines {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line starting with `prefix` (after trimming), failing on `ERROR` lines.
    fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(DEADLINE)
                .unwrap_or_else(|_| panic!("no {prefix:?} line; saw {:#?}", self.seen));
            self.seen.push(line.clone());
            let trimmed = line.trim();
            assert!(
                !trimmed.starts_with("ERROR "),
                "the browser test failed: {trimmed}"
            );
            if let Some(rest) = trimmed.strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
    }

    /// The rest of a line already seen that starts with `prefix` (after trimming).
    fn seen_line(&self, prefix: &str) -> String {
        self.seen
            .iter()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(|rest| rest.trim().to_string())
            .unwrap_or_else(|| panic!("no {prefix:?} line in {:#?}", self.seen))
    }

    fn stdin(&mut self) -> &mut ChildStdin {
        self.child.stdin.as_mut().expect("stdin")
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        // SIGINT first (a clean stop), then kill.
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `micronode cli` against the gateway; its stdout as JSON.
fn gateway_cli(cli: &[String], args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_micronode"))
        .args(cli)
        .args(["--json"])
        .args(args)
        .env("MICRONODE_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("micronode cli");
    assert!(
        out.status.success(),
        "micronode cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cli output is JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn a_person_pairs_receives_and_sends_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is missing at {chromium}: scripts/test.sh installs it (apt-get install chromium)"
    );
    let web = repo().join("web");
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "web/node_modules is missing: scripts/test.sh runs `npm ci` in web/"
    );
    let home = TempDir::new("web-wallet");
    let exe = find_bitcoind_exe().expect("bitcoind (run scripts/install-bitcoind.sh)");
    let mut up = Command::new(env!("CARGO_BIN_EXE_micronode"));
    up.args(["up", "--api-port", "0"])
        .env("MICRONODE_HOME", &home.0)
        .env("BITCOIND_EXE", exe)
        .env("MICRONODE_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let mut up = Lines::spawn(up, "micronode up");
    up.wait_for("Serving until Ctrl-C.");
    let wallet_url = up.seen_line("Browser wallet (tenant;");
    let wallet_url = wallet_url
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the wallet's address")
        .to_string();
    let phrase = up.seen_line("phrase ");
    assert_eq!(phrase.split_whitespace().count(), 10, "{phrase}");
    let cli = up.seen_line("micronode cli ");
    let cli: Vec<String> = std::iter::once("cli")
        .chain(cli.trim_end_matches(" getinfo").split_whitespace())
        .map(str::to_string)
        .collect();

    let shots = repo().join("target/web-wallet-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let mut browser = Command::new("node");
    browser
        .arg(web.join("e2e/wallet.e2e.mjs"))
        .current_dir(&web)
        .env("WALLET_URL", &wallet_url)
        .env("PAIRING_PHRASE", &phrase)
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::piped());
    let mut browser = Lines::spawn(browser, "the browser test (node)");

    let start: u64 = browser.wait_for("BALANCE ").parse().expect("a balance");
    // The gateway pays the browser's invoice.
    writeln!(browser.stdin(), "RECEIVE 2000").unwrap();
    let invoice = browser.wait_for("INVOICE ");
    let paid = gateway_cli(&cli, &["pay", &invoice]);
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(browser.wait_for("RECEIVED "), "2000");
    // The browser pays the gateway's invoice.
    let asked = gateway_cli(
        &cli,
        &["invoice", "1000000", "--description", "from the browser"],
    );
    let bolt11 = asked["invoice"].as_str().expect("an invoice").to_string();
    writeln!(browser.stdin(), "PAY {bolt11}").unwrap();
    let fee: u64 = browser.wait_for("SENT ").parse().expect("a fee");
    let hash = asked["payment_hash"].as_str().expect("a hash");
    let received = gateway_cli(&cli, &["payment", hash]);
    assert_eq!(received["status"], "succeeded", "{received}");
    assert_eq!(received["amount_msat"], 1_000_000, "{received}");
    // A wallet connection for another app, made and revoked in the browser.
    let uri = browser.wait_for("NWC ");
    assert!(uri.starts_with("nostr+walletconnect://"), "{uri}");
    assert!(uri.contains("secret="), "{uri}");
    browser.wait_for("NWC_REVOKED");
    // After a reload and the password: the balance moved by exactly what came and went.
    let end: u64 = browser.wait_for("UNLOCKED ").parse().expect("a balance");
    assert_eq!(end, start + 2000 - 1000 - fee, "start {start}, fee {fee}");
    browser.wait_for("DONE");
    for shot in [
        "01-pair.png",
        "02-home.png",
        "03-receive.png",
        "04-send.png",
        "09-unlock.png",
    ] {
        assert!(shots.join(shot).exists(), "screenshot {shot}");
    }
}
