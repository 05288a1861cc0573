// The sealed app key against crates/lnc/tests/vectors.json's `seal` section.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { openSealed, sealForEntropy, SealError } from '../src/wallet/seal.js';
import { hex, unhex } from './support/util.js';

const path = process.env.LNC_VECTORS ?? fileURLToPath(new URL('../../crates/lnc/tests/vectors.json', import.meta.url));
const vectors = JSON.parse(readFileSync(path, 'utf8')) as {
  seal: { entropy: string; secret: string; sealed: string }[];
};

test('opens every sealed vector, and seals to the same bytes with its nonce', () => {
  expect(vectors.seal.length).toBeGreaterThan(0);
  for (const v of vectors.seal) {
    expect(hex(openSealed(unhex(v.entropy), unhex(v.sealed)))).toBe(v.secret);
    const sealed = unhex(v.sealed);
    expect(hex(sealForEntropy(unhex(v.entropy), unhex(v.secret), sealed.subarray(0, 12)))).toBe(v.sealed);
  }
});

test('another phrase, a changed byte or a short value fails', () => {
  const v = vectors.seal[0]!;
  const other = vectors.seal.find((x) => x.entropy !== v.entropy)!;
  expect(() => openSealed(unhex(other.entropy), unhex(v.sealed))).toThrow(SealError);
  const changed = unhex(v.sealed);
  changed[20]! ^= 1;
  expect(() => openSealed(unhex(v.entropy), changed)).toThrow(SealError);
  expect(() => openSealed(unhex(v.entropy), unhex(v.sealed).subarray(0, 10))).toThrow(SealError);
});
