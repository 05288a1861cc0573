// The browser's side of a session: derive the stream ids, open both mailbox streams, run the
// handshake (XX with the phrase the first time, KK with the stored keys later), then carry
// application messages, one transport frame per mailbox message (docs/pairing.md).

import { MESSAGES, PairingError } from './errors.js';
import { randomPrivateKey, parsePublicKey, assertPrivateKey } from './keys.js';
import { openReceive, openSend, type MailboxOptions, type ReceiveStream, type SendStream } from './mailbox.js';
import { Handshake, type HandshakePatternName, type Transport } from './noise.js';
import { phraseToEntropy, stretch } from './phrase.js';
import { sidFromEntropy, sidPaired, streamIds } from './sid.js';

/** What the app keeps after the first pairing, to reconnect with KK. Both are secrets to keep. */
export interface StoredPairing {
  /** Our static private key (32 bytes). */
  localStatic: Uint8Array;
  /** The node's static public key (33 bytes, compressed). */
  remoteStatic: Uint8Array;
}

export interface ConnectOptions extends MailboxOptions {
  /** How long to wait for the node's act 2, in ms (default 20,000). */
  handshakeTimeoutMs?: number;
  /** XX only: our static private key to pair with (default: a new random key). */
  localStatic?: Uint8Array;
  /** Ephemeral key generator (tests only). */
  ephemeral?: () => Uint8Array;
  /** XX only: progress of the phrase stretching (0..1), which takes about a second. */
  onStretchProgress?: (fraction: number) => void;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 20_000;

/** An open, encrypted session with the node. */
export interface Session extends AsyncIterable<Uint8Array> {
  /** `XX` for a first pairing, `KK` for a reconnection. */
  readonly pattern: HandshakePatternName;
  /** The keys to store for the next connection (same as given, for KK). */
  readonly pairing: StoredPairing;
  /** The node's auth data from act 2. */
  readonly authData: Uint8Array;
  /** Encrypts and sends one message (at most 65,535 bytes). @throws PairingError */
  send(plaintext: Uint8Array): void;
  /** The next message from the node. @throws PairingError (the session is then over) */
  receive(timeoutMs?: number): Promise<Uint8Array>;
  /** Ends the session; `closed` resolves with `null`. */
  close(): void;
  /** Resolves when the session ends: `null` after close(), else the error that ended it. */
  readonly closed: Promise<PairingError | null>;
}

function isPairing(x: unknown): x is StoredPairing {
  return (
    typeof x === 'object' &&
    x !== null &&
    !Array.isArray(x) &&
    (x as StoredPairing).localStatic instanceof Uint8Array &&
    (x as StoredPairing).remoteStatic instanceof Uint8Array
  );
}

/**
 * Connects to the node through the relay.
 * @param relayUrl e.g. `wss://relay.example.com`
 * @param secret the 10-word phrase (first time: runs XX) or the stored keys (later: runs KK)
 * @throws PairingError: phrase errors (`wrong_word_count`, `unknown_word`) before any network
 * use; `pairing_not_found` (XX: nobody waits on this phrase's stream), `wrong_phrase`,
 * `timeout`, `handshake_failed`, `relay_*`.
 */
export async function connect(
  relayUrl: string,
  secret: string | string[] | StoredPairing,
  opts: ConnectOptions = {},
): Promise<Session> {
  let hs: Handshake;
  let sid: Uint8Array;
  let localStatic: Uint8Array;
  if (isPairing(secret)) {
    try {
      assertPrivateKey(secret.localStatic);
      parsePublicKey(secret.remoteStatic);
    } catch (e) {
      throw new PairingError(
        'bad_argument',
        'The saved pairing with your node is damaged. Pair again with a new phrase.',
        { detail: e instanceof Error ? e.message : String(e), cause: e },
      );
    }
    sid = sidPaired(secret.localStatic, secret.remoteStatic);
    localStatic = secret.localStatic.slice();
    hs = new Handshake({
      pattern: 'KK',
      initiator: true,
      localStatic: secret.localStatic,
      remoteStatic: secret.remoteStatic,
      ...(opts.ephemeral ? { ephemeral: opts.ephemeral } : {}),
    });
  } else {
    const entropy = phraseToEntropy(secret);
    sid = sidFromEntropy(entropy);
    const pw = await stretch(entropy, opts.onStretchProgress);
    localStatic = opts.localStatic?.slice() ?? randomPrivateKey();
    hs = new Handshake({
      pattern: 'XX',
      initiator: true,
      localStatic,
      pw,
      ...(opts.ephemeral ? { ephemeral: opts.ephemeral } : {}),
    });
  }

  const ids = streamIds(sid);
  const mailboxOpts: MailboxOptions = {
    ...(opts.WebSocket ? { WebSocket: opts.WebSocket } : {}),
    ...(opts.openTimeoutMs !== undefined ? { openTimeoutMs: opts.openTimeoutMs } : {}),
  };
  let recv: ReceiveStream | undefined;
  let send: SendStream | undefined;
  try {
    // The browser reads the server-to-client stream (= sid) and writes client-to-server.
    recv = await openReceive(relayUrl, ids.serverToClient, mailboxOpts);
    send = await openSend(relayUrl, ids.clientToServer, mailboxOpts);
    const sendStream = send;
    const sendFailed = sendStream.closed.then((e) => {
      throw e ?? new PairingError('closed', MESSAGES.closed);
    });
    sendFailed.catch(() => {});
    const timeout = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;

    sendStream.send(hs.writeAct());
    const act2 = await Promise.race([recv.next(timeout), sendFailed]);
    hs.readAct(act2);
    if (hs.next === 'write') sendStream.send(hs.writeAct());
    if (!hs.isComplete) throw new Error('handshake did not complete');

    return new LncSession(hs, localStatic, recv, sendStream);
  } catch (e) {
    recv?.close();
    send?.close();
    throw mapConnectError(e, hs.pattern);
  }
}

function mapConnectError(e: unknown, pattern: HandshakePatternName): PairingError {
  if (e instanceof PairingError) {
    if (e.code === 'relay_not_found' && pattern === 'XX') {
      // The stream id comes from the phrase: nobody created it, so the phrase is mistyped
      // (but still made of valid words) or the pairing expired or was used already.
      return new PairingError('pairing_not_found', MESSAGES.pairingNotFound, {
        detail: e.detail ?? 'stream not found',
        ...(e.grpcCode !== undefined ? { grpcCode: e.grpcCode } : {}),
        cause: e,
      });
    }
    return e;
  }
  return new PairingError('handshake_failed', MESSAGES.handshakeFailed, {
    detail: e instanceof Error ? e.message : String(e),
    cause: e,
  });
}

class LncSession implements Session {
  readonly pattern: HandshakePatternName;
  readonly pairing: StoredPairing;
  readonly authData: Uint8Array;
  readonly closed: Promise<PairingError | null>;
  private readonly transport: Transport;
  private ended: PairingError | null | undefined;
  private resolveClosed!: (e: PairingError | null) => void;

  constructor(
    hs: Handshake,
    localStatic: Uint8Array,
    private readonly recv: ReceiveStream,
    private readonly sendStream: SendStream,
  ) {
    this.pattern = hs.pattern;
    this.transport = hs.transport();
    this.authData = hs.authData ?? new Uint8Array(0);
    this.pairing = {
      localStatic,
      remoteStatic: hs.remoteStatic!.slice(),
    };
    this.closed = new Promise((r) => (this.resolveClosed = r));
    // Either stream ending ends the session; the other stream is closed with it.
    void recv.closed.then((e) => this.end(e ?? new PairingError('closed', MESSAGES.closed)));
    void sendStream.closed.then((e) => this.end(e ?? new PairingError('closed', MESSAGES.closed)));
  }

  send(plaintext: Uint8Array): void {
    if (this.ended !== undefined) throw this.ended ?? new PairingError('closed', MESSAGES.closed);
    this.sendStream.send(this.transport.encrypt(plaintext));
  }

  async receive(timeoutMs?: number): Promise<Uint8Array> {
    if (this.ended === null) throw new PairingError('closed', MESSAGES.closed);
    if (this.transport.isFailed) throw this.ended!;
    // Frames that arrived before the relay closed the stream are still delivered.
    let frame: Uint8Array;
    try {
      frame = await this.recv.next(timeoutMs);
    } catch (e) {
      if (this.ended === null) throw new PairingError('closed', MESSAGES.closed);
      throw e;
    }
    try {
      return this.transport.decrypt(frame);
    } catch (e) {
      const err =
        e instanceof PairingError
          ? e
          : new PairingError('decrypt_failed', MESSAGES.decryptFailed, { cause: e });
      this.end(err);
      throw err;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      try {
        yield await this.receive();
      } catch (e) {
        if (this.ended === null) return;
        throw e;
      }
    }
  }

  close(): void {
    this.end(null);
  }

  private end(e: PairingError | null): void {
    if (this.ended !== undefined) return;
    this.ended = e;
    this.recv.close();
    this.sendStream.close();
    this.resolveClosed(e);
  }
}
