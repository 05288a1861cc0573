//! Known-answer vectors for the protocol, shared with the browser's TypeScript
//! (`web/test/vectors.test.ts`): the Rust side computes them from fixed keys, and
//! `tests/vectors.json` must match. `cargo test -p micronode-lnc --test vectors -- --ignored
//! regenerate` rewrites the file after a deliberate change.
//!
//! What is checked independently of our own code: LNC's point N is re-derived by its
//! try-and-increment rule, the phrase packing is checked on the all-zero and all-one words, and
//! scrypt on the RFC 7914 vector.

use micronode_lnc::keys::{mask, N_POINT};
use micronode_lnc::seal::seal_with_nonce;
use micronode_lnc::{Handshake, Password, Phrase, PublicKey, SecretKey, StreamIds};
use secp256k1::Secp256k1;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors.json");

fn key(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).unwrap()
}

fn public(secret: &SecretKey) -> PublicKey {
    secret.public_key(&Secp256k1::new())
}

fn entropies() -> Vec<[u8; 14]> {
    let mut patterned = [0u8; 14];
    for (i, b) in patterned.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    patterned[13] &= 0xfc;
    vec![
        [0u8; 14],
        {
            let mut ones = [0xffu8; 14];
            ones[13] = 0xfc;
            ones
        },
        patterned,
    ]
}

/// Runs a handshake and then messages both ways, recording every byte.
fn conversation(mut initiator: Handshake, mut responder: Handshake, acts: usize) -> Value {
    let mut recorded = Vec::new();
    for act in 0..acts {
        let (from, to) = if act % 2 == 0 {
            (&mut initiator, &mut responder)
        } else {
            (&mut responder, &mut initiator)
        };
        let bytes = from.write_act().unwrap();
        to.read_act(&bytes).unwrap();
        recorded.push(hex::encode(bytes));
    }
    let mut i = initiator.finish().unwrap();
    let mut r = responder.finish().unwrap();
    // Each frame takes two nonces, so 510 frames from one side cross the rotation at 1,000.
    let mut messages = Vec::new();
    for n in 0..510u32 {
        let plaintext = format!("message {n} from the browser").into_bytes();
        let frame = i.transport.encrypt(&plaintext).unwrap();
        assert_eq!(r.transport.decrypt(&frame).unwrap(), plaintext);
        messages.push(
            json!({"from": "initiator", "plaintext": hex::encode(&plaintext),
                             "frame": hex::encode(&frame)}),
        );
        if n % 100 == 0 {
            let reply = format!("reply {n} from the node").into_bytes();
            let frame = r.transport.encrypt(&reply).unwrap();
            assert_eq!(i.transport.decrypt(&frame).unwrap(), reply);
            messages.push(
                json!({"from": "responder", "plaintext": hex::encode(&reply),
                                 "frame": hex::encode(&frame)}),
            );
        }
    }
    json!({"acts": recorded, "auth_data": hex::encode(&i.auth_data), "messages": messages})
}

fn compute() -> Value {
    let secp = Secp256k1::new();
    let phrases: Vec<Phrase> = entropies()
        .into_iter()
        .map(|e| Phrase::from_entropy(e).unwrap())
        .collect();
    let phrase_section: Vec<Value> = phrases
        .iter()
        .map(|p| json!({"entropy": hex::encode(p.entropy()), "words": p.words()}))
        .collect();
    let stretch: Vec<Value> = phrases
        .iter()
        .map(|p| json!({"entropy": hex::encode(p.entropy()), "pw": hex::encode(p.stretch().as_bytes())}))
        .collect();
    let sid: Vec<Value> = phrases
        .iter()
        .map(|p| {
            let ids = StreamIds::from_phrase(p);
            json!({"entropy": hex::encode(p.entropy()),
                   "server_to_client": hex::encode(ids.server_to_client),
                   "client_to_server": hex::encode(ids.client_to_server)})
        })
        .collect();
    let sid_paired: Vec<Value> = [(1u8, 2u8), (3, 4)]
        .iter()
        .map(|(l, r)| {
            let ids = StreamIds::from_static_keys(&key(*l), &public(&key(*r)));
            json!({"local_priv": hex::encode(key(*l).secret_bytes()),
                   "remote_pub": hex::encode(public(&key(*r)).serialize()),
                   "server_to_client": hex::encode(ids.server_to_client),
                   "client_to_server": hex::encode(ids.client_to_server)})
        })
        .collect();
    let mask_section: Vec<Value> = [[0x11u8; 32], [0xffu8; 32]]
        .iter()
        .map(|pw| {
            let e = public(&key(0x21));
            let me = mask(&e, &Password::from_bytes(*pw)).unwrap();
            json!({"pw": hex::encode(pw), "e_pub": hex::encode(e.serialize()),
                   "me": hex::encode(me.serialize())})
        })
        .collect();

    let phrase = &phrases[2];
    let auth = br#"{"token":"example","node":"micronode"}"#.to_vec();
    let xx = conversation(
        Handshake::xx_initiator(key(0x31), phrase.stretch(), key(0x32)),
        Handshake::xx_responder(key(0x41), phrase.stretch(), key(0x42), auth.clone()),
        3,
    );
    let kk = conversation(
        Handshake::kk_initiator(key(0x31), public(&key(0x41)), key(0x33)),
        Handshake::kk_responder(key(0x41), public(&key(0x31)), key(0x43), auth.clone()),
        2,
    );
    let keys = |i_e: u8, r_e: u8| {
        json!({"initiator_static": hex::encode(key(0x31).secret_bytes()),
               "initiator_ephemeral": hex::encode(key(i_e).secret_bytes()),
               "responder_static": hex::encode(key(0x41).secret_bytes()),
               "responder_ephemeral": hex::encode(key(r_e).secret_bytes())})
    };
    let section = |mut keys: Value, run: Value, extra: Option<String>| {
        let obj = keys.as_object_mut().unwrap();
        if let Some(entropy) = extra {
            obj.insert("entropy".into(), json!(entropy));
        }
        obj.insert("auth_data".into(), run["auth_data"].clone());
        for (n, act) in run["acts"].as_array().unwrap().iter().enumerate() {
            obj.insert(format!("act{}", n + 1), act.clone());
        }
        obj.insert("messages".into(), run["messages"].clone());
        keys
    };
    let _ = &secp;
    let seal: Vec<Value> = phrases
        .iter()
        .map(|p| {
            let secret = [0x5au8; 32];
            let sealed = seal_with_nonce(p, &secret, [0x07; 12]);
            json!({"entropy": hex::encode(p.entropy()), "secret": hex::encode(secret),
                   "sealed": hex::encode(sealed)})
        })
        .collect();
    json!({
        "seal": seal,
        "phrase": phrase_section,
        "stretch": stretch,
        "sid": sid,
        "sid_paired": sid_paired,
        "mask": mask_section,
        "xx": section(keys(0x32, 0x42), xx, Some(hex::encode(phrase.entropy()))),
        "kk": section(keys(0x33, 0x43), kk, None),
    })
}

#[test]
fn vectors_file_matches() {
    let text = std::fs::read_to_string(FILE).expect("tests/vectors.json exists");
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        stored,
        compute(),
        "regenerate only after a deliberate protocol change"
    );
}

#[test]
#[ignore = "rewrites tests/vectors.json"]
fn regenerate() {
    let text = serde_json::to_string_pretty(&compute()).unwrap();
    std::fs::write(FILE, text + "\n").unwrap();
}

#[test]
fn lnc_point_n_follows_its_rule() {
    // Try-and-increment: SHA-256(i as u64 BE || "Lightning Node Connect"), as an x coordinate
    // with an even y, until it is on the curve (lightning-node-connect mailbox/numsgen).
    let point = (0u64..)
        .find_map(|i| {
            let digest = Sha256::new()
                .chain_update(i.to_be_bytes())
                .chain_update(b"Lightning Node Connect")
                .finalize();
            let mut candidate = [0x02u8; 33];
            candidate[1..].copy_from_slice(&digest);
            PublicKey::from_slice(&candidate).ok()
        })
        .unwrap();
    assert_eq!(point.serialize(), N_POINT);
}

#[test]
fn phrase_packing_on_known_words() {
    let zero = Phrase::from_entropy([0u8; 14]).unwrap();
    assert_eq!(zero.to_words_string(), ["abandon"; 10].join(" "));
    let mut ones = [0xffu8; 14];
    ones[13] = 0xfc;
    let ones = Phrase::from_entropy(ones).unwrap();
    assert_eq!(ones.to_words_string(), ["zoo"; 10].join(" "));
}

#[test]
fn scrypt_is_rfc7914() {
    // RFC 7914 §12, the second vector: P = "password", S = "NaCl", N = 1024, r = 8, p = 16.
    let params = scrypt::Params::new(10, 8, 16, 64).unwrap();
    let mut out = [0u8; 64];
    scrypt::scrypt(b"password", b"NaCl", &params, &mut out).unwrap();
    assert_eq!(
        hex::encode(out),
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
    );
}
