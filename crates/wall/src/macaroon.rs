//! Macaroons in the libmacaroons V2 binary format, with first-party caveats: what lnd and
//! aperture issue, so L402 clients that inspect tokens read ours.
//!
//! Written here rather than taken from crates.io: the `macaroon` crate (0.3.0) pulls in
//! sodiumoxide and the C libsodium, and nothing else maintained implements the V2 format. The
//! construction is small and pinned by the published vectors in this module's tests
//! (libmacaroons' README signatures, the libmacaroons/go-macaroon V2 serialisations, and
//! go-macaroon's `TestMarshalBinaryRoundTrip`):
//!
//! - the signing key is `HMAC-SHA256(key = "macaroons-key-generator", root key)` (libmacaroons
//!   and go-macaroon derive it so; HMAC pads the short key with zeros as they do);
//! - the signature starts as `HMAC-SHA256(signing key, identifier)` and each first-party
//!   caveat moves it on: `sig = HMAC-SHA256(sig, caveat identifier)`.
//!
//! Third-party caveats (with a verification id) are decoded and encoded so any V2 macaroon
//! round-trips, but never verify: the wall issues none.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The key libmacaroons and go-macaroon derive a macaroon's signing key with.
const KEY_GENERATOR: &[u8] = b"macaroons-key-generator";

/// The format version byte of V2 binary macaroons.
const VERSION_V2: u8 = 2;
const FIELD_EOS: u8 = 0;
const FIELD_LOCATION: u8 = 1;
const FIELD_IDENTIFIER: u8 = 2;
const FIELD_VID: u8 = 4;
const FIELD_SIGNATURE: u8 = 6;

/// The most bytes a macaroon may take when decoding one from an untrusted header.
pub const MAX_MACAROON_BYTES: usize = 16 * 1024;

/// Why bytes are not a V2 macaroon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The text is not base64 (standard or URL-safe, padded or not).
    #[error("the macaroon is not base64")]
    Base64,
    /// Longer than [`MAX_MACAROON_BYTES`].
    #[error("the macaroon is too long")]
    TooLong,
    /// Not the V2 binary format (V1 and JSON macaroons are not accepted).
    #[error("the macaroon is not in the V2 binary format")]
    Version,
    /// The bytes end in the middle of a field.
    #[error("the macaroon is truncated")]
    Truncated,
    /// A field that must be there is missing, repeated, out of order or of an unknown type.
    #[error("the macaroon has a malformed field")]
    Field,
    /// The signature is not 32 bytes.
    #[error("the macaroon's signature is not 32 bytes")]
    Signature,
    /// Bytes follow the signature.
    #[error("the macaroon has trailing bytes")]
    Trailing,
}

/// One caveat: a first-party predicate (`location` and `vid` absent) or a third-party one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caveat {
    /// Where a third-party caveat is discharged (a hint, not signed).
    pub location: Option<Vec<u8>>,
    /// The caveat's identifier: for a first-party caveat, its predicate (`condition=value`).
    pub identifier: Vec<u8>,
    /// The verification id of a third-party caveat.
    pub vid: Option<Vec<u8>>,
}

/// A macaroon: location hint, identifier, caveats and the chained HMAC signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Macaroon {
    /// A hint of where the macaroon is meant to be used (not signed).
    pub location: Option<Vec<u8>>,
    /// The identifier the root key is found (for the wall: derived) from.
    pub identifier: Vec<u8>,
    /// The caveats, in the order they were added.
    pub caveats: Vec<Caveat>,
    /// The signature over the identifier and every caveat.
    pub signature: [u8; 32],
}

impl std::fmt::Debug for Macaroon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Macaroon")
            .field("identifier", &hex::encode(&self.identifier))
            .field("caveats", &self.first_party_caveats().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl Macaroon {
    /// A new macaroon signed with `root_key`, without caveats.
    pub fn new(root_key: &[u8], identifier: Vec<u8>, location: Option<Vec<u8>>) -> Macaroon {
        let signing_key = hmac(KEY_GENERATOR, root_key);
        let signature = hmac(&signing_key, &identifier);
        Macaroon {
            location,
            identifier,
            caveats: Vec::new(),
            signature,
        }
    }

    /// Adds a first-party caveat (a predicate such as `services=wall:0`) and moves the
    /// signature on. Anyone holding the macaroon can add one; nobody can remove one.
    pub fn add_first_party_caveat(&mut self, predicate: &str) {
        let identifier = predicate.as_bytes().to_vec();
        self.signature = hmac(&self.signature, &identifier);
        self.caveats.push(Caveat {
            location: None,
            identifier,
            vid: None,
        });
    }

    /// Whether the signature is the one `root_key` gives over the identifier and the caveats,
    /// compared in constant time. A macaroon with a third-party caveat never verifies.
    pub fn verify_signature(&self, root_key: &[u8]) -> bool {
        if self.caveats.iter().any(|c| c.vid.is_some()) {
            return false;
        }
        let signing_key = hmac(KEY_GENERATOR, root_key);
        let mut signature = hmac(&signing_key, &self.identifier);
        for caveat in &self.caveats {
            signature = hmac(&signature, &caveat.identifier);
        }
        constant_time_eq(&signature, &self.signature)
    }

    /// The first-party caveats' predicates, as text (a caveat that is not UTF-8 reads as a
    /// replacement-character string, which no condition matches).
    pub fn first_party_caveats(&self) -> impl Iterator<Item = String> + '_ {
        self.caveats
            .iter()
            .filter(|c| c.vid.is_none())
            .map(|c| String::from_utf8_lossy(&c.identifier).into_owned())
    }

    /// The V2 binary serialisation.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![VERSION_V2];
        if let Some(location) = &self.location {
            put_field(&mut out, FIELD_LOCATION, location);
        }
        put_field(&mut out, FIELD_IDENTIFIER, &self.identifier);
        out.push(FIELD_EOS);
        for caveat in &self.caveats {
            if let Some(location) = &caveat.location {
                put_field(&mut out, FIELD_LOCATION, location);
            }
            put_field(&mut out, FIELD_IDENTIFIER, &caveat.identifier);
            if let Some(vid) = &caveat.vid {
                put_field(&mut out, FIELD_VID, vid);
            }
            out.push(FIELD_EOS);
        }
        out.push(FIELD_EOS);
        put_field(&mut out, FIELD_SIGNATURE, &self.signature);
        out
    }

    /// The V2 binary serialisation in standard base64 with padding (as lnd prints macaroons).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.to_bytes())
    }

    /// Decodes the V2 binary serialisation. Never panics, whatever the bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Macaroon, DecodeError> {
        if bytes.len() > MAX_MACAROON_BYTES {
            return Err(DecodeError::TooLong);
        }
        let mut reader = Reader { bytes, at: 0 };
        if reader.byte()? != VERSION_V2 {
            return Err(DecodeError::Version);
        }
        let (location, identifier, vid) = reader.section()?;
        let identifier = identifier.ok_or(DecodeError::Field)?;
        if vid.is_some() {
            return Err(DecodeError::Field);
        }
        let mut caveats = Vec::new();
        loop {
            if reader.peek()? == FIELD_EOS {
                reader.at += 1;
                break;
            }
            let (location, identifier, vid) = reader.section()?;
            caveats.push(Caveat {
                location,
                identifier: identifier.ok_or(DecodeError::Field)?,
                vid,
            });
        }
        let (kind, signature) = reader.field()?;
        if kind != FIELD_SIGNATURE {
            return Err(DecodeError::Field);
        }
        let signature: [u8; 32] = signature.try_into().map_err(|_| DecodeError::Signature)?;
        if reader.at != bytes.len() {
            return Err(DecodeError::Trailing);
        }
        Ok(Macaroon {
            location,
            identifier,
            caveats,
            signature,
        })
    }

    /// Decodes base64 text (standard or URL-safe alphabet, padded or not) holding a V2 binary
    /// macaroon.
    pub fn from_base64(text: &str) -> Result<Macaroon, DecodeError> {
        let text = text.trim();
        if text.len() > MAX_MACAROON_BYTES * 4 / 3 + 4 {
            return Err(DecodeError::TooLong);
        }
        let normalised: String = text
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        const LENIENT: GeneralPurpose = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let bytes = LENIENT
            .decode(normalised)
            .map_err(|_| DecodeError::Base64)?;
        Macaroon::from_bytes(&bytes)
    }
}

/// Whether `a == b`, in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn put_field(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    out.push(kind);
    let mut len = data.len() as u64;
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(data);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

type Section = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

impl Reader<'_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.bytes
            .get(self.at)
            .copied()
            .ok_or(DecodeError::Truncated)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = self.peek()?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<usize, DecodeError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return usize::try_from(value).map_err(|_| DecodeError::Truncated);
            }
        }
        Err(DecodeError::Field)
    }

    /// One field: its type and its data. The end-of-section marker is not a field.
    fn field(&mut self) -> Result<(u8, Vec<u8>), DecodeError> {
        let kind = self.byte()?;
        if kind == FIELD_EOS {
            return Err(DecodeError::Field);
        }
        let len = self.varint()?;
        let end = self.at.checked_add(len).ok_or(DecodeError::Truncated)?;
        let data = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok((kind, data.to_vec()))
    }

    /// A section up to and including its end marker: location, identifier and vid, each at
    /// most once and in this order.
    fn section(&mut self) -> Result<Section, DecodeError> {
        let (mut location, mut identifier, mut vid) = (None, None, None);
        let mut last = FIELD_EOS;
        loop {
            if self.peek()? == FIELD_EOS {
                self.at += 1;
                return Ok((location, identifier, vid));
            }
            let (kind, data) = self.field()?;
            if kind <= last {
                return Err(DecodeError::Field);
            }
            last = kind;
            match kind {
                FIELD_LOCATION => location = Some(data),
                FIELD_IDENTIFIER => identifier = Some(data),
                FIELD_VID => vid = Some(data),
                _ => return Err(DecodeError::Field),
            }
        }
    }
}
