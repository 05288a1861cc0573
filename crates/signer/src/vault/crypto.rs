//! Key derivation and authenticated encryption of the seed's entropy.

use argon2::{Algorithm, Argon2, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

use super::format::{self, Sealed};
use super::{KdfParams, Passphrase, VaultError};

/// Length of the AEAD key, and of the key-check value stored next to the ciphertext.
const KEY_LEN: usize = 32;

/// Argon2id output: the first [`KEY_LEN`] bytes are the XChaCha20-Poly1305 key, the next
/// [`KEY_LEN`] the key-check value that tells a wrong passphrase from a damaged ciphertext.
fn derive_keys(
    passphrase: &Passphrase,
    params: &KdfParams,
    salt: &[u8],
) -> Result<Zeroizing<[u8; 2 * KEY_LEN]>, argon2::Error> {
    let argon_params = argon2::Params::new(
        params.m_cost_kib,
        params.t_cost,
        params.p_cost,
        Some(2 * KEY_LEN),
    )?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut out = Zeroizing::new([0u8; 2 * KEY_LEN]);
    argon.hash_password_into(passphrase.as_bytes(), salt, &mut out[..])?;
    Ok(out)
}

/// Encrypts `entropy` under a fresh random salt and nonce.
pub(super) fn seal(
    entropy: &[u8],
    passphrase: &Passphrase,
    params: KdfParams,
) -> Result<Sealed, VaultError> {
    let mut salt = [0u8; format::SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let mut nonce = [0u8; format::NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let keys = derive_keys(passphrase, &params, &salt)
        .map_err(|e| VaultError::InvalidKdfParams(e.to_string()))?;
    let (key, key_check) = keys.split_at(KEY_LEN);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let aad = format::associated_data(&params, &salt);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: entropy,
                aad: &aad,
            },
        )
        .map_err(|_| VaultError::Corrupt("encrypting the seed failed".into()))?;
    let mut check = [0u8; KEY_LEN];
    check.copy_from_slice(key_check);
    Ok(Sealed {
        params,
        salt,
        nonce,
        key_check: check,
        ciphertext,
    })
}

/// Compares two byte strings in time that depends only on their lengths.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Decrypts the entropy. A key-check mismatch means the passphrase is wrong; a failed
/// authentication with a matching key check means the file was modified.
pub(super) fn unseal(
    sealed: &Sealed,
    passphrase: &Passphrase,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let keys = derive_keys(passphrase, &sealed.params, &sealed.salt)
        .map_err(|e| VaultError::Corrupt(format!("key derivation failed: {e}")))?;
    let (key, key_check) = keys.split_at(KEY_LEN);
    if !constant_time_eq(key_check, &sealed.key_check) {
        return Err(VaultError::WrongPassphrase);
    }
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let aad = format::associated_data(&sealed.params, &sealed.salt);
    cipher
        .decrypt(
            XNonce::from_slice(&sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| {
            VaultError::Corrupt(
                "the encrypted seed failed authentication (the file was modified or damaged)"
                    .into(),
            )
        })
}
