//! Only the tenant's own apps can spend (the signer's default policy), end to end with real
//! processes: a watch-only tenant node, its signer behind the operator's man in the middle, a
//! peer, a Nostr relay and a stock NWC client.
//!
//! The tenant's apps pay: the CLI with a credential its signer baked, a gRPC client written
//! here, and a stock NWC client whose key the signer made. The operator, with everything the
//! node and the wire show it, cannot: a payment the node starts alone, a replayed request, a
//! request with its invoice swapped or its amount raised, a replayed NWC event, and an NWC app
//! over the budget the signer keeps (with the node's own ledger wiped) are each refused with
//! their rule, and the peer receives exactly what the apps paid, to the sat. On chain, the
//! operator's send to the tenant's allow-listed address needs an app's request too, and the
//! app's own send to an address of its choice goes out once, for exactly what it asked (the
//! operator's alteration of it on the way to the signer is refused).

mod daemon;

use std::process::{Command, Stdio};
use std::time::Duration;

use daemon::proxy::SignerProxy;
use daemon::signer::{self, SignerProcess};
use daemon::tenant::*;
use daemon::Launch;
use micronode_node::remote::protocol::{Hex, SignerRequest, SignerResponse};
use micronode_nwc::embedded_relay::EmbeddedRelay;
use micronode_proto::v1;
use micronode_proto::v1::lightning_client::LightningClient;
use micronode_proto::ERROR_CODE_METADATA;
use micronode_signer_protocol::{AppCredential, AppMethod, PaymentAuthorization};
use nwc::prelude::{NostrWalletConnectOptions, NostrWalletConnectURI, PayInvoiceRequest, NWC};

#[track_caller]
fn refused(what: &str, response: &SignerResponse, expected_rule: &str) {
    match response {
        SignerResponse::Refused { rule, message, .. } => {
            assert_eq!(rule, expected_rule, "{what}: {message}")
        }
        other => panic!("{what} was not refused: {other:?}"),
    }
}

/// Runs `micronode <args>`; returns its stdout, or panics with its stderr.
fn micronode(args: &[&str], token: Option<&str>) -> String {
    let (ok, out, err) = daemon::run_micronode(args, token);
    assert!(ok, "micronode {args:?}: {err}");
    out
}

fn random_address() -> bitcoin::Address {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let key = bitcoin::secp256k1::SecretKey::new(&mut rand::thread_rng());
    bitcoin::Address::p2wpkh(
        &bitcoin::CompressedPublicKey(key.public_key(&secp)),
        bitcoin::Network::Regtest,
    )
}

/// Sends on chain through the API as the operator (the node's cookie, no app request).
async fn operator_sends(
    client: &mut daemon::Client,
    address: &bitcoin::Address,
    sat: u64,
) -> tonic::Status {
    client
        .send_onchain(v1::SendOnchainRequest {
            address: address.to_string(),
            amount: Some(v1::send_onchain_request::Amount::AmountSat(sat)),
            sat_per_vbyte: Some(2),
        })
        .await
        .expect_err("the operator's send is refused")
}

/// The node's app approvals the operator saw, newest last.
fn approvals(proxy: &SignerProxy) -> Vec<SignerRequest> {
    proxy
        .recorded()
        .into_iter()
        .filter(|r| {
            matches!(
                r,
                SignerRequest::ApproveInvoice {
                    authorization: Some(_),
                    ..
                }
            )
        })
        .collect()
}

/// Waits until the tenant's wallet holds `sat` in total.
async fn wait_until_wallet(client: &mut daemon::Client, sat: u64) {
    let mut last = 0;
    for _ in 0..100 {
        last = onchain(client).await.total_sat;
        if last == sat {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the wallet holds {last} sat, not {sat}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_tenants_apps_can_spend() {
    let env = micronode_testenv::nodes::Env::new("app-requests").await;
    let b = env.start_node("b").await;
    let relay = EmbeddedRelay::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("relay");

    // The tenant: default signer policy, the operator in the middle, NWC on the relay.
    let signer_dir = env.dir.0.join("a-signer");
    std::fs::create_dir_all(&signer_dir).expect("dir");
    signer::init(&signer_dir);
    // The default policy, with one allow-listed address of the tenant's.
    let allowed = random_address();
    signer::set_policy(&signer_dir, &format!("allowlist = [\"{allowed}\"]"));
    let a_dir = env.dir.0.join("a");
    std::fs::create_dir_all(&a_dir).expect("dir");
    let mut flags = remote_flags();
    flags.extend(["--nwc-relay".to_string(), relay.url().to_string()]);
    let log = std::fs::File::create(a_dir.with_extension("log")).expect("log");
    let launch = Launch::spawn(&env, &a_dir, &flags, Stdio::from(log));
    let waiting = launch.event("waiting_for_signer");
    let proxy = SignerProxy::start(
        waiting["signer_listen"]
            .as_str()
            .expect("listen")
            .to_string(),
        waiting["pairing_code"].as_str().expect("code").to_string(),
    )
    .await;
    let _signer =
        SignerProcess::start(&signer_dir, &proxy.listen, Some(&proxy.code), &env.bitcoind);
    let a = launch.ready();
    let mut operator = a.client().await;
    fund(&env, &mut operator, 2_000_000).await;
    connect_to(&mut operator, &b).await;
    let channel_id = open_to(&env, &mut operator, &b).await;
    let mut paid_to_b_sat = 0;

    // 1. The operator's own payment (the node's cookie, no app request): refused.
    let own = b
        .create_invoice(Some(5_000_000), "the operator's", 3600)
        .expect("invoice");
    let err = pay(&mut operator, own.invoice.clone(), true)
        .await
        .expect_err("no app asked for it");
    assert_eq!(
        err.metadata()
            .get(ERROR_CODE_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some("SIGNER_POLICY_REFUSED"),
        "{err:?}"
    );
    assert!(err.message().contains("app-request-missing"), "{err:?}");

    // 2. The CLI pays with a credential the tenant's signer baked.
    let credential = {
        let (ok, out, err) = signer::run_once(
            &signer_dir,
            &[
                "token",
                "bake",
                "--name",
                "cli",
                "--budget-sat",
                "10000",
                "--rights",
                "read,invoice,pay,admin",
            ],
        );
        assert!(ok, "{err}");
        out.trim().to_string()
    };
    let invoice = b
        .create_invoice(Some(2_000_000), "cli", 3600)
        .expect("invoice");
    let out = micronode(
        &[
            "cli",
            "--endpoint",
            &a.api,
            "--json",
            "pay",
            &invoice.invoice,
        ],
        Some(&credential),
    );
    assert!(
        out.contains("SUCCEEDED") || out.contains("succeeded"),
        "{out}"
    );
    paid_to_b_sat += 2_000;
    // ...and an any-amount invoice, for an amount the app chose.
    let any = b.create_invoice(None, "any amount", 3600).expect("invoice");
    micronode(
        &[
            "cli",
            "--endpoint",
            &a.api,
            "pay",
            &any.invoice,
            "--amount-msat",
            "1000000",
        ],
        Some(&credential),
    );
    paid_to_b_sat += 1_000;

    // 3. A gRPC client written here signs its keysend itself.
    let app = AppCredential::parse(&credential).expect("credential");
    let mut client = LightningClient::connect(format!("http://{}", a.api))
        .await
        .expect("connect");
    let mut request = tonic::Request::new(v1::KeysendRequest {
        preimage: None,
        node_id: b.node_id().to_string(),
        amount_msat: 1_500_000,
        wait: true,
        timeout_secs: Some(60),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", app.token).parse().expect("metadata"),
    );
    let signed = app.sign(AppMethod::Keysend, b.node_id().to_string(), 1_500_000);
    request.metadata_mut().insert(
        micronode_signer_protocol::APP_REQUEST_METADATA,
        serde_json::to_string(&signed)
            .expect("json")
            .parse()
            .expect("metadata"),
    );
    let keysend = client.keysend(request).await.expect("keysend").into_inner();
    assert_eq!(
        keysend.status,
        v1::PaymentStatus::Succeeded as i32,
        "{keysend:?}"
    );
    paid_to_b_sat += 1_500;
    settled(&operator, &b).await;

    // 4. The operator replays what it saw: the app's requests for a new invoice, the same
    // invoice again, the invoice swapped inside the request, the any-amount payment raised.
    let seen = approvals(&proxy);
    let [first, raised_base] = [&seen[0], &seen[1]];
    let SignerRequest::ApproveInvoice {
        authorization: Some(genuine),
        ..
    } = first.clone()
    else {
        unreachable!()
    };
    proxy.cut_off_node(true);
    let theirs = b
        .create_invoice(Some(2_000_000), "the operator's too", 3600)
        .expect("invoice");
    let as_new = |invoice: &str, amount_msat: Option<u64>, auth: PaymentAuthorization| {
        SignerRequest::ApproveInvoice {
            invoice: invoice.to_string(),
            amount_msat,
            authorization: Some(auth),
        }
    };
    refused(
        "a genuine request replayed for another invoice",
        &proxy
            .call(as_new(&theirs.invoice, None, genuine.clone()))
            .await,
        "app-request-mismatch",
    );
    refused(
        "a genuine request replayed",
        &proxy.call(first.clone()).await,
        "app-request-replayed",
    );
    let PaymentAuthorization::Client { token, mut request } = genuine else {
        panic!("the CLI's request is a client request")
    };
    request.request.target = hex::encode(
        micronode_node::pay::parse_invoice(&theirs.invoice)
            .expect("invoice")
            .payment_hash()
            .as_ref() as &[u8],
    );
    refused(
        "the invoice swapped inside a genuine request",
        &proxy
            .call(as_new(
                &theirs.invoice,
                None,
                PaymentAuthorization::Client { token, request },
            ))
            .await,
        "app-request-signature",
    );
    let SignerRequest::ApproveInvoice {
        invoice: any_text,
        authorization: Some(any_auth),
        ..
    } = raised_base.clone()
    else {
        unreachable!()
    };
    let fresh_any = b.create_invoice(None, "raise me", 3600).expect("invoice");
    assert_eq!(any_text, any.invoice);
    refused(
        "an any-amount payment raised",
        &proxy
            .call(as_new(&any.invoice, Some(9_000_000), any_auth.clone()))
            .await,
        "app-request-mismatch",
    );
    refused(
        "an any-amount request used for another invoice",
        &proxy
            .call(as_new(&fresh_any.invoice, Some(1_000_000), any_auth))
            .await,
        "app-request-mismatch",
    );
    proxy.cut_off_node(false);

    // 5. A stock NWC client whose key the tenant's signer made, with a budget of 40 sat a day
    // at the signer (each 10 sat payment may cost 15.1 sat with the fee allowance) and the same
    // at the node.
    let made: serde_json::Value = {
        let (ok, out, err) = signer::run_once(
            &signer_dir,
            &["token", "nwc", "--name", "wallet", "--budget-sat", "40"],
        );
        assert!(ok, "{err}");
        serde_json::from_str(out.trim()).expect("json")
    };
    let nwc_dir = a_dir.join("nwc");
    let prefix = micronode(
        &[
            "nwc",
            "--data-dir",
            nwc_dir.to_str().expect("utf-8"),
            "connect",
            "wallet",
            "--budget-sat",
            "40",
            "--relay",
            relay.url(),
            "--app-pubkey",
            made["app_pubkey"].as_str().expect("pubkey"),
        ],
        None,
    );
    let uri = format!(
        "{prefix}&secret={}",
        made["app_secret"].as_str().expect("secret")
    );
    let uri = NostrWalletConnectURI::parse(&uri).expect("uri");
    let wallet = NWC::with_opts(
        uri,
        NostrWalletConnectOptions::new().timeout(Duration::from_secs(30)),
    );
    // The service picks a new connection up within a second; ask until it answers.
    let mut ready = false;
    for _ in 0..20 {
        if wallet.get_info().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "the NWC service answers the new app");
    for i in 0..2 {
        let invoice = b
            .create_invoice(Some(10_000), format!("nwc {i}"), 3600)
            .expect("invoice");
        wallet
            .pay_invoice(PayInvoiceRequest::new(invoice.invoice))
            .await
            .expect("the NWC app pays");
        paid_to_b_sat += 10;
    }
    settled(&operator, &b).await;
    // The operator wipes the node's NWC budget ledger: the node would let a third payment
    // through, the signer's own ledger does not.
    {
        let db = rusqlite::Connection::open(nwc_dir.join("nwc.sqlite")).expect("nwc store");
        let wiped = db.execute("DELETE FROM spends", []).expect("wipe");
        assert!(wiped >= 2, "the node had recorded the app's spending");
    }
    let third = b
        .create_invoice(Some(10_000), "nwc over", 3600)
        .expect("invoice");
    let err = wallet
        .pay_invoice(PayInvoiceRequest::new(third.invoice))
        .await
        .expect_err("over the signer's budget");
    assert!(format!("{err:?}").contains("QuotaExceeded"), "{err:?}");
    // ...and replays the app's first NWC event.
    let nwc_seen: Vec<_> = approvals(&proxy)
        .into_iter()
        .filter(|r| {
            matches!(
                r,
                SignerRequest::ApproveInvoice {
                    authorization: Some(PaymentAuthorization::Nwc { .. }),
                    ..
                }
            )
        })
        .collect();
    assert!(nwc_seen.len() >= 2, "the operator saw the NWC requests");
    proxy.cut_off_node(true);
    refused(
        "an NWC event replayed",
        &proxy.call(nwc_seen[0].clone()).await,
        "app-request-replayed",
    );
    proxy.cut_off_node(false);
    wallet.shutdown().await;

    // 6. On chain: the operator's send to the tenant's allow-listed address needs an app's
    // request now, and to any other address it was never signed; the app's own send to an
    // address of its choice is signed, once, for exactly what it asked.
    let err = operator_sends(&mut operator, &allowed, 30_000).await;
    assert!(err.message().contains("app-request-missing"), "{err:?}");
    let elsewhere = random_address();
    let err = operator_sends(&mut operator, &elsewhere, 30_000).await;
    assert!(
        err.message().contains("policy-onchain-no-unknown-outputs"),
        "{err:?}"
    );
    let wallet_before = onchain(&mut operator).await.total_sat;
    // The operator alters the app's send on its way to the signer: 1,000 sat more to the
    // destination, out of the change. Refused; nothing is sent or charged to the app.
    let tampered = proxy.tamper_next(|r| match r {
        SignerRequest::SignWalletPsbt {
            psbt,
            authorization: Some(_),
        } => {
            let mut altered = bitcoin::Psbt::deserialize(&psbt.0).expect("psbt");
            let outputs = &altered.outputs;
            let to = outputs.iter().position(|o| o.bip32_derivation.is_empty());
            let change = outputs.iter().position(|o| !o.bip32_derivation.is_empty());
            let (to, change) = (to.expect("destination"), change.expect("change"));
            altered.unsigned_tx.output[to].value += bitcoin::Amount::from_sat(1_000);
            altered.unsigned_tx.output[change].value -= bitcoin::Amount::from_sat(1_000);
            *psbt = Hex(altered.serialize());
            true
        }
        _ => false,
    });
    let failed = Command::new(env!("CARGO_BIN_EXE_micronode"))
        .args(["cli", "--endpoint", &a.api, "sendonchain"])
        .arg(elsewhere.to_string())
        .args(["3000", "--sat-per-vbyte", "2"])
        .env("MICRONODE_TOKEN", &credential)
        .env("MICRONODE_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run micronode");
    assert!(!failed.status.success(), "the altered send is refused");
    refused(
        "the app's on-chain send altered by the operator",
        &tampered.await.expect("the signer answered"),
        "app-request-mismatch",
    );
    assert!(env.mempool().await.is_empty(), "nothing was broadcast");
    assert_eq!(onchain(&mut operator).await.total_sat, wallet_before);
    let sent = micronode(
        &[
            "cli",
            "--endpoint",
            &a.api,
            "--json",
            "sendonchain",
            &elsewhere.to_string(),
            "3000",
            "--sat-per-vbyte",
            "2",
        ],
        Some(&credential),
    );
    let sent: serde_json::Value = serde_json::from_str(&sent).expect("json");
    let txid: bitcoin::Txid = sent["txid"].as_str().expect("txid").parse().expect("txid");
    env.mine(1).await;
    let tx = env.transaction(&txid).await;
    let paid = micronode_testenv::nodes::output_paying(&tx, 3_000);
    assert_eq!(
        tx.output[paid.vout as usize].script_pubkey,
        elsewhere.script_pubkey()
    );
    let fee = env.fee_of(&tx).await;
    wait_until_wallet(&mut operator, wallet_before - 3_000 - fee).await;
    let send_request = proxy
        .recorded()
        .into_iter()
        .rev()
        .find(|r| {
            matches!(
                r,
                SignerRequest::SignWalletPsbt {
                    authorization: Some(_),
                    ..
                }
            )
        })
        .expect("the operator saw the app's send");
    proxy.cut_off_node(true);
    refused(
        "the app's on-chain send replayed",
        &proxy.call(send_request).await,
        "app-request-replayed",
    );
    proxy.cut_off_node(false);

    // The peer got exactly what the apps paid, each payment once.
    settled(&operator, &b).await;
    assert_eq!(channel_balance_sat(&b, &channel_id), paid_to_b_sat);
    let received: Vec<_> = b
        .list_payments()
        .into_iter()
        .filter(|p| p.status == micronode_node::PaymentStatus::Succeeded)
        .filter(|p| p.direction == micronode_node::PaymentDirection::Inbound)
        .collect();
    assert_eq!(received.len(), 5, "{received:?}");
    // The tenant's signer shows each app's spending.
    let (ok, status, err) = signer::run_once(&signer_dir, &["status"]);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&status).expect("json");
    let apps = status["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 2, "{status}");
    assert_eq!(apps[1]["spent_msat"], 2 * 15_100, "{status}");
    assert_eq!(apps[0]["last_payments"].as_array().map(Vec::len), Some(4));
    b.stop().await.expect("stop b");
}
