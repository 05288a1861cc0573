//! A secret sealed for whoever knows the phrase: how the tenant's signer hands the browser the
//! app's signing key through the node without the node (the operator) learning it.
//!
//! The node runs the handshake with only the stretched password and the stream ids, neither of
//! which gives back the 110-bit entropy; the seal's key is derived from the entropy itself:
//! `HKDF-SHA256(salt = "micronode/lnc/sealed-app-key/v1", ikm = entropy)`, then
//! ChaCha20-Poly1305 with a random 12-byte nonce, sent in front: `nonce ‖ ciphertext ‖ tag`.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::cipher::MAC_LEN;
use crate::error::{LncError, Result};
use crate::phrase::Phrase;

const SALT: &[u8] = b"micronode/lnc/sealed-app-key/v1";
const NONCE_LEN: usize = 12;

fn seal_key(phrase: &Phrase) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(SALT), phrase.entropy())
        .expand(&[], key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 length");
    key
}

/// Seals `secret` for the holder of `phrase`.
pub fn seal_for_phrase(phrase: &Phrase, secret: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    seal_with_nonce(phrase, secret, nonce)
}

/// [`seal_for_phrase`] with a chosen nonce (for test vectors only: never reuse one).
pub fn seal_with_nonce(phrase: &Phrase, secret: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    let key = seal_key(phrase);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), secret)
        .expect("ChaCha20-Poly1305 encrypts any short message");
    let mut out = nonce.to_vec();
    out.extend(sealed);
    out
}

/// Opens what [`seal_for_phrase`] sealed; a wrong phrase or a changed byte fails.
pub fn open_with_phrase(phrase: &Phrase, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + MAC_LEN {
        return Err(LncError::Length {
            what: "a sealed key",
            got: sealed.len(),
            expected: NONCE_LEN + MAC_LEN,
        });
    }
    let key = seal_key(phrase);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    cipher
        .decrypt(
            Nonce::from_slice(&sealed[..NONCE_LEN]),
            &sealed[NONCE_LEN..],
        )
        .map(Zeroizing::new)
        .map_err(|_| LncError::Sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_phrase_opens_it() {
        let phrase = Phrase::generate();
        let sealed = seal_for_phrase(&phrase, &[9u8; 32]);
        assert_eq!(
            open_with_phrase(&phrase, &sealed).unwrap().as_slice(),
            &[9u8; 32]
        );
        let other = Phrase::generate();
        assert!(matches!(
            open_with_phrase(&other, &sealed),
            Err(LncError::Sealed)
        ));
        let mut changed = sealed.clone();
        changed[20] ^= 1;
        assert!(matches!(
            open_with_phrase(&phrase, &changed),
            Err(LncError::Sealed)
        ));
        assert!(matches!(
            open_with_phrase(&phrase, &sealed[..10]),
            Err(LncError::Length { .. })
        ));
    }
}
