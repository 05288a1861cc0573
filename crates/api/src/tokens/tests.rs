//! The token authority without a node: Datalog semantics, budgets across attenuations,
//! revocation, and each refusal's precise error.

use std::time::{Duration, SystemTime};

use super::*;

const TENANT: &str = "02aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "03bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        Dir(std::env::temp_dir().join(format!(
            "micronode-tokens-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        )))
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn authority(tag: &str, tenant: &str) -> (Dir, TokenAuthority, String) {
    let dir = Dir::new(tag);
    let admin = TokenAuthority::init_stateless(&dir.0, tenant).expect("init");
    let authority = TokenAuthority::open(&dir.0, tenant).expect("open");
    (dir, authority, admin)
}

fn caveats(methods: &[&str]) -> Caveats {
    Caveats {
        methods: methods.iter().map(|m| m.to_string()).collect(),
        ..Caveats::default()
    }
}

fn budget(sat: u64, period: Period) -> Budget {
    Budget {
        limit_sat: sat,
        period,
    }
}

#[test]
fn admin_token_may_do_everything_and_is_registered_without_the_token() {
    let (dir, authority, admin) = authority("admin", TENANT);
    for m in caveats::METHODS {
        authority.check(m.name, &admin).expect(m.name);
    }
    let listed = authority.list().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].summary.tenant.as_deref(), Some(TENANT));
    assert!(listed[0].summary.blocks[0].contains("right(\"admin\")"));
    let grant = authority.check("GetInfo", &admin).expect("grant");
    assert_eq!(grant.id(), listed[0].summary.id);
    // A second init would orphan every token: refused.
    assert!(matches!(
        TokenAuthority::init_stateless(&dir.0, TENANT),
        Err(TokenError::AlreadyInitialised(_))
    ));
    assert!(matches!(
        TokenAuthority::open(&dir.0, OTHER),
        Err(TokenError::TenantMismatch { .. })
    ));
}

#[test]
fn method_groups_narrow_what_a_token_may_call() {
    let (_dir, authority, admin) = authority("groups", TENANT);
    let read = attenuate(&admin, &caveats(&["read"])).expect("read");
    let invoice = attenuate(&admin, &caveats(&["invoice"])).expect("invoice");
    let pay = attenuate(&admin, &caveats(&["pay"])).expect("pay");
    let one = attenuate(&admin, &caveats(&["CreateInvoice"])).expect("one method");
    let allowed = |token: &str, method: &str| authority.check(method, token).is_ok();
    assert!(allowed(&read, "ListChannels") && !allowed(&read, "PayInvoice"));
    assert!(!allowed(&read, "CreateInvoice") && !allowed(&read, "NewAddress"));
    assert!(allowed(&invoice, "CreateInvoice") && allowed(&invoice, "GetPayment"));
    assert!(!allowed(&invoice, "PayInvoice") && !allowed(&invoice, "Keysend"));
    assert!(allowed(&pay, "PayInvoice") && allowed(&pay, "Keysend"));
    assert!(!allowed(&pay, "SendOnchain") && !allowed(&pay, "RevokeToken"));
    assert!(allowed(&one, "CreateInvoice") && !allowed(&one, "GetInfo"));
    assert!(!allowed(&pay, "NoSuchMethod") && allowed(&admin, "NoSuchMethod"));
    // Attenuating can only narrow: read then pay leaves nothing that pays.
    let both = attenuate(&read, &caveats(&["pay"])).expect("narrower");
    assert!(!allowed(&both, "PayInvoice") && allowed(&both, "GetInfo"));
    match authority.check("PayInvoice", &read) {
        Err(TokenError::MethodNotAllowed { method, reason }) => {
            assert_eq!(method, "PayInvoice");
            assert!(reason.contains("group($g)"), "{reason}");
        }
        other => panic!("expected METHOD_NOT_ALLOWED, got {other:?}"),
    }
}

#[test]
fn refusals_are_precise() {
    let (_dir, authority, admin) = authority("refusals", TENANT);
    // Expired.
    let expired = attenuate(
        &admin,
        &Caveats {
            expires_at: Some(SystemTime::now() - Duration::from_secs(1)),
            ..Caveats::default()
        },
    )
    .expect("expired");
    assert!(matches!(
        authority.check("GetInfo", &expired),
        Err(TokenError::Expired(_))
    ));
    let fresh = attenuate(
        &admin,
        &Caveats {
            expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
            ..Caveats::default()
        },
    )
    .expect("fresh");
    authority.check("GetInfo", &fresh).expect("not yet expired");
    // Another node's token, and one signed by another root claiming this node.
    let (_other_dir, _other, foreign) = self::authority("foreign", OTHER);
    assert!(matches!(
        authority.check("GetInfo", &foreign),
        Err(TokenError::WrongTenant(t)) if t == OTHER
    ));
    let (_forged_dir, _forger, forged) = self::authority("forged", TENANT);
    assert!(matches!(
        authority.check("GetInfo", &forged),
        Err(TokenError::Invalid(_))
    ));
    // A tampered signature, and garbage.
    let tampered = tamper_signature(&admin);
    assert!(matches!(
        authority.check("GetInfo", &tampered),
        Err(TokenError::Invalid(_))
    ));
    assert!(matches!(
        authority.check("GetInfo", "bm90IGEgdG9rZW4"),
        Err(TokenError::Invalid(_))
    ));
    // Budgeted tokens cannot spend on chain, even with admin methods.
    let budgeted = attenuate(
        &admin,
        &Caveats {
            budgets: vec![budget(1000, Period::Day)],
            ..Caveats::default()
        },
    )
    .expect("budgeted");
    assert!(matches!(
        authority.check("SendOnchain", &budgeted),
        Err(TokenError::MethodNotAllowed { .. })
    ));
    authority
        .check("PayInvoice", &budgeted)
        .expect("pays within budget");
    authority
        .check("ConnectPeer", &budgeted)
        .expect("admin otherwise");
}

/// `token` with one byte of its authority block's signature flipped.
fn tamper_signature(token: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE;
    let mut bytes = engine.decode(token).expect("base64");
    let signature = inspect(token).expect("inspect").revocation_ids[0].clone();
    let signature = hex::decode(signature).expect("hex");
    let at = bytes
        .windows(signature.len())
        .position(|w| w == signature.as_slice())
        .expect("the signature is in the token");
    bytes[at + 10] ^= 0x01;
    engine.encode(bytes)
}

#[test]
fn budgets_apply_across_the_chain_and_survive_reopening() {
    let (dir, authority, admin) = authority("budgets", TENANT);
    let parent = attenuate(
        &admin,
        &Caveats {
            methods: vec!["pay".into()],
            budgets: vec![budget(10_000, Period::Day)],
            max_payment_sat: Some(8_000),
            ..Caveats::default()
        },
    )
    .expect("parent");
    // The child claims a larger budget: the parent's still applies.
    let child = attenuate(
        &parent,
        &Caveats {
            budgets: vec![budget(20_000, Period::Day)],
            ..Caveats::default()
        },
    )
    .expect("child");
    let sibling = attenuate(&parent, &Caveats::default()).expect("sibling");
    let msat = |sat: u64| sat * 1000;
    let pay = |token: &str, sat: u64| {
        authority
            .check("PayInvoice", token)
            .and_then(|g| g.reserve_spend(msat(sat), None))
    };
    assert!(
        matches!(pay(&child, 9_000), Err(TokenError::BudgetExceeded(_))),
        "per-payment max"
    );
    let first = pay(&child, 6_000).expect("6000 fits 10000");
    match pay(&child, 6_000) {
        Err(TokenError::BudgetExceeded(message)) => {
            assert!(
                message.contains("block 1"),
                "the parent's caveat refuses: {message}"
            )
        }
        other => panic!("expected BUDGET_EXCEEDED, got {other:?}"),
    }
    // The sibling shares the parent's budget.
    assert!(matches!(
        pay(&sibling, 5_000),
        Err(TokenError::BudgetExceeded(_))
    ));
    pay(&sibling, 4_000).expect("the rest of the parent's budget");
    // A released reservation no longer counts.
    authority.release_spend(first).expect("release");
    pay(&sibling, 5_000).expect("released budget is free again");
    // After reopening, the ledger is as it was.
    drop(authority);
    let reopened = TokenAuthority::open(&dir.0, TENANT).expect("reopen");
    assert!(matches!(
        reopened
            .check("PayInvoice", &parent)
            .and_then(|g| g.reserve_spend(msat(2_000), None)),
        Err(TokenError::BudgetExceeded(_))
    ));
    reopened
        .check("PayInvoice", &admin)
        .and_then(|g| g.reserve_spend(msat(1_000_000), None))
        .expect("the admin token has no budget");
}

#[test]
fn revoking_a_parent_revokes_its_children_at_once() {
    let (dir, authority, admin) = authority("revoke", TENANT);
    let parent = attenuate(&admin, &caveats(&["pay", "read"])).expect("parent");
    let child = attenuate(&parent, &caveats(&["read"])).expect("child");
    let parent_info = authority.register(&parent, "parent").expect("register");
    let child_info = authority.register(&child, "child").expect("register");
    assert_eq!(
        child_info.summary.parent_id.as_deref(),
        Some(&*parent_info.summary.id)
    );
    assert!(matches!(
        authority.register(&child, &"x".repeat(65)),
        Err(TokenError::Caveat(_))
    ));
    let grant = authority.check("GetInfo", &child).expect("before");
    let revoked = authority.revoke(&parent_info.summary.id).expect("revoke");
    assert_eq!(
        revoked.revoked_ids,
        vec![
            parent_info.summary.id.clone(),
            child_info.summary.id.clone()
        ]
    );
    assert!(matches!(
        authority.check("GetInfo", &child),
        Err(TokenError::Revoked)
    ));
    assert!(matches!(
        authority.check("GetInfo", &parent),
        Err(TokenError::Revoked)
    ));
    // A grant given before the revocation cannot start a payment after it.
    assert!(matches!(
        grant.reserve_spend(1, None),
        Err(TokenError::Revoked)
    ));
    authority
        .check("GetInfo", &admin)
        .expect("the admin token is untouched");
    assert!(matches!(
        authority.register(&child, "again"),
        Err(TokenError::Revoked)
    ));
    assert!(matches!(
        authority.revoke("00"),
        Err(TokenError::UnknownToken(_))
    ));
    // Revocation by revocation id, for tokens never registered.
    let unregistered = attenuate(&admin, &Caveats::default()).expect("unregistered");
    let rev = inspect(&unregistered).expect("inspect").revocation_ids[1].clone();
    authority.revoke(&rev).expect("revoke by revocation id");
    assert!(matches!(
        authority.check("GetInfo", &unregistered),
        Err(TokenError::Revoked)
    ));
    let listed = authority.list().expect("list");
    assert!(listed
        .iter()
        .filter(|t| t.label != "admin (stateless init)")
        .all(|t| t.revoked));
    drop(authority);
    let reopened = TokenAuthority::open(&dir.0, TENANT).expect("reopen");
    assert!(matches!(
        reopened.check("GetInfo", &child),
        Err(TokenError::Revoked)
    ));
}

#[test]
fn a_budget_must_count_its_own_block() {
    let (_dir, authority, admin) = authority("own-block", TENANT);
    // Hand-made: block 1 claims to limit what block 2 spends, so every fresh block 2 would
    // start with an empty ledger. Refused before any payment.
    let block = biscuit_auth::builder::BlockBuilder::new()
        .check(r#"check if metered(false) or spend_msat($c), spent(2, "day", $s), $s + $c <= 1000"#)
        .expect("check");
    let parent = biscuit_auth::UnverifiedBiscuit::from_base64(&admin)
        .expect("token")
        .append(block)
        .expect("append")
        .to_base64()
        .expect("base64");
    let child = attenuate(&parent, &Caveats::default()).expect("child");
    let grant = authority
        .check("PayInvoice", &child)
        .expect("calls are allowed");
    assert!(matches!(
        grant.reserve_spend(1, None),
        Err(TokenError::Invalid(_))
    ));
}

#[test]
fn concurrent_payments_cannot_overspend() {
    let (_dir, authority, admin) = authority("concurrent", TENANT);
    let token = attenuate(
        &admin,
        &Caveats {
            budgets: vec![budget(10_000, Period::Day)],
            ..Caveats::default()
        },
    )
    .expect("budgeted");
    // 16 payments of 3,000 sat race for a 10,000 sat budget: exactly 3 fit.
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let authority = authority.clone();
            let token = token.clone();
            std::thread::spawn(move || {
                authority
                    .check("PayInvoice", &token)
                    .and_then(|g| g.reserve_spend(3_000_000, None))
                    .is_ok()
            })
        })
        .collect();
    let fitted = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .filter(|ok| *ok)
        .count();
    assert_eq!(fitted, 3);
}
