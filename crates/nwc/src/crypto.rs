//! NIP-47 payload encryption: NIP-44 v2 and NIP-04, chosen per request.
//!
//! A request names its scheme in an `encryption` tag (`nip44_v2` or `nip04`); without the tag
//! the spec says NIP-04, but clients exist that send NIP-44 untagged, so the service looks at
//! the ciphertext: NIP-04 payloads end in `?iv=<base64>`, NIP-44 v2 payloads are one base64
//! blob whose first byte is 2. The answer always uses the request's scheme.

use nostr_sdk::nips::{nip04, nip44};
use nostr_sdk::{Event, PublicKey, SecretKey, TagKind};

/// The name of the tag that carries the scheme.
pub const ENCRYPTION_TAG: &str = "encryption";
/// The schemes this service supports, as its info event lists them.
pub const SUPPORTED_SCHEMES: &str = "nip44_v2 nip04";

/// An encryption scheme NIP-47 knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// NIP-44 version 2 (ChaCha20 + HMAC-SHA256, padded).
    Nip44V2,
    /// NIP-04 (AES-256-CBC), the legacy scheme.
    Nip04,
}

impl Scheme {
    /// The tag value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Nip44V2 => "nip44_v2",
            Self::Nip04 => "nip04",
        }
    }

    /// Parses a tag value.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "nip44_v2" => Some(Self::Nip44V2),
            "nip04" => Some(Self::Nip04),
            _ => None,
        }
    }
}

/// How a request declares (or implies) its scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Declared {
    /// A supported scheme, from the tag or from the ciphertext's shape.
    Scheme(Scheme),
    /// The tag names a scheme this service does not support.
    Unsupported(String),
}

/// Finds a request's encryption scheme: the `encryption` tag, else the ciphertext's shape.
pub fn detect_scheme(event: &Event) -> Declared {
    let tag = event
        .tags
        .find(TagKind::custom(ENCRYPTION_TAG))
        .and_then(|t| t.content());
    match tag {
        Some(value) => {
            // A client should name one scheme; accept the first we know if it lists several.
            match value.split_whitespace().find_map(Scheme::parse) {
                Some(s) => Declared::Scheme(s),
                None => Declared::Unsupported(truncate(value, 64)),
            }
        }
        None => Declared::Scheme(sniff(&event.content)),
    }
}

/// Guesses the scheme from a ciphertext.
pub fn sniff(content: &str) -> Scheme {
    if content.contains("?iv=") {
        return Scheme::Nip04;
    }
    // NIP-44 v2 is base64 of [0x02, nonce, ciphertext, mac]: a leading 0x02 byte always
    // encodes to a first character 'A' (its top six bits are zero).
    match content.as_bytes().first() {
        Some(b'A') => Scheme::Nip44V2,
        _ => Scheme::Nip04,
    }
}

/// Why a payload could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decrypt as {scheme}: {reason}")]
pub struct DecryptError {
    /// The scheme tried.
    pub scheme: &'static str,
    /// What failed.
    pub reason: String,
}

/// Why a payload could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encrypt as {scheme}: {reason}")]
pub struct EncryptError {
    /// The scheme tried.
    pub scheme: &'static str,
    /// What failed (NIP-44 refuses plaintexts over 65535 bytes).
    pub reason: String,
}

/// Decrypts `content` from `peer` with our secret key.
pub fn decrypt(
    scheme: Scheme,
    ours: &SecretKey,
    peer: &PublicKey,
    content: &str,
) -> Result<String, DecryptError> {
    let err = |reason: String| DecryptError {
        scheme: scheme.as_str(),
        reason,
    };
    match scheme {
        Scheme::Nip44V2 => nip44::decrypt(ours, peer, content).map_err(|e| err(e.to_string())),
        Scheme::Nip04 => nip04::decrypt(ours, peer, content).map_err(|e| err(e.to_string())),
    }
}

/// Encrypts `plaintext` to `peer` with our secret key.
pub fn encrypt(
    scheme: Scheme,
    ours: &SecretKey,
    peer: &PublicKey,
    plaintext: &str,
) -> Result<String, EncryptError> {
    let err = |reason: String| EncryptError {
        scheme: scheme.as_str(),
        reason,
    };
    match scheme {
        Scheme::Nip44V2 => nip44::encrypt(ours, peer, plaintext, nip44::Version::V2)
            .map_err(|e| err(e.to_string())),
        Scheme::Nip04 => nip04::encrypt(ours, peer, plaintext).map_err(|e| err(e.to_string())),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr_sdk::{EventBuilder, Keys, Kind, Tag};

    #[test]
    fn both_schemes_round_trip_and_sniff() {
        let wallet = Keys::generate();
        let app = Keys::generate();
        for scheme in [Scheme::Nip44V2, Scheme::Nip04] {
            let c = encrypt(scheme, app.secret_key(), &wallet.public_key(), "{\"x\":1}")
                .expect("encrypt");
            assert_eq!(sniff(&c), scheme);
            let p = decrypt(scheme, wallet.secret_key(), &app.public_key(), &c).expect("decrypt");
            assert_eq!(p, "{\"x\":1}");
            let other = match scheme {
                Scheme::Nip44V2 => Scheme::Nip04,
                Scheme::Nip04 => Scheme::Nip44V2,
            };
            assert!(decrypt(other, wallet.secret_key(), &app.public_key(), &c).is_err());
        }
        // Garbage never panics.
        for junk in [
            "",
            "A",
            "?iv=",
            "AAAA?iv=!!",
            "\u{1F600}",
            &"A".repeat(100_000),
        ] {
            let _ = decrypt(
                Scheme::Nip44V2,
                wallet.secret_key(),
                &app.public_key(),
                junk,
            );
            let _ = decrypt(Scheme::Nip04, wallet.secret_key(), &app.public_key(), junk);
        }
    }

    #[test]
    fn detects_declared_schemes() {
        let keys = Keys::generate();
        let event = |tag: Option<&str>, content: &str| {
            let mut b = EventBuilder::new(Kind::WalletConnectRequest, content);
            if let Some(t) = tag {
                b = b.tag(Tag::custom(TagKind::custom(ENCRYPTION_TAG), [t]));
            }
            b.sign_with_keys(&keys).expect("sign")
        };
        assert_eq!(
            detect_scheme(&event(Some("nip44_v2"), "x?iv=y")),
            Declared::Scheme(Scheme::Nip44V2)
        );
        assert_eq!(
            detect_scheme(&event(Some("nip04"), "Axyz")),
            Declared::Scheme(Scheme::Nip04)
        );
        assert_eq!(
            detect_scheme(&event(Some("nip99 nip04"), "x")),
            Declared::Scheme(Scheme::Nip04)
        );
        assert_eq!(
            detect_scheme(&event(Some("nip99"), "x")),
            Declared::Unsupported("nip99".into())
        );
        assert_eq!(
            detect_scheme(&event(None, "abc?iv=def")),
            Declared::Scheme(Scheme::Nip04)
        );
        assert_eq!(
            detect_scheme(&event(None, "AgAAAA")),
            Declared::Scheme(Scheme::Nip44V2)
        );
    }
}
