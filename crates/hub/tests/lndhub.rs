//! The hub end to end on real components: a regtest bitcoind, the tenant's LDK node (with its
//! gRPC API and the hub on it) and an outside node with a channel to it. A small LndHub client
//! drives every endpoint.

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_ledger, get, post, start_hub, User};
use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef};
use micronode_api::{read_cookie, CookieAuth};
use micronode_client::NodeClient;
use micronode_hub::payments::{self, ExternalPayment};
use micronode_hub::{Hub, HubConfig, SignupMode, Store};
use micronode_node::PaymentStatus;
use micronode_testenv::nodes::{open_channel, Env, TestNode, TIMEOUT};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The tenant's API, and a client of it.
async fn serve_api(
    env: &Env,
    node: Arc<TestNode>,
) -> (NodeClient, tokio::sync::oneshot::Sender<()>) {
    let cookie = env.dir.0.join("tenant").join("api.cookie");
    let auth = CookieAuth::create(&cookie).expect("cookie");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, _task) = micronode_api::serve(
        node,
        "127.0.0.1:0".parse().expect("addr"),
        Arc::new(auth),
        async move {
            let _ = stopped.await;
        },
    )
    .await
    .expect("serve the API");
    let token = read_cookie(&cookie).expect("cookie token");
    let client = NodeClient::connect(&format!("http://{addr}"), &token, None)
        .await
        .expect("connect");
    (client, stop)
}

/// The outside node pays `invoice` and waits for success.
async fn outside_pays(outside: &TestNode, invoice: &str) {
    let id = outside.pay_invoice(invoice, None, None).expect("pay");
    let record = outside.wait_payment(&id, TIMEOUT).await.expect("outcome");
    assert_eq!(record.status, PaymentStatus::Succeeded, "{record:?}");
}

/// Waits until `user`'s balance is `sat`.
async fn wait_balance(addr: std::net::SocketAddr, user: &User, sat: u64) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let b = user.balance(addr).await;
        if b == sat {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "balance {b} never became {sat}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn balance_msat(hub: &Hub, user: &User) -> i64 {
    hub.admin()
        .list_accounts()
        .await
        .expect("accounts")
        .into_iter()
        .find(|a| a.login == user.login)
        .expect("account")
        .balance_msat
}

fn tenant_outbound_msat(tenant: &TestNode) -> u64 {
    tenant
        .list_channels()
        .iter()
        .map(|c| c.outbound_capacity_msat)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lndhub_on_a_real_node() {
    let env = Env::new("hub").await;
    let tenant = Arc::new(env.start_node("tenant").await);
    let outside = env.start_node("outside").await;
    env.fund(&outside, 3_000_000).await;
    open_channel(&env, &outside, &*tenant, 2_000_000).await;
    // The tenant's own funds (outside the hub's books) give it room to send past the reserve.
    let own = tenant
        .create_invoice(Some(300_000_000), "tenant liquidity", 3600)
        .expect("invoice");
    outside_pays(&outside, &own.invoice).await;
    let (client, _api) = serve_api(&env, tenant.clone()).await;

    let config = HubConfig {
        signup: SignupMode::Open,
        domain: "hub.test".into(),
        tenant_address: Some("tenant".into()),
        resolve_interval_secs: 1,
        ..HubConfig::default()
    };
    let data = env.dir.0.join("hub");
    let hub = start_hub(config.clone(), &data, client.clone()).await;
    let addr = hub.local_addr();

    let alice = User::create(addr).await;
    let bob = User::create(addr).await;

    // getinfo: the tenant's identity.
    let info = get(addr, "/getinfo", Some(&alice.access)).await.ok();
    assert_eq!(info["identity_pubkey"], tenant.node_id().to_string());
    assert_eq!(info["alias"], "tenant");

    // Receive: the outside node pays Alice's invoice.
    let (pr, hash) = alice.add_invoice(addr, 50_000, "coffee").await;
    assert_eq!(hash.len(), 64);
    let paid = get(addr, &format!("/checkpayment/{hash}"), Some(&alice.access))
        .await
        .ok();
    assert_eq!(paid, json!({"paid": false}));
    outside_pays(&outside, &pr).await;
    wait_balance(addr, &alice, 50_000).await;
    assert_eq!(balance_msat(&hub, &alice).await, 50_000_000);
    let paid = get(addr, &format!("/checkpayment/{hash}"), Some(&alice.access))
        .await
        .ok();
    assert_eq!(paid, json!({"paid": true}));
    // Bob cannot see Alice's invoice.
    get(addr, &format!("/checkpayment/{hash}"), Some(&bob.access))
        .await
        .assert_code(8);
    let invoices = get(addr, "/getuserinvoices?limit=10", Some(&alice.access))
        .await
        .ok();
    let invoices = invoices.as_array().expect("array");
    assert_eq!(invoices.len(), 1);
    let i = &invoices[0];
    assert_eq!(i["ispaid"], true);
    assert_eq!(i["amt"], 50_000);
    assert_eq!(i["type"], "user_invoice");
    assert_eq!(i["payment_hash"], hash.as_str());
    assert_eq!(i["r_hash"], hash.as_str());
    assert_eq!(i["payment_request"], pr.as_str());
    assert_eq!(i["description"], "coffee");
    assert_eq!(i["expire_time"], 86_400);
    assert!(i["timestamp"].as_i64().expect("timestamp") > 0);
    assert_eq!(
        get(addr, "/getuserinvoices", Some(&bob.access)).await.ok(),
        json!([])
    );
    assert_ledger(&hub).await;

    // Internal: Alice pays Bob; no Lightning funds move.
    let outbound_before = tenant_outbound_msat(&tenant);
    let (bob_pr, bob_hash) = bob.add_invoice(addr, 1_000, "for bob").await;
    let v = alice.pay(addr, &bob_pr).await.ok();
    assert_eq!(v["payment_route"]["total_fees"], 0);
    assert_eq!(v["decoded"]["payment_hash"], bob_hash.as_str());
    assert_eq!(alice.balance(addr).await, 49_000);
    assert_eq!(bob.balance(addr).await, 1_000);
    assert_eq!(tenant_outbound_msat(&tenant), outbound_before);
    let bob_paid = get(
        addr,
        &format!("/checkpayment/{bob_hash}"),
        Some(&bob.access),
    )
    .await
    .ok();
    assert_eq!(bob_paid["paid"], true);
    // Paid already; one's own invoice.
    alice.pay(addr, &bob_pr).await.assert_code(4);
    let (bob_pr2, _) = bob.add_invoice(addr, 10, "own").await;
    bob.pay(addr, &bob_pr2).await.assert_code(8);
    assert_ledger(&hub).await;

    // Not enough balance; an invalid invoice.
    let big = outside
        .create_invoice(Some(10_000_000), "big", 3600)
        .expect("invoice");
    bob.pay(addr, &big.invoice).await.assert_code(2);
    bob.pay(addr, "lnbcrt1notaninvoice").await.assert_code(4);
    assert_eq!(bob.balance(addr).await, 1_000);

    // External: Alice pays the outside node; the fee reserve comes back.
    let before = balance_msat(&hub, &alice).await;
    let ext = outside
        .create_invoice(Some(20_000_000), "outside", 3600)
        .expect("invoice");
    let v = alice.pay(addr, &ext.invoice).await.ok();
    let fee_msat = v["payment_route"]["total_fees_msat"].as_i64().expect("fee");
    assert_eq!(v["payment_hash"], ext.payment_hash.as_str());
    assert_eq!(v["payment_preimage"].as_str().expect("preimage").len(), 64);
    assert_eq!(v["pay_req"], ext.invoice.as_str());
    assert_eq!(
        balance_msat(&hub, &alice).await,
        before - 20_000_000 - fee_msat
    );
    // Paying it again is refused, not charged.
    alice.pay(addr, &ext.invoice).await.assert_code(4);
    assert_eq!(
        balance_msat(&hub, &alice).await,
        before - 20_000_000 - fee_msat
    );
    let txs = get(addr, "/gettxs", Some(&alice.access)).await.ok();
    let txs = txs.as_array().expect("array");
    assert_eq!(txs.len(), 2, "{txs:?}");
    assert_eq!(txs[0]["type"], "paid_invoice");
    assert_eq!(txs[0]["memo"], "outside");
    assert_eq!(txs[0]["value"], 20_000 + fee_msat / 1000);
    assert_eq!(txs[0]["payment_hash"], ext.payment_hash.as_str());
    assert_eq!(txs[1]["memo"], "for bob");
    assert_eq!(
        get(addr, "/gettxs", Some(&bob.access)).await.ok(),
        json!([])
    );
    assert_ledger(&hub).await;

    // Keysend to the outside node.
    let before = balance_msat(&hub, &alice).await;
    let v = post(
        addr,
        "/keysend",
        Some(&alice.access),
        json!({"destination": outside.node_id().to_string(), "amount": 1_000}),
    )
    .await
    .ok();
    let fee_msat = v["payment_route"]["total_fees_msat"].as_i64().expect("fee");
    assert_eq!(
        balance_msat(&hub, &alice).await,
        before - 1_000_000 - fee_msat
    );
    // The hub drew the preimage (so it recorded the hash before the node started): the
    // payment's hash is its SHA-256.
    let preimage = hex::decode(v["payment_preimage"].as_str().expect("preimage")).expect("hex");
    assert_eq!(
        v["payment_hash"].as_str().expect("hash"),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&preimage))
    );
    assert_ledger(&hub).await;

    // decodeinvoice.
    let decoded = get(
        addr,
        &format!("/decodeinvoice?invoice={}", ext.invoice),
        Some(&bob.access),
    )
    .await
    .ok();
    assert_eq!(decoded["destination"], outside.node_id().to_string());
    assert_eq!(decoded["payment_hash"], ext.payment_hash.as_str());
    assert_eq!(decoded["num_satoshis"], "20000");
    assert_eq!(decoded["num_msat"], "20000000");
    assert_eq!(decoded["description"], "outside");
    assert_eq!(decoded["expiry"], "3600");

    // 100 concurrent payments from Alice (90 internal to Bob, 10 external) never overspend.
    let start_msat = balance_msat(&hub, &alice).await;
    let bob_start = balance_msat(&hub, &bob).await;
    let mut invoices = Vec::new();
    for _ in 0..90 {
        invoices.push(bob.add_invoice(addr, 500, "burst").await.0);
    }
    for _ in 0..10 {
        invoices.push(
            outside
                .create_invoice(Some(1_000_000), "burst out", 3600)
                .expect("invoice")
                .invoice,
        );
    }
    let mut tasks = Vec::new();
    for (n, invoice) in invoices.into_iter().enumerate() {
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            (n >= 90, alice.pay(addr, &invoice).await)
        }));
    }
    let (mut spent_msat, mut refused, mut in_transit) = (0i64, 0, 0);
    for t in tasks {
        let (external, answer) = t.await.expect("task");
        match answer.code() {
            None if external => {
                spent_msat += 1_000_000
                    + answer.body["payment_route"]["total_fees_msat"]
                        .as_i64()
                        .expect("fee")
            }
            None => spent_msat += 500_000,
            Some(2) => refused += 1,
            Some(9) | Some(10) if external => in_transit += 1,
            other => panic!("unexpected answer {other:?}: {answer:?}"),
        }
    }
    assert!(refused > 0, "Alice could not afford all 100");
    assert!(
        spent_msat <= start_msat,
        "overspent: {spent_msat} of {start_msat}"
    );
    // Wait for anything in transit, then check the books.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let report = hub.admin().check_ledger().await.expect("ledger");
        assert!(report.negative_accounts.is_empty(), "{report:?}");
        if report.outgoing_msat == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "payments stuck: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ledger(&hub).await;
    let end_msat = balance_msat(&hub, &alice).await;
    assert!(end_msat >= 0);
    let bob_gain = balance_msat(&hub, &bob).await - bob_start;
    assert_eq!(bob_gain % 500_000, 0);
    if in_transit == 0 {
        assert_eq!(start_msat - end_msat, spent_msat);
    }
    assert!(start_msat - end_msat >= bob_gain);

    // Lightning Address: Bob claims a name; the outside wallet pays it.
    let claimed = post(addr, "/address", Some(&bob.access), json!({"name": "bob"}))
        .await
        .ok();
    assert_eq!(claimed["address"], "bob@hub.test");
    post(
        addr,
        "/address",
        Some(&alice.access),
        json!({"name": "bob"}),
    )
    .await
    .assert_code(8);
    post(
        addr,
        "/address",
        Some(&alice.access),
        json!({"name": "tenant"}),
    )
    .await
    .assert_code(8);
    let bob_before = balance_msat(&hub, &bob).await;
    let pay_request = get(addr, "/.well-known/lnurlp/bob", None).await.ok();
    assert_eq!(pay_request["tag"], "payRequest");
    assert_eq!(pay_request["minSendable"], 1000);
    assert_eq!(pay_request["maxSendable"], 1_000_000_000u64);
    assert_eq!(pay_request["commentAllowed"], 0);
    let metadata = pay_request["metadata"]
        .as_str()
        .expect("metadata")
        .to_string();
    let entries: Vec<Vec<String>> = serde_json::from_str(&metadata).expect("metadata JSON");
    assert!(entries.contains(&vec![
        "text/identifier".to_string(),
        "bob@hub.test".to_string()
    ]));
    let callback = pay_request["callback"].as_str().expect("callback");
    let path = callback
        .strip_prefix(&format!("http://{addr}"))
        .expect("callback on the public URL");
    let too_small = get(addr, &format!("{path}?amount=999"), None).await;
    assert_eq!(too_small.body["status"], "ERROR");
    let answer = get(addr, &format!("{path}?amount=123456"), None).await.ok();
    assert_eq!(answer["routes"], json!([]));
    let pr = answer["pr"].as_str().expect("pr");
    let invoice = Bolt11Invoice::from_str(pr).expect("bolt11");
    assert_eq!(invoice.amount_milli_satoshis(), Some(123_456));
    let expected: [u8; 32] = Sha256::digest(metadata.as_bytes()).into();
    match invoice.description() {
        Bolt11InvoiceDescriptionRef::Hash(h) => assert_eq!(h.0.as_ref() as &[u8], &expected),
        other => panic!("not a description hash: {other:?}"),
    }
    outside_pays(&outside, pr).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while balance_msat(&hub, &bob).await != bob_before + 123_456 {
        assert!(tokio::time::Instant::now() < deadline, "Bob never credited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The tenant's own address credits no account.
    let total_before = hub
        .admin()
        .check_ledger()
        .await
        .expect("ledger")
        .users_total_msat;
    let tenant_pr = get(addr, "/.well-known/lnurlp/tenant", None).await.ok();
    let path = tenant_pr["callback"]
        .as_str()
        .expect("callback")
        .strip_prefix(&format!("http://{addr}"))
        .expect("path")
        .to_string();
    let answer = get(addr, &format!("{path}?amount=5000"), None).await.ok();
    outside_pays(&outside, answer["pr"].as_str().expect("pr")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = hub.admin().check_ledger().await.expect("ledger");
    assert_eq!(report.users_total_msat, total_before);
    assert_ledger(&hub).await;

    // Restart: the books and accounts persist.
    let alice_msat = balance_msat(&hub, &alice).await;
    let bob_id = hub
        .admin()
        .list_accounts()
        .await
        .expect("accounts")
        .into_iter()
        .find(|a| a.login == bob.login)
        .expect("bob")
        .id;
    let bob_msat = balance_msat(&hub, &bob).await;
    hub.stop().await.expect("stop");

    // As if the hub died after holding two payments: one never reached the node, the node
    // made the other. The resolver settles the one and refunds the other at start-up.
    let store = Store::open(&data).expect("store");
    let lost = outside
        .create_invoice(Some(200_000), "lost", 3600)
        .expect("invoice");
    let sent = outside
        .create_invoice(Some(300_000), "sent", 3600)
        .expect("invoice");
    for (invoice, amount_msat) in [(&lost, 200_000), (&sent, 300_000)] {
        let held = ExternalPayment {
            kind: "bolt11",
            payment_hash: Some(invoice.payment_hash.clone()),
            bolt11: Some(invoice.invoice.clone()),
            destination: None,
            amount_msat,
            reserve_msat: 10_000,
            memo: String::new(),
        };
        store
            .transaction(move |tx, system| payments::hold(tx, system, bob_id, &held))
            .await
            .expect("hold");
    }
    let paid = client
        .pay_invoice(&sent.invoice, None, Some(10_000), Some(30))
        .await
        .expect("the node pays");
    let fee = paid.fee_msat.unwrap_or(0) as i64;
    drop(store);
    let config = HubConfig {
        resolve_grace_secs: 1,
        ..config
    };
    let hub = start_hub(config, &data, client).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let report = hub.admin().check_ledger().await.expect("ledger");
        if report.outgoing_msat == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not resolved: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(balance_msat(&hub, &bob).await, bob_msat - 300_000 - fee);
    assert_eq!(balance_msat(&hub, &alice).await, alice_msat);
    let alice = User::login(hub.local_addr(), alice.login, alice.password).await;
    assert_eq!(
        alice.balance(hub.local_addr()).await as i64,
        alice_msat / 1000
    );
    assert_ledger(&hub).await;
    hub.stop().await.expect("stop");
}
