//! Capability tokens end to end: real nodes on a real regtest bitcoind, a real channel, the API
//! served on 127.0.0.1:0 with the token authority, and the generated clients.
//!
//! Covers what a token may call (read-only, invoice-only, pay), budgets enforced before paying
//! and kept across a restart of the API and its token authority, attenuation that cannot exceed
//! its parent, revocation on the next call, and forged, expired, foreign and missing tokens.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{assert_error, Api, TIMEOUT};
use micronode_api::tokens::{attenuate, inspect, Budget, Caveats, Period};
use micronode_api::{CookieAuth, TokenAuthority};
use micronode_node::{Node, PaymentDirection};
use micronode_proto::v1;
use micronode_proto::ErrorCode;
use micronode_testenv::nodes::{open_channel, Env, TestNode};
use micronode_testenv::wait_until;
use tonic::Code;

const CHANNEL_SAT: u64 = 200_000;

fn with(methods: &[&str], budgets: &[(u64, Period)], max_payment_sat: Option<u64>) -> Caveats {
    Caveats {
        methods: methods.iter().map(|m| m.to_string()).collect(),
        expires_at: None,
        budgets: budgets
            .iter()
            .map(|&(limit_sat, period)| Budget { limit_sat, period })
            .collect(),
        max_payment_sat,
    }
}

/// An invoice of `sat` from `payee`.
fn invoice(payee: &TestNode, sat: u64) -> String {
    payee
        .create_invoice(Some(sat * 1000), "tokens test", 3600)
        .expect("invoice")
        .invoice
}

fn pay_request(invoice: String) -> v1::PayInvoiceRequest {
    v1::PayInvoiceRequest {
        invoice,
        amount_msat: None,
        max_fee_msat: None,
        wait: true,
        timeout_secs: Some(60),
    }
}

/// Outbound payments the node has any record of.
fn outbound(node: &TestNode) -> usize {
    node.list_payments()
        .iter()
        .filter(|p| p.direction == PaymentDirection::Outbound)
        .count()
}

/// Serves `node`'s API with the token authority in its data directory, opened afresh.
async fn serve_tokens(node: &Arc<TestNode>) -> Api {
    let authority =
        TokenAuthority::open(&node.config().data_dir, &node.node_id().to_string()).expect("open");
    Api::serve_with_auth(node.clone(), Arc::new(authority)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_grant_per_method_and_budgets_hold_across_restarts() {
    let env = Env::new("tokens-pay").await;
    let a = Arc::new(env.start_node("a").await);
    let b = env.start_node("b").await;
    env.fund(&a, 1_000_000).await;
    open_channel(&env, &a, &b, CHANNEL_SAT).await;

    let admin = TokenAuthority::init_stateless(&a.config().data_dir, &a.node_id().to_string())
        .expect("stateless init");
    let mut api = serve_tokens(&a).await;
    let mut as_admin = api.client_with(Some(&admin)).await;
    let info = as_admin
        .get_info(v1::GetInfoRequest {})
        .await
        .expect("admin token")
        .into_inner();
    assert_eq!(info.node_id, a.node_id().to_string());

    // A read-only token reads but cannot pay; nothing reaches the node.
    let read_only = attenuate(&admin, &with(&["read"], &[], None)).expect("read-only");
    let mut reader = api.client_with(Some(&read_only)).await;
    reader
        .list_channels(v1::ListChannelsRequest {})
        .await
        .expect("read-only token reads");
    assert_error(
        reader.pay_invoice(pay_request(invoice(&b, 1_000))).await,
        Code::PermissionDenied,
        ErrorCode::MethodNotAllowed,
    );
    // An invoice-only token creates invoices but cannot pay.
    let invoice_only = attenuate(&admin, &with(&["invoice"], &[], None)).expect("invoice-only");
    let mut invoicer = api.client_with(Some(&invoice_only)).await;
    let created = invoicer
        .create_invoice(v1::CreateInvoiceRequest {
            description_hash: None,
            amount_msat: Some(5_000),
            description: "coffee".into(),
            expiry_secs: None,
        })
        .await
        .expect("invoice-only token creates invoices")
        .into_inner();
    invoicer
        .get_payment(v1::GetPaymentRequest {
            id: created.payment_hash,
            direction: None,
        })
        .await
        .expect("and looks them up");
    assert_error(
        invoicer.pay_invoice(pay_request(invoice(&b, 1_000))).await,
        Code::PermissionDenied,
        ErrorCode::MethodNotAllowed,
    );
    assert_error(
        invoicer
            .keysend(v1::KeysendRequest {
                preimage: None,
                node_id: b.node_id().to_string(),
                amount_msat: 1_000_000,
                max_fee_msat: None,
                wait: true,
                timeout_secs: None,
            })
            .await,
        Code::PermissionDenied,
        ErrorCode::MethodNotAllowed,
    );
    assert_eq!(outbound(&a), 0, "refused calls never reach the node");

    // A pay token with 10,000 sat a day pays 6,000, and is refused the next 6,000.
    let pay = attenuate(&admin, &with(&["pay"], &[(10_000, Period::Day)], None)).expect("pay");
    let pay_id = inspect(&pay).expect("inspect").id;
    let mut payer = api.client_with(Some(&pay)).await;
    let paid = payer
        .pay_invoice(pay_request(invoice(&b, 6_000)))
        .await
        .expect("6,000 sat within 10,000 a day")
        .into_inner();
    assert_eq!(paid.status(), v1::PaymentStatus::Succeeded);
    let refused = invoice(&b, 6_000);
    let status = assert_error(
        payer.pay_invoice(pay_request(refused.clone())).await,
        Code::ResourceExhausted,
        ErrorCode::BudgetExceeded,
    );
    assert!(status.message().contains("spent(1, \"day\""), "{status:?}");
    assert_eq!(outbound(&a), 1, "the refused payment never started");
    // It shows in the listing once registered, settled at amount plus fee (0 on a direct
    // channel) by the watcher.
    let mut tokens = api.tokens_with(Some(&admin)).await;
    tokens
        .register_token(v1::RegisterTokenRequest {
            token: pay.clone(),
            label: "shop".into(),
        })
        .await
        .expect("register");
    wait_until("the payment is settled in the ledger", TIMEOUT, || {
        let mut tokens = tokens.clone();
        let pay_id = pay_id.clone();
        async move {
            let listed = tokens
                .list_tokens(v1::ListTokensRequest {})
                .await
                .expect("list")
                .into_inner();
            listed
                .tokens
                .iter()
                .any(|t| t.id == pay_id && t.spent_day_msat == 6_000_000)
        }
    })
    .await
    .expect("settled");

    // Restart the API and its token authority: the budget state comes back from disk.
    api.shutdown(TIMEOUT).await;
    let api = serve_tokens(&a).await;
    let mut payer = api.client_with(Some(&pay)).await;
    assert_error(
        payer.pay_invoice(pay_request(refused)).await,
        Code::ResourceExhausted,
        ErrorCode::BudgetExceeded,
    );
    assert_error(
        payer
            .keysend(v1::KeysendRequest {
                preimage: None,
                node_id: b.node_id().to_string(),
                amount_msat: 6_000_000,
                max_fee_msat: None,
                wait: true,
                timeout_secs: None,
            })
            .await,
        Code::ResourceExhausted,
        ErrorCode::BudgetExceeded,
    );
    assert_eq!(outbound(&a), 1, "still nothing paid after the restart");

    // An attenuation claiming 20,000 a day cannot exceed its parent's 10,000: 3,000 fits both
    // (6,000 + 3,000 + fee limit 80), the next 3,000 only the child's.
    let child = attenuate(&pay, &with(&[], &[(20_000, Period::Day)], Some(5_000))).expect("child");
    let mut child_payer = api.client_with(Some(&child)).await;
    let paid = child_payer
        .pay_invoice(pay_request(invoice(&b, 3_000)))
        .await
        .expect("3,000 within the parent's budget")
        .into_inner();
    assert_eq!(paid.status(), v1::PaymentStatus::Succeeded);
    let status = assert_error(
        child_payer
            .pay_invoice(pay_request(invoice(&b, 3_000)))
            .await,
        Code::ResourceExhausted,
        ErrorCode::BudgetExceeded,
    );
    assert!(
        status.message().contains("block 1"),
        "the parent's caveat: {status:?}"
    );
    // The child's own per-payment maximum also holds.
    assert_error(
        child_payer
            .pay_invoice(pay_request(invoice(&b, 5_000)))
            .await,
        Code::ResourceExhausted,
        ErrorCode::BudgetExceeded,
    );

    // A payment the node refuses at once gives its reservation back.
    let roomy = attenuate(&admin, &with(&["pay"], &[(10_000, Period::Day)], None)).expect("roomy");
    let mut roomy_payer = api.client_with(Some(&roomy)).await;
    let short_lived = b
        .create_invoice(Some(9_000_000), "expires", 1)
        .expect("invoice")
        .invoice;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_error(
        roomy_payer.pay_invoice(pay_request(short_lived)).await,
        Code::InvalidArgument,
        ErrorCode::InvalidInput,
    );
    roomy_payer
        .pay_invoice(pay_request(invoice(&b, 9_000)))
        .await
        .expect("the released reservation no longer counts");

    // Revocation applies to the next call, to the token and everything attenuated from it.
    let mut tokens = api.tokens_with(Some(&admin)).await;
    let revoked = tokens
        .revoke_token(v1::RevokeTokenRequest { id: pay_id.clone() })
        .await
        .expect("revoke")
        .into_inner();
    assert_eq!(revoked.revoked_ids, vec![pay_id.clone()]);
    for token in [&pay, &child] {
        let mut client = api.client_with(Some(token)).await;
        assert_error(
            client.get_info(v1::GetInfoRequest {}).await,
            Code::Unauthenticated,
            ErrorCode::TokenRevoked,
        );
    }
    let listed = tokens
        .list_tokens(v1::ListTokensRequest {})
        .await
        .expect("list")
        .into_inner();
    let entry = listed
        .tokens
        .iter()
        .find(|t| t.id == pay_id)
        .expect("listed");
    assert!(entry.revoked);
    assert_eq!(
        entry.spent_day_msat, 9_000_000,
        "6,000 direct and 3,000 via the child"
    );
    assert!(
        entry.blocks[1].contains("spent(1, \"day\""),
        "{:?}",
        entry.blocks
    );
    // Token management is for admin tokens only.
    let mut as_roomy = api.tokens_with(Some(&roomy)).await;
    assert_error(
        as_roomy.list_tokens(v1::ListTokensRequest {}).await,
        Code::PermissionDenied,
        ErrorCode::MethodNotAllowed,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_foreign_and_missing_tokens_are_refused() {
    let env = Env::new("tokens-refused").await;
    let a = Arc::new(env.start_node("a").await);
    let b = env.start_node("b").await;
    let admin = TokenAuthority::init_stateless(&a.config().data_dir, &a.node_id().to_string())
        .expect("init a");
    let foreign = TokenAuthority::init_stateless(&b.config().data_dir, &b.node_id().to_string())
        .expect("init b");
    // Same tenant, another root key: what a forger without the node's key could make.
    let forger_dir = env.dir.0.join("forger");
    let forged =
        TokenAuthority::init_stateless(&forger_dir, &a.node_id().to_string()).expect("forged root");
    let tampered = {
        let summary = inspect(&admin).expect("inspect");
        let signature = hex::decode(&summary.revocation_ids[0]).expect("hex");
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE;
        let mut bytes = engine.decode(&admin).expect("base64");
        let at = bytes
            .windows(signature.len())
            .position(|w| w == signature.as_slice())
            .expect("signature in token");
        bytes[at] ^= 0x80;
        engine.encode(bytes)
    };
    let expired = attenuate(
        &admin,
        &Caveats {
            expires_at: Some(SystemTime::now() - Duration::from_secs(1)),
            ..Caveats::default()
        },
    )
    .expect("expired");
    let cookie = CookieAuth::create(env.dir.0.join("cookie")).expect("cookie");

    let api = serve_tokens(&a).await;
    let cases: [(Option<&str>, ErrorCode); 7] = [
        (None, ErrorCode::TokenMissing),
        (Some("not-a-token"), ErrorCode::TokenInvalid),
        (Some(cookie.token()), ErrorCode::TokenInvalid),
        (Some(&forged), ErrorCode::TokenInvalid),
        (Some(&tampered), ErrorCode::TokenInvalid),
        (Some(&expired), ErrorCode::TokenExpired),
        (Some(&foreign), ErrorCode::TokenWrongTenant),
    ];
    for (token, error) in cases {
        let mut client = api.client_with(token).await;
        assert_error(
            client.get_info(v1::GetInfoRequest {}).await,
            Code::Unauthenticated,
            error,
        );
        assert_error(
            client.pay_invoice(pay_request(invoice(&b, 1_000))).await,
            Code::Unauthenticated,
            error,
        );
        let mut tokens = api.tokens_with(token).await;
        assert_error(
            tokens.list_tokens(v1::ListTokensRequest {}).await,
            Code::Unauthenticated,
            error,
        );
    }
    assert_eq!(outbound(&a), 0, "nothing happened on the node");
    let mut client = api.client_with(Some(&admin)).await;
    client
        .get_info(v1::GetInfoRequest {})
        .await
        .expect("the real admin token works");
    // A node on its cookie has no token management.
    let c = Arc::new(env.start_node("c").await);
    let cookie = CookieAuth::create(env.dir.0.join("c.cookie")).expect("cookie");
    let cookie_token = cookie.token().to_string();
    let cookie_api = Api::serve_with_auth(c, Arc::new(cookie)).await;
    let mut tokens = cookie_api.tokens_with(Some(&cookie_token)).await;
    assert_error(
        tokens.list_tokens(v1::ListTokensRequest {}).await,
        Code::FailedPrecondition,
        ErrorCode::TokensDisabled,
    );
}

/// The admin token is printed once and never written: after init, after the node ran with
/// tokens, and after tokens were registered and used, no file in the data directory holds it,
/// as text or as raw bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_init_leaves_no_admin_token_in_the_data_directory() {
    let env = Env::new("tokens-disk").await;
    let config = env.node_config("a");
    let data_dir = config.data_dir.clone();
    // Init before the node ever ran, as `micronode node init --stateless` does.
    let keys = micronode_node::LocalKeys::load_or_create(&data_dir, bitcoin::Network::Regtest)
        .expect("keys");
    let node_id = micronode_api::tokens::tenant_of(&keys).expect("node id");
    let admin = TokenAuthority::init_stateless(&data_dir, &node_id).expect("init");
    let a: Arc<TestNode> = Arc::new(
        Node::start(config, Arc::new(keys), env.chain.clone())
            .await
            .expect("start"),
    );
    assert_eq!(a.node_id().to_string(), node_id);
    let api = serve_tokens(&a).await;
    let mut client = api.client_with(Some(&admin)).await;
    client.get_info(v1::GetInfoRequest {}).await.expect("admin");
    let child = attenuate(&admin, &with(&["read"], &[], None)).expect("child");
    let mut tokens = api.tokens_with(Some(&admin)).await;
    tokens
        .register_token(v1::RegisterTokenRequest {
            token: child.clone(),
            label: "reader".into(),
        })
        .await
        .expect("register");
    drop(client);
    drop(tokens);
    a.stop().await.expect("stop");

    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(&admin)
        .expect("base64");
    let needles: [(&str, &[u8]); 4] = [
        ("admin token", admin.as_bytes()),
        ("admin token bytes", &raw),
        ("child token", child.as_bytes()),
        // The proof at the end of the token (the next block's private key) would let anyone
        // extend it; it must not be on disk either.
        ("admin token proof", &raw[raw.len() - 32..]),
    ];
    let mut scanned = 0;
    for file in files_under(&data_dir) {
        let bytes = std::fs::read(&file).expect("read");
        scanned += 1;
        for (what, needle) in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{what} found in {}",
                file.display()
            );
        }
    }
    assert!(
        scanned >= 3,
        "the node and the token store wrote files ({scanned})"
    );
    assert!(data_dir.join("tokens").join("tokens.sqlite").is_file());
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
