//! One-time pairing codes: 128 random bits a person carries from the node to the signer.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Number of secret bytes in a pairing code.
pub const PAIRING_SECRET_LEN: usize = 16;

/// Prefix of the human form of a pairing code.
const PREFIX: &str = "MN";
/// Crockford base32 alphabet.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters carrying the secret (128 bits in 26 five-bit symbols; the last 2 bits are 0).
const SECRET_CHARS: usize = 26;
/// Characters carrying the checksum (10 bits).
const CHECK_CHARS: usize = 2;
const CODE_CHARS: usize = SECRET_CHARS + CHECK_CHARS;
/// Characters per dash-separated group in the human form.
const GROUP: usize = 4;

const PSK_DOMAIN: &[u8] = b"micronode link pairing v1";
const CHECK_DOMAIN: &[u8] = b"micronode link pairing code check v1";

/// Why a pairing code string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PairingCodeError {
    /// The code has the wrong number of characters (dashes, spaces and the `MN` prefix are
    /// not counted).
    #[error("a pairing code has {expected} characters, this one has {found}")]
    Length {
        /// The expected number of code characters.
        expected: usize,
        /// The number found.
        found: usize,
    },
    /// The code contains a character outside Crockford base32.
    #[error("a pairing code cannot contain {0:?}")]
    InvalidCharacter(char),
    /// The check characters do not match: the code was mistyped.
    #[error("the pairing code's check characters do not match (typo?)")]
    Checksum,
}

/// A one-time pairing code.
///
/// The node creates it (see [`crate::PairingStore::new_pairing_code`]) and shows its human
/// form, `MN-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX` in Crockford base32 (26 characters of
/// secret, 2 of checksum); the tenant types it into the signer, which parses it with
/// [`PairingCode::parse`] (or `str::parse`). The code is a secret until it is used: `Debug`
/// redacts it and there is no `Display`; [`PairingCode::reveal`] returns the human form.
#[derive(Clone)]
pub struct PairingCode {
    secret: Zeroizing<[u8; PAIRING_SECRET_LEN]>,
}

impl PairingCode {
    /// Generates a random code.
    pub fn generate() -> Self {
        let mut secret = Zeroizing::new([0u8; PAIRING_SECRET_LEN]);
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut secret[..]);
        Self { secret }
    }

    /// Builds a code from its secret bytes.
    pub fn from_secret(secret: [u8; PAIRING_SECRET_LEN]) -> Self {
        Self {
            secret: Zeroizing::new(secret),
        }
    }

    /// Parses the human form. Case, dashes, spaces and the `MN` prefix are optional; `I`
    /// and `L` read as `1`, `O` as `0`.
    pub fn parse(input: &str) -> Result<Self, PairingCodeError> {
        let mut symbols = Zeroizing::new(Vec::with_capacity(CODE_CHARS + PREFIX.len()));
        for ch in input.chars() {
            if ch == '-' || ch.is_whitespace() {
                continue;
            }
            symbols.push(ch.to_ascii_uppercase());
        }
        if symbols.len() == CODE_CHARS + PREFIX.len() && symbols[..2] == ['M', 'N'] {
            symbols.drain(..PREFIX.len());
        }
        if symbols.len() != CODE_CHARS {
            return Err(PairingCodeError::Length {
                expected: CODE_CHARS,
                found: symbols.len(),
            });
        }
        let mut values = Zeroizing::new([0u8; CODE_CHARS]);
        for (value, ch) in values.iter_mut().zip(symbols.iter()) {
            *value = decode_symbol(*ch).ok_or(PairingCodeError::InvalidCharacter(*ch))?;
        }
        let mut secret = Zeroizing::new([0u8; PAIRING_SECRET_LEN]);
        let padding = unpack_bits(&values[..SECRET_CHARS], &mut secret[..]);
        if padding != 0 {
            return Err(PairingCodeError::Checksum);
        }
        let check = checksum(&secret);
        if values[SECRET_CHARS..] != check {
            return Err(PairingCodeError::Checksum);
        }
        Ok(Self { secret })
    }

    /// The human form, `MN-XXXX-...`. This is the secret: show it to the tenant, never log it.
    pub fn reveal(&self) -> String {
        let mut values = Zeroizing::new([0u8; CODE_CHARS]);
        pack_bits(&self.secret[..], &mut values[..SECRET_CHARS]);
        values[SECRET_CHARS..].copy_from_slice(&checksum(&self.secret));
        let mut out = String::with_capacity(PREFIX.len() + CODE_CHARS + CODE_CHARS / GROUP + 1);
        out.push_str(PREFIX);
        for (i, v) in values.iter().enumerate() {
            if i % GROUP == 0 {
                out.push('-');
            }
            out.push(char::from(ALPHABET[usize::from(*v & 31)]));
        }
        out
    }

    /// The Noise pre-shared key: SHA-256("micronode link pairing v1" || secret).
    pub(crate) fn psk(&self) -> Zeroizing<[u8; 32]> {
        let mut hasher = Sha256::new();
        hasher.update(PSK_DOMAIN);
        hasher.update(&self.secret[..]);
        Zeroizing::new(hasher.finalize().into())
    }
}

impl FromStr for PairingCode {
    type Err = PairingCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingCode(MN-****)")
    }
}

fn decode_symbol(ch: char) -> Option<u8> {
    let ch = match ch {
        'I' | 'L' => '1',
        'O' => '0',
        other => other,
    };
    ALPHABET
        .iter()
        .position(|&a| char::from(a) == ch)
        .and_then(|p| u8::try_from(p).ok())
}

/// Splits `bytes` (big-endian bit order) into 5-bit symbols, zero-padding the last one.
fn pack_bits(bytes: &[u8], out: &mut [u8]) {
    for (i, sym) in out.iter_mut().enumerate() {
        let mut v = 0u8;
        for b in 0..5 {
            let bit = i * 5 + b;
            let set = bytes
                .get(bit / 8)
                .map(|byte| (byte >> (7 - bit % 8)) & 1)
                .unwrap_or(0);
            v = (v << 1) | set;
        }
        *sym = v;
    }
}

/// The inverse of [`pack_bits`]; returns the padding bits that did not fit in `out` (0 for a
/// canonical encoding).
fn unpack_bits(symbols: &[u8], out: &mut [u8]) -> u8 {
    out.fill(0);
    let mut padding = 0u8;
    for (i, sym) in symbols.iter().enumerate() {
        for b in 0..5 {
            let bit = i * 5 + b;
            let set = (sym >> (4 - b)) & 1;
            match out.get_mut(bit / 8) {
                Some(byte) => *byte |= set << (7 - bit % 8),
                None => padding |= set,
            }
        }
    }
    padding
}

fn checksum(secret: &[u8; PAIRING_SECRET_LEN]) -> [u8; CHECK_CHARS] {
    let mut hasher = Sha256::new();
    hasher.update(CHECK_DOMAIN);
    hasher.update(secret);
    let digest = hasher.finalize();
    let mut out = [0u8; CHECK_CHARS];
    pack_bits(&digest[..2], &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_shape() {
        for _ in 0..200 {
            let code = PairingCode::generate();
            let shown = code.reveal();
            assert_eq!(shown.len(), 2 + 7 * 5);
            assert!(shown.starts_with("MN-"));
            let parsed = PairingCode::parse(&shown).unwrap();
            assert_eq!(*parsed.secret, *code.secret);
        }
    }

    #[test]
    fn parsing_is_tolerant() {
        let code = PairingCode::from_secret([0xA5; 16]);
        let shown = code.reveal();
        let variants = [
            shown.to_lowercase(),
            shown.replace('-', ""),
            shown.replace('-', " "),
            shown.trim_start_matches("MN-").to_string(),
            format!("  {}  ", shown.replace('-', "").to_lowercase()),
            shown.replace('0', "O").replace('1', "l"),
        ];
        for v in variants {
            let parsed = PairingCode::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(*parsed.secret, [0xA5; 16]);
        }
    }

    #[test]
    fn malformed_codes_are_typed_errors() {
        let shown = PairingCode::generate().reveal();
        assert!(matches!(
            PairingCode::parse(""),
            Err(PairingCodeError::Length { found: 0, .. })
        ));
        assert!(matches!(
            PairingCode::parse(&shown[..shown.len() - 1]),
            Err(PairingCodeError::Length { .. })
        ));
        let bad_char = format!("{}U", &shown[..shown.len() - 1]);
        assert_eq!(
            PairingCode::parse(&bad_char).err(),
            Some(PairingCodeError::InvalidCharacter('U'))
        );
        // Change one symbol: the checksum catches it.
        let shown = PairingCode::from_secret([0x3C; 16]).reveal();
        let mut chars: Vec<char> = shown.chars().collect();
        let i = 4;
        chars[i] = if chars[i] == '7' { '8' } else { '7' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(
            PairingCode::parse(&typo),
            Err(PairingCodeError::Checksum)
        ));
        assert!(PairingCode::parse("MN-é").is_err());
    }

    #[test]
    fn debug_is_redacted_and_psk_is_domain_separated() {
        let code = PairingCode::from_secret([7; 16]);
        assert_eq!(format!("{code:?}"), "PairingCode(MN-****)");
        let mut hasher = Sha256::new();
        hasher.update(b"micronode link pairing v1");
        hasher.update([7u8; 16]);
        let expected: [u8; 32] = hasher.finalize().into();
        assert_eq!(*code.psk(), expected);
    }
}
