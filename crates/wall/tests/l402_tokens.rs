//! The L402 pieces without a network: the identifier, the headers, minting and verifying
//! tokens, the configuration and the secret file.

use micronode_wall::l402::{
    self, challenge_headers, parse_authorization, Credential, Grant, HeaderError, Identifier,
    IdentifierError, Refusal,
};
use micronode_wall::macaroon::{Caveat, DecodeError, Macaroon};
use micronode_wall::{WallConfig, WallSecret};
use sha2::{Digest, Sha256};

const SECRET: [u8; 32] = [7u8; 32];
const PREIMAGE: [u8; 32] = [9u8; 32];
const NOW: u64 = 1_700_000_000;

fn payment_hash() -> [u8; 32] {
    Sha256::digest(PREIMAGE).into()
}

fn grant(route: &str, valid_until: Option<u64>) -> Grant {
    Grant {
        service: "weather".into(),
        route: route.into(),
        valid_until,
    }
}

fn credential(macaroon: Macaroon, preimage: [u8; 32]) -> Credential {
    Credential { macaroon, preimage }
}

fn check(c: &Credential, route: &str, path: &str, now: u64) -> Result<Identifier, Refusal> {
    l402::verify(&SECRET, c, "weather", route, path, now)
}

#[test]
fn identifier_round_trips_in_aperture_layout() {
    let id = Identifier {
        payment_hash: [0xab; 32],
        token_id: [0xcd; 32],
    };
    let bytes = id.encode();
    assert_eq!(bytes.len(), 66);
    assert_eq!(&bytes[..2], &[0, 0], "version 0, big-endian");
    assert_eq!(&bytes[2..34], &[0xab; 32]);
    assert_eq!(&bytes[34..], &[0xcd; 32]);
    assert_eq!(Identifier::decode(&bytes), Ok(id));

    let mut v1 = bytes.clone();
    v1[1] = 1;
    assert_eq!(Identifier::decode(&v1), Err(IdentifierError::Version(1)));
    assert_eq!(
        Identifier::decode(&bytes[..65]),
        Err(IdentifierError::Length(65))
    );
    assert_eq!(Identifier::decode(&[]), Err(IdentifierError::Length(0)));
}

#[test]
fn authorization_headers_parse_l402_and_lsat_in_any_case() {
    let macaroon = l402::mint(&SECRET, payment_hash(), &grant("/a", None));
    let standard = macaroon.to_base64();
    let url_safe = standard
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_string();
    let preimage = hex::encode(PREIMAGE);
    for value in [
        format!("L402 {standard}:{preimage}"),
        format!("LSAT {standard}:{preimage}"),
        format!("l402 {url_safe}:{}", preimage.to_uppercase()),
        format!("lsat   {standard}:{preimage}  "),
    ] {
        let parsed = parse_authorization([value.as_bytes()])
            .unwrap_or_else(|e| panic!("{value}: {e}"))
            .expect("a credential");
        assert_eq!(parsed.macaroon, macaroon);
        assert_eq!(parsed.preimage, PREIMAGE);
    }
    // Other schemes are no credential; an L402 header next to one is found.
    assert_eq!(parse_authorization([&b"Bearer abc"[..]]), Ok(None));
    assert_eq!(parse_authorization(std::iter::empty::<&[u8]>()), Ok(None));
    let l402 = format!("L402 {standard}:{preimage}");
    assert!(parse_authorization([&b"Bearer abc"[..], l402.as_bytes()])
        .unwrap()
        .is_some());

    let cases: Vec<(String, HeaderError)> = vec![
        ("L402".into(), HeaderError::Shape),
        ("L402 ".into(), HeaderError::Shape),
        (format!("L402 :{preimage}"), HeaderError::Shape),
        (format!("L402 {standard}"), HeaderError::Shape),
        (
            format!("L402 {standard}:{}", &preimage[2..]),
            HeaderError::Preimage,
        ),
        (
            format!("L402 {standard}:{}zz", &preimage[2..]),
            HeaderError::Preimage,
        ),
        (
            format!("L402 {standard},{standard}:{preimage}"),
            HeaderError::MultipleMacaroons,
        ),
        (
            format!("L402 !!!!:{preimage}"),
            HeaderError::Macaroon(DecodeError::Base64),
        ),
        (
            format!("L402 AAAA:{preimage}"),
            HeaderError::Macaroon(DecodeError::Version),
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(
            parse_authorization([value.as_bytes()]),
            Err(expected),
            "{value}"
        );
    }
    // Not UTF-8: not ours.
    assert_eq!(parse_authorization([&[0xff, 0xfe][..]]), Ok(None));
}

#[test]
fn challenge_headers_are_lsat_then_l402_with_the_same_macaroon() {
    let macaroon = l402::mint(&SECRET, payment_hash(), &grant("/a", None));
    let [lsat, l402] = challenge_headers(&macaroon, "lnbcrt1invoice");
    let b64 = macaroon.to_base64();
    assert_eq!(
        lsat,
        format!("LSAT macaroon=\"{b64}\", invoice=\"lnbcrt1invoice\"")
    );
    assert_eq!(
        l402,
        format!("L402 macaroon=\"{b64}\", invoice=\"lnbcrt1invoice\"")
    );
    // Standard base64 with padding, and the V2 format with aperture's location.
    let decoded = Macaroon::from_base64(&b64).unwrap();
    assert_eq!(decoded.to_bytes()[0], 2);
    assert_eq!(decoded.location.as_deref(), Some(&b"lsat"[..]));
    assert_eq!(
        decoded.first_party_caveats().collect::<Vec<_>>(),
        ["services=weather:0", "weather_route=/a"]
    );
}

#[test]
fn minted_tokens_verify_and_every_refusal_has_its_reason() {
    let token = l402::mint(&SECRET, payment_hash(), &grant("/a", Some(NOW + 60)));
    assert_eq!(
        token.first_party_caveats().collect::<Vec<_>>(),
        [
            "services=weather:0".to_string(),
            "weather_route=/a".to_string(),
            format!("weather_valid_until={}", NOW + 60)
        ]
    );
    let good = credential(token.clone(), PREIMAGE);
    let id = check(&good, "/a", "/a/x", NOW).expect("valid");
    assert_eq!(id.payment_hash, payment_hash());
    assert!(check(&good, "/a", "/a", NOW + 59).is_ok());

    assert_eq!(
        check(&credential(token.clone(), [8; 32]), "/a", "/a", NOW),
        Err(Refusal::Preimage)
    );
    assert_eq!(check(&good, "/a", "/a", NOW + 60), Err(Refusal::Expired));
    assert_eq!(check(&good, "/b", "/b", NOW), Err(Refusal::Route));
    // A token for /a does not buy a more specific priced route under it.
    assert_eq!(
        check(&good, "/a/premium", "/a/premium", NOW),
        Err(Refusal::Route)
    );
    assert_eq!(
        l402::verify(&SECRET, &good, "other", "/a", "/a", NOW),
        Err(Refusal::Service)
    );
    assert_eq!(
        l402::verify(&[1; 32], &good, "weather", "/a", "/a", NOW),
        Err(Refusal::Signature)
    );

    // A caveat added without re-signing, a removed caveat, a flipped signature bit.
    let mut added = token.clone();
    added.caveats.push(Caveat {
        location: None,
        identifier: b"weather_valid_until=99999999999".to_vec(),
        vid: None,
    });
    assert_eq!(
        check(&credential(added, PREIMAGE), "/a", "/a", NOW),
        Err(Refusal::Signature)
    );
    let mut removed = token.clone();
    removed.caveats.pop();
    assert_eq!(
        check(&credential(removed, PREIMAGE), "/a", "/a", NOW),
        Err(Refusal::Signature)
    );
    let mut flipped = token.clone();
    flipped.signature[0] ^= 1;
    assert_eq!(
        check(&credential(flipped, PREIMAGE), "/a", "/a", NOW),
        Err(Refusal::Signature)
    );

    // Attenuation by the holder (a correctly chained extra caveat) still verifies when it
    // holds, and narrows when it does not; an unknown caveat is refused.
    let mut narrowed = token.clone();
    narrowed.add_first_party_caveat("weather_route=/a/x");
    let narrowed = credential(narrowed, PREIMAGE);
    assert!(check(&narrowed, "/a", "/a/x/y", NOW).is_ok());
    assert_eq!(check(&narrowed, "/a", "/a/z", NOW), Err(Refusal::Route));
    let mut unknown = token.clone();
    unknown.add_first_party_caveat("ip=127.0.0.1");
    assert_eq!(
        check(&credential(unknown, PREIMAGE), "/a", "/a", NOW),
        Err(Refusal::Caveat("ip=127.0.0.1".into()))
    );

    // A macaroon with someone else's identifier layout.
    let foreign = Macaroon::new(b"k", b"keyid".to_vec(), None);
    assert!(matches!(
        check(&credential(foreign, PREIMAGE), "/a", "/a", NOW),
        Err(Refusal::Identifier(_))
    ));

    // Without an expiry, a token works for as long as the secret does.
    let forever = credential(
        l402::mint(&SECRET, payment_hash(), &grant("/a", None)),
        PREIMAGE,
    );
    assert!(check(&forever, "/a", "/a", u64::MAX).is_ok());
}

#[test]
fn config_loads_from_toml_and_is_validated() {
    let config = WallConfig::from_toml(
        r#"
        listen = "127.0.0.1:8402"
        upstream = "http://127.0.0.1:8080/base"
        service = "weather"

        [[route]]
        path_prefix = "/forecast"
        price_sat = 10
        valid_secs = 3600

        [[route]]
        path_prefix = "/forecast/premium"
        price_sat = 100

        [[route]]
        path_prefix = "/free"
        price_sat = 0
        "#,
    )
    .expect("valid");
    assert_eq!(config.routes.len(), 3);
    assert_eq!(config.routes[0].valid_secs, Some(3600));
    assert_eq!(config.invoice_expiry(), 3600);
    let route = |p: &str| config.route_for(p).map(|r| r.path_prefix.as_str());
    assert_eq!(route("/forecast"), Some("/forecast"));
    assert_eq!(route("/forecast/today"), Some("/forecast"));
    assert_eq!(route("/forecast/premium/x"), Some("/forecast/premium"));
    assert_eq!(route("/forecasts"), None);
    assert_eq!(route("/other"), None);

    let base = "listen = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2\"\n";
    for bad in [
        format!("{base}service = \"\"\n"),
        format!("{base}service = \"a b\"\n"),
        format!("{base}service = \"s\"\n[[route]]\npath_prefix = \"x\"\nprice_sat = 1\n"),
        format!("{base}service = \"s\"\n[[route]]\npath_prefix = \"/x\"\nprice_sat = 1\n[[route]]\npath_prefix = \"/x\"\nprice_sat = 2\n"),
        format!("{base}service = \"s\"\n[[route]]\npath_prefix = \"/x\"\nprice_sat = 1\nvalid_secs = 0\n"),
        format!("{base}service = \"s\"\nunknown = 1\n"),
        "listen = \"127.0.0.1:1\"\nupstream = \"https://x\"\nservice = \"s\"\n".to_string(),
    ] {
        assert!(WallConfig::from_toml(&bad).is_err(), "{bad}");
    }
}

#[test]
fn the_secret_file_is_created_owner_only_and_reloaded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("wall");
    let first = WallSecret::load_or_create(&data_dir).expect("create");
    let again = WallSecret::load_or_create(&data_dir).expect("load");
    assert_eq!(first.expose(), again.expose());
    assert_eq!(format!("{first:?}"), "WallSecret(..)");
    let path = micronode_wall::config::secret_path(&data_dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    std::fs::write(&path, "not hex").unwrap();
    assert!(WallSecret::load_or_create(&data_dir).is_err());
}
