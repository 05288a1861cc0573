//! Checks that a node's files hold none of its tenant's secrets.

use std::path::{Path, PathBuf};

use bitcoin::secp256k1::{PublicKey, Secp256k1};

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that neither the node's data directory (its config, stores, caches) nor its log
/// holds the recovery words, the seed, the node's secret key or any extended private key.
///
/// The node secret is derived from the words the way the signer derives it (LDK's scheme over
/// the first 32 bytes of the BIP39 seed) and checked against `node_id`, so the search looks
/// for the real secret rather than a guess.
pub fn assert_no_secrets(data_dir: &Path, log: &Path, words: &str, node_id: &str) {
    let mnemonic = bip39::Mnemonic::parse(words).expect("recovery words");
    let full_seed = mnemonic.to_seed_normalized("");
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&full_seed[..32]);
    let keys = lightning::sign::KeysManager::new(&seed, 0, 0, true);
    let node_secret = keys.get_node_secret_key();
    let derived = PublicKey::from_secret_key(&Secp256k1::new(), &node_secret);
    assert_eq!(
        derived.to_string(),
        node_id,
        "the derivation in this check must be the signer's"
    );

    let words_line = mnemonic.to_string();
    let first_three: Vec<&str> = words_line.split_whitespace().take(3).collect();
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("recovery words", words_line.as_bytes().to_vec()),
        ("first recovery words", first_three.join(" ").into_bytes()),
        ("seed", seed.to_vec()),
        ("seed (hex)", hex::encode(seed).into_bytes()),
        ("BIP39 seed (hex)", hex::encode(full_seed).into_bytes()),
        ("node secret", node_secret.secret_bytes().to_vec()),
        (
            "node secret (hex)",
            hex::encode(node_secret.secret_bytes()).into_bytes(),
        ),
        ("extended private key", b"tprv".to_vec()),
        ("extended private key", b"xprv".to_vec()),
    ];
    let mut files = files_under(data_dir);
    assert!(
        files.len() > 3,
        "the node's directory has its state: {files:?}"
    );
    // The log may be empty at the tests' default level (warnings only); it is searched
    // whatever it holds.
    files.push(log.to_path_buf());
    for file in &files {
        let bytes = std::fs::read(file).expect("read file");
        for (what, needle) in &needles {
            assert!(
                !contains(&bytes, needle),
                "{} holds the tenant's {what}",
                file.display()
            );
        }
    }
}
