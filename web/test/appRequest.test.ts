// The app request digest and signature (src/wallet/appRequest.ts) against the Rust definition
// (crates/signer-protocol/src/app_request.rs, `AppRequest::digest`).

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { schnorr } from '@noble/curves/secp256k1.js';
import { describe, expect, test } from 'vitest';
import {
  appPublicKey,
  appRequestDigest,
  delegationTarget,
  newAppRequest,
  signAppRequest,
  verifyAppRequest,
  type AppRequest,
} from '../src/wallet/appRequest.js';
import { hex, unhex } from './support/util.js';

const RUST_VECTORS = fileURLToPath(
  new URL('../../crates/signer-protocol/tests/app_request_vectors.json', import.meta.url),
);

interface RustVector {
  secret: string;
  /** The x-only public key of `secret` (hex). */
  public?: string;
  request: AppRequest;
  digest: string;
  signature?: string;
}

describe('app request digest', () => {
  // Computed independently (Python hashlib, the same construction as the Rust `digest`: the tag
  // and the five fields, each after its u32 big-endian length; amount and time in decimal), so
  // the check stands even where the Rust-generated file below is missing. The second is a
  // delegation, which the Rust vectors do not cover yet.
  test.each([
    [
      { method: 'pay_invoice', target: 'ab'.repeat(32), amount_msat: 1_000_000, nonce: '00112233445566778899aabbccddeeff', time: 1796554040 },
      '722e8b8386af176ec0b450a04ee6bef30a3dd02834bb88fda76e10e16e3b9e77',
    ],
    [
      { method: 'delegate_nwc', target: `${'cd'.repeat(32)}/86400/0`, amount_msat: 1_000_000, nonce: '0f'.repeat(16), time: 1700000000 },
      '5f00e437da16853554e9c007c002eafe30af0cafb749f66484d93bb0a251d0c6',
    ],
  ] as [AppRequest, string][])('%o', (request, digest) => {
    expect(hex(appRequestDigest(request))).toBe(digest);
  });

  test.runIf(existsSync(RUST_VECTORS))('matches crates/signer-protocol/tests/app_request_vectors.json', () => {
    const vectors = JSON.parse(readFileSync(RUST_VECTORS, 'utf8')) as RustVector[];
    expect(vectors.length).toBeGreaterThan(0);
    for (const v of vectors) {
      expect(hex(appRequestDigest(v.request)), JSON.stringify(v.request)).toBe(v.digest);
      const pub = appPublicKey(unhex(v.secret));
      if (v.public) expect(pub).toBe(v.public);
      if (v.signature) expect(verifyAppRequest({ request: v.request, signature: v.signature }, pub)).toBe(true);
      expect(verifyAppRequest(signAppRequest(v.request, unhex(v.secret)), pub)).toBe(true);
    }
  });

  test('amounts and times outside u64-safe integers are refused', () => {
    const r = newAppRequest('pay_invoice', 'ab'.repeat(32), 1);
    expect(() => appRequestDigest({ ...r, amount_msat: 1.5 })).toThrow(RangeError);
    expect(() => appRequestDigest({ ...r, amount_msat: -1 })).toThrow(RangeError);
    expect(() => appRequestDigest({ ...r, amount_msat: 2 ** 60 })).toThrow(RangeError);
    // Large but safe amounts are written out in full, never as 1e+21.
    expect(() => appRequestDigest({ ...r, amount_msat: Number.MAX_SAFE_INTEGER })).not.toThrow();
  });
});

describe('signing', () => {
  const key = new Uint8Array(32).fill(7);

  test('a new request: lowercase target, 16-byte nonce, time in seconds', () => {
    const r = newAppRequest('pay_invoice', 'AB'.repeat(32), 1000, 1_700_000_000_999);
    expect(r.target).toBe('ab'.repeat(32));
    expect(r.nonce).toMatch(/^[0-9a-f]{32}$/);
    expect(r.time).toBe(1_700_000_000);
    expect(newAppRequest('pay_invoice', 'ab', 1).nonce).not.toBe(r.nonce);
  });

  test('the signature binds every field and the key (as the Rust test does)', () => {
    const signed = signAppRequest(newAppRequest('pay_invoice', 'ab'.repeat(32), 1000), key);
    const pub = appPublicKey(key);
    expect(pub).toBe(hex(schnorr.getPublicKey(key)));
    expect(signed.signature).toMatch(/^[0-9a-f]{128}$/);
    expect(verifyAppRequest(signed, pub)).toBe(true);
    expect(schnorr.verify(unhex(signed.signature), appRequestDigest(signed.request), unhex(pub))).toBe(true);
    for (const change of [
      { amount_msat: 1001 },
      { method: 'keysend' as const },
      { target: 'cd'.repeat(32) },
      { nonce: '00'.repeat(16) },
      { time: signed.request.time + 1 },
    ]) {
      expect(verifyAppRequest({ ...signed, request: { ...signed.request, ...change } }, pub)).toBe(false);
    }
    expect(verifyAppRequest(signed, appPublicKey(new Uint8Array(32).fill(8)))).toBe(false);
    expect(verifyAppRequest(signed, 'not a key')).toBe(false);
  });

  test('the JSON shape the node expects', () => {
    const signed = signAppRequest(newAppRequest('pay_invoice', 'ab'.repeat(32), 1000, 1_700_000_000_000), key);
    const json = JSON.parse(JSON.stringify(signed));
    expect(Object.keys(json).sort()).toEqual(['request', 'signature']);
    expect(Object.keys(json.request).sort()).toEqual(['amount_msat', 'method', 'nonce', 'target', 'time']);
    expect(json.request.amount_msat).toBe(1000);
    expect(json.request.time).toBe(1_700_000_000);
  });

  test('the NWC delegation target', () => {
    expect(delegationTarget('AB'.repeat(32), 86400)).toBe(`${'ab'.repeat(32)}/86400/0`);
    expect(delegationTarget('ab'.repeat(32), 0, 1796554040)).toBe(`${'ab'.repeat(32)}/0/1796554040`);
  });
});
