// The Noise layer of Lightning Node Connect, as docs/pairing.md specifies it (LNC's
// mailbox/noise.go and mailbox/noise_patterns.go): the symmetric and cipher state with LNC's
// choices (zero initial key, nonce layout, key rotation every 1,000 uses with a salt), the
// `XXeke+SPAKE2` and `KK` handshakes producing and consuming whole acts, and the transport.

import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8 } from './bytes.js';
import { MESSAGES, PairingError } from './errors.js';
import {
  assertPrivateKey,
  ecdh,
  mask,
  parsePublicKey,
  publicKey,
  randomPrivateKey,
  unmask,
} from './keys.js';

export const PROLOGUE = 'lightning-node-connect';
export const PROTOCOL_NAME_XX = 'Noise_XXeke+SPAKE2_secp256k1_ChaChaPoly_SHA256';
export const PROTOCOL_NAME_KK = 'Noise_KK_secp256k1_ChaChaPoly_SHA256';
/** LNC's handshake version 2 (the one that allows KK): what we send, and all we accept back. */
export const HANDSHAKE_VERSION = 2;
export const KEY_ROTATION_INTERVAL = 1000;
export const MAC_SIZE = 16;
/** Largest transport plaintext: its length is sent as a u16. */
export const MAX_PLAINTEXT = 0xffff;
/** Size of a transport frame's encrypted length prefix. */
export const FRAME_HEADER_SIZE = 2 + MAC_SIZE;

const EMPTY = new Uint8Array(0);

/** Raised by CipherState.decrypt when the MAC does not verify. */
export class AeadError extends Error {
  constructor() {
    super('message authentication failed');
    this.name = 'AeadError';
  }
}

function hkdf64(salt: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const okm = hkdf(sha256, ikm, salt, EMPTY, 64);
  return [okm.slice(0, 32), okm.slice(32, 64)];
}

/**
 * ChaCha20-Poly1305 with LNC's 12-byte nonce (4 zero bytes, then the counter as u64 LE). Every
 * encrypt or decrypt advances the nonce, failed or not; when it reaches 1,000 the key rotates:
 * HKDF-SHA256(salt = salt, ikm = key) gives the new salt, then the new key, nonce 0.
 */
export class CipherState {
  private key: Uint8Array;
  private salt: Uint8Array;
  private n = 0;

  /** The initial key is 32 zero bytes, not "empty" (LNC's InitializeSymmetric). */
  constructor(key: Uint8Array = new Uint8Array(32), salt: Uint8Array = new Uint8Array(32)) {
    this.key = checkKey(key);
    this.salt = checkKey(salt).slice();
  }

  initializeKey(key: Uint8Array): void {
    this.key = checkKey(key).slice();
    this.n = 0;
  }

  initializeKeyWithSalt(salt: Uint8Array, key: Uint8Array): void {
    this.salt = checkKey(salt).slice();
    this.initializeKey(key);
  }

  /** The counter of the next operation (for tests and diagnostics). */
  get nonce(): number {
    return this.n;
  }

  encrypt(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    try {
      return chacha20poly1305(this.key, this.nonceBytes(), ad).encrypt(plaintext);
    } finally {
      this.advance();
    }
  }

  /** @throws AeadError when the MAC does not verify. */
  decrypt(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    try {
      if (ciphertext.length < MAC_SIZE) throw new AeadError();
      try {
        return chacha20poly1305(this.key, this.nonceBytes(), ad).decrypt(ciphertext);
      } catch {
        throw new AeadError();
      }
    } finally {
      this.advance();
    }
  }

  private nonceBytes(): Uint8Array {
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setBigUint64(4, BigInt(this.n), true);
    return nonce;
  }

  private advance(): void {
    this.n++;
    if (this.n === KEY_ROTATION_INTERVAL) {
      const [salt, key] = hkdf64(this.salt, this.key);
      this.salt = salt;
      this.initializeKey(key);
    }
  }
}

function checkKey(k: Uint8Array): Uint8Array {
  if (k.length !== 32) throw new RangeError('cipher keys and salts are 32 bytes');
  return k;
}

/** Noise's SymmetricState with SHA-256 and LNC's choices. */
export class SymmetricState {
  readonly cipher = new CipherState();
  private ck: Uint8Array;
  private h: Uint8Array;

  /** `h = ck = SHA-256(protocol name)`, cipher key 32 zero bytes. */
  constructor(protocolName: string) {
    this.h = sha256(utf8(protocolName));
    this.ck = this.h.slice();
  }

  get handshakeHash(): Uint8Array {
    return this.h.slice();
  }

  get chainingKey(): Uint8Array {
    return this.ck.slice();
  }

  mixHash(data: Uint8Array): void {
    this.h = sha256(concatBytes(this.h, data));
  }

  /** HKDF-SHA256(salt = ck, ikm, info = "") → new ck, then the cipher key (nonce 0). */
  mixKey(ikm: Uint8Array): void {
    const [ck, k] = hkdf64(this.ck, ikm);
    this.ck = ck;
    this.cipher.initializeKey(k);
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ct = this.cipher.encrypt(this.h, plaintext);
    this.mixHash(ct);
    return ct;
  }

  /** @throws AeadError */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const pt = this.cipher.decrypt(this.h, ciphertext);
    this.mixHash(ciphertext);
    return pt;
  }

  /** HKDF-SHA256(salt = ck, ikm = "", info = "") → (initiator's send key, responder's send key). */
  split(): [Uint8Array, Uint8Array] {
    return hkdf64(this.ck, EMPTY);
  }
}

/**
 * One direction-pair of transport ciphers. A frame is `Encrypt(len u16 BE)` (18 bytes) followed
 * by `Encrypt(body)` (len + 16 bytes), both with empty associated data. Frames must be decrypted
 * in the order they were made, each exactly once: the first frame that fails (replayed,
 * reordered, cut, forged) makes this transport unusable.
 */
export class Transport {
  private failed = false;

  constructor(
    private readonly sendCipher: CipherState,
    private readonly recvCipher: CipherState,
  ) {}

  /** @throws PairingError `message_too_large` over 65,535 bytes. */
  encrypt(plaintext: Uint8Array): Uint8Array {
    if (plaintext.length > MAX_PLAINTEXT) {
      throw new PairingError(
        'message_too_large',
        'This message is too large to send to your node.',
        { detail: `${plaintext.length} bytes > ${MAX_PLAINTEXT}` },
      );
    }
    const len = new Uint8Array(2);
    new DataView(len.buffer).setUint16(0, plaintext.length, false);
    const header = this.sendCipher.encrypt(EMPTY, len);
    const body = this.sendCipher.encrypt(EMPTY, plaintext);
    return concatBytes(header, body);
  }

  /** @throws PairingError `decrypt_failed`, now and for every later call. */
  decrypt(frame: Uint8Array): Uint8Array {
    if (this.failed) throw decryptFailed('transport already failed');
    try {
      if (frame.length < FRAME_HEADER_SIZE + MAC_SIZE) throw decryptFailed('frame too short');
      const lenBytes = this.recvCipher.decrypt(EMPTY, frame.subarray(0, FRAME_HEADER_SIZE));
      const len = new DataView(lenBytes.buffer, lenBytes.byteOffset, 2).getUint16(0, false);
      if (frame.length !== FRAME_HEADER_SIZE + len + MAC_SIZE) {
        throw decryptFailed(`frame is ${frame.length} bytes, header says body of ${len}`);
      }
      return this.recvCipher.decrypt(EMPTY, frame.subarray(FRAME_HEADER_SIZE));
    } catch (e) {
      this.failed = true;
      if (e instanceof PairingError) throw e;
      throw decryptFailed(e instanceof AeadError ? 'MAC check failed' : String(e), e);
    }
  }

  /** True once a frame failed to decrypt. */
  get isFailed(): boolean {
    return this.failed;
  }
}

function decryptFailed(detail: string, cause?: unknown): PairingError {
  return new PairingError('decrypt_failed', MESSAGES.decryptFailed, { detail, cause });
}

// --- Handshake -----------------------------------------------------------------------------

type Token = 'e' | 'me' | 's' | 'ee' | 'es' | 'se' | 'ss';
interface MessagePattern {
  tokens: Token[];
  initiator: boolean;
  act: 1 | 2 | 3;
}
interface HandshakePattern {
  protocolName: string;
  /** Static keys known in advance, initiator's first (KK). */
  preMessages: boolean;
  messages: MessagePattern[];
}

const PATTERNS: Record<'XX' | 'KK', HandshakePattern> = {
  // -> me
  // <- e, ee, s, es
  // -> s, se
  XX: {
    protocolName: PROTOCOL_NAME_XX,
    preMessages: false,
    messages: [
      { tokens: ['me'], initiator: true, act: 1 },
      { tokens: ['e', 'ee', 's', 'es'], initiator: false, act: 2 },
      { tokens: ['s', 'se'], initiator: true, act: 3 },
    ],
  },
  // -> s
  // <- s
  // ...
  // -> e, es, ss
  // <- e, ee, se
  KK: {
    protocolName: PROTOCOL_NAME_KK,
    preMessages: true,
    messages: [
      { tokens: ['e', 'es', 'ss'], initiator: true, act: 1 },
      { tokens: ['e', 'ee', 'se'], initiator: false, act: 2 },
    ],
  },
};

export type HandshakePatternName = 'XX' | 'KK';

export interface HandshakeOptions {
  pattern: HandshakePatternName;
  initiator: boolean;
  /** Our static private key (32 bytes). The browser app stores it after the first pairing. */
  localStatic: Uint8Array;
  /** KK only: the other side's static public key (33 bytes, compressed). */
  remoteStatic?: Uint8Array;
  /** XX only: the stretched phrase, `stretch(entropy)` (32 bytes). */
  pw?: Uint8Array;
  /** Responder only: the auth data sent in act 2. */
  authData?: Uint8Array;
  /** Makes ephemeral private keys (32 bytes); random by default. For test vectors. */
  ephemeral?: () => Uint8Array;
}

/** Reads an act front to back; any shortfall or leftover is a malformed act. */
class ActReader {
  private off = 0;
  constructor(private readonly buf: Uint8Array) {}
  take(n: number): Uint8Array {
    if (this.off + n > this.buf.length) throw new MalformedAct(`act is too short`);
    const out = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return out;
  }
  get remaining(): number {
    return this.buf.length - this.off;
  }
}

class MalformedAct extends Error {}

/**
 * One side of an XX or KK handshake. Drive it with `writeAct()` when `next === 'write'` and
 * `readAct(act)` when `next === 'read'` until `next === 'done'`, then call `transport()`.
 * The first error makes the handshake unusable.
 */
export class Handshake {
  readonly pattern: HandshakePatternName;
  readonly initiator: boolean;
  readonly version = HANDSHAKE_VERSION;
  /** The other side's static public key: given (KK) or learned in act 2 / act 3 (XX). */
  remoteStatic: Uint8Array | undefined;
  /** Initiator: the auth data the responder sent in act 2 (set once act 2 is read). */
  authData: Uint8Array | undefined;

  private readonly ss: SymmetricState;
  private readonly p: HandshakePattern;
  private readonly localStatic: Uint8Array;
  private readonly localStaticPub: Uint8Array;
  private readonly pw: Uint8Array | undefined;
  private readonly payload: Uint8Array;
  private readonly genEphemeral: () => Uint8Array;
  private localEphemeral: Uint8Array | undefined;
  private remoteEphemeral: Uint8Array | undefined;
  private step = 0;
  private failed = false;
  private split: Transport | undefined;

  constructor(opts: HandshakeOptions) {
    this.pattern = opts.pattern;
    this.initiator = opts.initiator;
    this.p = PATTERNS[opts.pattern];
    if (!this.p) throw new RangeError(`unknown handshake pattern ${String(opts.pattern)}`);
    assertPrivateKey(opts.localStatic);
    this.localStatic = opts.localStatic.slice();
    this.localStaticPub = publicKey(this.localStatic);
    this.genEphemeral = opts.ephemeral ?? randomPrivateKey;
    this.payload = opts.authData?.slice() ?? new Uint8Array(0);
    if (this.payload.length >= 0x7fffffff) throw new RangeError('auth data too large');

    if (opts.pattern === 'XX') {
      if (!opts.pw || opts.pw.length !== 32) {
        throw new RangeError('XX needs pw, the 32-byte stretched phrase');
      }
      this.pw = opts.pw.slice();
    } else {
      if (!opts.remoteStatic) throw new RangeError('KK needs the remote static key');
      parsePublicKey(opts.remoteStatic);
      this.remoteStatic = opts.remoteStatic.slice();
    }

    this.ss = new SymmetricState(this.p.protocolName);
    this.ss.mixHash(utf8(PROLOGUE));
    if (this.p.preMessages) {
      const initiatorStatic = this.initiator ? this.localStaticPub : this.remoteStatic!;
      const responderStatic = this.initiator ? this.remoteStatic! : this.localStaticPub;
      this.ss.mixHash(initiatorStatic);
      this.ss.mixHash(responderStatic);
    }
  }

  /** What the handshake needs next. */
  get next(): 'write' | 'read' | 'done' {
    const m = this.p.messages[this.step];
    if (!m) return 'done';
    return m.initiator === this.initiator ? 'write' : 'read';
  }

  get isComplete(): boolean {
    return this.next === 'done';
  }

  /** The current handshake hash (for tests). */
  get handshakeHash(): Uint8Array {
    return this.ss.handshakeHash;
  }

  /** Our static public key (33 bytes). */
  get localStaticPublic(): Uint8Array {
    return this.localStaticPub.slice();
  }

  /** Produces the next act: `version ‖ tokens ‖ payload`. */
  writeAct(): Uint8Array {
    const m = this.expect('write');
    try {
      const out: Uint8Array[] = [Uint8Array.of(this.version)];
      for (const t of m.tokens) this.writeToken(t, out);
      if (m.act === 2) {
        const len = new Uint8Array(4);
        new DataView(len.buffer).setUint32(0, this.payload.length, false);
        out.push(this.ss.encryptAndHash(len));
        out.push(this.ss.encryptAndHash(this.payload));
      } else {
        out.push(this.ss.encryptAndHash(new Uint8Array(0)));
      }
      this.step++;
      return concatBytes(...out);
    } catch (e) {
      this.failed = true;
      throw e;
    }
  }

  /**
   * Consumes the other side's next act, which must be exactly one whole act.
   * @throws PairingError `wrong_phrase` (XX: the phrases differ), `handshake_failed` otherwise.
   */
  readAct(act: Uint8Array): void {
    const m = this.expect('read');
    try {
      const r = new ActReader(act);
      const version = r.take(1)[0]!;
      this.checkVersion(m, version);
      for (const t of m.tokens) this.readToken(t, r);
      if (m.act === 2) {
        const lenBytes = this.ss.decryptAndHash(r.take(4 + MAC_SIZE));
        const len = new DataView(lenBytes.buffer, lenBytes.byteOffset, 4).getUint32(0, false);
        if (r.remaining !== len + MAC_SIZE) {
          throw new MalformedAct(`act 2 has ${r.remaining} payload bytes, expected ${len + 16}`);
        }
        this.authData = this.ss.decryptAndHash(r.take(len + MAC_SIZE));
      } else {
        this.ss.decryptAndHash(r.take(MAC_SIZE));
      }
      if (r.remaining !== 0) throw new MalformedAct(`${r.remaining} bytes after act ${m.act}`);
      this.step++;
    } catch (e) {
      this.failed = true;
      throw this.translate(e, m);
    }
  }

  /** The transport ciphers, once the handshake is complete (same object on every call). */
  transport(): Transport {
    if (this.failed) throw new Error('handshake failed');
    if (!this.isComplete) throw new Error('handshake is not complete');
    if (!this.split) {
      const [k1, k2] = this.ss.split();
      const ck = this.ss.chainingKey;
      const send = new CipherState();
      const recv = new CipherState();
      send.initializeKeyWithSalt(ck, this.initiator ? k1 : k2);
      recv.initializeKeyWithSalt(ck, this.initiator ? k2 : k1);
      this.split = new Transport(send, recv);
    }
    return this.split;
  }

  private expect(what: 'write' | 'read'): MessagePattern {
    if (this.failed) throw new Error('handshake failed');
    const next = this.next;
    if (next !== what) throw new Error(`handshake: cannot ${what} now (next is ${next})`);
    return this.p.messages[this.step]!;
  }

  private checkVersion(m: MessagePattern, version: number): void {
    // LNC: the responder accepts act 1 of any version it supports (0..2; KK needs 2) and
    // always answers with its own (2); the initiator then needs act 2 (and the responder
    // act 3) to carry the version that is used from there on, which for us is 2.
    const ok =
      m.act === 1 && this.pattern === 'XX' ? version <= HANDSHAKE_VERSION : version === this.version;
    if (!ok) throw new MalformedAct(`unsupported handshake version ${version} in act ${m.act}`);
  }

  private ephemeral(): Uint8Array {
    const e = this.genEphemeral();
    assertPrivateKey(e);
    this.localEphemeral = e.slice();
    return publicKey(e);
  }

  private dh(t: 'ee' | 'es' | 'se' | 'ss'): Uint8Array {
    const le = this.localEphemeral;
    const re = this.remoteEphemeral;
    const ls = this.localStatic;
    const rs = this.remoteStatic;
    const need = <T>(x: T | undefined): T => {
      if (x === undefined) throw new Error(`handshake: key missing for ${t}`);
      return x;
    };
    switch (t) {
      case 'ee':
        return ecdh(need(le), need(re));
      case 'ss':
        return ecdh(ls, need(rs));
      case 'es': // initiator's ephemeral with responder's static
        return this.initiator ? ecdh(need(le), need(rs)) : ecdh(ls, need(re));
      case 'se': // initiator's static with responder's ephemeral
        return this.initiator ? ecdh(ls, need(re)) : ecdh(need(le), need(rs));
    }
  }

  private writeToken(t: Token, out: Uint8Array[]): void {
    switch (t) {
      case 'e': {
        const pub = this.ephemeral();
        this.ss.mixHash(pub);
        out.push(pub);
        return;
      }
      case 'me': {
        const pub = this.ephemeral();
        // The unmasked key goes into h, so a wrong phrase shows up as a MAC failure.
        this.ss.mixHash(pub);
        out.push(mask(pub, this.pw!));
        return;
      }
      case 's':
        out.push(this.ss.encryptAndHash(this.localStaticPub));
        return;
      default:
        this.ss.mixKey(this.dh(t));
    }
  }

  private readToken(t: Token, r: ActReader): void {
    switch (t) {
      case 'e': {
        const pub = r.take(33);
        parsePublicKey(pub);
        this.remoteEphemeral = pub.slice();
        this.ss.mixHash(pub);
        return;
      }
      case 'me': {
        this.remoteEphemeral = unmask(r.take(33), this.pw!);
        this.ss.mixHash(this.remoteEphemeral);
        return;
      }
      case 's': {
        const pub = this.ss.decryptAndHash(r.take(33 + MAC_SIZE));
        parsePublicKey(pub);
        this.remoteStatic = pub.slice();
        return;
      }
      default:
        this.ss.mixKey(this.dh(t));
    }
  }

  private translate(e: unknown, m: MessagePattern): PairingError {
    if (e instanceof PairingError) return e;
    // In XX the phrase is in every key from act 1 on (through the unmasked ephemeral), so a
    // MAC failure in act 1 (at the node) or act 2 (here) means the phrases differ.
    if (e instanceof AeadError && this.pattern === 'XX' && m.act <= 2) {
      return new PairingError('wrong_phrase', MESSAGES.wrongPhrase, {
        detail: `act ${m.act} MAC check failed`,
        cause: e,
      });
    }
    const detail =
      e instanceof AeadError
        ? `act ${m.act} MAC check failed`
        : `act ${m.act}: ${e instanceof Error ? e.message : String(e)}`;
    return new PairingError('handshake_failed', MESSAGES.handshakeFailed, { detail, cause: e });
  }
}
