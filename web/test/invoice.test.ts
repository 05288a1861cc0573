// BOLT 11 decoding in the browser (src/wallet/invoice.ts).

import { secp256k1 } from '@noble/curves/secp256k1.js';
import { describe, expect, test } from 'vitest';
import { decodeInvoice, invoiceNetworkOf, InvoiceError } from '../src/wallet/invoice.js';
import { encodeInvoice } from './support/bolt11.js';
import { hex } from './support/util.js';

function invoiceError(f: () => unknown): InvoiceError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InvoiceError);
    return e as InvoiceError;
  }
  throw new Error('expected an InvoiceError');
}

describe('regtest invoices', () => {
  test('one made by lnd (lncli addinvoice --amt 1000 --expiry 31536000)', () => {
    // A real lnd regtest invoice: its r_hash and amount as lnd reported them.
    const inv = decodeInvoice(
      'lnbcrt10u1p5cammypp53u7058xu7xw7fdhah8kr8xm5wrnjf5x82kmuw45pvn2a7xmsafhqdqqcqzzsxq97zvuqsp5k9qse5srd9mfaxlgucr0p2gzf9464xte5xtqgjxyxj7794jxav9q9qxpqysgqnvwx0j9qxkx6k9efetdr0vdkrnp4vn23ud4gwpm0k28vf3v0rcmzfnued907r7ju6d86wr25ypt366szd0f7s28nzrvwmp4rck4358spfr9vx9',
    );
    expect(inv.network).toBe('regtest');
    expect(inv.amountMsat).toBe(1_000_000);
    expect(inv.paymentHash).toBe('8f3cfa1cdcf19de4b6fdb9ec339b7470e724d0c755b7c7568164d5df1b70ea6e');
    expect(inv.expiresAt - inv.createdAt).toBe(31_536_000);
    expect(inv.payee).toMatch(/^0[23][0-9a-f]{64}$/);
  });

  test('signed with a known key: fields and the recovered payee', () => {
    const nodeKey = new Uint8Array(32).fill(0x42);
    const payee = hex(secp256k1.getPublicKey(nodeKey, true));
    const bolt11 = encodeInvoice({
      network: 'regtest',
      amountMsat: 2_500_000,
      paymentHash: '0f'.repeat(32),
      description: 'coffee ☕',
      expirySecs: 600,
      timestamp: 1_700_000_000,
      nodeKey,
    });
    expect(bolt11.startsWith('lnbcrt25u1')).toBe(true);
    const inv = decodeInvoice(`  lightning:${bolt11.toUpperCase()} `);
    expect(inv).toMatchObject({
      bolt11,
      network: 'regtest',
      amountMsat: 2_500_000,
      paymentHash: '0f'.repeat(32),
      description: 'coffee ☕',
      descriptionHash: null,
      createdAt: 1_700_000_000,
      expiresAt: 1_700_000_600,
      payee,
    });
    // With the payee named in the invoice (n), the signature is checked against it.
    expect(decodeInvoice(encodeInvoice({ paymentHash: 'aa'.repeat(32), amountMsat: 1234, nodeKey, withPayee: true })).payee).toBe(payee);
  });

  test('no amount, sub-satoshi amounts, default expiry', () => {
    const nodeKey = new Uint8Array(32).fill(3);
    const free = decodeInvoice(encodeInvoice({ paymentHash: '01'.repeat(32), nodeKey, timestamp: 10 }));
    expect(free.amountMsat).toBeNull();
    expect(free.expiresAt).toBe(3610);
    expect(decodeInvoice(encodeInvoice({ paymentHash: '01'.repeat(32), nodeKey, amountMsat: 1001 })).amountMsat).toBe(1001);
  });

  test('a changed field breaks the signature check or the checksum', () => {
    const nodeKey = new Uint8Array(32).fill(0x42);
    const other = new Uint8Array(32).fill(0x43);
    // Signed by another key than the one it names.
    const good = encodeInvoice({ paymentHash: 'aa'.repeat(32), amountMsat: 1000, nodeKey, withPayee: true });
    expect(decodeInvoice(good).payee).toBe(hex(secp256k1.getPublicKey(nodeKey, true)));
    const forged = encodeInvoice({
      paymentHash: 'aa'.repeat(32),
      amountMsat: 1000,
      nodeKey: other,
      claimedPayeeKey: nodeKey,
      withPayee: true,
    });
    expect(invoiceError(() => decodeInvoice(forged)).code).toBe('bad_signature');
    const flipped = good.slice(0, 40) + (good[40] === 'q' ? 'p' : 'q') + good.slice(41);
    expect(invoiceError(() => decodeInvoice(flipped)).code).toBe('not_invoice');
  });

  test('not invoices', () => {
    for (const s of ['', 'hello', 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4', 'lnbcrt1xyz']) {
      expect(invoiceError(() => decodeInvoice(s)).code).toBe('not_invoice');
    }
  });

  test('node network names', () => {
    expect(invoiceNetworkOf('regtest')).toBe('regtest');
    expect(invoiceNetworkOf('bitcoin')).toBe('bitcoin');
    expect(invoiceNetworkOf('mainnet')).toBe('bitcoin');
    expect(invoiceNetworkOf('signet')).toBe('signet');
    expect(invoiceNetworkOf('other')).toBeNull();
  });
});
