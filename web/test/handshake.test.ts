// A TypeScript initiator against the TypeScript responder.

import { describe, expect, test } from 'vitest';
import { concatBytes, utf8 } from '../src/lnc/bytes.js';
import { PairingError } from '../src/lnc/errors.js';
import { publicKey, randomPrivateKey, unmask } from '../src/lnc/keys.js';
import {
  Handshake,
  MAX_PLAINTEXT,
  PROLOGUE,
  PROTOCOL_NAME_XX,
  SymmetricState,
  type Transport,
} from '../src/lnc/noise.js';
import { hex, randomBytes } from './support/util.js';

function xxPair(pwI = randomBytes(32), pwR = pwI, authData = utf8('auth data for the browser')) {
  const iStatic = randomPrivateKey();
  const rStatic = randomPrivateKey();
  const initiator = new Handshake({ pattern: 'XX', initiator: true, localStatic: iStatic, pw: pwI });
  const responder = new Handshake({
    pattern: 'XX',
    initiator: false,
    localStatic: rStatic,
    pw: pwR,
    authData,
  });
  return { initiator, responder, iStatic, rStatic, authData };
}

function runXX(p: ReturnType<typeof xxPair>): { ti: Transport; tr: Transport } {
  expect(p.initiator.next).toBe('write');
  expect(p.responder.next).toBe('read');
  const act1 = p.initiator.writeAct();
  expect(act1).toHaveLength(1 + 33 + 16);
  p.responder.readAct(act1);
  const act2 = p.responder.writeAct();
  expect(act2).toHaveLength(1 + 33 + 49 + 20 + p.authData.length + 16);
  p.initiator.readAct(act2);
  const act3 = p.initiator.writeAct();
  expect(act3).toHaveLength(1 + 49 + 16);
  p.responder.readAct(act3);
  expect(p.initiator.next).toBe('done');
  expect(p.responder.next).toBe('done');
  return { ti: p.initiator.transport(), tr: p.responder.transport() };
}

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof PairingError) return e.code;
    throw e;
  }
  throw new Error('expected a PairingError');
}

describe('XX then KK, initiator against responder', () => {
  test('XX: keys and auth data are learned, messages go both ways across key rotations', () => {
    const p = xxPair();
    const { ti, tr } = runXX(p);
    expect(hex(p.initiator.authData!)).toBe(hex(p.authData));
    expect(hex(p.initiator.remoteStatic!)).toBe(hex(publicKey(p.rStatic)));
    expect(hex(p.responder.remoteStatic!)).toBe(hex(publicKey(p.iStatic)));
    expect(hex(p.initiator.handshakeHash)).toBe(hex(p.responder.handshakeHash));
    // 1,200 messages each way: 2,400 cipher uses per direction, two key rotations or more.
    for (let i = 0; i < 1200; i++) {
      const a = randomBytes(i % 70);
      expect(hex(tr.decrypt(ti.encrypt(a)))).toBe(hex(a));
      const b = randomBytes((i * 13) % 90);
      expect(hex(ti.decrypt(tr.encrypt(b)))).toBe(hex(b));
    }
    const big = randomBytes(MAX_PLAINTEXT);
    const frame = ti.encrypt(big);
    expect(frame).toHaveLength(18 + MAX_PLAINTEXT + 16);
    expect(hex(tr.decrypt(frame))).toBe(hex(big));
    expect(code(() => ti.encrypt(new Uint8Array(MAX_PLAINTEXT + 1)))).toBe('message_too_large');
  });

  test('KK with the keys from XX', () => {
    const p = xxPair();
    runXX(p);
    const initiator = new Handshake({
      pattern: 'KK',
      initiator: true,
      localStatic: p.iStatic,
      remoteStatic: p.initiator.remoteStatic!,
    });
    const responder = new Handshake({
      pattern: 'KK',
      initiator: false,
      localStatic: p.rStatic,
      remoteStatic: p.responder.remoteStatic!,
      authData: utf8('kk'),
    });
    const act1 = initiator.writeAct();
    expect(act1).toHaveLength(50);
    responder.readAct(act1);
    const act2 = responder.writeAct();
    expect(act2).toHaveLength(1 + 33 + 20 + 2 + 16);
    initiator.readAct(act2);
    expect(initiator.isComplete && responder.isComplete).toBe(true);
    expect(new TextDecoder().decode(initiator.authData)).toBe('kk');
    const ti = initiator.transport();
    const tr = responder.transport();
    for (let i = 0; i < 600; i++) {
      const m = randomBytes(i % 40);
      expect(hex(tr.decrypt(ti.encrypt(m)))).toBe(hex(m));
      expect(hex(ti.decrypt(tr.encrypt(m)))).toBe(hex(m));
    }
  });

  test('KK with the wrong node key fails at act 1 (node) or act 2 (browser)', () => {
    const is = randomPrivateKey();
    const rs = randomPrivateKey();
    const other = randomPrivateKey();
    const initiator = new Handshake({
      pattern: 'KK',
      initiator: true,
      localStatic: is,
      remoteStatic: publicKey(other),
    });
    const responder = new Handshake({
      pattern: 'KK',
      initiator: false,
      localStatic: rs,
      remoteStatic: publicKey(is),
    });
    expect(code(() => responder.readAct(initiator.writeAct()))).toBe('handshake_failed');
  });
});

describe('wrong phrase', () => {
  test('the node (responder) detects it at act 1', () => {
    const p = xxPair(randomBytes(32), randomBytes(32));
    const act1 = p.initiator.writeAct();
    let err: unknown;
    try {
      p.responder.readAct(act1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PairingError);
    expect((err as PairingError).code).toBe('wrong_phrase');
    expect((err as PairingError).message).toBe(
      'That phrase did not match. The pairing is now cancelled: create a new one.',
    );
    // The handshake is over after a failure.
    expect(() => p.responder.writeAct()).toThrow();
  });

  test('an impostor node that guessed wrong fails the browser at act 2', () => {
    // Act 1's MAC uses the all-zero key, so anyone can recompute it for the ephemeral key
    // their own guess unmasks. The browser still catches the wrong guess at act 2.
    const pwBrowser = randomBytes(32);
    const pwGuess = randomBytes(32);
    const p = xxPair(pwBrowser, pwGuess);
    const act1 = p.initiator.writeAct();
    const me = act1.subarray(1, 34);
    const ss = new SymmetricState(PROTOCOL_NAME_XX);
    ss.mixHash(utf8(PROLOGUE));
    ss.mixHash(unmask(me, pwGuess));
    const forged = concatBytes(act1.subarray(0, 34), ss.encryptAndHash(new Uint8Array(0)));
    p.responder.readAct(forged);
    const act2 = p.responder.writeAct();
    let err: unknown;
    try {
      p.initiator.readAct(act2);
    } catch (e) {
      err = e;
    }
    expect((err as PairingError).code).toBe('wrong_phrase');
    expect((err as PairingError).message).toBe(
      'That phrase did not match. The pairing is now cancelled: create a new one.',
    );
    expect(p.initiator.authData).toBeUndefined();
    expect(() => p.initiator.writeAct()).toThrow();
  });
});

describe('malformed acts', () => {
  test('versions: the node takes act 1 of version 0..2 (XX) and answers 2; else refused', () => {
    for (const v of [0, 1, 2]) {
      const p = xxPair();
      const act1 = p.initiator.writeAct();
      act1[0] = v;
      p.responder.readAct(act1);
      expect(p.responder.writeAct()[0]).toBe(2);
    }
    const p = xxPair();
    const act1 = p.initiator.writeAct();
    act1[0] = 3;
    expect(code(() => p.responder.readAct(act1))).toBe('handshake_failed');

    const q = xxPair();
    q.responder.readAct(q.initiator.writeAct());
    const act2 = q.responder.writeAct();
    act2[0] = 1;
    expect(code(() => q.initiator.readAct(act2))).toBe('handshake_failed');
  });

  test('KK needs version 2 in act 1', () => {
    const is = randomPrivateKey();
    const rs = randomPrivateKey();
    const i = new Handshake({ pattern: 'KK', initiator: true, localStatic: is, remoteStatic: publicKey(rs) });
    const r = new Handshake({ pattern: 'KK', initiator: false, localStatic: rs, remoteStatic: publicKey(is) });
    const act1 = i.writeAct();
    act1[0] = 1;
    expect(code(() => r.readAct(act1))).toBe('handshake_failed');
  });

  test('short, long and corrupted acts', () => {
    for (const mutate of [
      (a: Uint8Array) => a.subarray(0, a.length - 1),
      (a: Uint8Array) => concatBytes(a, new Uint8Array(1)),
      (a: Uint8Array) => {
        const b = a.slice();
        b[b.length - 1]! ^= 1;
        return b;
      },
      (a: Uint8Array) => {
        const b = a.slice();
        b[40]! ^= 1; // in the encrypted static key
        return b;
      },
    ]) {
      const p = xxPair();
      p.responder.readAct(p.initiator.writeAct());
      const act2 = mutate(p.responder.writeAct());
      expect(['handshake_failed', 'wrong_phrase']).toContain(code(() => p.initiator.readAct(act2)));
    }
    const p = xxPair();
    p.responder.readAct(p.initiator.writeAct());
    p.initiator.readAct(p.responder.writeAct());
    const act3 = p.initiator.writeAct();
    act3[10]! ^= 0x80;
    expect(code(() => p.responder.readAct(act3))).toBe('handshake_failed');
  });

  test('acts out of turn are refused', () => {
    const p = xxPair();
    expect(() => p.initiator.readAct(new Uint8Array(50))).toThrow(/cannot read now/);
    expect(() => p.responder.writeAct()).toThrow(/cannot write now/);
    expect(() => p.initiator.transport()).toThrow(/not complete/);
  });
});

describe('transport frames', () => {
  function pair() {
    return runXX(xxPair());
  }

  test('a replayed frame is rejected, and the transport stays failed', () => {
    const { ti, tr } = pair();
    const f = ti.encrypt(utf8('pay 1000 sat'));
    expect(new TextDecoder().decode(tr.decrypt(f))).toBe('pay 1000 sat');
    expect(code(() => tr.decrypt(f))).toBe('decrypt_failed');
    expect(tr.isFailed).toBe(true);
    expect(code(() => tr.decrypt(ti.encrypt(utf8('next'))))).toBe('decrypt_failed');
  });

  test('reordered frames are rejected', () => {
    const { ti, tr } = pair();
    const f1 = ti.encrypt(utf8('first'));
    const f2 = ti.encrypt(utf8('second'));
    expect(code(() => tr.decrypt(f2))).toBe('decrypt_failed');
    expect(code(() => tr.decrypt(f1))).toBe('decrypt_failed');
  });

  test('forged, cut and padded frames are rejected', () => {
    const cases: ((f: Uint8Array) => Uint8Array)[] = [
      (f) => {
        const g = f.slice();
        g[20]! ^= 1;
        return g;
      },
      (f) => {
        const g = f.slice();
        g[0]! ^= 1;
        return g;
      },
      (f) => f.subarray(0, f.length - 1),
      (f) => concatBytes(f, new Uint8Array(1)),
      (f) => f.subarray(0, 18),
      () => new Uint8Array(0),
    ];
    for (const mutate of cases) {
      const { ti, tr } = pair();
      expect(code(() => tr.decrypt(mutate(ti.encrypt(utf8('hello')))))).toBe('decrypt_failed');
    }
  });

  test('a frame from the other direction is rejected', () => {
    const { ti } = pair();
    const f = ti.encrypt(utf8('echo'));
    expect(code(() => ti.decrypt(f))).toBe('decrypt_failed');
  });
});
