//! Digests of signed app requests, shared with the browser wallet's TypeScript
//! (`web/test/appRequest.test.ts`), which signs requests the signer must verify.
//! `cargo test -p micronode-signer-protocol --test app_request_vectors -- --ignored regenerate`
//! rewrites the file after a deliberate change.

use bitcoin::secp256k1::{Keypair, Secp256k1};
use micronode_signer_protocol::app_request::delegation_target;
use micronode_signer_protocol::{AppMethod, AppRequest, SignedAppRequest};
use serde_json::{json, Value};

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/app_request_vectors.json"
);

fn compute() -> Value {
    let secp = Secp256k1::new();
    let cases = [
        (AppMethod::PayInvoice, "ab".repeat(32), 1_000_000u64),
        (AppMethod::Keysend, format!("02{}", "cd".repeat(32)), 1u64),
        (
            AppMethod::SendOnchain,
            "0014".to_string() + &"ef".repeat(20),
            0u64,
        ),
        (
            AppMethod::DelegateNwc,
            delegation_target(&"cd".repeat(32), 86_400, Some(1_800_000_000)),
            5_000_000u64,
        ),
    ];
    let vectors: Vec<Value> = cases
        .into_iter()
        .enumerate()
        .map(|(i, (method, target, amount_msat))| {
            let secret = [(i as u8) + 1; 32];
            let key = Keypair::from_seckey_slice(&secp, &secret).unwrap();
            let request = AppRequest {
                method,
                target,
                amount_msat,
                nonce: format!("{:032x}", i + 7),
                time: 1_796_554_040 + i as u64,
            };
            json!({"secret": hex::encode(secret),
                   "public": key.x_only_public_key().0.to_string(),
                   "request": request,
                   "digest": hex::encode(request.digest())})
        })
        .collect();
    json!(vectors)
}

#[test]
fn vectors_file_matches() {
    let text = std::fs::read_to_string(FILE).expect("tests/app_request_vectors.json exists");
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stored, compute());
    // A signature made elsewhere over a stored request verifies here.
    for case in stored.as_array().unwrap() {
        let request: AppRequest = serde_json::from_value(case["request"].clone()).unwrap();
        let secret = hex::decode(case["secret"].as_str().unwrap()).unwrap();
        let key = Keypair::from_seckey_slice(&Secp256k1::new(), &secret).unwrap();
        let signed: SignedAppRequest = request.sign(&key);
        signed.verify(case["public"].as_str().unwrap()).unwrap();
    }
}

#[test]
#[ignore = "rewrites tests/app_request_vectors.json"]
fn regenerate() {
    let text = serde_json::to_string_pretty(&compute()).unwrap();
    std::fs::write(FILE, text + "\n").unwrap();
}
