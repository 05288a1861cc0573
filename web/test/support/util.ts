import { bytesToHex, hexToBytes } from '../../src/lnc/bytes.js';

export const hex = bytesToHex;
export const unhex = hexToBytes;

/** An ephemeral-key generator that hands out the given keys in order, then fails. */
export function fixedKeys(...keys: Uint8Array[]): () => Uint8Array {
  const left = keys.slice();
  return () => {
    const k = left.shift();
    if (!k) throw new Error('ephemeral key generator called more often than expected');
    return k;
  };
}

export function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return b;
}
