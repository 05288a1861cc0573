//! The vault file, format version 1 (described in the parent module's docs).

use serde::{Deserialize, Serialize};

use super::{KdfParams, VaultError};

/// The format version this build writes and reads.
pub(super) const FORMAT_VERSION: u32 = 1;
/// The only key-derivation function of version 1.
pub(super) const KDF_ALGORITHM: &str = "argon2id";
/// The only cipher of version 1.
pub(super) const CIPHER: &str = "xchacha20poly1305";
/// Length of the Argon2id salt.
pub(super) const SALT_LEN: usize = 32;
/// Length of the XChaCha20-Poly1305 nonce.
pub(super) const NONCE_LEN: usize = 24;
/// Length of the key-check value.
pub(super) const KEY_CHECK_LEN: usize = 32;
/// Length of the Poly1305 tag at the end of the ciphertext.
const TAG_LEN: usize = 16;
/// Entropy lengths of 12- and 24-word mnemonics.
const ENTROPY_LENS: [usize; 2] = [16, 32];
/// Domain separation prefix of the associated data.
const AAD_PREFIX: &[u8] = b"micronode-signer seed vault\0";

/// A parsed and validated vault file.
#[derive(Clone)]
pub(super) struct Sealed {
    pub(super) params: KdfParams,
    pub(super) salt: [u8; SALT_LEN],
    pub(super) nonce: [u8; NONCE_LEN],
    pub(super) key_check: [u8; KEY_CHECK_LEN],
    pub(super) ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    version: u32,
    kdf: KdfV1,
    cipher: String,
    nonce: String,
    key_check: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfV1 {
    algorithm: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

/// Just the version, read before the rest so a newer file gets a clear error.
#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

/// The bytes bound to the ciphertext as AEAD associated data: everything in the header that
/// decides how the file is decrypted. Length-prefixed fields, so no two headers encode alike.
pub(super) fn associated_data(params: &KdfParams, salt: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + 64 + salt.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    push_field(&mut aad, KDF_ALGORITHM.as_bytes());
    aad.extend_from_slice(&params.m_cost_kib.to_be_bytes());
    aad.extend_from_slice(&params.t_cost.to_be_bytes());
    aad.extend_from_slice(&params.p_cost.to_be_bytes());
    push_field(&mut aad, salt);
    push_field(&mut aad, CIPHER.as_bytes());
    aad
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    // Fields here are a few dozen bytes; the cast cannot truncate.
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// Serializes a vault file (pretty JSON with a trailing newline).
pub(super) fn encode(sealed: &Sealed) -> Result<Vec<u8>, VaultError> {
    let file = FileV1 {
        version: FORMAT_VERSION,
        kdf: KdfV1 {
            algorithm: KDF_ALGORITHM.to_string(),
            m_cost_kib: sealed.params.m_cost_kib,
            t_cost: sealed.params.t_cost,
            p_cost: sealed.params.p_cost,
            salt: hex::encode(sealed.salt),
        },
        cipher: CIPHER.to_string(),
        nonce: hex::encode(sealed.nonce),
        key_check: hex::encode(sealed.key_check),
        ciphertext: hex::encode(&sealed.ciphertext),
    };
    let mut bytes = serde_json::to_vec_pretty(&file)
        .map_err(|e| VaultError::Corrupt(format!("serializing the vault failed: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Parses and validates a vault file, without decrypting it.
pub(super) fn decode(bytes: &[u8]) -> Result<Sealed, VaultError> {
    let probe: VersionProbe = serde_json::from_slice(bytes)
        .map_err(|e| VaultError::Corrupt(format!("not a seed vault file: {e}")))?;
    if probe.version != FORMAT_VERSION {
        return Err(VaultError::UnsupportedVersion(probe.version));
    }
    let file: FileV1 = serde_json::from_slice(bytes)
        .map_err(|e| VaultError::Corrupt(format!("malformed version 1 vault: {e}")))?;
    if file.kdf.algorithm != KDF_ALGORITHM {
        return Err(corrupt(format!(
            "unknown key-derivation function {:?} (expected {KDF_ALGORITHM:?})",
            file.kdf.algorithm
        )));
    }
    if file.cipher != CIPHER {
        return Err(corrupt(format!(
            "unknown cipher {:?} (expected {CIPHER:?})",
            file.cipher
        )));
    }
    let params = KdfParams {
        m_cost_kib: file.kdf.m_cost_kib,
        t_cost: file.kdf.t_cost,
        p_cost: file.kdf.p_cost,
    };
    params
        .check()
        .map_err(|e| corrupt(format!("key-derivation parameters out of range: {e}")))?;
    let ciphertext = decode_hex("ciphertext", &file.ciphertext)?;
    if !ENTROPY_LENS
        .iter()
        .any(|len| ciphertext.len() == len + TAG_LEN)
    {
        return Err(corrupt(format!(
            "ciphertext has {} bytes, expected {} or {}",
            ciphertext.len(),
            ENTROPY_LENS[0] + TAG_LEN,
            ENTROPY_LENS[1] + TAG_LEN
        )));
    }
    Ok(Sealed {
        params,
        salt: decode_array("kdf.salt", &file.kdf.salt)?,
        nonce: decode_array("nonce", &file.nonce)?,
        key_check: decode_array("key_check", &file.key_check)?,
        ciphertext,
    })
}

fn decode_hex(field: &str, value: &str) -> Result<Vec<u8>, VaultError> {
    hex::decode(value).map_err(|e| corrupt(format!("{field} is not valid hex: {e}")))
}

fn decode_array<const N: usize>(field: &str, value: &str) -> Result<[u8; N], VaultError> {
    let bytes = decode_hex(field, value)?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| corrupt(format!("{field} has {} bytes, expected {N}", bytes.len())))
}

fn corrupt(message: String) -> VaultError {
    VaultError::Corrupt(message)
}
