use super::*;

#[test]
fn requests_round_trip_as_json() {
    let req = RequestEnvelope {
        id: 7,
        request: SignerRequest::Channel {
            keys_id: Hex(vec![1; 32]),
            op: ChannelOp::ValidateRevocation {
                idx: 281474976710654,
                secret: Hex(vec![2; 32]),
            },
        },
    };
    let json = serde_json::to_string(&req).unwrap();
    let back: RequestEnvelope = serde_json::from_str(&json).unwrap();
    assert_eq!(back.id, 7);
    match back.request {
        SignerRequest::Channel {
            keys_id,
            op: ChannelOp::ValidateRevocation { idx, secret },
        } => {
            assert_eq!(keys_id.0, vec![1; 32]);
            assert_eq!(idx, 281474976710654);
            assert_eq!(secret.0, vec![2; 32]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn full_width_user_channel_ids_round_trip() {
    let req = RequestEnvelope {
        id: 1,
        request: SignerRequest::NewChannel {
            inbound: true,
            user_channel_id: u128::MAX - 5,
        },
    };
    let json = serde_json::to_string(&req).unwrap();
    let back: RequestEnvelope = serde_json::from_str(&json).unwrap();
    match back.request {
        SignerRequest::NewChannel {
            inbound,
            user_channel_id,
        } => {
            assert!(inbound);
            assert_eq!(user_channel_id, u128::MAX - 5);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn bad_hex_is_an_error_not_a_panic() {
    let bad = r#"{"id":1,"request":{"method":"sign_message","message":"zz"}}"#;
    assert!(serde_json::from_str::<RequestEnvelope>(bad).is_err());
}

#[test]
fn refusals_without_the_temporary_flag_are_permanent() {
    let json = r#"{"status":"refused","rule":"velocity-limit","message":"over"}"#;
    match serde_json::from_str::<SignerResponse>(json).unwrap() {
        SignerResponse::Refused { temporary, .. } => assert!(!temporary),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn fee_allowance_is_base_plus_proportional_capped() {
    let allowance = FeeAllowance {
        base_msat: 5_000,
        proportional_millionths: 10_000,
        max_msat: 50_000,
    };
    assert_eq!(allowance.for_amount(1_000), 5_010);
    assert_eq!(allowance.for_amount(1_000_000), 15_000);
    assert_eq!(allowance.for_amount(100_000_000), 50_000);
    assert_eq!(allowance.for_amount(u64::MAX), 50_000);
}

/// Every message and field tag the types produce is described in `SCHEMA.md`, so the written
/// schema cannot fall behind the code unnoticed.
#[test]
fn the_written_schema_names_every_message() {
    let schema = include_str!("../SCHEMA.md");
    let tags = [
        // requests
        "hello",
        "ecdh",
        "sign_invoice",
        "sign_gossip",
        "sign_message",
        "new_channel",
        "channel_pubkeys",
        "channel",
        "spend_outputs",
        "sign_wallet_psbt",
        "approve_invoice",
        "approve_keysend",
        // channel operations
        "per_commitment_point",
        "release_secret",
        "validate_holder",
        "validate_revocation",
        "sign_counterparty",
        "sign_holder",
        "sign_justice_output",
        "sign_justice_htlc",
        "sign_holder_htlc",
        "sign_counterparty_htlc",
        "sign_closing",
        "sign_announcement",
        // responses and replies
        "ok",
        "refused",
        "failed",
        "revoked",
        "public_key",
        "secret32",
        "signature",
        "commitment_signatures",
        "recoverable_signature",
        "message_signature",
        "channel_keys",
        "transaction",
        "psbt",
        "done",
    ];
    for tag in tags {
        assert!(
            schema.contains(&format!("`{tag}`")),
            "SCHEMA.md does not describe `{tag}`"
        );
    }
    // Each tag above is one the types really produce.
    let sample = serde_json::to_string(&SignerRequest::SignWalletPsbt {
        psbt: Hex(vec![]),
        authorization: None,
    })
    .unwrap();
    assert!(sample.contains("\"method\":\"sign_wallet_psbt\""));
    let sample = serde_json::to_string(&SignerResponse::Ok {
        reply: SignerReply::Secret32 { bytes: Hex(vec![]) },
    })
    .unwrap();
    assert!(sample.contains("\"type\":\"secret32\"") && sample.contains("\"status\":\"ok\""));
}
