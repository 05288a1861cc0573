//! The macaroon format against published vectors: libmacaroons' README signatures, the
//! macaroon test vectors' V2 serialisations, go-macaroon's binary round trip, and malformed
//! input.

use base64::Engine;
use micronode_wall::macaroon::{DecodeError, Macaroon};

const README_KEY: &[u8] = b"this is our super secret key; only we should know it";
const README_ID: &[u8] = b"we used our secret key";

/// libmacaroons' README (also in pymacaroons, jmacaroons and macaroons.js tests).
#[test]
fn libmacaroons_readme_signatures() {
    let mut m = Macaroon::new(
        README_KEY,
        README_ID.to_vec(),
        Some(b"http://mybank/".to_vec()),
    );
    assert_eq!(
        hex::encode(m.signature),
        "e3d9e02908526c4c0039ae15114115d97fdd68bf2ba379b342aaf0f617d0552f"
    );
    m.add_first_party_caveat("account = 3735928559");
    assert_eq!(
        hex::encode(m.signature),
        "1efe4763f290dbce0c1d08477367e11f4eee456a64933cf662d79772dbb82128"
    );
    m.add_first_party_caveat("time < 2020-01-01T00:00");
    assert_eq!(
        hex::encode(m.signature),
        "b5f06c8c8ef92f6c82c6ff282cd1f8bd1849301d09a2db634ba182536a611c49"
    );
    m.add_first_party_caveat("email = alice@example.org");
    assert_eq!(
        hex::encode(m.signature),
        "ddf553e46083e55b8d71ab822be3d8fcf21d6bf19c40d617bb9fb438934474b6"
    );
    assert!(m.verify_signature(README_KEY));
    assert!(!m.verify_signature(b"this is not the key"));

    // pymacaroons' notes: one caveat `test = caveat`.
    let mut m = Macaroon::new(README_KEY, README_ID.to_vec(), None);
    m.add_first_party_caveat("test = caveat");
    assert_eq!(
        hex::encode(m.signature),
        "197bac7a044af33332865b9266e26d493bdd668a660e44d88ce1a998c23dbd67"
    );
}

/// The macaroon test vectors' V2 serialisations (libmacaroons' `root_v2_1`,
/// `caveat_v2_1`, `caveat_v2_4`, URL-safe base64 without padding; js-macaroon's
/// `serializeBinary` gives the first in standard base64 with padding).
#[test]
fn v2_vectors_decode_reencode_and_verify() {
    let key = b"this is the key";
    let root =
        "AgETaHR0cDovL2V4YW1wbGUub3JnLwIFa2V5aWQAAAYgfN7nklEcW8b1KEhYBd_psk54XijiqZMB-dcRxgnjjvc";
    let vectors = [
        (root, vec![]),
        (
            "AgETaHR0cDovL2V4YW1wbGUub3JnLwIFa2V5aWQAAhRhY2NvdW50ID0gMzczNTkyODU1OQAABiD1SAf23G7fiL8PcwazgiVio2JTPb9zObphdl2kvSWdhw",
            vec!["account = 3735928559"],
        ),
        (
            "AgETaHR0cDovL2V4YW1wbGUub3JnLwIFa2V5aWQAAhRhY2NvdW50ID0gMzczNTkyODU1OQACDHVzZXIgPSBhbGljZQAABiBL6WfNHqDGsmuvakqU7psFsViG2guoXoxCqTyNDhJe_A",
            vec!["account = 3735928559", "user = alice"],
        ),
    ];
    for (encoded, caveats) in vectors {
        let m = Macaroon::from_base64(encoded).expect("decodes");
        assert_eq!(m.location.as_deref(), Some(&b"http://example.org/"[..]));
        assert_eq!(m.identifier, b"keyid");
        assert_eq!(m.first_party_caveats().collect::<Vec<_>>(), caveats);
        assert!(m.verify_signature(key), "{encoded} verifies");
        assert!(!m.verify_signature(b"this is not the key"));
        // Minting the same macaroon gives the same bytes.
        let mut minted = Macaroon::new(
            key,
            b"keyid".to_vec(),
            Some(b"http://example.org/".to_vec()),
        );
        for caveat in &caveats {
            minted.add_first_party_caveat(caveat);
        }
        assert_eq!(minted, m);
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.to_bytes());
        assert_eq!(url_safe, encoded);
    }
    assert_eq!(
        Macaroon::from_base64(root).expect("decodes").to_base64(),
        "AgETaHR0cDovL2V4YW1wbGUub3JnLwIFa2V5aWQAAAYgfN7nklEcW8b1KEhYBd/psk54XijiqZMB+dcRxgnjjvc="
    );
}

/// go-macaroon's `TestMarshalBinaryRoundTrip`: libmacaroons' third-party example in V2.
#[test]
fn go_macaroon_binary_round_trip() {
    let mut data = vec![2u8];
    data.extend([1, 14]);
    data.extend(b"http://mybank/");
    data.extend([2, 28]);
    data.extend(b"we used our other secret key");
    data.push(0);
    data.extend([2, 20]);
    data.extend(b"account = 3735928559");
    data.push(0);
    data.extend([1, 19]);
    data.extend(b"http://auth.mybank/");
    data.extend([2, 39]);
    data.extend(b"this was how we remind auth of key/pred");
    data.extend([4, 72]);
    data.extend([0u8; 24]);
    data.extend(hex::decode("d36ec502e05886d1f0279f055fa52554d16d16c1b14074bbb83ff0fdd79dc2fe098f0ed4a2b091130e6b5db46a20a86b").unwrap());
    data.extend([0, 0, 6, 32]);
    data.extend(
        hex::decode("d27db2fd1f22760e4c3dae8137e2d8fc1df6c0741c18aed4b97256bf78d1f55c").unwrap(),
    );
    let m = Macaroon::from_bytes(&data).expect("decodes");
    assert_eq!(m.caveats.len(), 2);
    assert!(m.caveats[1].vid.is_some());
    assert_eq!(m.to_bytes(), data);
    assert!(!m.verify_signature(b"this is our other secret key; only we should know it"));
}

#[test]
fn malformed_bytes_are_refused_without_panicking() {
    let good = Macaroon::from_base64(
        "AgETaHR0cDovL2V4YW1wbGUub3JnLwIFa2V5aWQAAAYgfN7nklEcW8b1KEhYBd_psk54XijiqZMB-dcRxgnjjvc",
    )
    .unwrap()
    .to_bytes();
    let mut v1 = good.clone();
    v1[0] = 1;
    assert_eq!(Macaroon::from_bytes(&v1), Err(DecodeError::Version));
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(Macaroon::from_bytes(&trailing), Err(DecodeError::Trailing));
    // Identifier before location.
    let mut swapped = vec![2, 2, 1, b'a', 1, 1, b'b', 0, 0, 6, 32];
    swapped.extend([0u8; 32]);
    assert_eq!(Macaroon::from_bytes(&swapped), Err(DecodeError::Field));
    // A huge length.
    let huge = [
        2u8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ];
    assert!(Macaroon::from_bytes(&huge).is_err());
    assert_eq!(
        Macaroon::from_base64("not base64!"),
        Err(DecodeError::Base64)
    );
    assert!(Macaroon::from_bytes(&[]).is_err());
    // Every truncation and every single-byte change fails cleanly or decodes.
    for end in 0..good.len() {
        assert!(Macaroon::from_bytes(&good[..end]).is_err(), "prefix {end}");
    }
    for at in 0..good.len() {
        for b in [0u8, 1, 2, 4, 6, 0x7f, 0x80, 0xff] {
            let mut bytes = good.clone();
            bytes[at] = b;
            let _ = Macaroon::from_bytes(&bytes);
        }
    }
}
