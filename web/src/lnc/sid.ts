// Mailbox stream ids (docs/pairing.md, "Stream ids"; LNC mailbox/conndata.go SID() and
// mailbox/server.go GetSID()).

import { hmac } from '@noble/hashes/hmac.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { utf8 } from './bytes.js';
import { ecdh } from './keys.js';
import { PairingError } from './errors.js';
import { ENTROPY_BYTES } from './phrase.js';

export const SID_BYTES = 64;

/** The two streams of a session: the node writes `serverToClient` and reads `clientToServer`. */
export interface StreamIds {
  /** The stream the node writes and the browser reads (= the sid itself). */
  serverToClient: Uint8Array;
  /** The stream the browser writes and the node reads (the sid with byte 63 xor 0x01). */
  clientToServer: Uint8Array;
}

/** Before pairing: `sid = SHA-512(entropy)`. */
export function sidFromEntropy(entropy: Uint8Array): Uint8Array {
  if (entropy.length !== ENTROPY_BYTES) {
    throw new PairingError('bad_entropy', 'This is not a pairing phrase.', {
      detail: `entropy must be ${ENTROPY_BYTES} bytes, got ${entropy.length}`,
    });
  }
  return sha512(entropy);
}

/**
 * After pairing: `sid = SHA-512(HMAC-SHA256(key = ECDH(local, remote), msg = "mailbox"))`.
 * Both sides get the same sid, since ECDH is symmetric.
 * @param localPriv our 32-byte static private key
 * @param remotePub the other side's 33-byte compressed static public key
 */
export function sidPaired(localPriv: Uint8Array, remotePub: Uint8Array): Uint8Array {
  return sha512(hmac(sha256, ecdh(localPriv, remotePub), utf8('mailbox')));
}

/** The two stream ids of a sid. */
export function streamIds(sid: Uint8Array): StreamIds {
  if (sid.length !== SID_BYTES) throw new RangeError(`sid must be ${SID_BYTES} bytes`);
  const clientToServer = sid.slice();
  clientToServer[63]! ^= 0x01;
  return { serverToClient: sid.slice(), clientToServer };
}
