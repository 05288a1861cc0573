use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use tempfile::TempDir;

use super::*;

/// Cheap Argon2id parameters so tests run fast; never use outside tests.
const FAST: KdfParams = KdfParams {
    m_cost_kib: 1024,
    t_cost: 1,
    p_cost: 1,
};

/// The cheapest parameters Argon2 accepts, for tests that unlock hundreds of times.
const TINY: KdfParams = KdfParams {
    m_cost_kib: 8,
    t_cost: 1,
    p_cost: 1,
};

const PASSPHRASE: &str = "correct horse battery";

const ABANDON_12: &str = "abandon abandon abandon abandon abandon abandon abandon abandon \
                          abandon abandon abandon about";
const ABANDON_24: &str = "abandon abandon abandon abandon abandon abandon abandon abandon \
                          abandon abandon abandon abandon abandon abandon abandon abandon \
                          abandon abandon abandon abandon abandon abandon abandon art";
// BIP39 seeds of the two mnemonics above with an empty BIP39 passphrase, computed outside this
// crate: Python's hashlib.pbkdf2_hmac("sha512", words, b"mnemonic", 2048).
const ABANDON_12_SEED: &str = "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1\
                               9a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4";
const ABANDON_24_SEED: &str = "408b285c123836004f4b8842c89324c1f01382450c0d439af345ba7fc49acf70\
                               5489c6fc77dbd4e3dc1dd8cc6bc9f043db8ada1e243c4a0eafb290d399480840";

fn passphrase() -> Passphrase {
    Passphrase::new(PASSPHRASE)
}

/// A vault path whose parent directory does not exist yet.
fn vault_path(dir: &TempDir) -> PathBuf {
    dir.path().join("signer").join("seed-vault.json")
}

fn create_fast(path: &Path) -> (SeedVault, Mnemonic) {
    SeedVault::create(path, &passphrase(), FAST).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn write_json(path: &Path, value: &Value) {
    fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

/// Opens and unlocks the vault at `path` with the test passphrase.
fn open_and_unlock(path: &Path) -> Result<UnlockedSeed, VaultError> {
    SeedVault::open(path)?.unlock(&passphrase())
}

/// Flips the last hex digit of a hex string.
fn flip_hex(hex: &str) -> String {
    let mut chars: Vec<char> = hex.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

#[test]
fn create_then_unlock_round_trips_the_words() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    let (vault, mnemonic) = create_fast(&path);
    assert_eq!(mnemonic.word_count(), 24);
    assert_eq!(vault.path(), path);
    assert_eq!(vault.kdf_params(), FAST);

    let seed = vault.unlock(&passphrase()).unwrap();
    assert_eq!(seed.word_count(), 24);
    assert_eq!(seed.mnemonic_words().as_str(), mnemonic.to_string());
    assert_eq!(*seed.bip39_seed(), mnemonic.to_seed(""));
    assert_eq!(seed.signer_seed()[..], seed.bip39_seed()[..32]);

    // The same from a fresh read of the file.
    let reopened = open_and_unlock(&path).unwrap();
    assert_eq!(reopened.mnemonic_words(), seed.mnemonic_words());
    assert_eq!(SeedVault::open(&path).unwrap().kdf_params(), FAST);
}

#[test]
fn every_create_makes_new_words_salt_and_nonce() {
    let dir = TempDir::new().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (_, words_a) = create_fast(&a);
    let (_, words_b) = create_fast(&b);
    assert_ne!(words_a, words_b);
    let (ja, jb) = (read_json(&a), read_json(&b));
    assert_ne!(ja["kdf"]["salt"], jb["kdf"]["salt"]);
    assert_ne!(ja["nonce"], jb["nonce"]);
}

#[test]
fn restore_of_created_words_gives_the_same_seeds() {
    let dir = TempDir::new().unwrap();
    let (vault, _) = create_fast(&dir.path().join("original"));
    let original = vault.unlock(&passphrase()).unwrap();

    let other_passphrase = Passphrase::new("another passphrase");
    let restored = SeedVault::restore(
        dir.path().join("restored"),
        &original.mnemonic_words(),
        &other_passphrase,
        FAST,
    )
    .unwrap()
    .unlock(&other_passphrase)
    .unwrap();
    assert_eq!(restored.mnemonic_words(), original.mnemonic_words());
    assert_eq!(restored.bip39_seed(), original.bip39_seed());
    assert_eq!(restored.signer_seed(), original.signer_seed());
}

#[test]
fn restore_known_12_word_mnemonic_gives_the_expected_seed() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    // Case and whitespace do not matter.
    let messy = "  Abandon ABANDON abandon\tabandon\nabandon abandon abandon abandon abandon \
                 abandon   abandon About \n";
    let vault = SeedVault::restore(&path, messy, &passphrase(), FAST).unwrap();
    let seed = vault.unlock(&passphrase()).unwrap();
    assert_eq!(seed.word_count(), 12);
    assert_eq!(seed.mnemonic_words().as_str(), ABANDON_12);
    assert_eq!(hex::encode(*seed.bip39_seed()), ABANDON_12_SEED);
    assert_eq!(hex::encode(*seed.signer_seed()), &ABANDON_12_SEED[..64]);
    // 16 bytes of entropy plus the 16-byte tag.
    assert_eq!(
        read_json(&path)["ciphertext"].as_str().unwrap().len(),
        2 * 32
    );
}

#[test]
fn restore_known_24_word_mnemonic_gives_the_expected_seed() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    let vault = SeedVault::restore(&path, ABANDON_24, &passphrase(), FAST).unwrap();
    let seed = open_and_unlock(vault.path()).unwrap();
    assert_eq!(seed.word_count(), 24);
    assert_eq!(seed.mnemonic_words().as_str(), ABANDON_24);
    assert_eq!(hex::encode(*seed.bip39_seed()), ABANDON_24_SEED);
    assert_eq!(hex::encode(*seed.signer_seed()), &ABANDON_24_SEED[..64]);
    assert_eq!(
        read_json(&path)["ciphertext"].as_str().unwrap().len(),
        2 * 48
    );
}

#[test]
fn restore_rejects_invalid_words_and_writes_nothing() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    let bad_checksum = ["abandon"; 12].join(" ");
    let unknown_word = ABANDON_12.replacen("abandon", "abandn", 1);
    let eleven = ["abandon"; 11].join(" ");
    // A valid 15-word mnemonic (all-zero 160-bit entropy): valid BIP39, but not 12 or 24 words.
    let fifteen = Mnemonic::from_entropy(&[0u8; 20]).unwrap().to_string();

    let cases: [(&str, &str); 5] = [
        (&bad_checksum, "checksum"),
        (
            &unknown_word,
            "word #1 is not in the BIP39 English word list",
        ),
        (&eleven, "got 11"),
        (&fifteen, "got 15"),
        ("", "got 0"),
    ];
    for (words, expected) in cases {
        match SeedVault::restore(&path, words, &passphrase(), FAST) {
            Err(VaultError::InvalidMnemonic(message)) => {
                assert!(message.contains(expected), "{words:?}: {message}");
                assert!(
                    !message.contains("abandn"),
                    "the error repeats the word: {message}"
                );
            }
            other => panic!("{words:?}: {other:?}"),
        }
        assert!(parse_mnemonic(words).is_err());
    }
    assert!(!path.exists());
}

#[test]
fn wrong_passphrase_is_rejected() {
    let dir = TempDir::new().unwrap();
    let (vault, _) = create_fast(&vault_path(&dir));
    for wrong in [
        "correct horse batter",
        "Correct horse battery",
        "correct horse battery ",
        "",
    ] {
        let result = vault.unlock(&Passphrase::new(wrong));
        assert!(
            matches!(result, Err(VaultError::WrongPassphrase)),
            "{wrong:?}: {result:?}"
        );
    }
    // The right one still works.
    vault.unlock(&passphrase()).unwrap();
}

#[test]
fn weak_passphrases_are_rejected_and_nothing_is_written() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    // Seven characters (but 14 bytes), empty, whitespace only.
    for weak in ["", "1234567", "ääääääa", "         "] {
        let weak = Passphrase::new(weak);
        assert!(matches!(
            weak.check_strength(),
            Err(VaultError::WeakPassphrase)
        ));
        let created = SeedVault::create(&path, &weak, FAST);
        assert!(
            matches!(created, Err(VaultError::WeakPassphrase)),
            "{created:?}"
        );
        let restored = SeedVault::restore(&path, ABANDON_12, &weak, FAST);
        assert!(
            matches!(restored, Err(VaultError::WeakPassphrase)),
            "{restored:?}"
        );
    }
    assert!(!path.exists());
    // Eight characters are enough, counted as characters, not bytes.
    let eight = Passphrase::new("äääääääa");
    eight.check_strength().unwrap();
    let (vault, _) = SeedVault::create(&path, &eight, FAST).unwrap();
    vault.unlock(&eight).unwrap();
}

#[test]
fn invalid_kdf_params_are_rejected() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    let bad = [
        KdfParams {
            m_cost_kib: 7,
            ..TINY
        },
        KdfParams {
            m_cost_kib: 31,
            p_cost: 4,
            ..TINY
        },
        KdfParams { t_cost: 0, ..TINY },
        KdfParams { p_cost: 0, ..TINY },
        KdfParams {
            p_cost: KdfParams::MAX_P_COST + 1,
            m_cost_kib: 1024,
            ..TINY
        },
        KdfParams {
            t_cost: KdfParams::MAX_T_COST + 1,
            ..TINY
        },
        KdfParams {
            m_cost_kib: KdfParams::MAX_M_COST_KIB + 1,
            ..TINY
        },
    ];
    for params in bad {
        assert!(params.validate().is_err(), "{params:?}");
        let result = SeedVault::create(&path, &passphrase(), params);
        assert!(
            matches!(result, Err(VaultError::InvalidKdfParams(_))),
            "{params:?}"
        );
    }
    assert!(!path.exists());
}

#[test]
fn production_params_are_the_default() {
    let params = KdfParams::default();
    assert_eq!(
        params,
        KdfParams {
            m_cost_kib: 65536,
            t_cost: 3,
            p_cost: 1
        }
    );
    params.validate().unwrap();
}

#[test]
fn tampered_ciphertext_or_nonce_is_corrupt() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    create_fast(&path);
    let original = read_json(&path);

    for field in ["ciphertext", "nonce"] {
        let mut tampered = original.clone();
        tampered[field] = Value::from(flip_hex(original[field].as_str().unwrap()));
        write_json(&path, &tampered);
        let result = open_and_unlock(&path);
        assert!(
            matches!(result, Err(VaultError::Corrupt(_))),
            "{field}: {result:?}"
        );
    }
    // Flipping a bit at the start of the ciphertext, too.
    let mut tampered = original.clone();
    let ciphertext = original["ciphertext"].as_str().unwrap();
    let first = if ciphertext.starts_with('0') {
        "1"
    } else {
        "0"
    };
    tampered["ciphertext"] = Value::from(format!("{first}{}", &ciphertext[1..]));
    write_json(&path, &tampered);
    assert!(matches!(
        open_and_unlock(&path),
        Err(VaultError::Corrupt(_))
    ));

    write_json(&path, &original);
    open_and_unlock(&path).unwrap();
}

#[test]
fn tampered_header_is_rejected() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    create_fast(&path);
    let original = read_json(&path);

    let salt = flip_hex(original["kdf"]["salt"].as_str().unwrap());
    let changes: [(&str, Value); 4] = [
        ("salt", Value::from(salt)),
        ("t_cost", Value::from(2)),
        ("m_cost_kib", Value::from(2048)),
        ("p_cost", Value::from(2)),
    ];
    for (field, value) in changes {
        let mut tampered = original.clone();
        tampered["kdf"][field] = value;
        write_json(&path, &tampered);
        let result = open_and_unlock(&path);
        assert!(
            matches!(
                result,
                Err(VaultError::Corrupt(_) | VaultError::WrongPassphrase)
            ),
            "{field}: {result:?}"
        );
    }

    let mut tampered = original.clone();
    tampered["key_check"] = Value::from(flip_hex(original["key_check"].as_str().unwrap()));
    write_json(&path, &tampered);
    assert!(matches!(
        open_and_unlock(&path),
        Err(VaultError::WrongPassphrase)
    ));

    let mut tampered = original.clone();
    tampered["version"] = Value::from(2);
    write_json(&path, &tampered);
    assert!(matches!(
        open_and_unlock(&path),
        Err(VaultError::UnsupportedVersion(2))
    ));

    write_json(&path, &original);
    open_and_unlock(&path).unwrap();
}

#[test]
fn malformed_files_are_corrupt() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    create_fast(&path);
    let original = read_json(&path);

    let mut cases = Vec::new();
    let mut v = original.clone();
    v["cipher"] = Value::from("aes256gcm");
    cases.push(("cipher", v));
    let mut v = original.clone();
    v["kdf"]["algorithm"] = Value::from("scrypt");
    cases.push(("algorithm", v));
    let mut v = original.clone();
    v["network"] = Value::from("bitcoin");
    cases.push(("unknown field", v));
    let mut v = original.clone();
    v.as_object_mut().unwrap().remove("key_check");
    cases.push(("missing field", v));
    let mut v = original.clone();
    v["nonce"] = Value::from("zz");
    cases.push(("bad hex", v));
    let mut v = original.clone();
    v["nonce"] = Value::from("00ff");
    cases.push(("short nonce", v));
    let mut v = original.clone();
    v["ciphertext"] = Value::from(format!("{}00", original["ciphertext"].as_str().unwrap()));
    cases.push(("long ciphertext", v));
    let mut v = original.clone();
    v["kdf"]["m_cost_kib"] = Value::from(u32::MAX);
    cases.push(("huge memory cost", v));
    let mut v = original.clone();
    v["version"] = Value::from(-1);
    cases.push(("negative version", v));
    cases.push(("array", Value::from(vec![1, 2, 3])));

    for (what, value) in cases {
        write_json(&path, &value);
        let result = open_and_unlock(&path);
        assert!(
            matches!(result, Err(VaultError::Corrupt(_))),
            "{what}: {result:?}"
        );
    }
    for bytes in [&b""[..], b"not json", b"{}", &[0xff; 20_000][..]] {
        fs::write(&path, bytes).unwrap();
        let result = SeedVault::open(&path);
        assert!(matches!(result, Err(VaultError::Corrupt(_))), "{result:?}");
    }
    // A directory where the file should be.
    let result = SeedVault::open(dir.path());
    assert!(matches!(result, Err(VaultError::Corrupt(_))), "{result:?}");
}

#[test]
fn any_single_byte_change_or_truncation_is_an_error_not_a_panic() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    SeedVault::create(&path, &passphrase(), TINY).unwrap();
    let original = fs::read(&path).unwrap();

    for i in 0..original.len() {
        let mut bytes = original.clone();
        bytes[i] = match bytes[i] {
            b'0' => b'1',
            b if b.is_ascii_hexdigit() => b'0',
            b'\n' if i == original.len() - 1 => continue, // the trailing newline is optional
            b'x' => b'y',
            _ => b'x',
        };
        fs::write(&path, &bytes).unwrap();
        assert!(
            open_and_unlock(&path).is_err(),
            "byte {i} changed, still unlocks"
        );
    }
    for len in 0..original.len() - 1 {
        fs::write(&path, &original[..len]).unwrap();
        assert!(
            open_and_unlock(&path).is_err(),
            "truncated to {len}, still unlocks"
        );
    }
    fs::write(&path, &original).unwrap();
    open_and_unlock(&path).unwrap();
}

#[test]
fn file_format_is_versioned_json_with_only_crypto_fields() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    create_fast(&path);
    let json = read_json(&path);

    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "cipher",
            "ciphertext",
            "kdf",
            "key_check",
            "nonce",
            "version"
        ]
    );
    assert_eq!(json["version"], 1);
    assert_eq!(json["cipher"], "xchacha20poly1305");
    assert_eq!(json["kdf"]["algorithm"], "argon2id");
    assert_eq!(json["kdf"]["m_cost_kib"], FAST.m_cost_kib);
    assert_eq!(json["kdf"]["t_cost"], FAST.t_cost);
    assert_eq!(json["kdf"]["p_cost"], FAST.p_cost);
    assert_eq!(json["kdf"].as_object().unwrap().len(), 5);
    assert_eq!(json["kdf"]["salt"].as_str().unwrap().len(), 2 * 32);
    assert_eq!(json["nonce"].as_str().unwrap().len(), 2 * 24);
    assert_eq!(json["key_check"].as_str().unwrap().len(), 2 * 32);
    assert_eq!(json["ciphertext"].as_str().unwrap().len(), 2 * (32 + 16));
}

#[cfg(unix)]
#[test]
fn file_is_0600_and_new_directory_0700() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    create_fast(&path);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

#[test]
fn existing_files_are_never_overwritten() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    let (_, words) = create_fast(&path);
    let before = fs::read(&path).unwrap();

    let again = SeedVault::create(&path, &passphrase(), FAST);
    assert!(
        matches!(&again, Err(VaultError::AlreadyExists(p)) if *p == path),
        "{again:?}"
    );
    let restored = SeedVault::restore(&path, ABANDON_12, &passphrase(), FAST);
    assert!(
        matches!(restored, Err(VaultError::AlreadyExists(_))),
        "{restored:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), before);
    let seed = open_and_unlock(&path).unwrap();
    assert_eq!(seed.mnemonic_words().as_str(), words.to_string());

    // Nor is any other file in the way.
    let other = dir.path().join("notes.txt");
    fs::write(&other, "keep me").unwrap();
    let result = SeedVault::create(&other, &passphrase(), FAST);
    assert!(matches!(result, Err(VaultError::AlreadyExists(_))));
    assert_eq!(fs::read_to_string(&other).unwrap(), "keep me");
}

#[test]
fn no_temporary_files_are_left_behind() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    create_fast(&path);
    let names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [path.file_name().unwrap().to_os_string()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(&path).unwrap().nlink(), 1);
    }
}

#[test]
fn open_of_a_missing_file_is_not_found() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    let result = SeedVault::open(&path);
    assert!(
        matches!(&result, Err(VaultError::NotFound(p)) if *p == path),
        "{result:?}"
    );
}

#[test]
fn debug_and_errors_never_show_secrets() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    let vault = SeedVault::restore(&path, ABANDON_12, &passphrase(), FAST).unwrap();
    let seed = vault.unlock(&passphrase()).unwrap();
    let wrong = Passphrase::new("not the passphrase");
    let error = vault.unlock(&wrong).unwrap_err();

    let shown = [
        format!("{:?}", passphrase()),
        format!("{wrong:?}"),
        format!("{seed:?}"),
        format!("{vault:?}"),
        format!("{error} {error:?}"),
    ];
    for text in shown {
        for secret in [
            PASSPHRASE,
            "not the passphrase",
            "abandon",
            "about",
            &ABANDON_12_SEED[..16],
        ] {
            assert!(!text.contains(secret), "{text:?} shows {secret:?}");
        }
    }
    assert_eq!(format!("{seed:?}"), "UnlockedSeed { word_count: 12, .. }");
}

#[test]
fn unlocked_seed_from_a_mnemonic_matches_a_vault() {
    let mnemonic = parse_mnemonic(ABANDON_24).unwrap();
    let seed = UnlockedSeed::from_mnemonic(mnemonic);
    assert_eq!(hex::encode(*seed.bip39_seed()), ABANDON_24_SEED);
    assert_eq!(seed.mnemonic_words().as_str(), ABANDON_24);
}

#[test]
fn create_from_mnemonic_stores_the_given_words() {
    let dir = TempDir::new().unwrap();
    let path = vault_path(&dir);
    let mnemonic = Mnemonic::generate(24).unwrap();
    let vault = SeedVault::create_from_mnemonic(&path, &mnemonic, &passphrase(), FAST).unwrap();
    let seed = vault.unlock(&passphrase()).unwrap();
    assert_eq!(seed.mnemonic_words().as_str(), mnemonic.to_string());

    let fifteen = Mnemonic::from_entropy(&[7u8; 20]).unwrap();
    let other = dir.path().join("fifteen");
    let result = SeedVault::create_from_mnemonic(&other, &fifteen, &passphrase(), FAST);
    assert!(
        matches!(result, Err(VaultError::InvalidMnemonic(_))),
        "{result:?}"
    );
    assert!(!other.exists());
    let again = SeedVault::create_from_mnemonic(&path, &mnemonic, &passphrase(), FAST);
    assert!(matches!(again, Err(VaultError::AlreadyExists(_))));
}
