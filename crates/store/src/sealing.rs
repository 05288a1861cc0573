//! Per-tenant encryption of stored entries: what the operator's database holds is opaque.
//!
//! A tenant's [`DataKey`] gives two keys (HKDF-SHA256): one names entries, one seals them.
//! - An entry's row id is `HMAC(index key, namespace, key)`; its namespace's row id is
//!   `HMAC(index key, namespace)`. Neither reveals the name (channel ids and payment hashes are
//!   LDK key names), yet each can be found again from the name.
//! - The row's value is `XChaCha20-Poly1305(seal key, random nonce, name || value || padding)`,
//!   with the tenant and the row id as associated data: a sealed value moved to another entry
//!   or another tenant does not open. Values are padded to a multiple of [`PAD_TO`] bytes, so the
//!   exact size of a channel monitor or a payment record is not shown either.
//!
//! What sealing does not hide: how many entries a tenant has, their rough sizes, and when they
//! change. What it does not stop: the database handing back an older sealed value of the same
//! entry (a rollback); see `docs/adr/0006-fleet-store-on-postgresql.md`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Sealed values are padded to a multiple of this many bytes.
pub const PAD_TO: usize = 64;
/// The first byte of every sealed value: the format's version.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A tenant's data key: 32 secret bytes, wiped from memory when dropped, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A data key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }

    /// A fresh random data key.
    pub fn random() -> DataKey {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        DataKey(bytes)
    }

    /// The data key of `tenant` under an operator's master key (HKDF-SHA256): one master key
    /// file gives every tenant of a fleet a key of its own.
    pub fn derive(master: &[u8; 32], tenant: &str) -> DataKey {
        let mut key = derive_tenant_secret(master, tenant, b"micronode/data-key/v1");
        DataKey(std::mem::take(&mut *key))
    }
}

/// A secret of `tenant` for the use `label` names, derived from an operator's master key
/// (HKDF-SHA256, `label` as salt, the tenant as info): every host holding the master key
/// derives the same one, and secrets of other tenants or uses tell nothing about it.
pub fn derive_tenant_secret(
    master: &[u8; 32],
    tenant: &str,
    label: &'static [u8],
) -> zeroize::Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(label), master);
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32: this cannot fail.
    let _ = hk.expand(tenant.as_bytes(), &mut *bytes);
    bytes
}

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The value is shorter than a sealed value can be, or of an unknown format.
    #[error("sealed value malformed ({0})")]
    Malformed(&'static str),
    /// The value is too large to seal.
    #[error("value too large to seal")]
    TooLarge,
    /// Authentication failed: another key, another tenant or entry, or the bytes were changed.
    #[error("sealed value does not open under this tenant's data key (wrong key, or tampered)")]
    Tampered,
}

/// Names and seals one tenant's entries under its [`DataKey`].
pub(crate) struct Sealer {
    tenant: String,
    index_key: [u8; 64],
    cipher: XChaCha20Poly1305,
}

impl Drop for Sealer {
    fn drop(&mut self) {
        self.index_key.zeroize();
    }
}

/// A row id: an HMAC of a name.
pub(crate) type RowId = [u8; 32];

impl Sealer {
    pub(crate) fn new(tenant: &str, key: &DataKey) -> Sealer {
        let hk = Hkdf::<Sha256>::new(Some(b"micronode/kv/v1"), &key.0);
        // HMAC-SHA256's block size: the key is used as it is, never hashed first.
        let mut index_key = [0u8; 64];
        let mut seal_key = [0u8; 32];
        // Both lengths are valid HKDF-SHA256 outputs: these cannot fail.
        let _ = hk.expand(b"index", &mut index_key);
        let _ = hk.expand(b"seal", &mut seal_key);
        let cipher = XChaCha20Poly1305::new((&seal_key).into());
        seal_key.zeroize();
        Sealer {
            tenant: tenant.to_owned(),
            index_key,
            cipher,
        }
    }

    fn mac(&self, parts: &[&str]) -> RowId {
        let mut mac = <Hmac<Sha256> as KeyInit>::new((&self.index_key).into());
        for part in parts {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// The row id of a namespace.
    pub(crate) fn namespace_id(&self, primary: &str, secondary: &str) -> RowId {
        self.mac(&["ns", primary, secondary])
    }

    /// The row id of an entry.
    pub(crate) fn entry_id(&self, primary: &str, secondary: &str, key: &str) -> RowId {
        self.mac(&["entry", primary, secondary, key])
    }

    fn aad(&self, entry: &RowId) -> Vec<u8> {
        let mut aad = Vec::with_capacity(4 + self.tenant.len() + 32);
        aad.extend_from_slice(&(self.tenant.len() as u32).to_be_bytes());
        aad.extend_from_slice(self.tenant.as_bytes());
        aad.extend_from_slice(entry);
        aad
    }

    /// Seals an entry's names (primary namespace, secondary namespace, key) and value for the
    /// row `entry`.
    pub(crate) fn seal(
        &self,
        entry: &RowId,
        names: [&str; 3],
        value: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let body = names.iter().map(|n| 2 + n.len()).sum::<usize>() + 4 + value.len();
        let padded = body.div_ceil(PAD_TO) * PAD_TO;
        let mut plain = Vec::with_capacity(padded);
        // LDK's names are at most 120 characters and its values far below 4 GiB.
        for name in names {
            plain.extend_from_slice(&(name.len() as u16).to_be_bytes());
            plain.extend_from_slice(name.as_bytes());
        }
        plain.extend_from_slice(&(value.len() as u32).to_be_bytes());
        plain.extend_from_slice(value);
        plain.resize(padded, 0);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = self.aad(entry);
        // XChaCha20-Poly1305 refuses only plaintexts beyond 256 GiB.
        let sealed = self.cipher.encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        );
        plain.zeroize();
        let sealed = sealed.map_err(|_| SealError::TooLarge)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens the row `entry`'s sealed value: its names and value. The names are checked to
    /// give the row's id, so a row moved to another namespace does not open either.
    pub(crate) fn open(&self, entry: &RowId, sealed: &[u8]) -> Result<Opened, SealError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed("too short"));
        }
        if sealed[0] != FORMAT_V1 {
            return Err(SealError::Malformed("unknown format version"));
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        let aad = self.aad(entry);
        let mut plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Tampered)?;
        let parsed = parse_plain(&plain);
        plain.zeroize();
        let opened = parsed?;
        let [p, s, k] = &opened.names;
        if &self.entry_id(p, s, k) != entry {
            return Err(SealError::Tampered);
        }
        Ok(opened)
    }
}

/// An opened entry.
pub(crate) struct Opened {
    /// Primary namespace, secondary namespace, key.
    pub(crate) names: [String; 3],
    /// The stored value.
    pub(crate) value: Vec<u8>,
}

fn parse_plain(plain: &[u8]) -> Result<Opened, SealError> {
    let malformed = SealError::Malformed;
    let mut rest = plain;
    let mut names: [String; 3] = Default::default();
    for name in names.iter_mut() {
        let (len, tail) = rest
            .split_at_checked(2)
            .ok_or(malformed("no name length"))?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        let (bytes, tail) = tail
            .split_at_checked(len)
            .ok_or(malformed("name cut short"))?;
        *name = std::str::from_utf8(bytes)
            .map_err(|_| malformed("name is not UTF-8"))?
            .to_owned();
        rest = tail;
    }
    let (len, rest) = rest
        .split_at_checked(4)
        .ok_or(malformed("no value length"))?;
    let value_len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let value = rest.get(..value_len).ok_or(malformed("value cut short"))?;
    Ok(Opened {
        names,
        value: value.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_entries_open_only_in_their_place_under_their_key() {
        let key = DataKey::random();
        let sealer = Sealer::new("alice", &key);
        let entry = sealer.entry_id("monitors", "", "abcd_0");
        let sealed = sealer
            .seal(&entry, ["monitors", "", "abcd_0"], b"the monitor")
            .expect("seals");
        assert_eq!((sealed.len() - 1 - NONCE_LEN - TAG_LEN) % PAD_TO, 0);
        let opened = sealer.open(&entry, &sealed).expect("opens");
        assert_eq!(opened.names, ["monitors", "", "abcd_0"]);
        assert_eq!(opened.value, b"the monitor");

        // Another entry's place, another tenant, another key, a flipped bit: none opens.
        let other = sealer.entry_id("monitors", "", "abcd_1");
        assert!(matches!(
            sealer.open(&other, &sealed),
            Err(SealError::Tampered)
        ));
        let bob = Sealer::new("bob", &key);
        assert!(matches!(
            bob.open(&entry, &sealed),
            Err(SealError::Tampered)
        ));
        let stranger = Sealer::new("alice", &DataKey::random());
        assert!(matches!(
            stranger.open(&entry, &sealed),
            Err(SealError::Tampered)
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            sealer.open(&entry, &flipped),
            Err(SealError::Tampered)
        ));
        assert!(matches!(
            sealer.open(&entry, &sealed[..20]),
            Err(SealError::Malformed(_))
        ));
    }

    #[test]
    fn row_ids_hide_names_and_differ_per_key() {
        let a = Sealer::new("t", &DataKey::from_bytes([1; 32]));
        let b = Sealer::new("t", &DataKey::from_bytes([2; 32]));
        assert_ne!(a.entry_id("p", "s", "k"), b.entry_id("p", "s", "k"));
        // Length-prefixed: moving a separator does not give the same id.
        assert_ne!(a.entry_id("p", "sk", ""), a.entry_id("p", "s", "k"));
        assert_eq!(a.namespace_id("p", "s"), a.namespace_id("p", "s"));
        assert_ne!(
            DataKey::derive(&[7; 32], "alice").0,
            DataKey::derive(&[7; 32], "bob").0
        );
        assert_eq!(format!("{:?}", DataKey::from_bytes([9; 32])), "DataKey(..)");
    }

    #[test]
    fn derived_keys_stay_the_same_across_builds_and_differ_per_use() {
        // HKDF-SHA256 (salt "micronode/data-key/v1", info "alice"), computed independently:
        // a change here would leave every stored row unreadable.
        let hex: String = DataKey::derive(&[7; 32], "alice")
            .0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "fb927bf23c9f5df7cf86944841c9808be1719b5ab3002ee350a381a1954b5c71"
        );
        let link = derive_tenant_secret(&[7; 32], "alice", b"micronode/signer-link-identity/v1");
        assert_ne!(*link, DataKey::derive(&[7; 32], "alice").0);
        assert_eq!(
            *link,
            *derive_tenant_secret(&[7; 32], "alice", b"micronode/signer-link-identity/v1")
        );
    }
}
