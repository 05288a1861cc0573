//! `micronode host`: tenants provisioned through the admin API, each paired with its own signer
//! process; a new tenant paid through a JIT channel; a payment from one tenant to another
//! through the gateway; the host's one NWC service answering each tenant's apps and refusing
//! an app of one tenant at another; credentials that cross tenants refused; suspend, resume
//! and delete;
//! a restart that brings every tenant back; a tenant with a corrupted store that does not stop
//! the others.

mod daemon;

use daemon::host::*;
use daemon::tenant::outcome_mining;
use micronode_node::PaymentStatus;
use micronode_nwc::embedded_relay::EmbeddedRelay;
use micronode_proto::v1;
use micronode_proto::ErrorCode;
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::wait_until;
use nwc::prelude::{nip47, NostrWalletConnectOptions, NostrWalletConnectURI, NWC};

/// Tenant `from` pays tenant `to`'s invoice (a JIT invoice: `to` has no channel yet) through
/// the front door, mining while the gateway opens `to`'s channel.
async fn tenant_to_tenant(env: &Env, from: &mut DoorClient, to: &mut DoorClient, msat: u64) {
    let invoice = invoice(to, msat).await;
    let started = from
        .pay_invoice(v1::PayInvoiceRequest {
            invoice: invoice.clone(),
            wait: false,
            ..Default::default()
        })
        .await
        .expect("pay")
        .into_inner();
    assert_eq!(started.status, v1::PaymentStatus::Pending as i32);
    let deadline = tokio::time::Instant::now() + 3 * TIMEOUT;
    loop {
        let (status, _) = payment(from, &invoice, v1::PaymentDirection::Outbound).await;
        if status != v1::PaymentStatus::Pending as i32 {
            assert_eq!(status, v1::PaymentStatus::Succeeded as i32);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no outcome");
        if !env.mempool().await.is_empty() {
            env.mine(1).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        inbound(to, &invoice).await,
        (
            v1::PaymentStatus::Succeeded as i32,
            Some(msat - JIT_FEE_MSAT)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_provisions_pays_isolates_and_restarts_its_tenants() {
    let env = Env::new("host").await;
    let relay = EmbeddedRelay::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("relay");
    let (payer, host_dir, mut host) = payer_and_host(&env, Some(relay.url())).await;

    // --- Three tenants, each with its own signer process, provisioned through the admin API.
    let alice = provision(&env, &host, "alice").await;
    let bob = provision(&env, &host, "bob").await;
    let carol = provision(&env, &host, "carol").await;
    assert_eq!(
        host.admin(&["create", "alice"]).expect_err("a taken name"),
        host.admin(&["create", "alice"]).expect_err("a taken name")
    );
    assert!(host
        .admin(&["create", "alice"])
        .expect_err("taken")
        .contains("exists already"));
    let listed = host.admin(&["list"]).expect("list");
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);

    // Each tenant's token selects its tenant at the one front door.
    let api = host.api();
    let mut a = door(&api, &alice.app.token, None).await;
    let mut b = door(&api, &bob.app.token, None).await;
    for (client, tenant) in [(&mut a, &alice), (&mut b, &bob)] {
        let info = client
            .get_info(v1::GetInfoRequest {})
            .await
            .expect("info")
            .into_inner();
        assert_eq!(info.node_id, tenant.node_id);
    }

    // --- Alice, with nothing on chain and no channel, is paid through a JIT channel.
    assert_eq!(in_channels_sat(&mut a).await, 0);
    first_payment(&env, &payer, &mut a, 50_000_000).await;
    assert_eq!(in_channels_sat(&mut a).await, 48_000);

    // --- Alice pays Bob (his first payment: a JIT channel too) through the gateway. The JIT
    // invoice's route hint carries no forwarding fee: Bob pays the opening fee, Alice nothing.
    tenant_to_tenant(&env, &mut a, &mut b, 12_000_000).await;
    assert_eq!(in_channels_sat(&mut b).await, 10_000);
    let alice_sat = in_channels_sat(&mut a).await;
    assert_eq!(alice_sat, 48_000 - 12_000, "12,000 sat and no fee");

    // --- The host's one NWC service: each tenant's app reaches its own node.
    let alice_uri = nwc_connect(&host, &alice, relay.url());
    let bob_uri = nwc_connect(&host, &bob, relay.url());
    let (alice_nwc, info) = nwc_app(&alice_uri).await;
    assert_eq!(info.pubkey.as_deref(), Some(alice.node_id.as_str()));
    assert_eq!(
        alice_nwc.get_balance().await.expect("balance"),
        spendable_msat(&mut a).await
    );
    let (bob_nwc, info) = nwc_app(&bob_uri).await;
    assert_eq!(info.pubkey.as_deref(), Some(bob.node_id.as_str()));
    assert_eq!(
        bob_nwc.get_balance().await.expect("balance"),
        spendable_msat(&mut b).await
    );
    // Bob's app, addressing Alice's wallet, is refused by Alice's part of the service.
    let bob_at_alice = NWC::with_opts(
        NostrWalletConnectURI::new(
            alice_uri.public_key,
            alice_uri.relays.clone(),
            bob_uri.secret.clone(),
            None,
        ),
        NostrWalletConnectOptions::new().timeout(std::time::Duration::from_secs(30)),
    );
    let refused = bob_at_alice
        .get_balance()
        .await
        .expect_err("Bob's app is not Alice's");
    assert_eq!(nwc_code(refused), nip47::ErrorCode::Unauthorized);
    bob_at_alice.shutdown().await;
    // A flood of Alice's NWC requests is cut at her rate; Bob's app is served meanwhile.
    let flood = (0..4 * TENANT_NWC_RATE).map(|_| {
        let app = alice_nwc.clone();
        async move { app.get_info().await }
    });
    let mut limited = 0;
    for answer in futures::future::join_all(flood).await {
        if let Err(e) = answer {
            assert_eq!(nwc_code(e), nip47::ErrorCode::RateLimited);
            limited += 1;
        }
    }
    assert!(limited >= TENANT_NWC_RATE, "{limited} limited");
    assert!(bob_nwc.get_info().await.is_ok(), "Bob is not limited");

    // --- The host's metrics: tenants by state, signers, channels, payments of all tenants
    // together, and every tenant synced with the chain.
    wait_until("every tenant synced", TIMEOUT, || async {
        let text = host.metrics();
        [&alice, &bob, &carol].iter().all(|t| {
            text.contains(&format!(
                "micronode_tenant_block_lag{{tenant=\"{}\"}} 0",
                t.id
            ))
        })
    })
    .await
    .expect("no tenant lags the chain");
    let metrics = host.metrics();
    for line in [
        "micronode_tenants{state=\"active\"} 3".to_string(),
        "micronode_tenants{state=\"failed\"} 0".to_string(),
        format!(
            "micronode_tenant_signer_connected{{tenant=\"{}\"}} 1",
            alice.id
        ),
        format!("micronode_tenant_channels{{tenant=\"{}\"}} 1", alice.id),
        format!("micronode_tenant_channels{{tenant=\"{}\"}} 0", carol.id),
        "micronode_payments{direction=\"inbound\",status=\"succeeded\"} 2".to_string(),
        "micronode_payments{direction=\"outbound\",status=\"succeeded\"} 1".to_string(),
        "micronode_gateway_channels 3".to_string(),
    ] {
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    assert!(
        metrics.contains("micronode_bitcoind_calls_total "),
        "{metrics}"
    );

    // --- Credentials across tenants, and the operator's, are refused.
    let bob_for_alice = door(&api, &bob.app.token, Some(&alice.node_id)).await;
    let refused = bob_for_alice
        .clone()
        .lightning_balance(v1::LightningBalanceRequest {})
        .await
        .expect_err("Bob's token is not Alice's");
    assert_eq!(code_of(&refused), Some(ErrorCode::TokenWrongTenant));
    let admin_cookie = std::fs::read_to_string(host.dir.join("admin.cookie")).expect("cookie");
    let gateway_cookie = std::fs::read_to_string(host.dir.join("gateway.cookie")).expect("cookie");
    for operator in [admin_cookie.trim(), gateway_cookie.trim()] {
        let mut as_alice = door(&api, operator, Some(&alice.node_id)).await;
        let balance = as_alice
            .lightning_balance(v1::LightningBalanceRequest {})
            .await
            .expect_err("the operator reads no tenant's balance");
        assert_eq!(code_of(&balance), Some(ErrorCode::TokenInvalid));
        let payments = as_alice
            .list_payments(v1::ListPaymentsRequest::default())
            .await
            .expect_err("nor its payments");
        assert_eq!(code_of(&payments), Some(ErrorCode::TokenInvalid));
        let paying = as_alice
            .pay_invoice(v1::PayInvoiceRequest {
                invoice: invoice(&mut b, 1_000_000).await,
                ..Default::default()
            })
            .await
            .expect_err("nor pays from it");
        assert_eq!(code_of(&paying), Some(ErrorCode::TokenInvalid));
    }
    let unknown = door(&api, &alice.app.token, Some(&"02".repeat(33))).await;
    let status = unknown
        .clone()
        .get_info(v1::GetInfoRequest {})
        .await
        .expect_err("no such tenant");
    assert_eq!(code_of(&status), Some(ErrorCode::UnknownTenant));

    // --- A flood of Bob's calls is cut at his rate; Alice is served all the while.
    let flood: Vec<_> = (0..5 * TENANT_API_RATE)
        .map(|_| {
            let mut b = b.clone();
            tokio::spawn(async move { b.get_info(v1::GetInfoRequest {}).await })
        })
        .collect();
    let mut limited = 0;
    for call in flood {
        if let Err(status) = call.await.expect("task") {
            assert_eq!(code_of(&status), Some(ErrorCode::RateLimited), "{status:?}");
            limited += 1;
        }
    }
    assert!(
        limited >= 2 * TENANT_API_RATE,
        "{limited} of {} limited",
        5 * TENANT_API_RATE
    );
    assert_eq!(
        in_channels_sat(&mut a).await,
        alice_sat,
        "Alice is not limited"
    );
    // Bob's bucket refills at his rate.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    // --- Suspend refuses Bob's API (his node keeps running); resume serves it again.
    let suspended = host.admin(&["suspend", "bob"]).expect("suspend");
    assert_eq!(suspended["state"], "suspended");
    let status = b
        .get_info(v1::GetInfoRequest {})
        .await
        .expect_err("suspended");
    assert_eq!(code_of(&status), Some(ErrorCode::TenantSuspended));
    assert_eq!(host.show("bob")["signer_connected"], true);
    let paused = bob_nwc
        .get_info()
        .await
        .expect_err("a suspended tenant's apps are refused");
    assert_eq!(nwc_code(paused), nip47::ErrorCode::Restricted);
    let resumed = host.admin(&["resume", "bob"]).expect("resume");
    assert_eq!(resumed["state"], "active");
    assert_eq!(in_channels_sat(&mut b).await, 10_000);
    assert!(
        bob_nwc.get_info().await.is_ok(),
        "resumed, Bob's app is served"
    );

    // --- Delete: refused while Alice has a channel; Carol, with none, is deleted and gone.
    let refused = host
        .admin(&["delete", "alice"])
        .expect_err("alice has funds");
    assert!(
        refused.contains("TENANT_HAS_FUNDS") || refused.contains("channel"),
        "{refused}"
    );
    let deleted = host.admin(&["delete", "carol"]).expect("delete carol");
    assert_eq!(deleted["deleted"], true);
    let carol_client = door(&api, &carol.app.token, None).await;
    let status = carol_client
        .clone()
        .get_info(v1::GetInfoRequest {})
        .await
        .expect_err("deleted");
    assert_eq!(code_of(&status), Some(ErrorCode::UnknownTenant));
    assert!(host.admin(&["show", "carol"]).is_err());
    assert_eq!(
        host.admin(&["list"])
            .expect("list")
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert!(
        host.dir
            .join("deleted")
            .read_dir()
            .expect("deleted")
            .count()
            == 1
    );
    drop(carol);

    // --- A fourth tenant whose store gets corrupted while the host is down.
    let dave = provision(&env, &host, "dave").await;
    host.terminate();
    let store = host_dir
        .join("tenants")
        .join(&dave.id)
        .join("micronode.sqlite");
    std::fs::write(&store, b"this is not a database").expect("corrupt");
    for ext in ["sqlite-wal", "sqlite-shm"] {
        let _ = std::fs::remove_file(store.with_extension(ext));
    }

    // --- After the restart every tenant is back (its signer dials in again); Dave failed
    // alone, and says why.
    let host = HostProcess::start(&env, &host_dir, Some(relay.url()));
    let api = host.api();
    wait_until("alice and bob back", TIMEOUT, || async {
        host.show("alice")["state"] == "active" && host.show("bob")["state"] == "active"
    })
    .await
    .expect("tenants come back after a restart");
    wait_until("dave failed", TIMEOUT, || async {
        host.show("dave")["state"] == "failed"
    })
    .await
    .expect("the corrupted tenant is marked failed");
    let failure = host.show("dave")["failure"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(failure.contains("storage error"), "{failure}");
    let mut a = door(&api, &alice.app.token, None).await;
    let mut b = door(&api, &bob.app.token, None).await;
    assert_eq!(in_channels_sat(&mut a).await, alice_sat);
    assert_eq!(in_channels_sat(&mut b).await, 10_000);
    let dave_client = door(&api, &dave.app.token, None).await;
    let status = dave_client
        .clone()
        .get_info(v1::GetInfoRequest {})
        .await
        .expect_err("dave's node is not running");
    assert_eq!(code_of(&status), Some(ErrorCode::UnknownTenant));

    // Paying on after the restart: the outside node (reconnected: the gateway listens on a
    // new port) pays Alice, now through her channel.
    reconnect(&payer, &host).await;
    let invoice = invoice(&mut a, 5_000_000).await;
    let id = payer.pay_invoice(&invoice, None, None).expect("pay");
    let paid = outcome_mining(&env, &payer, &id).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    assert_eq!(
        inbound(&mut a, &invoice).await,
        (v1::PaymentStatus::Succeeded as i32, Some(5_000_000))
    );

    // --- Deleting Bob with his channel: closed cooperatively, then he is gone once the close
    // has confirmed; his 10,000 sat went to his own wallet (keys in his signer).
    let closing = host
        .admin(&["delete", "bob", "--close-channels"])
        .expect("delete bob");
    assert_eq!(closing["deleted"], false);
    assert_eq!(closing["closing_channels"], 1);
    assert_eq!(host.show("bob")["state"], "deleting");
    let status = b
        .get_info(v1::GetInfoRequest {})
        .await
        .expect_err("a deleting tenant's API is refused");
    assert_eq!(code_of(&status), Some(ErrorCode::TenantSuspended));
    wait_until("the cooperative close in the mempool", TIMEOUT, || async {
        !env.mempool().await.is_empty()
    })
    .await
    .expect("closing transaction broadcast");
    let close = env.mempool().await.remove(0);
    assert!(
        close.output.iter().any(|o| o.value.to_sat() == 10_000),
        "Bob's 10,000 sat leave in the close: {close:?}"
    );
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while host.admin(&["show", "bob"]).is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob is never deleted"
        );
        env.mine(1).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(
        host.dir
            .join("deleted")
            .read_dir()
            .expect("deleted")
            .count(),
        2
    );
    drop((alice, bob, dave));
}
