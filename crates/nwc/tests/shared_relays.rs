//! Two tenants' NWC services on one host's relay connections ([`SharedRelays`]): each app
//! reaches its own tenant's node and no other, a paused tenant answers `RESTRICTED`, one
//! tenant's flood is cut at the tenant's rate while the other is served, and a tenant that
//! stops leaves the relays to the rest. Real regtest nodes, a real relay.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{code, pool, test_config, wait_for_info, RawApp, RawOpts, TestRelay};
use micronode_nwc::{
    ConnectionSpec, NewConnection, NodeBackend, NwcHandle, NwcService, RateLimit, SharedRelays,
};
use micronode_testenv::nodes::{Env, TestNode};
use nostr_sdk::Keys;

/// The host's limit on each tenant's requests together: bursts of this many.
const TENANT_BURST: u32 = 6;

async fn tenant(
    env: &Env,
    shared: &SharedRelays,
    relay: &TestRelay,
    name: &str,
) -> (Arc<TestNode>, NwcHandle, NewConnection, NewConnection) {
    let node = Arc::new(env.start_node(name).await);
    let config = test_config(&env.dir.0.join(format!("nwc-{name}")), &relay.url);
    let service = NwcService::start_shared(shared, name, config, NodeBackend::new(node.clone()))
        .await
        .expect("tenant service starts");
    let first = service
        .create_connection(&ConnectionSpec::full("first app"))
        .expect("connection");
    let second = service
        .create_connection(&ConnectionSpec::full("second app"))
        .expect("connection");
    (node, service, first, second)
}

async fn node_id_over_nwc(app: &RawApp) -> serde_json::Value {
    app.call(r#"{"method":"get_info"}"#, &RawOpts::nip44())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_share_relays_and_nothing_else() {
    let env = Env::new("nwc-shared").await;
    let relay = TestRelay::start().await;
    let mut config = test_config(&env.dir.0.join("host-nwc"), &relay.url);
    config.supervise_interval = Duration::from_millis(100);
    let shared = SharedRelays::start(
        config,
        RateLimit {
            burst: TENANT_BURST,
            per_second: 0.2,
        },
    )
    .await
    .expect("shared relays");
    let (alice, alice_nwc, alice_app, alice_app2) = tenant(&env, &shared, &relay, "alice").await;
    let (bob, bob_nwc, bob_app, _) = tenant(&env, &shared, &relay, "bob").await;
    assert_eq!(shared.tenants(), 2);
    let watcher = pool(&relay.url).await;
    for conn in [&alice_app, &alice_app2, &bob_app] {
        wait_for_info(&watcher, conn.connection.wallet_pubkey).await;
    }

    // --- Each app reaches its own tenant's node.
    let alice_raw = RawApp::new(&relay.url, &alice_app).await;
    let alice_raw2 = RawApp::new(&relay.url, &alice_app2).await;
    let bob_raw = RawApp::new(&relay.url, &bob_app).await;
    let info = node_id_over_nwc(&alice_raw).await;
    assert_eq!(
        info["result"]["pubkey"],
        alice.node_id().to_string(),
        "{info}"
    );
    let info = node_id_over_nwc(&bob_raw).await;
    assert_eq!(
        info["result"]["pubkey"],
        bob.node_id().to_string(),
        "{info}"
    );

    // --- Bob's app, addressing Alice's wallet key, is refused by Alice's service.
    let bob_at_alice = RawApp {
        pool: pool(&relay.url).await,
        app: Keys::new(bob_app.nwc_uri().secret.clone()),
        wallet: alice_app.connection.wallet_pubkey,
    };
    let refused = node_id_over_nwc(&bob_at_alice).await;
    assert_eq!(code(&refused), Some("UNAUTHORIZED"), "{refused}");
    assert!(
        refused.get("result").is_none_or(|r| r.is_null()),
        "{refused}"
    );

    // --- Paused (its host suspended it), Alice answers RESTRICTED; Bob is served.
    alice_nwc.set_paused(true);
    let paused = node_id_over_nwc(&alice_raw).await;
    assert_eq!(code(&paused), Some("RESTRICTED"), "{paused}");
    let info = node_id_over_nwc(&bob_raw).await;
    assert_eq!(
        info["result"]["pubkey"],
        bob.node_id().to_string(),
        "{info}"
    );
    alice_nwc.set_paused(false);

    // --- Alice's requests together, over both her apps, are cut at her rate; Bob, who has
    // used fewer, is still served. Alice has used one of her burst so far: Bob's request
    // never reached a connection of hers, and the paused one was answered before the limit.
    let mut limited = 0;
    let mut served = 0;
    for i in 0..2 * TENANT_BURST {
        let app = if i % 2 == 0 { &alice_raw } else { &alice_raw2 };
        let answer = node_id_over_nwc(app).await;
        match code(&answer) {
            None => served += 1,
            Some("RATE_LIMITED") => limited += 1,
            other => panic!("unexpected {other:?}: {answer}"),
        }
    }
    assert!(served < 2 * TENANT_BURST, "Alice is limited over both apps");
    assert!(
        limited >= TENANT_BURST - 1,
        "{limited} limited, {served} served"
    );
    let info = node_id_over_nwc(&bob_raw).await;
    assert_eq!(
        info["result"]["pubkey"],
        bob.node_id().to_string(),
        "{info}"
    );

    // --- Alice's service stops; Bob's goes on on the same relays.
    alice_nwc.stop().await;
    assert_eq!(shared.tenants(), 1);
    let unanswered = alice_raw
        .send(
            &alice_raw.event(r#"{"method":"get_info"}"#, &RawOpts::nip44()),
            Duration::from_secs(3),
        )
        .await;
    assert!(unanswered.is_none(), "a stopped tenant answers nothing");
    let info = node_id_over_nwc(&bob_raw).await;
    assert_eq!(
        info["result"]["pubkey"],
        bob.node_id().to_string(),
        "{info}"
    );

    bob_nwc.stop().await;
    shared.stop().await;
}
