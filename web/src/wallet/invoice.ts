// BOLT 11 invoices decoded in the browser: the signed payment request names the payment hash
// and amount read here, never the node's reading (docs/pairing.md, "The wallet API").
// light-bolt11-decoder parses the fields (and checks the bech32 checksum); the signature is
// checked here: against the payee key (`n`) when the invoice names one, else by recovering it.

import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, hexToBytes } from '@noble/hashes/utils.js';
import { decode } from 'light-bolt11-decoder';

export type InvoiceNetwork = 'bitcoin' | 'testnet' | 'signet' | 'regtest' | 'simnet';

export interface Invoice {
  /** The invoice as given, lower case, without a `lightning:` prefix. */
  bolt11: string;
  network: InvoiceNetwork;
  /** The amount asked, in msat; null for an invoice without an amount. */
  amountMsat: number | null;
  /** Lowercase hex, 32 bytes. */
  paymentHash: string;
  description: string | null;
  /** Set when the invoice commits to a description by its hash instead of including it. */
  descriptionHash: string | null;
  /** Unix seconds. */
  createdAt: number;
  expiresAt: number;
  /** The payee's node id (33 bytes hex), from `n` or recovered from the signature. */
  payee: string;
}

export type InvoiceErrorCode = 'not_invoice' | 'bad_signature' | 'too_large';

export class InvoiceError extends Error {
  constructor(
    readonly code: InvoiceErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'InvoiceError';
  }
}

const PREFIX_NETWORK: Record<string, InvoiceNetwork> = {
  bc: 'bitcoin',
  tb: 'testnet',
  tbs: 'signet',
  bcrt: 'regtest',
  sb: 'simnet',
};

/** The invoice network of a node's network name (`bitcoin`, `mainnet`, `testnet`, ...). */
export function invoiceNetworkOf(nodeNetwork: string): InvoiceNetwork | null {
  const n = nodeNetwork.toLowerCase();
  if (n === 'bitcoin' || n === 'mainnet' || n === 'main') return 'bitcoin';
  if (n === 'testnet' || n === 'testnet3' || n === 'testnet4') return 'testnet';
  if (n === 'signet' || n === 'regtest' || n === 'simnet') return n;
  return null;
}

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const SIGNATURE_WORDS = 104;
const CHECKSUM_WORDS = 6;

/** 5-bit words to bytes, the last byte padded with zero bits (BOLT 11's signing rule). */
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

/** The payee key that signed the invoice; throws if `expected` is given and did not sign it. */
function checkSignature(bolt11: string, signatureHex: string, expected: string | null): string {
  const sep = bolt11.lastIndexOf('1');
  const hrp = bolt11.slice(0, sep);
  const data = bolt11.slice(sep + 1);
  const words = [...data].map((c) => CHARSET.indexOf(c));
  if (words.some((w) => w < 0)) throw new InvoiceError('not_invoice', 'bad character');
  const signed = words.slice(0, words.length - CHECKSUM_WORDS - SIGNATURE_WORDS);
  const digest = sha256(concatBytes(new TextEncoder().encode(hrp), wordsToBytesPadded(signed)));
  const sig = hexToBytes(signatureHex);
  if (sig.length !== 65 || sig[64]! > 3) throw new InvoiceError('bad_signature', 'bad signature length');
  const compact = sig.subarray(0, 64);
  if (expected !== null) {
    if (!secp256k1.verify(compact, digest, hexToBytes(expected), { prehash: false, lowS: false })) {
      throw new InvoiceError('bad_signature', 'the signature is not the payee’s');
    }
    return expected;
  }
  try {
    const point = secp256k1.Signature.fromBytes(compact, 'compact')
      .addRecoveryBit(sig[64]!)
      .recoverPublicKey(digest);
    return bytesToHex(point.toBytes(true));
  } catch {
    throw new InvoiceError('bad_signature', 'no key recovers from the signature');
  }
}

/**
 * Decodes and checks a BOLT 11 invoice. Accepts upper or lower case and a `lightning:` prefix.
 * @throws InvoiceError
 */
export function decodeInvoice(text: string): Invoice {
  let bolt11 = text.trim().replace(/\s+/g, '').toLowerCase();
  if (bolt11.startsWith('lightning:')) bolt11 = bolt11.slice('lightning:'.length);
  if (bolt11.length > 7089) throw new InvoiceError('too_large', 'too long for an invoice');
  if (!/^ln[a-z0-9]+1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]+$/.test(bolt11)) {
    throw new InvoiceError('not_invoice', 'not a BOLT 11 invoice');
  }
  let d: ReturnType<typeof decode>;
  try {
    d = decode(bolt11);
  } catch (e) {
    throw new InvoiceError('not_invoice', e instanceof Error ? e.message : String(e));
  }
  const section = (name: string): unknown => d.sections.find((s) => s.name === name)?.['value' as never];
  const prefix = d.sections.find((s) => s.name === 'coin_network') as { letters: string } | undefined;
  const network = prefix ? PREFIX_NETWORK[prefix.letters] : undefined;
  const paymentHash = section('payment_hash');
  const timestamp = section('timestamp');
  const signature = section('signature');
  if (!network || typeof paymentHash !== 'string' || !/^[0-9a-f]{64}$/.test(paymentHash)) {
    throw new InvoiceError('not_invoice', 'no network or payment hash');
  }
  if (typeof timestamp !== 'number' || typeof signature !== 'string') {
    throw new InvoiceError('not_invoice', 'no timestamp or signature');
  }
  const amount = section('amount');
  let amountMsat: number | null = null;
  if (typeof amount === 'string') {
    const big = BigInt(amount);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvoiceError('too_large', 'amount too large');
    amountMsat = Number(big);
    if (amountMsat === 0) amountMsat = null;
  }
  const payeeTag = section('payee');
  const payee = checkSignature(
    bolt11,
    signature,
    typeof payeeTag === 'string' && /^0[23][0-9a-f]{64}$/.test(payeeTag) ? payeeTag : null,
  );
  const expiry = section('expiry');
  const description = section('description');
  const descriptionHash = section('description_hash');
  return {
    bolt11,
    network,
    amountMsat,
    paymentHash,
    description: typeof description === 'string' ? description : null,
    descriptionHash: typeof descriptionHash === 'string' ? descriptionHash : null,
    createdAt: timestamp,
    expiresAt: timestamp + (typeof expiry === 'number' ? expiry : 3600),
    payee,
  };
}
