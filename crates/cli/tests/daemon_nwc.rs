//! A node daemon serving Nostr Wallet Connect in its own process: an app connection made with
//! `micronode nwc connect` on the daemon's NWC directory answers a third-party NWC client.

mod daemon;

use std::time::Duration;

use daemon::Daemon;
use micronode_nwc::embedded_relay::EmbeddedRelay;
use micronode_testenv::nodes::Env;
use nwc::prelude::{NostrWalletConnectOptions, NostrWalletConnectURI, NWC};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_serves_nwc_apps() {
    let env = Env::new("daemon-nwc").await;
    let relay = EmbeddedRelay::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("relay");
    let dir = env.dir.0.join("node");
    let mut node = Daemon::start_with_args(&env, &dir, &["--nwc-relay".into(), relay.url().into()]);

    // Make an app connection from the CLI, on the daemon's NWC directory.
    let uri = daemon::nwc_connect(&dir.join("nwc"), relay.url());
    assert!(uri.starts_with("nostr+walletconnect://"), "{uri}");

    // A stock NWC client reaches the daemon's node through the relay. Requests are ephemeral
    // events: the service must have picked the new connection up (it re-reads connections
    // twice a second) before a request can reach it, so the app retries like real apps do.
    let uri = NostrWalletConnectURI::parse(&uri).expect("uri");
    let mut info = None;
    for _ in 0..10 {
        let app = NWC::with_opts(
            uri.clone(),
            NostrWalletConnectOptions::new().timeout(Duration::from_secs(3)),
        );
        if let Ok(got) = app.get_info().await {
            info = Some(got);
            app.shutdown().await;
            break;
        }
        app.shutdown().await;
    }
    let info = info.expect("get_info over NWC");
    let app = NWC::with_opts(
        uri,
        NostrWalletConnectOptions::new().timeout(Duration::from_secs(30)),
    );
    assert_eq!(
        info.pubkey.as_ref().map(|k| k.to_string()),
        Some(node.node_id.clone()),
        "{info:?}"
    );
    let balance = app.get_balance().await.expect("get_balance over NWC");
    assert_eq!(balance, 0, "a new node has nothing to spend");
    app.shutdown().await;
    node.terminate();
}
