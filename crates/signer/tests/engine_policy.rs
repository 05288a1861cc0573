//! The validating signer answers a node's requests and refuses, with a typed rule, what its
//! owner's policy forbids. These run the real VLS node with durable state in a temp dir.

use micronode_signer::{PolicyConfig, SignerEngine};
use micronode_signer_protocol::{
    Hex, SignerReply, SignerRequest, SignerResponse, PROTOCOL_VERSION,
};
use zeroize::Zeroizing;

/// An engine with `policy`, letting the node start payments on its own: these tests are about
/// the velocity and signing rules (tests/app_gate.rs covers app requests, with the default).
fn engine(dir: &std::path::Path, mut policy: PolicyConfig) -> SignerEngine {
    policy.require_app_requests = false;
    SignerEngine::open(
        dir,
        Zeroizing::new([7u8; 32]),
        bitcoin::Network::Regtest,
        policy,
    )
    .expect("open signer")
}

fn keysend(amount_msat: u64, hash_byte: u8) -> SignerRequest {
    SignerRequest::ApproveKeysend {
        payee: Hex(bitcoin::secp256k1::PublicKey::from_secret_key(
            &bitcoin::secp256k1::Secp256k1::new(),
            &bitcoin::secp256k1::SecretKey::from_slice(&[3u8; 32]).unwrap(),
        )
        .serialize()
        .to_vec()),
        payment_hash: Hex(vec![hash_byte; 32]),
        amount_msat,
        authorization: None,
    }
}

#[test]
fn hello_gives_public_material_and_the_same_node_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = engine(dir.path(), PolicyConfig::default());
    let SignerResponse::Ok {
        reply: SignerReply::Hello(hello),
    } = first.handle(&SignerRequest::Hello {
        version: PROTOCOL_VERSION,
    })
    else {
        panic!("hello failed");
    };
    assert_eq!(hello.node_id.0, first.node_id().serialize().to_vec());
    assert!(hello.wallet_xpub.starts_with("tpub"));
    let id = first.node_id();
    drop(first);
    let again = engine(dir.path(), PolicyConfig::default());
    assert_eq!(again.node_id(), id, "restored from durable state");
}

/// The hello's state key (what seals the node's state in a fleet's database) is the seed's
/// own: the same after a restart, another seed's differs, and it is none of the other key
/// material the hello carries nor the seed itself.
#[test]
fn the_state_key_is_the_seeds_own_and_no_other_secret() {
    let hello_of = |signer: &SignerEngine| match signer.handle(&SignerRequest::Hello {
        version: PROTOCOL_VERSION,
    }) {
        SignerResponse::Ok {
            reply: SignerReply::Hello(hello),
        } => hello,
        other => panic!("hello failed: {other:?}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let hello = hello_of(&engine(dir.path(), PolicyConfig::default()));
    assert_eq!(hello.state_key.0.len(), 32);
    assert_eq!(
        hello.state_key.0,
        micronode_signer::engine::state_key_of(&[7u8; 32]).to_vec()
    );
    for other in [
        &hello.inbound_payment_key,
        &hello.peer_storage_key,
        &hello.receive_auth_key,
    ] {
        assert_ne!(hello.state_key.0, other.0);
    }
    assert_ne!(hello.state_key.0, vec![7u8; 32], "not the seed");
    let again = hello_of(&engine(dir.path(), PolicyConfig::default()));
    assert_eq!(
        again.state_key.0, hello.state_key.0,
        "stable across restarts"
    );
    let other_dir = tempfile::tempdir().unwrap();
    let other = SignerEngine::open(
        other_dir.path(),
        Zeroizing::new([8u8; 32]),
        bitcoin::Network::Regtest,
        PolicyConfig::default(),
    )
    .expect("open signer");
    assert_ne!(hello_of(&other).state_key.0, hello.state_key.0);
}

#[test]
fn payments_over_the_velocity_limit_are_refused_with_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let policy = PolicyConfig {
        max_sat_per_hour: 1_000,
        max_sat_per_day: 1_500,
        ..PolicyConfig::default()
    };
    let signer = engine(dir.path(), policy);
    assert!(matches!(
        signer.handle(&keysend(600_000, 1)),
        SignerResponse::Ok { .. }
    ));
    match signer.handle(&keysend(600_000, 2)) {
        SignerResponse::Refused { rule, message, .. } => {
            assert_eq!(rule, "velocity-limit");
            assert!(message.contains("hourly"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The limit survives a restart of the signer.
    drop(signer);
    let signer = engine(
        dir.path(),
        PolicyConfig {
            max_sat_per_hour: 1_000,
            max_sat_per_day: 1_500,
            ..PolicyConfig::default()
        },
    );
    assert!(matches!(
        signer.handle(&keysend(600_000, 3)),
        SignerResponse::Refused { .. }
    ));
}

#[test]
fn revocation_stops_all_signing() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    micronode_signer::engine::revoke_dir(dir.path()).unwrap();
    assert!(matches!(
        signer.handle(&SignerRequest::SignMessage {
            message: Hex(b"hi".to_vec()),
        }),
        SignerResponse::Revoked
    ));
}

#[test]
fn garbage_and_unknown_channels_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let bad = [
        SignerRequest::Ecdh {
            other_key: Hex(vec![1, 2, 3]),
            tweak: None,
        },
        SignerRequest::SignWalletPsbt {
            psbt: Hex(vec![0xff; 10]),
            authorization: None,
        },
        SignerRequest::ChannelPubkeys {
            keys_id: Hex(vec![9; 32]),
        },
    ];
    for request in bad {
        assert!(
            matches!(signer.handle(&request), SignerResponse::Failed { .. }),
            "{request:?}"
        );
    }
    // Bytes that are not a gossip message are refused outright: only a thief asks for that.
    let response = signer.handle(&SignerRequest::SignGossip {
        message: Hex(vec![1]),
    });
    assert!(
        matches!(&response, SignerResponse::Refused { rule, .. } if rule == "policy-gossip-content"),
        "{response:?}"
    );
}

#[test]
fn an_unreadable_velocity_log_refuses_every_payment() {
    let dir = tempfile::tempdir().unwrap();
    drop(engine(dir.path(), PolicyConfig::default()));
    std::fs::write(dir.path().join("velocity.json"), b"\x00not json").unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    match signer.handle(&keysend(1_000, 9)) {
        SignerResponse::Refused { rule, message, .. } => {
            assert_eq!(rule, "velocity-log-unreadable");
            assert!(message.contains("velocity.json"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_approval_grants_its_cost_to_the_balance_allowance_once() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let before = signer.balance_allowance_sat();
    assert!(matches!(
        signer.handle(&keysend(1_000, 4)),
        SignerResponse::Ok { .. }
    ));
    // 1 sat, plus the fee allowance (5 sat + 1 %), rounded up, plus 1 sat of rounding.
    let granted = signer.balance_allowance_sat() - before;
    assert_eq!(granted, 1 + 6 + 1);
    // The same payment approved again grants nothing more.
    assert!(matches!(
        signer.handle(&keysend(1_000, 4)),
        SignerResponse::Ok { .. }
    ));
    assert_eq!(signer.balance_allowance_sat() - before, granted);
    // The allowance survives a restart (it is VLS's persisted state).
    drop(signer);
    let signer = engine(dir.path(), PolicyConfig::default());
    assert_eq!(signer.balance_allowance_sat() - before, granted);
}

#[test]
fn new_channel_keys_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let signer = engine(dir.path(), PolicyConfig::default());
    let SignerResponse::Ok {
        reply: SignerReply::ChannelKeys { keys_id, pubkeys },
    } = signer.handle(&SignerRequest::NewChannel {
        inbound: false,
        user_channel_id: 1,
    })
    else {
        panic!("new channel failed");
    };
    let SignerResponse::Ok {
        reply: SignerReply::ChannelKeys { pubkeys: again, .. },
    } = signer.handle(&SignerRequest::ChannelPubkeys {
        keys_id: keys_id.clone(),
    })
    else {
        panic!("channel pubkeys failed");
    };
    assert_eq!(pubkeys, again);
    // And after a restart of the signer, from its durable state.
    drop(signer);
    let signer = engine(dir.path(), PolicyConfig::default());
    let SignerResponse::Ok {
        reply: SignerReply::ChannelKeys {
            pubkeys: restored, ..
        },
    } = signer.handle(&SignerRequest::ChannelPubkeys { keys_id })
    else {
        panic!("channel pubkeys failed after restart");
    };
    assert_eq!(pubkeys, restored);
}

#[test]
fn state_of_another_seed_is_refused_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    drop(engine(dir.path(), PolicyConfig::default()));
    let other = SignerEngine::open(
        dir.path(),
        Zeroizing::new([8u8; 32]),
        bitcoin::Network::Regtest,
        PolicyConfig::default(),
    );
    assert!(matches!(
        other,
        Err(micronode_signer::EngineError::StateMismatch(_))
    ));
}
