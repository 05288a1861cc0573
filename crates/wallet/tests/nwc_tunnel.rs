//! The tunnel's `nwc_*` methods on a real NWC store: a session creates a connection for an app
//! key the browser made, with the delegation the browser signed, lists and revokes its own
//! connections only, and a delegation that is not for exactly the connection asked for is
//! refused before anything is stored.

use std::sync::Arc;

use micronode_nwc::nostr_sdk::{Keys, RelayUrl};
use micronode_nwc::{BudgetRenewal, ConnectionStatus, NwcStore};
use micronode_signer_protocol::app_request::{delegation_target, new_client_key};
use micronode_signer_protocol::{AppCredential, AppMethod, AppRequest, SignedAppRequest};
use micronode_wallet::nwc::{NwcControl, NwcTunnel};
use micronode_wallet::tunnel::TunnelError;
use serde_json::{json, Value};

const SESSION: &str = "the session's token";
const OTHER_SESSION: &str = "another session's token";

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<NwcStore>,
    tunnel: NwcTunnel,
    /// The session's app: its token and the key the browser signs with.
    browser: AppCredential,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(NwcStore::open(dir.path()).unwrap());
    let relays = vec![RelayUrl::parse("ws://127.0.0.1:7777").unwrap()];
    Setup {
        tunnel: NwcTunnel::with_store(store.clone(), relays),
        store,
        _dir: dir,
        browser: AppCredential {
            token: SESSION.into(),
            client_key: new_client_key(),
        },
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the browser signs for a connection of `app` with `budget_sat` per `period_secs`.
fn delegation(
    browser: &AppCredential,
    app: &str,
    budget_sat: u64,
    period_secs: u64,
    expires_at: Option<u64>,
) -> SignedAppRequest {
    AppRequest::new(
        AppMethod::DelegateNwc,
        delegation_target(app, period_secs, expires_at),
        budget_sat * 1000,
    )
    .sign(&browser.client_key)
}

fn create_params(app: &str, expires_at: Option<u64>, signed: &SignedAppRequest) -> Value {
    let mut params = json!({"name": "shop", "app_pubkey": app, "budget_sat": 1_000,
        "period_secs": 86_400, "delegation": signed});
    if let Some(at) = expires_at {
        params["expires_at"] = json!(at);
    }
    params
}

#[track_caller]
fn code(result: Result<Value, TunnelError>) -> String {
    match result {
        Err(e) => e.code,
        Ok(v) => panic!("not refused: {v}"),
    }
}

#[tokio::test]
async fn a_session_creates_lists_and_revokes_its_own_connections() {
    let s = setup();
    let app = Keys::generate().public_key().to_hex();
    let expires_at = now() + 30 * 86_400;
    let signed = delegation(&s.browser, &app, 1_000, 86_400, Some(expires_at));
    let created = s
        .tunnel
        .call(
            "nwc_create",
            create_params(&app, Some(expires_at), &signed),
            SESSION,
        )
        .await
        .unwrap();
    assert_eq!(created["relays"], json!(["ws://127.0.0.1:7777"]));
    let id = created["id"].as_i64().unwrap();

    // The connection as stored: the browser's key, a matching node-side budget and expiry, and
    // the delegation with the session's token, signed by the browser.
    let stored = s.store.connection(id).unwrap().unwrap();
    assert_eq!(stored.app_pubkey.to_hex(), app);
    assert_eq!(created["wallet_pubkey"], stored.wallet_pubkey.to_hex());
    let budget = stored.budget.unwrap();
    assert_eq!(
        (budget.amount_msat, budget.renewal),
        (1_000_000, BudgetRenewal::Daily)
    );
    assert_eq!(stored.expires_at, Some(expires_at));
    let kept = stored.delegation.clone().unwrap();
    assert_eq!(kept.token, SESSION);
    assert_eq!(kept.request, signed);
    kept.request.verify(&s.browser.client_public_key()).unwrap();

    let listed = s.tunnel.call("nwc_list", json!({}), SESSION).await.unwrap();
    assert_eq!(
        listed,
        json!({"connections": [{"id": id, "name": "shop", "app_pubkey": app, "budget_sat": 1_000,
            "period_secs": 86_400, "spent_sat": 0, "expires_at": expires_at, "status": "active"}]})
    );
    // Another session sees none of it and cannot revoke it; nor can anyone see the operator's.
    s.store
        .create_connection(
            &micronode_nwc::ConnectionSpec::full("operator's"),
            &[RelayUrl::parse("ws://127.0.0.1:7777").unwrap()],
        )
        .unwrap();
    let other = s
        .tunnel
        .call("nwc_list", json!({}), OTHER_SESSION)
        .await
        .unwrap();
    assert_eq!(other, json!({"connections": []}));
    assert_eq!(
        code(
            s.tunnel
                .call("nwc_revoke", json!({"id": id}), OTHER_SESSION)
                .await
        ),
        "NOT_FOUND"
    );
    assert_eq!(
        s.store.connection(id).unwrap().unwrap().status(now()),
        ConnectionStatus::Active
    );
    assert_eq!(
        code(
            s.tunnel
                .call("nwc_revoke", json!({"id": id + 1}), SESSION)
                .await
        ),
        "NOT_FOUND"
    );

    // Its own session revokes it (the id as the browser may send it, a string).
    let revoked = s
        .tunnel
        .call("nwc_revoke", json!({"id": id.to_string()}), SESSION)
        .await
        .unwrap();
    assert_eq!(revoked, json!({}));
    let listed = s.tunnel.call("nwc_list", json!({}), SESSION).await.unwrap();
    assert_eq!(listed["connections"][0]["status"], "revoked");
    assert_eq!(listed["connections"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_delegation_that_differs_from_the_params_is_refused() {
    let s = setup();
    let app = Keys::generate().public_key().to_hex();
    let other_app = Keys::generate().public_key().to_hex();
    let expires_at = now() + 86_400;
    let sign = |app: &str, budget_sat, period_secs, expires_at| {
        delegation(&s.browser, app, budget_sat, period_secs, expires_at)
    };
    let wrong = [
        // More budget than the connection's, another period, another or no expiry, another key.
        sign(&app, 2_000, 86_400, Some(expires_at)),
        sign(&app, 1_000, 604_800, Some(expires_at)),
        sign(&app, 1_000, 86_400, Some(expires_at + 1)),
        sign(&app, 1_000, 86_400, None),
        sign(&other_app, 1_000, 86_400, Some(expires_at)),
        // A payment request is not a delegation.
        s.browser
            .sign(AppMethod::PayInvoice, "ab".repeat(32), 1_000_000),
    ];
    for signed in &wrong {
        let result = s
            .tunnel
            .call(
                "nwc_create",
                create_params(&app, Some(expires_at), signed),
                SESSION,
            )
            .await;
        match result {
            Err(e) => {
                assert_eq!(e.code, "BAD_REQUEST");
                assert!(e.message.contains("does not match"), "{}", e.message);
            }
            Ok(v) => panic!("created with a delegation that differs: {v}"),
        }
    }
    // Params the node does not offer, even with a matching delegation.
    let odd_period = sign(&app, 1_000, 3_600, Some(expires_at));
    let mut params = create_params(&app, Some(expires_at), &odd_period);
    params["period_secs"] = json!(3_600);
    assert_eq!(
        code(s.tunnel.call("nwc_create", params, SESSION).await),
        "BAD_REQUEST"
    );
    let past = sign(&app, 1_000, 86_400, Some(now() - 1));
    assert_eq!(
        code(
            s.tunnel
                .call(
                    "nwc_create",
                    create_params(&app, Some(now() - 1), &past),
                    SESSION
                )
                .await
        ),
        "BAD_REQUEST"
    );
    assert_eq!(
        code(
            s.tunnel
                .call("nwc_create", json!({"name": "shop"}), SESSION)
                .await
        ),
        "BAD_REQUEST"
    );
    assert!(s.store.list_connections().unwrap().is_empty());

    // The matching one is created, once per app key.
    let right = sign(&app, 1_000, 86_400, Some(expires_at));
    let params = create_params(&app, Some(expires_at), &right);
    s.tunnel
        .call("nwc_create", params.clone(), SESSION)
        .await
        .unwrap();
    assert_eq!(
        code(s.tunnel.call("nwc_create", params, SESSION).await),
        "BAD_REQUEST"
    );
    assert_eq!(s.store.list_connections().unwrap().len(), 1);
    assert_eq!(
        code(s.tunnel.call("nwc_list", json!({"x": 1}), SESSION).await),
        "BAD_REQUEST"
    );
    assert_eq!(
        code(s.tunnel.call("nwc_rename", json!({}), SESSION).await),
        "UNKNOWN_METHOD"
    );
}
