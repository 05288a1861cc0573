// Every error the wallet can meet, in plain words for the person using it.

import { PairingError } from '../lnc/errors.js';
import { AuthDataError } from './authData.js';
import { InvoiceError } from './invoice.js';
import { RpcError } from './rpc.js';
import { SealError } from './seal.js';
import { StorageError } from './storage.js';

/** The node's error codes (crates/proto ErrorCode, plus the tunnel's own). */
export const NODE_ERRORS: Record<string, string> = {
  INVALID_INPUT: 'Your node did not accept what was entered. Check the amounts and try again.',
  INVALID_ARGUMENT: 'Your node did not accept what was entered. Check the amounts and try again.',
  BAD_REQUEST: 'Your node did not understand this request. Reload the page and try again.',
  UNKNOWN_METHOD:
    'Your node does not offer this yet. It may run an older version; ask your provider to update it.',
  UNKNOWN_PEER: 'The other node is not connected right now.',
  UNKNOWN_CHANNEL: 'That channel does not exist any more.',
  UNKNOWN_PAYMENT: 'Your node knows no such payment.',
  INSUFFICIENT_FUNDS: 'You do not have enough money available for this.',
  DUPLICATE_PAYMENT: 'This request was already paid, or its payment is still on its way.',
  CHANNEL_ERROR: 'Your node could not change its channel right now.',
  PAYMENT_ERROR: 'The payment did not go through.',
  WALLET_ERROR: 'Your node’s on-chain wallet could not do this.',
  CONNECTION_FAILED: 'Your node could not connect to the other node.',
  CHAIN_UNAVAILABLE: 'Your node cannot reach the Bitcoin network right now. Try again later.',
  SIGNER_UNAVAILABLE: 'Your keys could not sign this right now. Try again in a moment.',
  SIGNER_OFFLINE:
    'Your signer is offline, so nothing can be paid right now. Your money is safe; start your signer and try again.',
  SIGNER_POLICY_REFUSED: 'Your signer refused this payment.',
  SIGNER_REVOKED: 'You revoked this node’s access to your keys, so it can no longer move your money.',
  NOT_RUNNING: 'Your node is stopping or not running. Try again in a few minutes.',
  TIMEOUT: 'Your node ran out of time waiting. It may still finish: check History before trying again.',
  INTERNAL: 'Something went wrong inside your node. Try again; if it keeps happening, contact your provider.',
  UNAUTHENTICATED: 'Your node did not accept this device’s access. Pair again with a new phrase.',
  TOKEN_MISSING: 'Your node did not accept this device’s access. Pair again with a new phrase.',
  TOKEN_INVALID: 'Your node did not accept this device’s access. Pair again with a new phrase.',
  TOKEN_EXPIRED: 'This device’s access has expired. Pair again with a new phrase.',
  TOKEN_REVOKED: 'This device’s access was revoked. Pair again with a new phrase if you still want it.',
  TOKEN_WRONG_TENANT: 'This device’s access belongs to another node. Pair again with a new phrase.',
  METHOD_NOT_ALLOWED: 'This device is not allowed to do that. Its pairing did not include this right.',
  BUDGET_EXCEEDED: 'This would go over the spending limit set for this device.',
  TOKENS_DISABLED: 'Your node is not set up for paired devices.',
  UNKNOWN_TOKEN: 'Your node does not know this device’s access. Pair again with a new phrase.',
  UNKNOWN_TENANT: 'Your node is not running right now. Try again later or contact your provider.',
  TENANT_SUSPENDED: 'Your provider has suspended your node. Contact them; your money stays under your keys.',
  TENANT_EXISTS: 'That name is already taken.',
  TENANT_HAS_FUNDS: 'Your node still holds money in channels.',
  RATE_LIMITED: 'Too many requests in a short time. Wait a minute and try again.',
  RESOURCE_EXHAUSTED: 'Your node’s answer was too large to send. Try again; if it keeps happening, contact your provider.',
  // Made by this page.
  NO_ANSWER: 'Your node did not answer in time. Check your connection and try again.',
  CONNECTION_LOST: 'The connection to your node dropped before it answered.',
  CLOSED: 'The wallet is locked. Unlock it to continue.',
  TOO_LARGE: 'This request is too large to send.',
};

/** The signer's refusal rules (docs/apps.md, "What the signer checks"), in plain words. */
const SIGNER_RULES: [string, string][] = [
  ['app-request-missing', 'Your signer refused: the payment did not come with this device’s signed request.'],
  ['app-token-invalid', 'Your signer did not recognise this device’s access. Pair again with a new phrase.'],
  ['app-request-signature', 'Your signer refused: the payment request was not signed by this device’s key.'],
  ['app-not-allowed', 'Your signer refused: this device is no longer allowed to pay (revoked, expired, or never allowed).'],
  ['app-request-mismatch', 'Your signer refused: the payment your node tried was not the one you approved. Nothing was paid.'],
  ['app-request-stale', 'Your signer refused: the approval is too old. Check this device’s clock and try again.'],
  ['app-request-replayed', 'Your signer refused: this approval was already used. Try again to make a new one.'],
  ['app-budget-exceeded', 'This would go over the spending limit you set for this device at your signer.'],
];

/** LDK's payment failure reasons and the node's own wording, in plain words. */
const FAILURE_REASONS: [RegExp, string][] = [
  [/route.?not.?found|no route/i, 'No path was found to the person you are paying. They may be offline, or your channels cannot reach them.'],
  [/retries.?exhausted/i, 'Every path to the person you are paying was tried and failed. Try again later, or a smaller amount.'],
  [/recipient.?rejected/i, 'The person you are paying refused it (their request may have been paid or cancelled).'],
  [/payment.?expired|invoice expired/i, 'The payment request expired before it could be paid. Ask for a new one.'],
  [/user.?abandoned/i, 'The payment was stopped before it finished.'],
  [/unknown.?required.?features/i, 'The payment request needs something this node does not support.'],
  [/interrupted/i, 'Your node restarted before the payment left it. Nothing was paid.'],
  [/unexpected.?error|unknown/i, 'The payment failed for a reason your node could not tell.'],
];

/** A payment's failure reason in plain words. */
export function failureReason(reason: string | undefined | null): string {
  if (!reason) return 'The payment failed for a reason your node could not tell.';
  for (const [re, text] of FAILURE_REASONS) if (re.test(reason)) return text;
  return `The payment did not go through (your node said: ${reason}).`;
}

const INVOICE_ERRORS: Record<string, string> = {
  not_invoice:
    'This is not a Lightning payment request. It should start with “lnbc” (or “lntb”/“lnbcrt” on test networks).',
  bad_signature: 'This payment request is damaged or was changed after it was made. Ask for a new one.',
  too_large: 'This payment request asks for more than can be paid at once.',
};

/** Plain words for any error thrown in the wallet. */
export function messageFor(e: unknown): string {
  if (e instanceof RpcError) {
    if (e.code === 'SIGNER_POLICY_REFUSED' || e.code === 'BUDGET_EXCEEDED') {
      for (const [rule, text] of SIGNER_RULES) if (e.message.includes(rule)) return text;
    }
    if (e.code === 'CONNECTION_LOST' && (e.method === 'pay_invoice' || e.method === 'nwc_create')) {
      return `${NODE_ERRORS.CONNECTION_LOST} It may still have gone through: check ${e.method === 'pay_invoice' ? 'History' : 'the list of apps'} before trying again.`;
    }
    if (e.code === 'NO_ANSWER' && e.method === 'pay_invoice') {
      return 'Your node did not answer in time. The payment may still go through: check History before trying again.';
    }
    return NODE_ERRORS[e.code] ?? (e.fromNode && e.message ? `Your node said: ${e.message}` : 'Something went wrong. Try again.');
  }
  if (e instanceof PairingError) return e.message;
  if (e instanceof StorageError) return e.message;
  if (e instanceof InvoiceError) return INVOICE_ERRORS[e.code] ?? INVOICE_ERRORS.not_invoice!;
  if (e instanceof SealError) {
    return 'The payment key your node passed on does not open with these words. This pairing can only look, not pay.';
  }
  if (e instanceof AuthDataError) {
    return 'Your node sent details this page cannot read. It may run another version; ask your provider.';
  }
  return 'Something went wrong. Try again.';
}
