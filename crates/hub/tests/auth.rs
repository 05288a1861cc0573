//! Accounts and tokens: sign-up modes, login, refresh rotation, expiry. These need no
//! Lightning: the hub's node client points at a port nobody listens on (its event follower
//! keeps retrying in the background).

mod common;

use std::time::Duration;

use common::{get, post, request, start_hub, User};
use micronode_client::NodeClient;
use micronode_hub::{lndhub_uri, Credentials, HubAdmin, HubConfig, SignupMode};
use serde_json::json;

fn unreachable_node() -> NodeClient {
    let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
    NodeClient::with_channel(channel, "00", None).expect("client")
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "micronode-hub-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[tokio::test]
async fn signup_modes_login_refresh_rotation_and_expiry() {
    let dir = temp_dir("auth");

    // Closed: refused with an error body.
    let closed = HubConfig {
        signup: SignupMode::Closed,
        ..HubConfig::default()
    };
    let hub = start_hub(closed, &dir.join("closed"), unreachable_node()).await;
    let addr = hub.local_addr();
    post(addr, "/create", None, json!({})).await.assert_code(8);
    hub.stop().await.expect("stop");

    // Invite: a code from the admin works once, by body or query.
    let invite = HubConfig {
        signup: SignupMode::Invite,
        ..HubConfig::default()
    };
    let hub = start_hub(invite, &dir.join("invite"), unreachable_node()).await;
    let addr = hub.local_addr();
    post(addr, "/create", None, json!({})).await.assert_code(8);
    let code = hub.admin().create_invite().await.expect("invite");
    post(addr, "/create", None, json!({"invite_code": "nope"}))
        .await
        .assert_code(8);
    let created = post(addr, "/create", None, json!({"invite_code": code}))
        .await
        .ok();
    assert_eq!(created["login"].as_str().expect("login").len(), 20);
    assert_eq!(created["password"].as_str().expect("password").len(), 20);
    post(addr, "/create", None, json!({"invite_code": code}))
        .await
        .assert_code(8);
    let second = hub.admin().create_invite().await.expect("invite");
    post(addr, &format!("/create?invite={second}"), None, json!({}))
        .await
        .ok();
    let accounts = hub.admin().list_accounts().await.expect("accounts");
    assert_eq!(accounts.len(), 2);
    assert!(accounts.iter().all(|a| a.balance_msat == 0));
    hub.stop().await.expect("stop");
    // The admin works on the database while the hub is stopped too.
    let admin = HubAdmin::open(&dir.join("invite")).expect("admin");
    assert_eq!(admin.list_accounts().await.expect("accounts").len(), 2);
    assert!(admin.check_ledger().await.expect("ledger").is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("invite").join("hub.sqlite"))
            .expect("db")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Open, with 2 s access tokens.
    let open = HubConfig {
        signup: SignupMode::Open,
        access_token_secs: 2,
        ..HubConfig::default()
    };
    let hub = start_hub(open, &dir.join("open"), unreachable_node()).await;
    let addr = hub.local_addr();
    let user = User::create(addr).await;
    assert_eq!(user.access.len(), 40);
    assert_eq!(user.refresh.len(), 40);
    assert_eq!(user.balance(addr).await, 0);

    // A form body works as well as JSON.
    let form = format!("login={}&password={}", user.login, user.password);
    let v = request(
        addr,
        "POST",
        "/auth?type=auth",
        None,
        Some(("application/x-www-form-urlencoded", form)),
    )
    .await
    .ok();
    assert_eq!(v["access_token"].as_str().expect("access").len(), 40);

    // Wrong password, unknown token, no token: code 1 in an HTTP 200.
    post(
        addr,
        "/auth?type=auth",
        None,
        json!({"login": user.login, "password": "0".repeat(20)}),
    )
    .await
    .assert_code(1);
    get(addr, "/balance", Some(&"ab".repeat(20)))
        .await
        .assert_code(1);
    get(addr, "/balance", None).await.assert_code(1);
    // BlueWallet's URL check: an unauthenticated /getinfo answers code 1.
    get(addr, "/getinfo", None).await.assert_code(1);

    // Refresh rotates: the old refresh token is dead.
    let renewed = post(
        addr,
        "/auth?type=refresh_token",
        None,
        json!({"refresh_token": user.refresh}),
    )
    .await
    .ok();
    let new_access = renewed["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let new_refresh = renewed["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    assert_ne!(new_refresh, user.refresh);
    post(
        addr,
        "/auth?type=refresh_token",
        None,
        json!({"refresh_token": user.refresh}),
    )
    .await
    .assert_code(1);
    get(addr, "/balance", Some(&new_access)).await.ok();
    get(addr, "/getbtc", Some(&new_access)).await.ok();

    // The access token expires: code 1 in a 200, then re-auth with the refresh token works.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    get(addr, "/balance", Some(&new_access))
        .await
        .assert_code(1);
    let again = post(
        addr,
        "/auth?type=refresh_token",
        None,
        json!({"refresh_token": new_refresh}),
    )
    .await
    .ok();
    let access = again["access_token"].as_str().expect("access");
    assert_eq!(get(addr, "/getbtc", Some(access)).await.ok(), json!([]));
    assert_eq!(get(addr, "/getpending", Some(access)).await.ok(), json!([]));

    // Bad arguments.
    post(addr, "/addinvoice", Some(access), json!({"amt": "x"}))
        .await
        .assert_code(8);
    post(addr, "/addinvoice", Some(access), json!({"amt": 0}))
        .await
        .assert_code(8);
    post(
        addr,
        "/payinvoice",
        Some(access),
        json!({"invoice": "lnbcrt1garbage"}),
    )
    .await
    .assert_code(4);
    post(addr, "/payinvoice", Some(access), json!({}))
        .await
        .assert_code(8);
    post(
        addr,
        "/keysend",
        Some(access),
        json!({"destination": "02ab", "amount": 5}),
    )
    .await
    .assert_code(8);
    post(addr, "/address", Some(access), json!({"name": "Bad Name"}))
        .await
        .assert_code(8);
    // Unknown Lightning Address.
    let a = get(addr, "/.well-known/lnurlp/nobody", None).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body["status"], "ERROR");

    let uri = lndhub_uri(
        &Credentials {
            login: user.login.clone(),
            password: user.password.clone(),
        },
        "https://hub.example.com/",
    );
    assert_eq!(
        uri,
        format!(
            "lndhub://{}:{}@https://hub.example.com",
            user.login, user.password
        )
    );
    common::assert_ledger(&hub).await;
    hub.stop().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn calls_anyone_may_make_are_limited_per_address() {
    let dir = temp_dir("limit");
    let config = HubConfig {
        signup: SignupMode::Open,
        open_calls_per_ip_per_sec: 1,
        open_calls_burst: 3,
        ..HubConfig::default()
    };
    let hub = start_hub(config, &dir, unreachable_node()).await;
    let addr = hub.local_addr();
    // The burst: three accounts; the fourth sign-up at once is refused with 429 and both
    // error shapes, and no account is made for it.
    for _ in 0..3 {
        post(addr, "/create", None, json!({})).await.ok();
    }
    let refused = post(addr, "/create", None, json!({})).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.body["code"], 6, "{refused:?}");
    assert_eq!(refused.body["status"], "ERROR", "{refused:?}");
    assert_eq!(
        hub.admin().list_accounts().await.expect("accounts").len(),
        3
    );
    // LNURL shares the bucket; a caller with an account is not limited by it.
    let limited = get(addr, "/.well-known/lnurlp/nobody", None).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    get(addr, "/getinfo", None).await.assert_code(1);
    // The bucket refills: one call a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    post(addr, "/create", None, json!({})).await.ok();
    hub.stop().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
