// Checks the TypeScript implementation against the vectors the Rust side (crates/lnc)
// generates: docs/pairing.md, "Test vectors". Every section is checked; a missing file fails.

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { publicKey, mask, unmask } from '../src/lnc/keys.js';
import { Handshake, KEY_ROTATION_INTERVAL, type Transport } from '../src/lnc/noise.js';
import { entropyToPhrase, phraseToEntropy, stretch } from '../src/lnc/phrase.js';
import { sidFromEntropy, sidPaired, streamIds } from '../src/lnc/sid.js';
import { fixedKeys, hex, unhex } from './support/util.js';

const DEFAULT_PATH = fileURLToPath(new URL('../../crates/lnc/tests/vectors.json', import.meta.url));
/** LNC_VECTORS=/path/to/vectors.json overrides the location (for development). */
const PATH = process.env.LNC_VECTORS ?? DEFAULT_PATH;

type Hex = string;
interface Message {
  from: 'initiator' | 'responder';
  plaintext: Hex;
  frame: Hex;
}
interface Vectors {
  phrase: { entropy: Hex; words: string[] }[];
  stretch: { entropy: Hex; pw: Hex }[];
  sid: { entropy: Hex; server_to_client: Hex; client_to_server: Hex }[];
  sid_paired: { local_priv: Hex; remote_pub: Hex; server_to_client: Hex; client_to_server: Hex }[];
  mask: { pw: Hex; e_pub: Hex; me: Hex }[];
  xx: {
    entropy: Hex;
    initiator_static: Hex;
    initiator_ephemeral: Hex;
    responder_static: Hex;
    responder_ephemeral: Hex;
    auth_data: Hex;
    act1: Hex;
    act2: Hex;
    act3: Hex;
    messages: Message[];
  };
  kk: {
    initiator_static: Hex;
    initiator_ephemeral: Hex;
    responder_static: Hex;
    responder_ephemeral: Hex;
    auth_data: Hex;
    act1: Hex;
    act2: Hex;
    messages: Message[];
  };
}

let cached: Vectors | undefined;
function vectors(): Vectors {
  if (cached) return cached;
  if (!existsSync(PATH)) {
    throw new Error(
      `Test vectors not found: ${PATH} does not exist.\n` +
        'The Rust side generates it (docs/pairing.md, "Test vectors"):\n' +
        '  cargo test -p micronode-lnc --test vectors -- --ignored regenerate\n' +
        'Set LNC_VECTORS=/path/to/vectors.json to check another file.',
    );
  }
  const v = JSON.parse(readFileSync(PATH, 'utf8')) as Partial<Vectors>;
  for (const k of ['phrase', 'stretch', 'sid', 'sid_paired', 'mask', 'xx', 'kk'] as const) {
    if (v[k] === undefined) throw new Error(`${PATH}: section "${k}" is missing`);
  }
  for (const k of ['phrase', 'stretch', 'sid', 'sid_paired', 'mask'] as const) {
    if (!Array.isArray(v[k]) || v[k].length === 0) throw new Error(`${PATH}: "${k}" is empty`);
  }
  cached = v as Vectors;
  return cached;
}

/** A hex field, checked to be present and hex (so a format change fails clearly). */
function b(x: unknown, where: string): Uint8Array {
  if (typeof x !== 'string' || !/^([0-9a-f]{2})*$/.test(x)) {
    throw new Error(`vectors.json: ${where} is not lower-case hex: ${JSON.stringify(x)}`);
  }
  return unhex(x);
}

/**
 * Plays the messages in order: the sender's transport must produce the vector's frame, the
 * receiver's must decrypt it to the plaintext. Either side may be left out.
 */
function playMessages(
  messages: Message[],
  where: string,
  sides: { initiator?: Transport; responder?: Transport },
): void {
  const counts = { initiator: 0, responder: 0 };
  messages.forEach((m, i) => {
    const at = `${where}.messages[${i}]`;
    const pt = b(m.plaintext, `${at}.plaintext`);
    const frame = b(m.frame, `${at}.frame`);
    if (m.from !== 'initiator' && m.from !== 'responder') {
      throw new Error(`${at}.from is ${JSON.stringify(m.from)}`);
    }
    counts[m.from]++;
    const sender = sides[m.from];
    const receiver = m.from === 'initiator' ? sides.responder : sides.initiator;
    if (sender) expect(hex(sender.encrypt(pt)), `${at}: frame`).toBe(m.frame);
    if (receiver) expect(hex(receiver.decrypt(frame)), `${at}: plaintext`).toBe(m.plaintext);
  });
  // Each message takes two cipher uses (length, body): a rotation needs over 500 from a side.
  const most = Math.max(counts.initiator, counts.responder);
  expect(
    most * 2,
    `${where}.messages should cross a key rotation (${KEY_ROTATION_INTERVAL} cipher uses)`,
  ).toBeGreaterThan(KEY_ROTATION_INTERVAL);
}

describe(`test vectors (${PATH})`, () => {
  test('phrase <-> entropy', () => {
    for (const [i, v] of vectors().phrase.entries()) {
      const entropy = b(v.entropy, `phrase[${i}].entropy`);
      expect(entropyToPhrase(entropy), `phrase[${i}]`).toEqual(v.words);
      expect(hex(phraseToEntropy(v.words)), `phrase[${i}]`).toBe(v.entropy);
      expect(hex(phraseToEntropy(v.words.join(' ').toUpperCase()))).toBe(v.entropy);
    }
  });

  test('stretch (scrypt N=65536, r=8, p=1)', async () => {
    for (const [i, v] of vectors().stretch.entries()) {
      const pw = await stretch(b(v.entropy, `stretch[${i}].entropy`));
      expect(hex(pw), `stretch[${i}]`).toBe(v.pw);
    }
  });

  test('sid (before pairing)', () => {
    for (const [i, v] of vectors().sid.entries()) {
      const ids = streamIds(sidFromEntropy(b(v.entropy, `sid[${i}].entropy`)));
      expect(hex(ids.serverToClient), `sid[${i}].server_to_client`).toBe(v.server_to_client);
      expect(hex(ids.clientToServer), `sid[${i}].client_to_server`).toBe(v.client_to_server);
    }
  });

  test('sid_paired', () => {
    for (const [i, v] of vectors().sid_paired.entries()) {
      const sid = sidPaired(
        b(v.local_priv, `sid_paired[${i}].local_priv`),
        b(v.remote_pub, `sid_paired[${i}].remote_pub`),
      );
      const ids = streamIds(sid);
      expect(hex(ids.serverToClient), `sid_paired[${i}].server_to_client`).toBe(v.server_to_client);
      expect(hex(ids.clientToServer), `sid_paired[${i}].client_to_server`).toBe(v.client_to_server);
    }
  });

  test('mask (me = e + pw·N) and unmask', () => {
    for (const [i, v] of vectors().mask.entries()) {
      const pw = b(v.pw, `mask[${i}].pw`);
      expect(hex(mask(b(v.e_pub, `mask[${i}].e_pub`), pw)), `mask[${i}].me`).toBe(v.me);
      expect(hex(unmask(b(v.me, `mask[${i}].me`), pw)), `mask[${i}] unmask`).toBe(v.e_pub);
    }
  });

  async function xxSides() {
    const v = vectors().xx;
    const pw = await stretch(b(v.entropy, 'xx.entropy'));
    const initiator = new Handshake({
      pattern: 'XX',
      initiator: true,
      localStatic: b(v.initiator_static, 'xx.initiator_static'),
      pw,
      ephemeral: fixedKeys(b(v.initiator_ephemeral, 'xx.initiator_ephemeral')),
    });
    const responder = new Handshake({
      pattern: 'XX',
      initiator: false,
      localStatic: b(v.responder_static, 'xx.responder_static'),
      pw,
      authData: b(v.auth_data, 'xx.auth_data'),
      ephemeral: fixedKeys(b(v.responder_ephemeral, 'xx.responder_ephemeral')),
    });
    return { v, initiator, responder };
  }

  test('xx, initiator side: act1 and act3 byte for byte, act2 read, transport', async () => {
    const { v, initiator } = await xxSides();
    expect(hex(initiator.writeAct()), 'xx.act1').toBe(v.act1);
    initiator.readAct(b(v.act2, 'xx.act2'));
    expect(hex(initiator.authData!), 'xx.auth_data from act2').toBe(v.auth_data);
    expect(hex(initiator.remoteStatic!), 'responder static key from act2').toBe(
      hex(publicKey(b(v.responder_static, 'xx.responder_static'))),
    );
    expect(hex(initiator.writeAct()), 'xx.act3').toBe(v.act3);
    expect(initiator.isComplete).toBe(true);
    playMessages(v.messages, 'xx', { initiator: initiator.transport() });
  });

  test('xx, responder side: act1 read, act2 byte for byte, act3 read, transport', async () => {
    const { v, responder } = await xxSides();
    responder.readAct(b(v.act1, 'xx.act1'));
    expect(hex(responder.writeAct()), 'xx.act2').toBe(v.act2);
    responder.readAct(b(v.act3, 'xx.act3'));
    expect(hex(responder.remoteStatic!), 'initiator static key from act3').toBe(
      hex(publicKey(b(v.initiator_static, 'xx.initiator_static'))),
    );
    playMessages(v.messages, 'xx', { responder: responder.transport() });
  });

  function kkSides() {
    const v = vectors().kk;
    const is = b(v.initiator_static, 'kk.initiator_static');
    const rs = b(v.responder_static, 'kk.responder_static');
    const initiator = new Handshake({
      pattern: 'KK',
      initiator: true,
      localStatic: is,
      remoteStatic: publicKey(rs),
      ephemeral: fixedKeys(b(v.initiator_ephemeral, 'kk.initiator_ephemeral')),
    });
    const responder = new Handshake({
      pattern: 'KK',
      initiator: false,
      localStatic: rs,
      remoteStatic: publicKey(is),
      authData: b(v.auth_data, 'kk.auth_data'),
      ephemeral: fixedKeys(b(v.responder_ephemeral, 'kk.responder_ephemeral')),
    });
    return { v, initiator, responder };
  }

  test('kk, initiator side: act1 byte for byte, act2 read, transport', () => {
    const { v, initiator } = kkSides();
    expect(hex(initiator.writeAct()), 'kk.act1').toBe(v.act1);
    initiator.readAct(b(v.act2, 'kk.act2'));
    expect(hex(initiator.authData!), 'kk.auth_data from act2').toBe(v.auth_data);
    expect(initiator.isComplete).toBe(true);
    playMessages(v.messages, 'kk', { initiator: initiator.transport() });
  });

  test('kk, responder side: act1 read, act2 byte for byte, transport', () => {
    const { v, responder } = kkSides();
    responder.readAct(b(v.act1, 'kk.act1'));
    expect(hex(responder.writeAct()), 'kk.act2').toBe(v.act2);
    expect(responder.isComplete).toBe(true);
    playMessages(v.messages, 'kk', { responder: responder.transport() });
  });
});
