// The wallet saved in the browser: encrypted under the password, a wrong password fails.

import { describe, expect, test } from 'vitest';
import {
  forgetWallet,
  hasWallet,
  loadWallet,
  saveWallet,
  STORAGE_KEY,
  StorageError,
  type KeyValueStore,
  type WalletSecrets,
} from '../src/wallet/storage.js';
import { hex, randomBytes } from './support/util.js';

function memoryStore(): KeyValueStore & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => void map.set(k, v),
    removeItem: (k) => void map.delete(k),
  };
}

const secrets = (): WalletSecrets => ({
  localStatic: randomBytes(32),
  remoteStatic: Uint8Array.from([2, ...randomBytes(32)]),
  authData: '{"version":1,"label":"Alice\'s phone"}',
  appKey: randomBytes(32),
  relayUrl: 'https://relay.example.com',
});

async function storageError(p: Promise<unknown>): Promise<StorageError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(StorageError);
    return e as StorageError;
  }
  throw new Error('expected a StorageError');
}

describe('storage', () => {
  test('round trip with the right password; nothing readable stored', async () => {
    const store = memoryStore();
    const s = secrets();
    expect(hasWallet(store)).toBe(false);
    const progress: number[] = [];
    await saveWallet('correct horse battery', s, { store, onProgress: (f) => progress.push(f) });
    expect(hasWallet(store)).toBe(true);
    expect(progress.at(-1)).toBe(1);
    const raw = store.map.get(STORAGE_KEY)!;
    const envelope = JSON.parse(raw);
    expect(envelope).toMatchObject({ v: 1, kdf: 'scrypt', N: 32768, r: 8, p: 1 });
    for (const secret of [hex(s.localStatic), hex(s.appKey!), 'Alice', 'relay.example.com']) {
      expect(raw).not.toContain(secret);
    }
    const back = await loadWallet('correct horse battery', { store });
    expect(hex(back.localStatic)).toBe(hex(s.localStatic));
    expect(hex(back.remoteStatic)).toBe(hex(s.remoteStatic));
    expect(hex(back.appKey!)).toBe(hex(s.appKey!));
    expect(back.authData).toBe(s.authData);
    expect(back.relayUrl).toBe(s.relayUrl);
  });

  test('a wrong password fails with wrong_password', async () => {
    const store = memoryStore();
    await saveWallet('right password', secrets(), { store });
    expect((await storageError(loadWallet('wrong password', { store }))).code).toBe('wrong_password');
    expect((await storageError(loadWallet('', { store }))).code).toBe('wrong_password');
  });

  test('a changed header or ciphertext fails; a read-only wallet keeps appKey null', async () => {
    const store = memoryStore();
    await saveWallet('pw-pw-pw-pw', { ...secrets(), appKey: null }, { store });
    expect((await loadWallet('pw-pw-pw-pw', { store })).appKey).toBeNull();
    const e = JSON.parse(store.map.get(STORAGE_KEY)!);
    // Another salt in the header: the key differs, the tag fails.
    store.setItem(STORAGE_KEY, JSON.stringify({ ...e, salt: '00'.repeat(16) }));
    expect((await storageError(loadWallet('pw-pw-pw-pw', { store }))).code).toBe('wrong_password');
    store.setItem(STORAGE_KEY, JSON.stringify({ ...e, N: 2 ** 24 }));
    expect((await storageError(loadWallet('pw-pw-pw-pw', { store }))).code).toBe('damaged');
    store.setItem(STORAGE_KEY, 'not json');
    expect((await storageError(loadWallet('pw-pw-pw-pw', { store }))).code).toBe('damaged');
    forgetWallet(store);
    expect((await storageError(loadWallet('pw-pw-pw-pw', { store }))).code).toBe('missing');
  });

  test('each save uses a fresh salt and nonce', async () => {
    const store = memoryStore();
    const s = secrets();
    await saveWallet('same', s, { store });
    const a = JSON.parse(store.map.get(STORAGE_KEY)!);
    await saveWallet('same', s, { store });
    const b = JSON.parse(store.map.get(STORAGE_KEY)!);
    expect(a.salt).not.toBe(b.salt);
    expect(a.nonce).not.toBe(b.nonce);
  });
});
