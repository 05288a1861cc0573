// connect() against an in-memory relay and a TypeScript node (responder), over real websockets.

import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { WebSocket } from 'ws';
import { concatBytes, toBase64, utf8 } from '../src/lnc/bytes.js';
import { PairingError } from '../src/lnc/errors.js';
import { publicKey, randomPrivateKey, unmask } from '../src/lnc/keys.js';
import {
  hashmailUrl,
  openReceive,
  openSend,
  type MailboxOptions,
  type ReceiveStream,
  type SendStream,
  type WebSocketConstructor,
} from '../src/lnc/mailbox.js';
import {
  Handshake,
  PROLOGUE,
  PROTOCOL_NAME_XX,
  SymmetricState,
  type Transport,
} from '../src/lnc/noise.js';
import { newPhrase, stretch } from '../src/lnc/phrase.js';
import { connect, type StoredPairing } from '../src/lnc/session.js';
import { sidFromEntropy, sidPaired, streamIds } from '../src/lnc/sid.js';
import { FakeRelay } from './support/fake-relay.js';
import { hex } from './support/util.js';

const WS: WebSocketConstructor = WebSocket;
const opts: MailboxOptions = { WebSocket: WS };

let relay: FakeRelay;
beforeEach(async () => {
  relay = await FakeRelay.start();
});
afterEach(async () => {
  await relay.stop();
});

/** The node's side: creates both boxes, reads client→server, writes server→client. */
class TestNode {
  recv!: ReceiveStream;
  send!: SendStream;
  transport!: Transport;
  hs!: Handshake;
  readonly ready: Promise<void>;

  constructor(
    readonly sid: Uint8Array,
    readonly staticKey: Uint8Array,
    readonly mode: { pw: Uint8Array } | { remoteStatic: Uint8Array },
    readonly authData = utf8('{"node":"test"}'),
  ) {
    const ids = streamIds(sid);
    relay.createStream(ids.serverToClient);
    relay.createStream(ids.clientToServer);
    this.ready = this.open(ids);
  }

  private async open(ids: ReturnType<typeof streamIds>): Promise<void> {
    this.recv = await openReceive(relay.url, ids.clientToServer, opts);
    this.send = await openSend(relay.url, ids.serverToClient, opts);
  }

  /**
   * Runs the responder's side of the handshake. `impostor`: recompute act 1's MAC for the key
   * our own pw unmasks (possible since act 1 uses the all-zero key), as a relay that does not
   * know the phrase could.
   */
  async handshake(impostor = false): Promise<void> {
    await this.ready;
    this.hs = new Handshake({
      pattern: 'pw' in this.mode ? 'XX' : 'KK',
      initiator: false,
      localStatic: this.staticKey,
      authData: this.authData,
      ...('pw' in this.mode ? { pw: this.mode.pw } : { remoteStatic: this.mode.remoteStatic }),
    });
    let act1 = await this.recv.next(10_000);
    if (impostor && 'pw' in this.mode) {
      const ss = new SymmetricState(PROTOCOL_NAME_XX);
      ss.mixHash(utf8(PROLOGUE));
      ss.mixHash(unmask(act1.subarray(1, 34), this.mode.pw));
      act1 = concatBytes(act1.subarray(0, 34), ss.encryptAndHash(new Uint8Array(0)));
    }
    this.hs.readAct(act1);
    this.send.send(this.hs.writeAct());
    if (this.hs.next === 'read') this.hs.readAct(await this.recv.next(10_000));
    this.transport = this.hs.transport();
  }

  async receive(): Promise<string> {
    return new TextDecoder().decode(this.transport.decrypt(await this.recv.next(10_000)));
  }

  write(text: string): void {
    this.send.send(this.transport.encrypt(utf8(text)));
  }

  close(): void {
    this.recv.close();
    this.send.close();
  }
}

async function pairedNode(): Promise<{ node: TestNode; words: string[]; nodeKey: Uint8Array }> {
  const { words, entropy } = newPhrase();
  const nodeKey = randomPrivateKey();
  const node = new TestNode(sidFromEntropy(entropy), nodeKey, { pw: await stretch(entropy) });
  await node.ready;
  return { node, words, nodeKey };
}

async function rejection(p: Promise<unknown>): Promise<PairingError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PairingError);
    return e as PairingError;
  }
  throw new Error('expected a PairingError');
}

describe('mailbox', () => {
  test('relay URLs', () => {
    const p = '/v1/lightning-node-connect/hashmail/send?method=POST';
    expect(hashmailUrl('wss://relay.example.com', 'send')).toBe(`wss://relay.example.com${p}`);
    expect(hashmailUrl('https://relay.example.com/', 'send')).toBe(`wss://relay.example.com${p}`);
    expect(hashmailUrl('http://127.0.0.1:8080/x/', 'send')).toBe(`ws://127.0.0.1:8080/x${p}`);
    expect(hashmailUrl('relay.example.com:443', 'receive')).toBe(
      'wss://relay.example.com/v1/lightning-node-connect/hashmail/receive?method=POST',
    );
  });

  test('wire format: send frames, receive init and results', async () => {
    const sid = new Uint8Array(64).fill(7);
    relay.createStream(sid);
    const r = await openReceive(relay.url, sid, opts);
    const s = await openSend(relay.url, sid, opts);
    s.send(utf8('one'));
    s.send(new Uint8Array(0));
    s.send(new Uint8Array(70_000).fill(1));
    expect(new TextDecoder().decode(await r.next(5000))).toBe('one');
    expect(await r.next(5000)).toHaveLength(0);
    expect(await r.next(5000)).toHaveLength(70_000);
    expect(relay.log.get(toBase64(sid))?.[0]).toBe(toBase64(utf8('one')));
    r.close();
    s.close();
    expect(await r.closed).toBeNull();
    expect((await rejection(r.next())).code).toBe('relay_closed');
  });

  test('relay errors become typed errors', async () => {
    const missing = new Uint8Array(64).fill(9);
    const r = await openReceive(relay.url, missing, opts);
    const e = await rejection(r.next(5000));
    expect(e.code).toBe('relay_not_found');
    expect(e.grpcCode).toBe(5);
    expect(await r.closed).toBe(e);

    const sid = new Uint8Array(64).fill(3);
    relay.createStream(sid);
    const r1 = await openReceive(relay.url, sid, opts);
    const r2 = await openReceive(relay.url, sid, opts);
    expect((await rejection(r2.next(5000))).code).toBe('relay_busy');
    r1.close();
  });

  test('an unreachable relay', async () => {
    const url = relay.url;
    await relay.stop();
    relay = await FakeRelay.start(); // for afterEach
    const e = await rejection(openSend(url, new Uint8Array(64), opts));
    expect(e.code).toBe('relay_unreachable');
  });
});

describe('connect', () => {
  test('first pairing with the phrase (XX), then a reconnection with the stored keys (KK)', async () => {
    const { node, words, nodeKey } = await pairedNode();
    const [session] = await Promise.all([
      connect(relay.url, words.join(' '), { ...opts }),
      node.handshake(),
    ]);
    expect(session.pattern).toBe('XX');
    expect(new TextDecoder().decode(session.authData)).toBe('{"node":"test"}');
    expect(hex(session.pairing.remoteStatic)).toBe(hex(publicKey(nodeKey)));
    expect(hex(node.hs.remoteStatic!)).toBe(hex(publicKey(session.pairing.localStatic)));

    session.send(utf8('hello node'));
    expect(await node.receive()).toBe('hello node');
    node.write('hello browser');
    node.write('second');
    expect(new TextDecoder().decode(await session.receive(5000))).toBe('hello browser');
    const it = session[Symbol.asyncIterator]();
    expect(new TextDecoder().decode((await it.next()).value as Uint8Array)).toBe('second');

    session.close();
    expect(await session.closed).toBeNull();
    expect((await it.next()).done).toBe(true);
    node.close();
    relay.deleteStream(node.sid);

    // Later: KK on the paired stream ids, from the stored keys only.
    const stored: StoredPairing = {
      localStatic: session.pairing.localStatic,
      remoteStatic: session.pairing.remoteStatic,
    };
    const kkSid = sidPaired(nodeKey, publicKey(stored.localStatic));
    expect(hex(kkSid)).toBe(hex(sidPaired(stored.localStatic, stored.remoteStatic)));
    const node2 = new TestNode(kkSid, nodeKey, { remoteStatic: publicKey(stored.localStatic) });
    await node2.ready;
    const [s2] = await Promise.all([connect(relay.url, stored, opts), node2.handshake()]);
    expect(s2.pattern).toBe('KK');
    for (let i = 0; i < 30; i++) {
      s2.send(utf8(`ping ${i}`));
      expect(await node2.receive()).toBe(`ping ${i}`);
      node2.write(`pong ${i}`);
      expect(new TextDecoder().decode(await s2.receive(5000))).toBe(`pong ${i}`);
    }
    s2.close();
    node2.close();
  });

  test('each mailbox message is one act or one whole frame', async () => {
    const { node, words } = await pairedNode();
    const [session] = await Promise.all([connect(relay.url, words, opts), node.handshake()]);
    session.send(utf8('abc'));
    await node.receive();
    const sent = relay.log.get(toBase64(streamIds(node.sid).clientToServer))!;
    expect(sent.map((m) => Buffer.from(m, 'base64').length)).toEqual([50, 66, 18 + 3 + 16]);
    session.close();
    node.close();
  });

  test('phrase typos fail before any network use', async () => {
    const e = await rejection(connect(relay.url, 'abandon ability', opts));
    expect(e.code).toBe('wrong_word_count');
    const e2 = await rejection(connect(relay.url, 'abandon '.repeat(9) + 'abandn', opts));
    expect(e2.code).toBe('unknown_word');
    expect(relay.log.size).toBe(0);
  });

  test('a phrase nobody is waiting for: pairing_not_found', async () => {
    const { node } = await pairedNode();
    const other = newPhrase();
    const e = await rejection(connect(relay.url, other.words, opts));
    expect(e.code).toBe('pairing_not_found');
    expect(e.message).toMatch(/No pairing is waiting for this phrase/);
    node.close();
  });

  test('an impostor that answers without knowing the phrase: wrong_phrase at act 2', async () => {
    const { words, entropy } = newPhrase();
    const guess = newPhrase();
    const node = new TestNode(sidFromEntropy(entropy), randomPrivateKey(), {
      pw: await stretch(guess.entropy),
    });
    await node.ready;
    const nodeSide = node.handshake(true).catch((e: unknown) => e);
    const e = await rejection(connect(relay.url, words, opts));
    expect(e.code).toBe('wrong_phrase');
    expect(e.message).toBe(
      'That phrase did not match. The pairing is now cancelled: create a new one.',
    );
    // The browser sent no act 3.
    expect(relay.log.get(toBase64(streamIds(node.sid).clientToServer))).toHaveLength(1);
    node.close();
    await nodeSide;
  });

  test('an honest node with another phrase refuses act 1; the browser times out', async () => {
    // (Only possible if the two sides stretch the same entropy differently: the stream id
    // comes from the phrase, so a mistyped phrase finds no stream at all.)
    const { words, entropy } = newPhrase();
    const other = newPhrase();
    const node = new TestNode(sidFromEntropy(entropy), randomPrivateKey(), {
      pw: await stretch(other.entropy),
    });
    await node.ready;
    const nodeSide = node.handshake().catch((e: unknown) => e);
    const e = await rejection(connect(relay.url, words, { ...opts, handshakeTimeoutMs: 1500 }));
    expect(e.code).toBe('timeout');
    expect(((await nodeSide) as PairingError).code).toBe('wrong_phrase');
    node.close();
  });

  test('a node that does not answer: timeout', async () => {
    const { node, words } = await pairedNode();
    relay.blackholed.add(toBase64(streamIds(node.sid).clientToServer));
    const e = await rejection(connect(relay.url, words, { ...opts, handshakeTimeoutMs: 500 }));
    expect(e.code).toBe('timeout');
    node.close();
  });

  test('a second browser on the same streams: relay_busy', async () => {
    const { node, words } = await pairedNode();
    const [session] = await Promise.all([connect(relay.url, words, opts), node.handshake()]);
    const e = await rejection(connect(relay.url, words, { ...opts, handshakeTimeoutMs: 3000 }));
    expect(e.code).toBe('relay_busy');
    session.close();
    node.close();
  });

  test('a forged frame ends the session with decrypt_failed', async () => {
    const { node, words } = await pairedNode();
    const [session] = await Promise.all([connect(relay.url, words, opts), node.handshake()]);
    const frame = node.transport.encrypt(utf8('real'));
    frame[25]! ^= 1;
    node.send.send(frame);
    const e = await rejection(session.receive(5000));
    expect(e.code).toBe('decrypt_failed');
    expect(await session.closed).toBe(e);
    expect(() => session.send(utf8('more'))).toThrow(PairingError);
    node.close();
  });

  test('the relay dropping the connection ends the session', async () => {
    const { node, words } = await pairedNode();
    const [session] = await Promise.all([connect(relay.url, words, opts), node.handshake()]);
    relay.dropAll();
    const e = await session.closed;
    expect(e?.code).toBe('relay_closed');
    expect((await rejection(session.receive())).code).toBe('relay_closed');
  });
});

test('a damaged stored pairing is a typed error', async () => {
  const e = await rejection(
    connect(relay.url, { localStatic: new Uint8Array(32), remoteStatic: new Uint8Array(33) }, opts),
  );
  expect(e.code).toBe('bad_argument');
  expect(relay.log.size).toBe(0);
});
