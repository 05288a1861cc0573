// The app key sealed for the phrase (docs/pairing.md, "Auth data"; crates/lnc/src/seal.rs):
// HKDF-SHA256(salt = "micronode/lnc/sealed-app-key/v1", ikm = entropy) keys ChaCha20-Poly1305;
// sealed = nonce (12) ‖ ciphertext ‖ tag (16).

import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes } from '@noble/hashes/utils.js';

const SALT = new TextEncoder().encode('micronode/lnc/sealed-app-key/v1');
const NONCE_LEN = 12;
const TAG_LEN = 16;

export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealError';
  }
}

function sealKey(entropy: Uint8Array): Uint8Array {
  return hkdf(sha256, entropy, SALT, new Uint8Array(0), 32);
}

/** Opens a sealed secret with the phrase's 14 bytes of entropy. @throws SealError */
export function openSealed(entropy: Uint8Array, sealed: Uint8Array): Uint8Array {
  if (sealed.length < NONCE_LEN + TAG_LEN) throw new SealError('the sealed key is too short');
  try {
    return chacha20poly1305(sealKey(entropy), sealed.subarray(0, NONCE_LEN)).decrypt(
      sealed.subarray(NONCE_LEN),
    );
  } catch {
    throw new SealError('the sealed key does not open with this phrase');
  }
}

/** Seals a secret for the phrase (what the signer does; here for tests and fakes). */
export function sealForEntropy(entropy: Uint8Array, secret: Uint8Array, nonce?: Uint8Array): Uint8Array {
  const n = nonce ?? crypto.getRandomValues(new Uint8Array(NONCE_LEN));
  if (n.length !== NONCE_LEN) throw new SealError('the nonce must be 12 bytes');
  return concatBytes(n, chacha20poly1305(sealKey(entropy), n).encrypt(secret));
}
