//! Runs `micronode signer recover` to its end against the test chain, mining as it waits.

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use micronode_testenv::nodes::Env;

use super::signer;

/// The next event line, without blocking past `wait`.
fn poll_event(lines: &Receiver<String>, wait: Duration) -> Option<serde_json::Value> {
    let line = lines.recv_timeout(wait).ok()?;
    serde_json::from_str(&line).ok()
}

/// Every event of a recovery, in order.
pub struct Recovery {
    /// The JSON lines.
    pub events: Vec<serde_json::Value>,
}

impl Recovery {
    /// The events called `name`.
    pub fn all(&self, name: &str) -> Vec<&serde_json::Value> {
        self.events.iter().filter(|e| e["event"] == name).collect()
    }

    /// The transaction an event names in its `txid`.
    pub async fn tx(env: &Env, event: &serde_json::Value) -> bitcoin::Transaction {
        let txid: bitcoin::Txid = event["txid"]
            .as_str()
            .expect("the event names a txid")
            .parse()
            .expect("txid");
        env.transaction(&txid).await
    }

    /// The one event called `name`.
    pub fn one(&self, name: &str) -> &serde_json::Value {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "one {name} event in {:?}", self.events);
        all[0]
    }

    /// The wallet sweep (the one `wallet_swept` event's transaction), checked to send
    /// `wallet_sat` to `to` in one output, less a fee under 2,000 sat.
    pub async fn wallet_sweep(
        &self,
        env: &Env,
        wallet_sat: u64,
        to: &bitcoin::Address,
    ) -> bitcoin::Transaction {
        let sweep = Self::tx(env, self.one("wallet_swept")).await;
        assert_eq!(sweep.output.len(), 1, "{sweep:?}");
        assert_eq!(sweep.output[0].script_pubkey, to.script_pubkey());
        let fee = wallet_sat - sweep.output[0].value.to_sat();
        assert!(fee > 0 && fee < 2_000, "wallet sweep fee {fee}");
        sweep
    }
}

/// Runs `signer recover --to <to>` on `dir` with `args`, mining five blocks at a time until it
/// reports `recovered` (at most `max_blocks`); panics on `channel_failed` or a failed exit.
pub async fn recover_to_the_end(env: &Env, dir: &Path, to: &str, max_blocks: u64) -> Recovery {
    let (mut child, lines) = signer::spawn_recover(
        dir,
        &env.bitcoind,
        &["--to", to, "--poll-interval-ms", "100"],
    );
    let mut events = Vec::new();
    let mut mined = 0;
    loop {
        while let Some(event) = poll_event(&lines, Duration::from_millis(300)) {
            assert_ne!(event["event"], "channel_failed", "recovery failed: {event}");
            let done = event["event"] == "recovered";
            events.push(event);
            if done {
                let status = child.wait().expect("recover exits");
                assert!(status.success(), "recover exited with {status}");
                return Recovery { events };
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("recover.log")).unwrap_or_default();
            panic!("recover exited early ({status}): {events:?}\n{log}");
        }
        assert!(
            mined < max_blocks,
            "no end of recovery after {mined} blocks: {events:?}"
        );
        env.mine(5).await;
        mined += 5;
    }
}
