// Small pieces of the screens that need no browser: the history search, amounts, NWC URIs,
// the error words.

import { expect, test } from 'vitest';
import type { Payment } from '../src/wallet/api.js';
import { parseAuthData } from '../src/wallet/authData.js';
import { msatToSats, parseSats, perPeriod, sats } from '../src/wallet/format.js';
import { failureReason, messageFor, NODE_ERRORS } from '../src/wallet/messages.js';
import { nwcUri, PERIODS } from '../src/wallet/nwc.js';
import { RpcError } from '../src/wallet/rpc.js';
import { matches } from '../src/ui/history.js';

const payment: Payment = {
  payment_hash: 'ab'.repeat(32),
  direction: 'inbound',
  status: 'succeeded',
  amount_msat: 1_500_000,
  fee_msat: null,
  description: 'Dinner on Friday',
  invoice: null,
  failure_reason: null,
  created_at: 1,
  updated_at: 2,
};

test('history search: description, hash, amount', () => {
  expect(matches(payment, '')).toBe(true);
  expect(matches(payment, 'dinner')).toBe(true);
  expect(matches(payment, 'ABAB')).toBe(true);
  expect(matches(payment, '1500')).toBe(true);
  expect(matches(payment, '1,500 sats')).toBe(true);
  expect(matches(payment, 'lunch')).toBe(false);
  expect(matches({ ...payment, amount_msat: null, description: null }, '1500')).toBe(false);
});

test('amounts and periods in words', () => {
  expect(sats(1)).toBe('1 sat');
  expect(sats(250_000)).toBe('250,000 sats');
  expect(msatToSats(1001)).toBe('1.001 sats');
  expect(parseSats('1 000')).toBe(1000);
  expect(parseSats('1,000')).toBe(1000);
  expect(parseSats('1.5')).toBeNull();
  expect(parseSats('-3')).toBeNull();
  expect(perPeriod(PERIODS.day)).toBe('per day');
  expect(perPeriod(PERIODS.month)).toBe('per month (30 days)');
  expect(perPeriod(PERIODS.none)).toBe('in total');
});

test('the NWC URI', () => {
  const uri = nwcUri('cd'.repeat(32), ['wss://relay.example.com/nostr', 'wss://b.example'], new Uint8Array(32).fill(1));
  expect(uri).toBe(
    `nostr+walletconnect://${'cd'.repeat(32)}?relay=wss%3A%2F%2Frelay.example.com%2Fnostr&relay=wss%3A%2F%2Fb.example&secret=${'01'.repeat(32)}`,
  );
});

test('every node error code has plain words; signer rules and failure reasons too', () => {
  for (const code of ['INVALID_INPUT', 'SIGNER_OFFLINE', 'SIGNER_POLICY_REFUSED', 'BUDGET_EXCEEDED', 'UNKNOWN_METHOD', 'BAD_REQUEST', 'RATE_LIMITED']) {
    expect(NODE_ERRORS[code], code).toBeTruthy();
  }
  expect(messageFor(new RpcError('SIGNER_POLICY_REFUSED', 'refused: app-budget-exceeded', true))).toMatch(/spending limit/);
  expect(messageFor(new RpcError('WHATEVER', 'odd thing', true))).toBe('Your node said: odd thing');
  expect(messageFor(new RpcError('CONNECTION_LOST', '', false, 'pay_invoice'))).toMatch(/check History/);
  expect(failureReason('RouteNotFound')).toMatch(/No path/);
  expect(failureReason('RetriesExhausted')).toMatch(/Every path/);
  expect(failureReason(null)).toMatch(/could not tell/);
});

test('auth data as the signer writes it (no session_id), and junk', () => {
  const a = parseAuthData(
    JSON.stringify({ version: 1, label: 'phone', node_id: '02' + 'ab'.repeat(32), network: 'regtest', expires_at: 5, token: 't', rights: ['read', 'pay'], sealed_app_key: 'AABB', budget_sat: 50_000, period_secs: 86_400 }),
  );
  expect(a).toMatchObject({ label: 'phone', network: 'regtest', sealed_app_key: 'aabb', budget_sat: 50_000, rights: ['read', 'pay'] });
  expect(() => parseAuthData('not json')).toThrow();
  expect(() => parseAuthData('{"sealed_app_key": "xyz"}')).toThrow();
  expect(parseAuthData('{}').sealed_app_key).toBeNull();
});
