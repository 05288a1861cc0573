// The wallet kept on this device: the pairing keys, the auth data and the opened app key,
// encrypted under the person's password (scrypt → XChaCha20-Poly1305). The phrase and the
// password are never stored.

import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { fromBase64, toBase64 } from '../lnc/bytes.js';

/** The localStorage key. */
export const STORAGE_KEY = 'micronode.wallet.v1';

/** scrypt cost for the password: N = 2^15, r = 8, p = 1 (32 MiB, well under a second). */
export const PASSWORD_SCRYPT = { N: 2 ** 15, r: 8, p: 1 } as const;
const MAX_N = 2 ** 20;

/** What is kept: everything needed to reconnect (KK) and to sign. */
export interface WalletSecrets {
  /** Our static private key (32 bytes). */
  localStatic: Uint8Array;
  /** The node's static public key (33 bytes). */
  remoteStatic: Uint8Array;
  /** The auth data as the node sent it (JSON text). */
  authData: string;
  /** The opened app key (32 bytes), or null for a session that cannot pay. */
  appKey: Uint8Array | null;
  /** The relay the pairing was made through. */
  relayUrl: string;
}

/** The part of the Web Storage API used (tests pass a Map-backed one). */
export type KeyValueStore = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

interface Envelope {
  v: 1;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  nonce: string;
  ct: string;
}

export class StorageError extends Error {
  constructor(
    readonly code: 'wrong_password' | 'damaged' | 'missing',
    message: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

function defaultStore(): KeyValueStore {
  return globalThis.localStorage;
}

function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** The envelope's header, bound to the ciphertext as associated data. */
function header(e: Pick<Envelope, 'v' | 'kdf' | 'N' | 'r' | 'p' | 'salt'>): Uint8Array {
  return new TextEncoder().encode(`micronode/wallet/v${e.v}|${e.kdf}|${e.N}|${e.r}|${e.p}|${e.salt}`);
}

async function deriveKey(
  password: string,
  salt: Uint8Array,
  params: { N: number; r: number; p: number },
  onProgress?: (fraction: number) => void,
): Promise<Uint8Array> {
  return scryptAsync(new TextEncoder().encode(password.normalize('NFKC')), salt, {
    ...params,
    dkLen: 32,
    ...(onProgress ? { onProgress } : {}),
  });
}

export function hasWallet(store: KeyValueStore = defaultStore()): boolean {
  return store.getItem(STORAGE_KEY) !== null;
}

export function forgetWallet(store: KeyValueStore = defaultStore()): void {
  store.removeItem(STORAGE_KEY);
}

/** Encrypts and stores the wallet under the password (a fresh salt and nonce each time). */
export async function saveWallet(
  password: string,
  secrets: WalletSecrets,
  opts: { store?: KeyValueStore; onProgress?: (fraction: number) => void; scrypt?: { N: number; r: number; p: number } } = {},
): Promise<void> {
  const store = opts.store ?? defaultStore();
  const params = opts.scrypt ?? PASSWORD_SCRYPT;
  const salt = randomBytes(16);
  const nonce = randomBytes(24);
  const head = { v: 1 as const, kdf: 'scrypt' as const, ...params, salt: bytesToHex(salt) };
  const key = await deriveKey(password, salt, params, opts.onProgress);
  const plaintext = new TextEncoder().encode(
    JSON.stringify({
      local_static: bytesToHex(secrets.localStatic),
      remote_static: bytesToHex(secrets.remoteStatic),
      auth_data: secrets.authData,
      app_key: secrets.appKey ? bytesToHex(secrets.appKey) : null,
      relay_url: secrets.relayUrl,
    }),
  );
  const ct = xchacha20poly1305(key, nonce, header(head)).encrypt(plaintext);
  key.fill(0);
  plaintext.fill(0);
  const envelope: Envelope = { ...head, nonce: bytesToHex(nonce), ct: toBase64(ct) };
  store.setItem(STORAGE_KEY, JSON.stringify(envelope));
}

function parseEnvelope(text: string): Envelope {
  let e: Partial<Envelope>;
  try {
    e = JSON.parse(text) as Partial<Envelope>;
  } catch {
    throw new StorageError('damaged', 'The wallet saved in this browser is damaged.');
  }
  const ok =
    e.v === 1 &&
    e.kdf === 'scrypt' &&
    typeof e.N === 'number' &&
    Number.isInteger(Math.log2(e.N)) &&
    e.N >= 2 &&
    e.N <= MAX_N &&
    typeof e.r === 'number' &&
    e.r >= 1 &&
    e.r <= 32 &&
    typeof e.p === 'number' &&
    e.p >= 1 &&
    e.p <= 16 &&
    typeof e.salt === 'string' &&
    /^[0-9a-f]{32}$/.test(e.salt) &&
    typeof e.nonce === 'string' &&
    /^[0-9a-f]{48}$/.test(e.nonce) &&
    typeof e.ct === 'string';
  if (!ok) throw new StorageError('damaged', 'The wallet saved in this browser is damaged.');
  return e as Envelope;
}

/**
 * Decrypts the stored wallet.
 * @throws StorageError `missing`, `wrong_password` or `damaged`
 */
export async function loadWallet(
  password: string,
  opts: { store?: KeyValueStore; onProgress?: (fraction: number) => void } = {},
): Promise<WalletSecrets> {
  const store = opts.store ?? defaultStore();
  const text = store.getItem(STORAGE_KEY);
  if (text === null) throw new StorageError('missing', 'No wallet is saved in this browser.');
  const e = parseEnvelope(text);
  const key = await deriveKey(password, hexToBytes(e.salt), e, opts.onProgress);
  let plaintext: Uint8Array;
  try {
    plaintext = xchacha20poly1305(key, hexToBytes(e.nonce), header(e)).decrypt(fromBase64(e.ct));
  } catch {
    throw new StorageError('wrong_password', 'That password is not right. Try again.');
  } finally {
    key.fill(0);
  }
  try {
    const o = JSON.parse(new TextDecoder().decode(plaintext)) as Record<string, unknown>;
    const hex = (v: unknown, len: number): Uint8Array => {
      if (typeof v !== 'string' || v.length !== len * 2) throw new Error('bad hex');
      return hexToBytes(v);
    };
    return {
      localStatic: hex(o['local_static'], 32),
      remoteStatic: hex(o['remote_static'], 33),
      authData: typeof o['auth_data'] === 'string' ? o['auth_data'] : '{}',
      appKey: o['app_key'] === null || o['app_key'] === undefined ? null : hex(o['app_key'], 32),
      relayUrl: typeof o['relay_url'] === 'string' ? o['relay_url'] : '',
    };
  } catch {
    throw new StorageError('damaged', 'The wallet saved in this browser is damaged.');
  } finally {
    plaintext.fill(0);
  }
}
