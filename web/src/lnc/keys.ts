// secp256k1 operations the protocol needs: public keys, ECDH as LNC defines it, and the
// SPAKE2 mask of the first act's ephemeral key.

import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from './bytes.js';

const Point = secp256k1.Point;
type Point = InstanceType<typeof Point>;
const ORDER = Point.Fn.ORDER;

/**
 * LNC's nothing-up-my-sleeve point N (try-and-increment from "Lightning Node Connect").
 * docs/pairing.md; LNC mailbox/noise.go `nBytes`.
 */
export const N_POINT_HEX = '0254a58cd0f31c008fd0bc9b2dd5ba586144933829f6da33ac4130b555fb5ea32c';
const N = Point.fromBytes(hexToBytes(N_POINT_HEX));

export class KeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyError';
  }
}

/** Parses a 33-byte compressed public key, checking that it is on the curve. */
export function parsePublicKey(pub: Uint8Array): Point {
  if (pub.length !== 33 || (pub[0] !== 0x02 && pub[0] !== 0x03)) {
    throw new KeyError('public key must be 33 bytes, compressed');
  }
  try {
    return Point.fromBytes(pub);
  } catch {
    throw new KeyError(`not a point on secp256k1: ${bytesToHex(pub)}`);
  }
}

export function assertPrivateKey(priv: Uint8Array): void {
  if (priv.length !== 32 || !secp256k1.utils.isValidSecretKey(priv)) {
    throw new KeyError('private key must be 32 bytes, in [1, n-1]');
  }
}

/** A new random private key (32 bytes), from crypto.getRandomValues. */
export function randomPrivateKey(): Uint8Array {
  return secp256k1.utils.randomSecretKey();
}

/** The compressed (33-byte) public key of a private key. */
export function publicKey(priv: Uint8Array): Uint8Array {
  assertPrivateKey(priv);
  return secp256k1.getPublicKey(priv, true);
}

/** `ECDH(priv, pub) = SHA-256(compressed(priv · pub))`, as lnd's keychain and LNC compute it. */
export function ecdh(priv: Uint8Array, pub: Uint8Array): Uint8Array {
  assertPrivateKey(priv);
  parsePublicKey(pub);
  return sha256(secp256k1.getSharedSecret(priv, pub, true));
}

/**
 * The stretched phrase as a scalar reduced mod n, as btcec's ModNScalar.SetByteSlice does
 * (big-endian; a longer slice would be cut to its first 32 bytes, but pw is always 32).
 */
function pwScalar(pw: Uint8Array): bigint {
  let x = 0n;
  for (const b of pw.subarray(0, 32)) x = (x << 8n) | BigInt(b);
  return x % ORDER;
}

function pwTimesN(pw: Uint8Array): Point {
  const s = pwScalar(pw);
  return s === 0n ? Point.ZERO : N.multiply(s);
}

/** `me = e + pw·N` (compressed). */
export function mask(ePub: Uint8Array, pw: Uint8Array): Uint8Array {
  const p = parsePublicKey(ePub).add(pwTimesN(pw));
  if (p.is0()) throw new KeyError('masked key is the point at infinity');
  return p.toBytes(true);
}

/** `e = me − pw·N` (compressed). */
export function unmask(me: Uint8Array, pw: Uint8Array): Uint8Array {
  const p = parsePublicKey(me).subtract(pwTimesN(pw));
  if (p.is0()) throw new KeyError('unmasked key is the point at infinity');
  return p.toBytes(true);
}
