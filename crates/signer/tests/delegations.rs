//! A browser wallet's NWC connections: the browser (an app authorised at the signer) makes an
//! NWC app's key and signs a `delegate_nwc` request; the node attaches it to every payment of
//! the connection. The signer approves the NWC app's payments only when its own key signed the
//! event, within the delegation's budget and the browser app's. Each attack the operator can
//! make with what it sees (the delegation, the browser's token, every NWC event and the
//! wallet-service keys) is refused here, with the budgets checked to the msat. These run the
//! real VLS node with durable state in a temp dir.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use micronode_signer::apps::delegation::child_id;
use micronode_signer::apps::root::AppRoot;
use micronode_signer::apps::store::AppRecord;
use micronode_signer::apps::NewApp;
use micronode_signer::{PolicyConfig, SignerEngine};
use micronode_signer_protocol::app_request::{delegation_target, Delegation};
use micronode_signer_protocol::{
    AppMethod, AppRequest, Hex, PaymentAuthorization, SignerRequest, SignerResponse,
};
use nostr::{EventBuilder, JsonUtil, Keys, Kind, Tag};
use serde_json::json;
use zeroize::Zeroizing;

const SEED: [u8; 32] = [7u8; 32];
const DAY: u64 = 86_400;
/// What a 1,000 msat keysend may cost with the default policy: the amount, 5,000 msat and 1 %.
const COST: u64 = 6_010;

fn engine(dir: &std::path::Path, policy: PolicyConfig) -> SignerEngine {
    let signer = SignerEngine::open(dir, Zeroizing::new(SEED), bitcoin::Network::Regtest, policy)
        .expect("open signer");
    assert_eq!(PolicyConfig::default().payment_cost_msat(1_000), COST);
    signer
}

fn now() -> u64 {
    micronode_signer::apps::now()
}

/// The browser wallet's app: `budget_msat` a day.
fn browser(signer: &SignerEngine, budget_msat: u64) -> NewApp {
    signer
        .apps()
        .add_app("browser", &["pay".into()], budget_msat, DAY, None)
        .expect("app")
}

/// The browser's delegation to the NWC app `nwc`.
fn delegate(
    parent: &NewApp,
    nwc: &Keys,
    budget_msat: u64,
    period_secs: u64,
    expires_at: Option<u64>,
) -> Delegation {
    let target = delegation_target(&nwc.public_key().to_hex(), period_secs, expires_at);
    Delegation {
        token: parent.credential.token.clone(),
        request: AppRequest::new(AppMethod::DelegateNwc, target, budget_msat)
            .sign(&parent.credential.client_key),
    }
}

fn payee() -> PublicKey {
    PublicKey::from_secret_key(
        &Secp256k1::new(),
        &SecretKey::from_slice(&[3u8; 32]).unwrap(),
    )
}

/// A `pay_keysend` request event of 1,000 msat from `app` to the wallet service `service`.
fn keysend_event(app: &Keys, service: &Keys) -> String {
    event(
        app,
        service,
        &json!({"method": "pay_keysend", "params": {"pubkey": payee().to_string(), "amount": 1_000}}),
    )
}

fn event(app: &Keys, service: &Keys, request: &serde_json::Value) -> String {
    let content = nostr::nips::nip44::encrypt(
        app.secret_key(),
        &service.public_key(),
        request.to_string(),
        nostr::nips::nip44::Version::V2,
    )
    .unwrap();
    EventBuilder::new(Kind::from(23194), content)
        .tags([
            Tag::public_key(service.public_key()),
            Tag::custom(nostr::TagKind::custom("encryption"), ["nip44_v2"]),
        ])
        .sign_with_keys(app)
        .unwrap()
        .as_json()
}

fn nwc(event: &str, service: &Keys, delegation: Option<&Delegation>) -> PaymentAuthorization {
    PaymentAuthorization::Nwc {
        event: event.to_string(),
        service_key: Hex(service.secret_key().secret_bytes().to_vec()),
        delegation: delegation.cloned(),
    }
}

/// The node's keysend of 1,000 msat (payment hash `hash`) with `auth`.
fn keysend(hash: u8, auth: Option<PaymentAuthorization>) -> SignerRequest {
    SignerRequest::ApproveKeysend {
        payee: Hex(payee().serialize().to_vec()),
        payment_hash: Hex(vec![hash; 32]),
        amount_msat: 1_000,
        authorization: auth,
    }
}

#[track_caller]
fn refused(response: SignerResponse, rule: &str) -> String {
    match response {
        SignerResponse::Refused {
            rule: got, message, ..
        } => {
            assert_eq!(got, rule, "{message}");
            message
        }
        other => panic!("not refused ({rule}): {other:?}"),
    }
}

#[track_caller]
fn approved(response: SignerResponse) {
    assert!(
        matches!(response, SignerResponse::Ok { .. }),
        "not approved: {response:?}"
    );
}

fn spent(signer: &SignerEngine, app_id: &str) -> u64 {
    signer
        .apps()
        .store()
        .spent_since(app_id, 0)
        .expect("ledger")
}

fn child(signer: &SignerEngine, parent: &NewApp, nwc: &Keys) -> Option<AppRecord> {
    let id = child_id(&parent.record.id, &nwc.public_key().to_hex());
    signer.apps().store().app(&id).expect("ledger")
}

#[test]
fn a_delegated_app_is_recorded_as_a_child_and_pays_within_both_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let parent = browser(&signer, 50_000);
    let (nwc_app, service) = (Keys::generate(), Keys::generate());
    let expires_at = now() + 3_600;
    let delegation = delegate(&parent, &nwc_app, 15_000, DAY, Some(expires_at));
    let pay = |hash| {
        let event = keysend_event(&nwc_app, &service);
        signer.handle(&keysend(
            hash,
            Some(nwc(&event, &service, Some(&delegation))),
        ))
    };
    approved(pay(1));
    let recorded = child(&signer, &parent, &nwc_app).expect("the child is recorded");
    let key = nwc_app.public_key().to_hex();
    assert_eq!(
        recorded,
        AppRecord {
            id: format!("{}:{}", parent.record.id, &key[..16]),
            name: "browser / nwc".into(),
            client_key: key,
            methods: vec!["pay_invoice".into(), "keysend".into()],
            budget_msat: 15_000,
            period_secs: DAY,
            expires_at: Some(expires_at),
            created_at: recorded.created_at,
            revoked_at: None,
            parent_id: Some(parent.record.id.clone()),
        }
    );
    approved(pay(2));
    assert_eq!(spent(&signer, &recorded.id), 12_020);
    assert_eq!(spent(&signer, &parent.record.id), 12_020);
    // A third would make 18,030 msat of the delegation's 15,000.
    let message = refused(pay(3), "app-budget-exceeded");
    assert!(
        message.contains("browser / nwc spent 12020 msat of its 15000 msat"),
        "{message}"
    );
    assert_eq!(spent(&signer, &recorded.id), 12_020);
    assert_eq!(spent(&signer, &parent.record.id), 12_020);
}

/// (a) No payment without an event the NWC app's key signed.
#[test]
fn the_operator_cannot_pay_without_the_nwc_apps_signature() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let parent = browser(&signer, 50_000);
    let (nwc_app, service) = (Keys::generate(), Keys::generate());
    let delegation = delegate(&parent, &nwc_app, 15_000, DAY, None);
    // The node pays on its own, with the delegation and no event.
    refused(signer.handle(&keysend(1, None)), "app-request-missing");
    // The operator signs the event with a key of its own and attaches the delegation.
    let operator = Keys::generate();
    let own = keysend_event(&operator, &service);
    refused(
        signer.handle(&keysend(2, Some(nwc(&own, &service, Some(&delegation))))),
        "app-not-allowed",
    );
    refused(
        signer.handle(&keysend(3, Some(nwc(&own, &service, None)))),
        "app-not-allowed",
    );
    // It alters a genuine event (another amount): its id and signature no longer match.
    let genuine = keysend_event(&nwc_app, &service);
    let mut altered: serde_json::Value = serde_json::from_str(&genuine).unwrap();
    altered["created_at"] = json!(altered["created_at"].as_u64().unwrap() + 1);
    refused(
        signer.handle(&keysend(
            4,
            Some(nwc(&altered.to_string(), &service, Some(&delegation))),
        )),
        "app-request-signature",
    );
    // It presents the browser's signed delegation as a payment request of the browser.
    let as_payment = PaymentAuthorization::Client {
        token: delegation.token.clone(),
        request: delegation.request.clone(),
    };
    refused(
        signer.handle(&keysend(5, Some(as_payment))),
        "app-request-mismatch",
    );
    assert_eq!(child(&signer, &parent, &nwc_app), None);
    assert_eq!(child(&signer, &parent, &operator), None);
    assert_eq!(spent(&signer, &parent.record.id), 0);
    // The app's own event pays.
    approved(signer.handle(&keysend(
        6,
        Some(nwc(&genuine, &service, Some(&delegation))),
    )));
    assert_eq!(spent(&signer, &parent.record.id), COST);
}

/// (b) The budget, period and expiry are the browser's signed words.
#[test]
fn the_operator_cannot_change_a_delegations_terms() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let parent = browser(&signer, 50_000);
    let (nwc_app, service) = (Keys::generate(), Keys::generate());
    let expires_at = now() + 3_600;
    let genuine = delegate(&parent, &nwc_app, 7_000, DAY, Some(expires_at));
    let key = nwc_app.public_key().to_hex();
    let altered = |change: &dyn Fn(&mut AppRequest)| {
        let mut d = genuine.clone();
        change(&mut d.request.request);
        d
    };
    let raised = altered(&|r| r.amount_msat = 1_000_000);
    let tampered = [
        raised.clone(),
        altered(&|r| r.target = delegation_target(&key, 60, Some(expires_at))),
        altered(&|r| r.target = delegation_target(&key, DAY, None)),
        altered(&|r| r.target = delegation_target(&key, DAY, Some(expires_at + 1))),
    ];
    for (i, d) in tampered.iter().enumerate() {
        let event = keysend_event(&nwc_app, &service);
        refused(
            signer.handle(&keysend(i as u8, Some(nwc(&event, &service, Some(d))))),
            "app-request-signature",
        );
    }
    // The operator signs terms of its own with its own key under the browser's token, or
    // bakes a token with a root of its own for the browser's app and key.
    let operator_key = micronode_signer_protocol::app_request::new_client_key();
    let own_terms = Delegation {
        token: genuine.token.clone(),
        request: AppRequest::new(
            AppMethod::DelegateNwc,
            delegation_target(&key, DAY, None),
            1_000_000,
        )
        .sign(&operator_key),
    };
    let event = keysend_event(&nwc_app, &service);
    refused(
        signer.handle(&keysend(10, Some(nwc(&event, &service, Some(&own_terms))))),
        "app-request-signature",
    );
    let foreign_token = AppRoot::from_seed(&[9u8; 32])
        .bake(
            &signer.node_id().to_string(),
            &parent.record.id,
            &["pay".into()],
            &operator_key.x_only_public_key().0.to_string(),
        )
        .unwrap();
    let foreign = Delegation {
        token: foreign_token,
        ..own_terms
    };
    refused(
        signer.handle(&keysend(11, Some(nwc(&event, &service, Some(&foreign))))),
        "app-token-invalid",
    );
    assert_eq!(child(&signer, &parent, &nwc_app), None);
    assert_eq!(spent(&signer, &parent.record.id), 0);
    // The genuine terms: once recorded, a raised delegation attached later changes nothing.
    approved(signer.handle(&keysend(12, Some(nwc(&event, &service, Some(&genuine))))));
    let event = keysend_event(&nwc_app, &service);
    refused(
        signer.handle(&keysend(13, Some(nwc(&event, &service, Some(&raised))))),
        "app-budget-exceeded",
    );
    let recorded = child(&signer, &parent, &nwc_app).unwrap();
    assert_eq!(
        (
            recorded.budget_msat,
            recorded.period_secs,
            recorded.expires_at
        ),
        (7_000, DAY, Some(expires_at))
    );
    assert_eq!(spent(&signer, &recorded.id), COST);
    assert_eq!(spent(&signer, &parent.record.id), COST);
}

/// (c) A delegation names one key; it cannot be moved to another.
#[test]
fn a_delegation_cannot_be_attached_to_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let parent = browser(&signer, 50_000);
    let service = Keys::generate();
    let (big_app, small_app) = (Keys::generate(), Keys::generate());
    let big = delegate(&parent, &big_app, 20_000, DAY, None);
    let small = delegate(&parent, &small_app, 7_000, DAY, None);
    // The small app's event with the big app's delegation, on its first payment.
    let event = keysend_event(&small_app, &service);
    let message = refused(
        signer.handle(&keysend(1, Some(nwc(&event, &service, Some(&big))))),
        "app-not-allowed",
    );
    assert!(message.contains("is for the NWC key"), "{message}");
    assert_eq!(child(&signer, &parent, &small_app), None);
    // With its own delegation it is recorded with its own budget; the big one changes nothing.
    approved(signer.handle(&keysend(2, Some(nwc(&event, &service, Some(&small))))));
    let event = keysend_event(&small_app, &service);
    refused(
        signer.handle(&keysend(3, Some(nwc(&event, &service, Some(&big))))),
        "app-budget-exceeded",
    );
    let recorded = child(&signer, &parent, &small_app).unwrap();
    assert_eq!(recorded.budget_msat, 7_000);
    assert_eq!(spent(&signer, &recorded.id), COST);
    assert_eq!(spent(&signer, &parent.record.id), COST);
    assert_eq!(child(&signer, &parent, &big_app), None);
    // A request signed for a payment, presented as a delegation, delegates nothing.
    let (other_app, payment) = (
        Keys::generate(),
        AppRequest::new(AppMethod::Keysend, payee().to_string(), 1_000),
    );
    let not_a_delegation = Delegation {
        token: parent.credential.token.clone(),
        request: payment.sign(&parent.credential.client_key),
    };
    let event = keysend_event(&other_app, &service);
    refused(
        signer.handle(&keysend(
            4,
            Some(nwc(&event, &service, Some(&not_a_delegation))),
        )),
        "app-not-allowed",
    );
    assert_eq!(child(&signer, &parent, &other_app), None);
}

/// (d) However many delegations it signs, the browser's budget caps their sum.
#[test]
fn many_delegations_share_the_delegating_apps_budget() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let parent = browser(&signer, 20_000);
    let service = Keys::generate();
    let apps: Vec<Keys> = (0..3).map(|_| Keys::generate()).collect();
    let delegations: Vec<Delegation> = apps
        .iter()
        .map(|k| delegate(&parent, k, 15_000, DAY, None))
        .collect();
    let pay = |i: usize, hash: u8| {
        let event = keysend_event(&apps[i], &service);
        signer.handle(&keysend(
            hash,
            Some(nwc(&event, &service, Some(&delegations[i]))),
        ))
    };
    approved(pay(0, 1));
    approved(pay(0, 2));
    approved(pay(1, 3));
    assert_eq!(spent(&signer, &parent.record.id), 18_030);
    // The second app has 8,990 msat of its own left, but the browser only 1,970.
    let message = refused(pay(1, 4), "app-budget-exceeded");
    assert!(
        message.contains("the app browser spent 18030 msat of its 20000 msat"),
        "{message}"
    );
    refused(pay(2, 5), "app-budget-exceeded");
    let children: Vec<u64> = apps
        .iter()
        .map(|k| child(&signer, &parent, k).map_or(0, |c| spent(&signer, &c.id)))
        .collect();
    assert_eq!(children, [12_020, 6_010, 0]);
    assert_eq!(spent(&signer, &parent.record.id), 18_030);
    // The browser's own payments share the same budget.
    let own = AppRequest::new(AppMethod::Keysend, payee().to_string(), 1_000);
    refused(
        signer.handle(&keysend(
            6,
            Some(PaymentAuthorization::Client {
                token: parent.credential.token.clone(),
                request: own.sign(&parent.credential.client_key),
            }),
        )),
        "app-budget-exceeded",
    );
    assert_eq!(spent(&signer, &parent.record.id), 18_030);
}

/// (e) A revoked or expired browser app delegates nothing, before or after first use; a
/// revoked child is refused.
#[test]
fn a_revoked_or_expired_delegating_app_stops_its_delegations() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let service = Keys::generate();
    let pay = |app: &Keys, d: &Delegation, hash: u8| {
        let event = keysend_event(app, &service);
        signer.handle(&keysend(hash, Some(nwc(&event, &service, Some(d)))))
    };

    // Revoked after its connection's first payment: the connection stops; a new one too.
    let parent = browser(&signer, 50_000);
    let (used, unused) = (Keys::generate(), Keys::generate());
    let used_d = delegate(&parent, &used, 15_000, DAY, None);
    let unused_d = delegate(&parent, &unused, 15_000, DAY, None);
    approved(pay(&used, &used_d, 1));
    assert!(signer
        .apps()
        .store()
        .revoke(&parent.record.id, now())
        .unwrap());
    let message = refused(pay(&used, &used_d, 2), "app-not-allowed");
    assert!(message.contains("the app browser was revoked"), "{message}");
    refused(pay(&unused, &unused_d, 3), "app-not-allowed");
    assert_eq!(child(&signer, &parent, &unused), None);
    let used_child = child(&signer, &parent, &used).unwrap();
    assert_eq!(spent(&signer, &used_child.id), COST);
    assert_eq!(spent(&signer, &parent.record.id), COST);

    // A delegation past its own expiry, and a child revoked by its id.
    let live = browser(&signer, 50_000);
    let (late, revoked) = (Keys::generate(), Keys::generate());
    let expired = delegate(&live, &late, 15_000, DAY, Some(now() - 1));
    let message = refused(pay(&late, &expired, 4), "app-not-allowed");
    assert!(message.contains("expired"), "{message}");
    let revoked_d = delegate(&live, &revoked, 15_000, DAY, None);
    approved(pay(&revoked, &revoked_d, 5));
    let revoked_child = child(&signer, &live, &revoked).unwrap();
    assert!(signer
        .apps()
        .store()
        .revoke(&revoked_child.id, now())
        .unwrap());
    refused(pay(&revoked, &revoked_d, 6), "app-not-allowed");
    assert_eq!(spent(&signer, &live.record.id), COST);

    // A read-only browser app may not delegate payments.
    let reader = signer
        .apps()
        .add_app("reader", &["read".into()], 50_000, DAY, None)
        .unwrap();
    let read_d = delegate(&reader, &late, 15_000, DAY, None);
    refused(pay(&late, &read_d, 7), "app-not-allowed");
    assert_eq!(child(&signer, &reader, &late), None);

    // An app that expires: its delegation pays until then, and nothing after.
    let expiring = signer
        .apps()
        .add_app("expiring", &["pay".into()], 50_000, DAY, Some(now() + 2))
        .unwrap();
    let soon = Keys::generate();
    let soon_d = delegate(&expiring, &soon, 15_000, DAY, None);
    approved(pay(&soon, &soon_d, 8));
    std::thread::sleep(std::time::Duration::from_millis(3_100));
    let message = refused(pay(&soon, &soon_d, 9), "app-not-allowed");
    assert!(
        message.contains("the app expiring has expired"),
        "{message}"
    );
    assert_eq!(spent(&signer, &expiring.record.id), COST);
    let other = Keys::generate();
    let other_d = delegate(&expiring, &other, 15_000, DAY, None);
    refused(pay(&other, &other_d, 10), "app-not-allowed");
    assert_eq!(child(&signer, &expiring, &other), None);
}

/// (f) An event is approved once, through the child and its parent alike; a payment a later
/// rule refuses is taken back from both.
#[test]
fn an_event_is_charged_once_and_refusals_are_taken_back_from_both() {
    let dir = tempfile::tempdir().unwrap();
    // 30 sat an hour: a 1,000 msat keysend passes, a 30,000 msat one does not.
    let policy = PolicyConfig {
        max_sat_per_hour: 30,
        ..PolicyConfig::default()
    };
    let signer = engine(dir.path(), policy);
    let parent = browser(&signer, 100_000);
    let (nwc_app, service) = (Keys::generate(), Keys::generate());
    let delegation = delegate(&parent, &nwc_app, 80_000, DAY, None);
    let event = keysend_event(&nwc_app, &service);
    approved(signer.handle(&keysend(1, Some(nwc(&event, &service, Some(&delegation))))));
    // The same event again, with or without its delegation, for the same or another hash.
    for (hash, d) in [(1, Some(&delegation)), (2, Some(&delegation)), (3, None)] {
        refused(
            signer.handle(&keysend(hash, Some(nwc(&event, &service, d)))),
            "app-request-replayed",
        );
    }
    let id = child(&signer, &parent, &nwc_app).unwrap().id;
    assert_eq!(spent(&signer, &id), COST);
    assert_eq!(spent(&signer, &parent.record.id), COST);
    // Within both budgets, over the velocity limit: charged to neither.
    let big = event_for(&nwc_app, &service, 30_000);
    refused(
        signer.handle(&SignerRequest::ApproveKeysend {
            payee: Hex(payee().serialize().to_vec()),
            payment_hash: Hex(sha256::Hash::hash(b"big").to_byte_array().to_vec()),
            amount_msat: 30_000,
            authorization: Some(nwc(&big, &service, Some(&delegation))),
        }),
        "velocity-limit",
    );
    assert_eq!(spent(&signer, &id), COST);
    assert_eq!(spent(&signer, &parent.record.id), COST);
}

fn event_for(app: &Keys, service: &Keys, amount_msat: u64) -> String {
    event(
        app,
        service,
        &json!({"method": "pay_keysend", "params": {"pubkey": payee().to_string(), "amount": amount_msat}}),
    )
}
