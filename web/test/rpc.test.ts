// The wallet API client (src/wallet/rpc.ts) against the TypeScript fake node over the in-memory
// relay: pairing, calls, errors, events, timeouts, and a new KK session after a drop.

import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { WebSocket } from 'ws';
import { hexToBytes } from '../src/lnc/bytes.js';
import { connect, type StoredPairing } from '../src/lnc/session.js';
import type { WalletEvent } from '../src/wallet/api.js';
import { newAppRequest, signAppRequest } from '../src/wallet/appRequest.js';
import { parseAuthData } from '../src/wallet/authData.js';
import { decodeInvoice } from '../src/wallet/invoice.js';
import { messageFor } from '../src/wallet/messages.js';
import { newNwcKeys, signDelegation } from '../src/wallet/nwc.js';
import { RpcError, WalletRpc, type StateInfo } from '../src/wallet/rpc.js';
import { openSealed } from '../src/wallet/seal.js';
import { encodeInvoice } from './support/bolt11.js';
import { FakeNode, NodeError } from './support/fake-node.js';
import { FakeRelay } from './support/fake-relay.js';

const opts = { WebSocket };
let relay: FakeRelay;
let node: FakeNode;
let rpc: WalletRpc | undefined;

beforeEach(async () => {
  relay = await FakeRelay.start();
  node = FakeNode.start({ relay, ...(process.env.DEBUG_NODE ? { log: (l: string) => console.log('[node]', l) } : {}) });
});
afterEach(async () => {
  rpc?.close();
  rpc = undefined;
  await node.stop();
  await relay.stop();
});

async function waitFor<T>(f: () => T | undefined | false, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One pairing (XX), then KK only. (A KK attempt that lost a race with the node's new boxes
 * can leave the node a half-open KK session before the real one, so KK may appear twice.) */
function expectXxThenKk(): void {
  expect(node.sessions[0]).toBe('XX');
  expect(node.sessions.length).toBeGreaterThan(1);
  expect(node.sessions.slice(1).every((p) => p === 'KK')).toBe(true);
}

async function pair(): Promise<{ rpc: WalletRpc; pairing: StoredPairing; appKey: Uint8Array | null }> {
  // The node needs a moment to create its boxes.
  await waitFor(() => relay.streams.size >= 2);
  const session = await connect(relay.url, node.words.join(' '), opts);
  expect(session.pattern).toBe('XX');
  const auth = parseAuthData(session.authData);
  const appKey = auth.sealed_app_key ? openSealed(node.entropy, hexToBytes(auth.sealed_app_key)) : null;
  const pairing = session.pairing;
  // The pairing connection carries the handshake only: the wallet API comes over KK.
  session.close();
  rpc = new WalletRpc({ reconnect: () => connect(relay.url, pairing, opts), reconnectDelaysMs: [50, 100] });
  return { rpc, pairing, appKey };
}

describe('WalletRpc', () => {
  test('pairs, opens the sealed app key, and reads', async () => {
    const { rpc, appKey } = await pair();
    expect(appKey).not.toBeNull();
    expect(Buffer.from(appKey!).toString('hex')).toBe(Buffer.from(node.appKey!).toString('hex'));
    const [info, balance] = await Promise.all([rpc.call('get_info', {}), rpc.call('balance', {})]);
    expect(info.signer).toBe('connected');
    expect(info.network).toBe('regtest');
    expect(balance.spendable_sat).toBe(250_000);
    expectXxThenKk();
  });

  test('node errors keep their code; unknown methods; plain-words messages', async () => {
    const { rpc } = await pair();
    node.overrides.set('balance', () => {
      throw new NodeError('SIGNER_OFFLINE', 'signer offline');
    });
    const e = await rpc.call('balance', {}).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RpcError);
    expect((e as RpcError).code).toBe('SIGNER_OFFLINE');
    expect((e as RpcError).fromNode).toBe(true);
    expect(messageFor(e)).toMatch(/signer is offline/);
    const u = await rpc.call('nope' as 'balance', {}).catch((x: unknown) => x);
    expect((u as RpcError).code).toBe('UNKNOWN_METHOD');
  });

  test('a call the node never answers times out; others still work', async () => {
    const { rpc } = await pair();
    node.overrides.set('fee_limit', () => new Promise(() => {}));
    const slow = rpc.call('fee_limit', { amount_sat: 5 }, { timeoutMs: 300 }).catch((x: unknown) => x);
    expect(await rpc.call('get_info', {})).toMatchObject({ alias: 'fake-node' });
    const e = (await slow) as RpcError;
    expect(e.code).toBe('NO_ANSWER');
    expect(e.fromNode).toBe(false);
  });

  test('answers out of order are matched by id', async () => {
    const { rpc } = await pair();
    node.overrides.set('fee_limit', async (p) => {
      await new Promise((r) => setTimeout(r, p.amount_sat === 1 ? 300 : 10));
      return { max_fee_sat: p.amount_sat * 10 };
    });
    const [a, b] = await Promise.all([
      rpc.call('fee_limit', { amount_sat: 1 }),
      rpc.call('fee_limit', { amount_sat: 2 }),
    ]);
    expect([a.max_fee_sat, b.max_fee_sat]).toEqual([10, 20]);
  });

  test('receive: invoice, then the payment_received event', async () => {
    const { rpc } = await pair();
    const events: WalletEvent[] = [];
    rpc.subscribe((e) => events.push(e));
    await waitFor(() => node.requests.some(([m]) => m === 'subscribe'));
    const inv = await rpc.call('create_invoice', { amount_sat: 1234, description: 'tea' });
    const decoded = decodeInvoice(inv.invoice);
    expect(decoded.paymentHash).toBe(inv.payment_hash);
    expect(decoded.amountMsat).toBe(1_234_000);
    expect(decoded.description).toBe('tea');
    await new Promise((r) => setTimeout(r, 50));
    expect(node.receivePayment(inv.payment_hash)).toBe(true);
    await waitFor(() => events.find((e) => e.kind === 'payment_received'));
    expect(events[0]).toEqual({ kind: 'payment_received', payment_hash: inv.payment_hash, amount_msat: 1_234_000 });
  });

  test('send: a signed request pays; a request for another invoice is refused', async () => {
    const { rpc, appKey } = await pair();
    const other = new Uint8Array(32).fill(9);
    const bolt11 = encodeInvoice({ paymentHash: '22'.repeat(32), amountMsat: 5_000_000, nodeKey: other, description: 'x' });
    const inv = decodeInvoice(bolt11);
    const signed = signAppRequest(newAppRequest('pay_invoice', inv.paymentHash, inv.amountMsat!), appKey!);
    const paid = await rpc.call('pay_invoice', { invoice: bolt11, app_request: signed }, { timeoutMs: 120_000 });
    expect(paid).toMatchObject({ status: 'succeeded', fee_msat: 1000, payment_hash: inv.paymentHash });

    const bolt11b = encodeInvoice({ paymentHash: '33'.repeat(32), amountMsat: 5_000_000, nodeKey: other });
    const wrong = await rpc.call('pay_invoice', { invoice: bolt11b, app_request: signed }).catch((x: unknown) => x);
    expect((wrong as RpcError).code).toBe('SIGNER_POLICY_REFUSED');
    expect(messageFor(wrong)).toMatch(/not the one you approved/);
  });

  test('NWC: create with a delegation, list, revoke', async () => {
    const { rpc, appKey } = await pair();
    const keys = newNwcKeys();
    const delegation = signDelegation(appKey!, keys.pubkey, 1000, 86_400, undefined);
    const made = await rpc.call('nwc_create', {
      name: 'test app',
      app_pubkey: keys.pubkey,
      budget_sat: 1000,
      period_secs: 86_400,
      delegation,
    });
    expect(made.wallet_pubkey).toMatch(/^[0-9a-f]{64}$/);
    const list = await rpc.call('nwc_list', {});
    expect(list.connections).toHaveLength(1);
    expect(list.connections[0]).toMatchObject({ name: 'test app', status: 'active', budget_sat: 1000 });
    await rpc.call('nwc_revoke', { id: made.id });
    expect((await rpc.call('nwc_list', {})).connections[0]!.status).toBe('revoked');
  });

  test('a dropped session: pending reads go again on a new KK session, then events resume', async () => {
    const { rpc } = await pair();
    const states: StateInfo['state'][] = [];
    rpc.onState((s) => states.push(s.state));
    const events: WalletEvent[] = [];
    rpc.subscribe((e) => events.push(e));
    await waitFor(() => node.requests.filter(([m]) => m === 'subscribe').length === 1);

    node.overrides.set('list_payments', () => new Promise(() => {})); // never answered on this session
    const read = rpc.call('list_payments', {}, { timeoutMs: 15_000 });
    await waitFor(() => node.requests.some(([m]) => m === 'list_payments'));
    node.overrides.delete('list_payments');
    relay.dropAll();
    const page = await read;
    expect(page.payments).toEqual([]);
    expect(states).toContain('reconnecting');
    expect(rpc.state).toBe('connected');
    expectXxThenKk();
    // Subscribed again on the new session, and told to refresh.
    await waitFor(() => events.some((e) => e.kind === 'lagged'));
    expect(node.requests.filter(([m]) => m === 'subscribe')).toHaveLength(2);
  });

  test('a payment in flight when the session drops fails with CONNECTION_LOST (never resent)', async () => {
    const { rpc, appKey } = await pair();
    node.overrides.set('pay_invoice', () => new Promise(() => {}));
    const bolt11 = encodeInvoice({ paymentHash: '44'.repeat(32), amountMsat: 1000, nodeKey: new Uint8Array(32).fill(5) });
    const signed = signAppRequest(newAppRequest('pay_invoice', '44'.repeat(32), 1000), appKey!);
    const pay = rpc.call('pay_invoice', { invoice: bolt11, app_request: signed }).catch((x: unknown) => x);
    await waitFor(() => node.requests.some(([m]) => m === 'pay_invoice'));
    relay.dropAll();
    const e = (await pay) as RpcError;
    expect(e.code).toBe('CONNECTION_LOST');
    expect(messageFor(e)).toMatch(/check History/);
    await waitFor(() => rpc.state === 'connected');
    expect(node.requests.filter(([m]) => m === 'pay_invoice')).toHaveLength(1);
  });

  test('a browser that comes back later (reload) reconnects with KK from the stored keys alone', async () => {
    const { pairing } = await pair();
    await rpc!.call('get_info', {});
    rpc!.close();
    rpc = new WalletRpc({ reconnect: () => connect(relay.url, pairing, opts), reconnectDelaysMs: [100] });
    expect(rpc.state).toBe('connecting');
    expect((await rpc.call('balance', {})).spendable_sat).toBe(250_000);
    expectXxThenKk();
  });

  test('close(): pending calls fail with CLOSED and no reconnection happens', async () => {
    const { rpc } = await pair();
    node.overrides.set('balance', () => new Promise(() => {}));
    const p = rpc.call('balance', {}).catch((x: unknown) => x);
    await waitFor(() => node.requests.some(([m]) => m === 'balance'));
    rpc.close();
    expect(((await p) as RpcError).code).toBe('CLOSED');
    expect(((await rpc.call('get_info', {}).catch((x: unknown) => x)) as RpcError).code).toBe('CLOSED');
  });
});
