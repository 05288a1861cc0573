// A Nostr Wallet Connect connection made in the browser: the app's key pair is made here, its
// secret goes only into the URI shown to the person (docs/pairing.md, "The wallet API").

import { schnorr } from '@noble/curves/secp256k1.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { delegationTarget, newAppRequest, signAppRequest, type SignedAppRequest } from './appRequest.js';

export const PERIODS = {
  day: 86_400,
  week: 7 * 86_400,
  /** The signer's "month" is a rolling 30 days (docs/apps.md). */
  month: 30 * 86_400,
  none: 0,
} as const;
export type PeriodName = keyof typeof PERIODS;

export interface NwcKeys {
  secret: Uint8Array;
  /** x-only, hex. */
  pubkey: string;
}

export function newNwcKeys(): NwcKeys {
  const secret = schnorr.utils.randomSecretKey();
  return { secret, pubkey: bytesToHex(schnorr.getPublicKey(secret)) };
}

/** The delegation the session's app key signs for a new connection. */
export function signDelegation(
  appKey: Uint8Array,
  nwcPubkey: string,
  budgetSat: number,
  periodSecs: number,
  expiresAt: number | undefined,
  nowMs = Date.now(),
): SignedAppRequest {
  const request = newAppRequest(
    'delegate_nwc',
    delegationTarget(nwcPubkey, periodSecs, expiresAt),
    budgetSat * 1000,
    nowMs,
  );
  return signAppRequest(request, appKey);
}

/** `nostr+walletconnect://<wallet_pubkey>?relay=<relay>[&relay=...]&secret=<hex>` (NIP-47). */
export function nwcUri(walletPubkey: string, relays: string[], secret: Uint8Array): string {
  const q = relays.map((r) => `relay=${encodeURIComponent(r)}`);
  q.push(`secret=${bytesToHex(secret)}`);
  return `nostr+walletconnect://${walletPubkey}?${q.join('&')}`;
}
