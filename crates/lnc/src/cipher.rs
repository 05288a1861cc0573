//! Noise's cipher and symmetric states as LNC sets them up: ChaCha20-Poly1305 with a 4-zero-byte
//! plus little-endian counter nonce, a key that starts as 32 zero bytes (so every
//! `EncryptAndHash` encrypts), and a key rotation every 1,000 messages through HKDF with a salt.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{LncError, Result};

/// The authentication tag's length.
pub const MAC_LEN: usize = 16;
/// Messages under one key before it rotates.
const KEY_ROTATION_INTERVAL: u64 = 1000;

/// HKDF-SHA256 with an empty info, expanded to two 32-byte halves.
pub(crate) fn hkdf_two(salt: &[u8; 32], ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut okm = [0u8; 64];
    hk.expand(&[], &mut okm)
        .expect("64 bytes is a valid HKDF-SHA256 length");
    let mut first = [0u8; 32];
    let mut second = [0u8; 32];
    first.copy_from_slice(&okm[..32]);
    second.copy_from_slice(&okm[32..]);
    okm.zeroize();
    (first, second)
}

/// One direction's key, nonce counter and rotation salt.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct CipherState {
    key: [u8; 32],
    salt: [u8; 32],
    nonce: u64,
}

impl CipherState {
    pub(crate) fn new(key: [u8; 32], salt: [u8; 32]) -> CipherState {
        CipherState {
            key,
            salt,
            nonce: 0,
        }
    }

    fn nonce_bytes(&self) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.nonce.to_le_bytes());
        nonce
    }

    fn advance(&mut self) {
        self.nonce += 1;
        if self.nonce == KEY_ROTATION_INTERVAL {
            let (salt, key) = hkdf_two(&self.salt, &self.key);
            self.salt = salt;
            self.key = key;
            self.nonce = 0;
        }
    }

    /// Encrypts; the nonce advances only when it succeeds. ChaCha20-Poly1305 refuses only
    /// messages of 256 GiB or more, which no frame or act carries; still a typed error.
    pub(crate) fn encrypt(&mut self, ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key));
        let out = cipher
            .encrypt(
                Nonce::from_slice(&self.nonce_bytes()),
                Payload {
                    msg: plaintext,
                    aad: ad,
                },
            )
            .map_err(|_| LncError::Encrypt(plaintext.len()))?;
        self.advance();
        Ok(out)
    }

    /// Decrypts; the nonce advances whether or not it succeeds (a failure ends the connection).
    pub(crate) fn decrypt(&mut self, ad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key));
        let out = cipher
            .decrypt(
                Nonce::from_slice(&self.nonce_bytes()),
                Payload {
                    msg: ciphertext,
                    aad: ad,
                },
            )
            .ok();
        self.advance();
        out
    }
}

/// The handshake's chaining key, running hash and current cipher.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct SymmetricState {
    pub(crate) chaining_key: [u8; 32],
    pub(crate) hash: [u8; 32],
    cipher: CipherState,
}

impl SymmetricState {
    pub(crate) fn new(protocol_name: &str) -> SymmetricState {
        let hash: [u8; 32] = Sha256::digest(protocol_name.as_bytes()).into();
        SymmetricState {
            chaining_key: hash,
            hash,
            cipher: CipherState::new([0u8; 32], [0u8; 32]),
        }
    }

    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        let mut hasher = Sha256::new();
        hasher.update(self.hash);
        hasher.update(data);
        self.hash = hasher.finalize().into();
    }

    pub(crate) fn mix_key(&mut self, ikm: &[u8]) {
        let (chaining_key, key) = hkdf_two(&self.chaining_key, ikm);
        self.chaining_key = chaining_key;
        self.cipher = CipherState::new(key, [0u8; 32]);
    }

    pub(crate) fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let ad = self.hash;
        let ciphertext = self.cipher.encrypt(&ad, plaintext)?;
        self.mix_hash(&ciphertext);
        Ok(ciphertext)
    }

    pub(crate) fn decrypt_and_hash(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let ad = self.hash;
        let plaintext = self
            .cipher
            .decrypt(&ad, ciphertext)
            .ok_or(LncError::HandshakeAuth)?;
        self.mix_hash(ciphertext);
        Ok(plaintext)
    }

    /// The two transport ciphers: (initiator's sending, initiator's receiving), each salted
    /// with the final chaining key.
    pub(crate) fn split(&self) -> (CipherState, CipherState) {
        let (first, second) = hkdf_two(&self.chaining_key, &[]);
        (
            CipherState::new(first, self.chaining_key),
            CipherState::new(second, self.chaining_key),
        )
    }
}
