//! Only the tenant's own apps can spend: with the default policy the signer approves a payment
//! only with a request an authorised app signed for exactly that payment, once, fresh, within
//! the app's budget in the signer's own ledger. Each attack an operator can make with what it
//! sees (the node's requests, the app's token and its past requests, the NWC service key) is
//! refused with its rule. These run the real VLS node with durable state in a temp dir.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use micronode_signer::apps::root::AppRoot;
use micronode_signer::apps::NewApp;
use micronode_signer::{PolicyConfig, SignerEngine};
use micronode_signer_protocol::{
    AppMethod, AppRequest, Hex, PaymentAuthorization, SignerRequest, SignerResponse,
};
use nostr::{EventBuilder, JsonUtil, Keys, Kind, Tag};
use zeroize::Zeroizing;

const SEED: [u8; 32] = [7u8; 32];

fn engine(dir: &std::path::Path, policy: PolicyConfig) -> SignerEngine {
    SignerEngine::open(dir, Zeroizing::new(SEED), bitcoin::Network::Regtest, policy)
        .expect("open signer")
}

fn payee() -> PublicKey {
    PublicKey::from_secret_key(
        &Secp256k1::new(),
        &SecretKey::from_slice(&[3u8; 32]).unwrap(),
    )
}

fn app(signer: &SignerEngine, budget_sat: u64) -> NewApp {
    signer
        .apps()
        .add_app("test app", &["pay".into()], budget_sat * 1000, 86_400, None)
        .expect("app")
}

fn token_auth(app: &NewApp, request: AppRequest) -> PaymentAuthorization {
    PaymentAuthorization::Client {
        token: app.credential.token.clone(),
        request: request.sign(&app.credential.client_key),
    }
}

fn keysend(amount_msat: u64, hash: u8, auth: Option<PaymentAuthorization>) -> SignerRequest {
    SignerRequest::ApproveKeysend {
        payee: Hex(payee().serialize().to_vec()),
        payment_hash: Hex(vec![hash; 32]),
        amount_msat,
        authorization: auth,
    }
}

fn invoice(amount_msat: Option<u64>, tag: &[u8]) -> (String, String) {
    let key = SecretKey::new(&mut rand::thread_rng());
    let hash = sha256::Hash::hash(tag);
    let mut builder = lightning_invoice::InvoiceBuilder::new(lightning_invoice::Currency::Regtest)
        .description("a test".into())
        .payment_hash(hash)
        .payment_secret(lightning::types::payment::PaymentSecret([1; 32]))
        .current_timestamp()
        .min_final_cltv_expiry_delta(18);
    if let Some(amount) = amount_msat {
        builder = builder.amount_milli_satoshis(amount);
    }
    let invoice = builder
        .build_signed(|m| Secp256k1::new().sign_ecdsa_recoverable(m, &key))
        .expect("invoice")
        .to_string();
    (invoice, hex::encode(hash.to_byte_array()))
}

fn pay(
    invoice: &str,
    amount_msat: Option<u64>,
    auth: Option<PaymentAuthorization>,
) -> SignerRequest {
    SignerRequest::ApproveInvoice {
        invoice: invoice.to_string(),
        amount_msat,
        authorization: auth,
    }
}

#[track_caller]
fn refused(response: SignerResponse, rule: &str) {
    match response {
        SignerResponse::Refused {
            rule: got, message, ..
        } => {
            assert_eq!(got, rule, "{message}")
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

#[test]
fn a_payment_no_app_asked_for_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    refused(
        signer.handle(&keysend(1_000, 1, None)),
        "app-request-missing",
    );
    let (inv, _) = invoice(Some(1_000), b"own");
    refused(signer.handle(&pay(&inv, None, None)), "app-request-missing");
}

#[test]
fn a_genuine_request_pays_once_and_only_what_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let app = app(&signer, 20);
    let (inv, hash) = invoice(Some(2_000), b"genuine");
    let genuine = token_auth(
        &app,
        AppRequest::new(AppMethod::PayInvoice, hash.clone(), 2_000),
    );
    approved(signer.handle(&pay(&inv, None, Some(genuine.clone()))));
    // The same request again, for the same or for a new invoice of the same amount.
    refused(
        signer.handle(&pay(&inv, None, Some(genuine.clone()))),
        "app-request-replayed",
    );
    let (other, other_hash) = invoice(Some(2_000), b"the operator's");
    refused(
        signer.handle(&pay(&other, None, Some(genuine.clone()))),
        "app-request-mismatch",
    );
    // The operator swaps the invoice inside the genuine request: the signature breaks.
    let PaymentAuthorization::Client { token, mut request } = genuine else {
        unreachable!()
    };
    request.request.target = other_hash;
    refused(
        signer.handle(&pay(
            &other,
            None,
            Some(PaymentAuthorization::Client {
                token: token.clone(),
                request,
            }),
        )),
        "app-request-signature",
    );
    // An any-amount invoice: the operator raises the amount the app signed.
    let (any, any_hash) = invoice(None, b"any amount");
    let asked = token_auth(
        &app,
        AppRequest::new(AppMethod::PayInvoice, any_hash, 1_000),
    );
    refused(
        signer.handle(&pay(&any, Some(5_000), Some(asked.clone()))),
        "app-request-mismatch",
    );
    approved(signer.handle(&pay(&any, Some(1_000), Some(asked))));
    // A keysend request is bound to its payee and amount, and approved once.
    let ks = token_auth(
        &app,
        AppRequest::new(AppMethod::Keysend, payee().to_string(), 1_000),
    );
    refused(
        signer.handle(&keysend(2_000, 9, Some(ks.clone()))),
        "app-request-mismatch",
    );
    approved(signer.handle(&keysend(1_000, 9, Some(ks.clone()))));
    refused(
        signer.handle(&keysend(1_000, 10, Some(ks))),
        "app-request-replayed",
    );
    // A stale request (made 20 minutes ago) and a request by another key.
    let mut old = AppRequest::new(AppMethod::Keysend, payee().to_string(), 1_000);
    old.time -= 1_200;
    refused(
        signer.handle(&keysend(1_000, 11, Some(token_auth(&app, old)))),
        "app-request-stale",
    );
    let other_key = micronode_signer_protocol::app_request::new_client_key();
    let forged = PaymentAuthorization::Client {
        token,
        request: AppRequest::new(AppMethod::Keysend, payee().to_string(), 1_000).sign(&other_key),
    };
    refused(
        signer.handle(&keysend(1_000, 12, Some(forged))),
        "app-request-signature",
    );
}

#[test]
fn a_token_of_another_root_or_a_revoked_app_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let app = app(&signer, 20);
    let client_key = app.credential.client_public_key();
    // The operator mints a token naming the app and its key with its own root.
    let operator_root = AppRoot::from_seed(&[9u8; 32]);
    let token = operator_root
        .bake(
            &signer.node_id().to_string(),
            &app.record.id,
            &["pay".into()],
            &client_key,
        )
        .unwrap();
    let forged = PaymentAuthorization::Client {
        token,
        request: AppRequest::new(AppMethod::Keysend, payee().to_string(), 1_000)
            .sign(&app.credential.client_key),
    };
    refused(
        signer.handle(&keysend(1_000, 1, Some(forged))),
        "app-token-invalid",
    );
    signer
        .apps()
        .store()
        .revoke(&app.record.id, 1)
        .expect("revoke");
    let request = AppRequest::new(AppMethod::Keysend, payee().to_string(), 1_000);
    refused(
        signer.handle(&keysend(1_000, 2, Some(token_auth(&app, request)))),
        "app-not-allowed",
    );
}

#[test]
fn an_app_may_ask_only_for_what_its_rights_allow() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let reader = signer
        .apps()
        .add_app("reader", &["read".into()], 1_000_000, 86_400, None)
        .expect("app");
    let request = AppRequest::new(AppMethod::Keysend, payee().to_string(), 1_000);
    refused(
        signer.handle(&keysend(1_000, 1, Some(token_auth(&reader, request)))),
        "app-not-allowed",
    );
    let spent = signer.apps().store().spent_since(&reader.record.id, 0);
    assert_eq!(spent.expect("ledger"), 0, "nothing charged for a refusal");
    let payer = app(&signer, 20);
    assert_eq!(
        payer.record.methods,
        ["pay_invoice", "keysend"],
        "a payer may not send on chain"
    );
    let admin = signer
        .apps()
        .add_app("admin", &["admin".into()], 1_000_000, 86_400, None)
        .expect("app");
    assert_eq!(
        admin.record.methods,
        ["pay_invoice", "keysend", "send_onchain"]
    );
}

#[test]
fn a_token_the_operator_extends_gains_it_nothing() {
    use biscuit_auth::builder::{fact, string, BlockBuilder};
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let app = app(&signer, 20);
    // The operator sees the app's token on the wire. Anyone may append a block to a biscuit:
    // it appends its own client key and the `admin` right, and signs a request with its key.
    let operator_key = micronode_signer_protocol::app_request::new_client_key();
    let operator_public = operator_key.x_only_public_key().0.to_string();
    let extended = biscuit_auth::UnverifiedBiscuit::from_base64(&app.credential.token)
        .expect("token")
        .append(
            BlockBuilder::new()
                .fact(fact("client_key", &[string(&operator_public)]))
                .and_then(|b| b.fact(fact("right", &[string("admin")])))
                .expect("block"),
        )
        .expect("appended")
        .to_base64()
        .expect("encoded");
    let request = AppRequest::new(AppMethod::Keysend, payee().to_string(), 1_000);
    let forged = PaymentAuthorization::Client {
        token: extended.clone(),
        request: request.sign(&operator_key),
    };
    refused(
        signer.handle(&keysend(1_000, 1, Some(forged))),
        "app-request-signature",
    );
    // The block widens nothing: the app may still not send on chain, even with its own key.
    let claim = micronode_signer::apps::PaymentClaim {
        method: AppMethod::SendOnchain,
        target: "bcrt1qanything".into(),
        payment_hash: String::new(),
        amount_msat: 1_000_000,
        cost_msat: 1_000_000,
        sends_everything: false,
    };
    let onchain = AppRequest::new(AppMethod::SendOnchain, claim.target.clone(), 1_000_000);
    let forged = PaymentAuthorization::Client {
        token: extended,
        request: onchain.sign(&app.credential.client_key),
    };
    match signer.apps().authorize(Some(&forged), &claim, true) {
        Err(micronode_signer::outcome::Outcome::Refused { rule, .. }) => {
            assert_eq!(rule, "app-not-allowed")
        }
        Err(other) => panic!("refused for another reason: {other:?}"),
        Ok(_) => panic!("an on-chain send by a paying app was authorised"),
    }
    let ledger = || {
        signer
            .apps()
            .store()
            .spent_since(&app.record.id, 0)
            .expect("ledger")
    };
    assert_eq!(ledger(), 0, "nothing charged for the refusals");
    // The app's own request still pays, charged exactly once.
    let request = AppRequest::new(AppMethod::Keysend, payee().to_string(), 1_000);
    approved(signer.handle(&keysend(1_000, 2, Some(token_auth(&app, request)))));
    assert_eq!(ledger(), PolicyConfig::default().payment_cost_msat(1_000));
}

#[test]
fn the_budget_is_the_signers_own_and_refused_payments_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Each 1,000 msat keysend may cost 6,010 msat (5,000 msat + 1 % fee allowance).
    let policy = PolicyConfig {
        max_sat_per_hour: 30,
        ..PolicyConfig::default()
    };
    let signer = engine(dir.path(), policy);
    let app = app(&signer, 20);
    let request = || AppRequest::new(AppMethod::Keysend, payee().to_string(), 1_000);
    for hash in 1..=3 {
        approved(signer.handle(&keysend(1_000, hash, Some(token_auth(&app, request())))));
    }
    refused(
        signer.handle(&keysend(1_000, 4, Some(token_auth(&app, request())))),
        "app-budget-exceeded",
    );
    let spent = signer
        .apps()
        .store()
        .spent_since(&app.record.id, 0)
        .unwrap();
    assert_eq!(spent, 3 * 6_010);
    // A second app within its budget, refused by the velocity limit (30 sat an hour, 18.03
    // spent): the refused payment is not charged to it.
    let second = app_named(&signer, "second");
    let big = AppRequest::new(AppMethod::Keysend, payee().to_string(), 20_000);
    refused(
        signer.handle(&keysend(20_000, 5, Some(token_auth(&second, big)))),
        "velocity-limit",
    );
    assert_eq!(
        signer
            .apps()
            .store()
            .spent_since(&second.record.id, 0)
            .unwrap(),
        0
    );
}

fn app_named(signer: &SignerEngine, name: &str) -> NewApp {
    signer
        .apps()
        .add_app(name, &["pay".into()], 1_000_000, 86_400, None)
        .expect("app")
}

/// An NWC request event from `app` to `service`, as a stock client makes it (NIP-44).
fn nwc_event(app: &Keys, service: &Keys, request: &serde_json::Value) -> String {
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

#[test]
fn an_nwc_apps_event_is_approved_once_and_only_for_its_payment() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let app = app(&signer, 20);
    let app_keys =
        Keys::new(nostr::SecretKey::from_slice(&app.credential.client_key.secret_bytes()).unwrap());
    let service = Keys::generate();
    let (inv, _) = invoice(Some(2_000), b"nwc");
    let event = nwc_event(
        &app_keys,
        &service,
        &serde_json::json!({"method": "pay_invoice", "params": {"invoice": inv}}),
    );
    let auth = |event: &str, key: &Keys| PaymentAuthorization::Nwc {
        event: event.to_string(),
        service_key: Hex(key.secret_key().secret_bytes().to_vec()),
        delegation: None,
    };
    // With another service key the request cannot be read (NIP-44's MAC).
    refused(
        signer.handle(&pay(&inv, None, Some(auth(&event, &Keys::generate())))),
        "app-request-signature",
    );
    approved(signer.handle(&pay(&inv, None, Some(auth(&event, &service)))));
    // The old event again, for the same invoice or another.
    refused(
        signer.handle(&pay(&inv, None, Some(auth(&event, &service)))),
        "app-request-replayed",
    );
    let (other, _) = invoice(Some(2_000), b"nwc other");
    refused(
        signer.handle(&pay(&other, None, Some(auth(&event, &service)))),
        "app-request-mismatch",
    );
    // The operator, holding the service key, writes its own request as an app it made up.
    let operator = Keys::generate();
    let own = nwc_event(
        &operator,
        &service,
        &serde_json::json!({"method": "pay_invoice", "params": {"invoice": other}}),
    );
    refused(
        signer.handle(&pay(&other, None, Some(auth(&own, &service)))),
        "app-not-allowed",
    );
    // ...or alters the app's event: its id and signature no longer match.
    let mut altered: serde_json::Value = serde_json::from_str(&event).unwrap();
    altered["created_at"] = serde_json::json!(altered["created_at"].as_u64().unwrap() + 1);
    refused(
        signer.handle(&pay(&inv, None, Some(auth(&altered.to_string(), &service)))),
        "app-request-signature",
    );
}
