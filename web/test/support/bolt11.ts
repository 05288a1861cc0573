// A small BOLT 11 encoder for tests and the fake node: signed invoices on any network, so the
// browser's decoder (src/wallet/invoice.ts) can be checked against invoices whose every field
// and key are known. Test-only.

import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, hexToBytes } from '@noble/hashes/utils.js';

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymod(values: number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >> i) & 1) chk ^= GEN[i]!;
  }
  return chk;
}

function hrpExpand(hrp: string): number[] {
  const out: number[] = [];
  for (const c of hrp) out.push(c.charCodeAt(0) >> 5);
  out.push(0);
  for (const c of hrp) out.push(c.charCodeAt(0) & 31);
  return out;
}

function checksum(hrp: string, data: number[]): number[] {
  const mod = polymod([...hrpExpand(hrp), ...data, 0, 0, 0, 0, 0, 0]) ^ 1;
  return [0, 1, 2, 3, 4, 5].map((i) => (mod >> (5 * (5 - i))) & 31);
}

export function bytesToWords(bytes: Uint8Array): number[] {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push((acc >> bits) & 31);
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out.push((acc << (5 - bits)) & 31);
  return out;
}

function wordsToBytesPadded(words: number[]): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const w of words) {
    acc = (acc << 5) | w;
    bits += 5;
    while (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out.push((acc << (8 - bits)) & 0xff);
  return Uint8Array.from(out);
}

function intToWords(n: number, minWords = 1): number[] {
  const out: number[] = [];
  while (n > 0) {
    out.unshift(n % 32);
    n = Math.floor(n / 32);
  }
  while (out.length < minWords) out.unshift(0);
  return out;
}

function tag(code: string, words: number[]): number[] {
  return [CHARSET.indexOf(code), (words.length >> 5) & 31, words.length & 31, ...words];
}

const HRP: Record<string, string> = { bitcoin: 'bc', testnet: 'tb', signet: 'tbs', regtest: 'bcrt' };

function amountPart(msat: number): string {
  if (msat % 100_000 === 0) return `${msat / 100_000}u`;
  if (msat % 100 === 0) return `${msat / 100}n`;
  return `${msat * 10}p`;
}

export interface EncodeOptions {
  network?: 'bitcoin' | 'testnet' | 'signet' | 'regtest';
  amountMsat?: number | null;
  paymentHash: string;
  paymentSecret?: string;
  description?: string;
  descriptionHash?: string;
  expirySecs?: number;
  timestamp?: number;
  /** Include the payee's key as an `n` field. */
  withPayee?: boolean;
  /** Signing key (32 bytes): the payee node's. */
  nodeKey: Uint8Array;
  /** Name this key's public key in `n` instead of nodeKey's (a forgery, for tests). */
  claimedPayeeKey?: Uint8Array;
}

/** A signed BOLT 11 invoice. */
export function encodeInvoice(o: EncodeOptions): string {
  const hrp = `ln${HRP[o.network ?? 'regtest']}${o.amountMsat ? amountPart(o.amountMsat) : ''}`;
  const data: number[] = intToWords(o.timestamp ?? Math.floor(Date.now() / 1000), 7);
  data.push(...tag('p', bytesToWords(hexToBytes(o.paymentHash))));
  data.push(...tag('s', bytesToWords(hexToBytes(o.paymentSecret ?? '11'.repeat(32)))));
  if (o.descriptionHash !== undefined) data.push(...tag('h', bytesToWords(hexToBytes(o.descriptionHash))));
  else data.push(...tag('d', bytesToWords(new TextEncoder().encode(o.description ?? ''))));
  if (o.expirySecs !== undefined) data.push(...tag('x', intToWords(o.expirySecs)));
  data.push(...tag('c', intToWords(18)));
  data.push(...tag('9', intToWords(0x4100, 4))); // var_onion_optin + payment_secret
  if (o.withPayee) {
    data.push(...tag('n', bytesToWords(secp256k1.getPublicKey(o.claimedPayeeKey ?? o.nodeKey, true))));
  }
  const digest = sha256(concatBytes(new TextEncoder().encode(hrp), wordsToBytesPadded(data)));
  const rec = secp256k1.sign(digest, o.nodeKey, { prehash: false, format: 'recovered' });
  const sig = concatBytes(rec.subarray(1), rec.subarray(0, 1));
  data.push(...bytesToWords(sig));
  return `${hrp}1${[...data, ...checksum(hrp, data)].map((w) => CHARSET[w]).join('')}`;
}
