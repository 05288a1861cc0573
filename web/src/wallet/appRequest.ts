// The request an app signs so the tenant's signer can tell a payment the tenant asked for from
// one the operator's node started on its own (docs/apps.md, "The signed request";
// crates/signer-protocol/src/app_request.rs, `AppRequest::digest`).

import { schnorr } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, hexToBytes } from '@noble/hashes/utils.js';

/** The domain separator of the digest (`TAG` in app_request.rs). */
export const APP_REQUEST_TAG = 'micronode/app-request/v1';

/** What an app may ask for. `delegate_nwc` is the browser's delegation to an NWC connection. */
export type AppMethod = 'pay_invoice' | 'keysend' | 'send_onchain' | 'delegate_nwc';

export interface AppRequest {
  method: AppMethod;
  /** pay_invoice: the payment hash (lowercase hex); delegate_nwc: `<app_pubkey>/<period_secs>/<expires_at or 0>`. */
  target: string;
  /** What the payee gets, in msat (a u64 on the Rust side; here a safe integer). */
  amount_msat: number;
  /** 16 random bytes, lowercase hex. */
  nonce: string;
  /** Unix seconds. */
  time: number;
}

export interface SignedAppRequest {
  request: AppRequest;
  /** BIP-340 signature, 64 bytes, lowercase hex. */
  signature: string;
}

const encoder = new TextEncoder();

function u64Decimal(n: number, what: string): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a whole number ≥ 0`);
  // BigInt's decimal form never uses an exponent, like Rust's u64::to_string.
  return BigInt(n).toString();
}

function lengthPrefixed(part: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + part.length);
  new DataView(out.buffer).setUint32(0, part.length, false);
  out.set(part, 4);
  return out;
}

/**
 * SHA-256 over the tag, the method, the target, the amount (decimal), the nonce and the time
 * (decimal), each preceded by its length as a u32 big-endian: exactly `AppRequest::digest`.
 */
export function appRequestDigest(request: AppRequest): Uint8Array {
  const parts = [
    APP_REQUEST_TAG,
    request.method,
    request.target,
    u64Decimal(request.amount_msat, 'amount_msat'),
    request.nonce,
    u64Decimal(request.time, 'time'),
  ].map((s) => lengthPrefixed(encoder.encode(s)));
  return sha256(concatBytes(...parts));
}

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return b;
}

/** A request with a fresh 16-byte nonce and the current time (target lower-cased, as Rust does). */
export function newAppRequest(
  method: AppMethod,
  target: string,
  amountMsat: number,
  nowMs: number = Date.now(),
): AppRequest {
  u64Decimal(amountMsat, 'amount_msat');
  return {
    method,
    target: target.toLowerCase(),
    amount_msat: amountMsat,
    nonce: bytesToHex(randomBytes(16)),
    time: Math.floor(nowMs / 1000),
  };
}

/** Signs with the app key (32-byte secret): BIP-340 over the digest, with fresh aux randomness. */
export function signAppRequest(request: AppRequest, appKey: Uint8Array): SignedAppRequest {
  const sig = schnorr.sign(appRequestDigest(request), appKey, randomBytes(32));
  return { request: { ...request }, signature: bytesToHex(sig) };
}

/** Whether `signature` is the x-only key's (hex) over the request. */
export function verifyAppRequest(signed: SignedAppRequest, xOnlyPubHex: string): boolean {
  try {
    return schnorr.verify(
      hexToBytes(signed.signature),
      appRequestDigest(signed.request),
      hexToBytes(xOnlyPubHex),
    );
  } catch {
    return false;
  }
}

/** The x-only public key (hex) of an app key, as tokens and NWC name it. */
export function appPublicKey(appKey: Uint8Array): string {
  return bytesToHex(schnorr.getPublicKey(appKey));
}

/** The delegation target of an NWC connection (docs/pairing.md, "The wallet API"). */
export function delegationTarget(appPubkey: string, periodSecs: number, expiresAt?: number): string {
  return `${appPubkey.toLowerCase()}/${u64Decimal(periodSecs, 'period_secs')}/${u64Decimal(expiresAt ?? 0, 'expires_at')}`;
}
