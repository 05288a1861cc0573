// A client for the relay's websocket form of LNC's HashMail API (docs/pairing.md, "The relay").
// Uses the browser's WebSocket; tests (Node) pass another constructor (the `ws` package).

import { fromBase64, toBase64 } from './bytes.js';
import { MESSAGES, PairingError, type PairingErrorCode } from './errors.js';

export const SEND_PATH = '/v1/lightning-node-connect/hashmail/send';
export const RECEIVE_PATH = '/v1/lightning-node-connect/hashmail/receive';

/** The part of the WebSocket API we use; the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface MailboxOptions {
  /** Defaults to the global `WebSocket` (browsers). */
  WebSocket?: WebSocketConstructor;
  /** How long to wait for the socket to open, in ms (default 15,000). */
  openTimeoutMs?: number;
}

const OPEN = 1;
const DEFAULT_OPEN_TIMEOUT_MS = 15_000;

/**
 * `wss://host[/prefix]/v1/lightning-node-connect/hashmail/{send,receive}?method=POST`.
 * The relay URL may be given as wss://, ws://, https:// (→ wss), http:// (→ ws) or a bare host
 * (→ wss).
 */
export function hashmailUrl(relayUrl: string, which: 'send' | 'receive'): string {
  const url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(relayUrl) ? relayUrl : `wss://${relayUrl}`);
  if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol !== 'wss:' && url.protocol !== 'ws:') {
    throw new PairingError('bad_argument', 'The relay address is not valid.', {
      detail: `unsupported scheme ${url.protocol}`,
    });
  }
  url.pathname = url.pathname.replace(/\/+$/, '') + (which === 'send' ? SEND_PATH : RECEIVE_PATH);
  url.search = '?method=POST';
  url.hash = '';
  return url.toString();
}

const RELAY_MESSAGES: Record<string, string> = {
  relay_unreachable: 'Could not reach the relay. Check your internet connection and try again.',
  relay_not_found:
    'Your node is not waiting for this connection. It may be offline, or the pairing may have expired.',
  relay_busy:
    'Another device or tab is already using this connection. Close it there, or wait a minute and try again.',
  relay_rate_limited: 'Too many attempts in a short time. Wait a minute and try again.',
  relay_error: 'The relay could not carry the connection. Try again in a moment.',
  relay_closed: 'The connection to the relay was lost.',
};

export function relayError(
  code: PairingErrorCode,
  details: { grpcCode?: number; detail?: string; cause?: unknown } = {},
): PairingError {
  return new PairingError(code, RELAY_MESSAGES[code] ?? RELAY_MESSAGES.relay_error!, details);
}

/** Maps a `{"error": {"code", "message"}}` frame (a gRPC status) to a PairingError. */
function fromGrpcStatus(err: unknown): PairingError {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    code?: unknown;
    message?: unknown;
  };
  const grpcCode = typeof e.code === 'number' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message : JSON.stringify(err);
  const lower = message.toLowerCase();
  let code: PairingErrorCode = 'relay_error';
  if (lower.includes('stream not found') || grpcCode === 5) code = 'relay_not_found';
  else if (lower.includes('occupied') || grpcCode === 6 || grpcCode === 9) code = 'relay_busy';
  else if (grpcCode === 8) code = 'relay_rate_limited';
  return relayError(code, {
    detail: `relay error${grpcCode === undefined ? '' : ` ${grpcCode}`}: ${message}`,
    ...(grpcCode === undefined ? {} : { grpcCode }),
  });
}

async function frameText(data: unknown): Promise<string> {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  if (ArrayBuffer.isView(data)) {
    return new TextDecoder().decode(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
  }
  if (typeof Blob !== 'undefined' && data instanceof Blob) return data.text();
  throw new Error('unexpected websocket frame type');
}

/** Shared open/error/close handling of the two stream kinds. */
abstract class MailboxSocket {
  protected readonly ws: WebSocketLike;
  /** The error that ended the socket, `null` if we closed it ourselves; set once. */
  protected ended: PairingError | null | undefined;
  private resolveClosed!: (e: PairingError | null) => void;
  /** Resolves when the socket is closed: with `null` after close(), else with the cause. */
  readonly closed: Promise<PairingError | null>;
  /** Serializes frame handling, since reading a Blob is asynchronous. */
  private chain: Promise<void> = Promise.resolve();

  protected constructor(
    url: string,
    readonly streamId: Uint8Array,
    opts: MailboxOptions,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    const Ctor =
      opts.WebSocket ??
      (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ??
      undefined;
    if (!Ctor) throw new Error('no WebSocket implementation: pass options.WebSocket');
    try {
      this.ws = new Ctor(url);
    } catch (e) {
      throw relayError('relay_unreachable', { detail: `cannot open ${url}: ${String(e)}`, cause: e });
    }
    this.ws.addEventListener('message', (ev: { data: unknown }) => {
      this.chain = this.chain
        .then(() => frameText(ev.data))
        .then((text) => this.onText(text))
        .catch((e) =>
          this.end(relayError('relay_error', { detail: `bad frame from relay: ${String(e)}` })),
        );
    });
    this.ws.addEventListener('close', (ev: { code?: number; reason?: string }) => {
      // Let frames already received (an error frame, last messages) be handled first.
      void this.chain.then(() =>
        this.end(
          relayError('relay_closed', {
            detail: `websocket closed (${ev.code ?? '?'} ${ev.reason ?? ''})`.trim(),
          }),
        ),
      );
    });
  }

  /** Waits for the socket to open. */
  protected opened(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState === OPEN) return resolve();
      const timer = setTimeout(() => {
        const e = relayError('relay_unreachable', { detail: `no answer in ${timeoutMs} ms` });
        this.end(e);
        this.closeSocket();
        reject(e);
      }, timeoutMs);
      this.ws.addEventListener('open', () => {
        clearTimeout(timer);
        if (this.ended === undefined) resolve();
      });
      const fail = () => {
        clearTimeout(timer);
        reject(relayError('relay_unreachable', { detail: 'websocket failed to open' }));
      };
      this.ws.addEventListener('error', () => {
        if (this.ws.readyState !== OPEN) fail();
      });
      this.ws.addEventListener('close', () => {
        if (this.ended === undefined) fail();
      });
    });
  }

  private async onText(text: string): Promise<void> {
    if (this.ended !== undefined) return;
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      throw new Error('not JSON');
    }
    if (typeof frame !== 'object' || frame === null) throw new Error('not a JSON object');
    const f = frame as { error?: unknown; result?: unknown };
    if (f.error !== undefined) {
      this.end(fromGrpcStatus(f.error));
      this.closeSocket();
      return;
    }
    if (f.result !== undefined) {
      this.onResult(f.result);
      return;
    }
    throw new Error(`unexpected frame: ${text.slice(0, 200)}`);
  }

  /** A `{"result": ...}` frame. */
  protected abstract onResult(result: unknown): void;

  /** Records why the stream ended (first cause wins). */
  protected end(e: PairingError | null): void {
    if (this.ended !== undefined) return;
    this.ended = e;
    this.onEnd(e);
    this.resolveClosed(e);
  }

  protected onEnd(_e: PairingError | null): void {}

  protected closeSocket(): void {
    try {
      this.ws.close(1000, 'bye');
    } catch {
      // already closed
    }
  }

  get isOpen(): boolean {
    return this.ended === undefined && this.ws.readyState === OPEN;
  }

  /** Closes the stream; `closed` resolves with `null`. */
  close(): void {
    this.end(null);
    this.closeSocket();
  }
}

/** The write side of one mailbox stream. */
export class SendStream extends MailboxSocket {
  private constructor(relayUrl: string, sid: Uint8Array, opts: MailboxOptions) {
    super(hashmailUrl(relayUrl, 'send'), sid, opts);
  }

  static async open(relayUrl: string, sid: Uint8Array, opts: MailboxOptions = {}): Promise<SendStream> {
    const s = new SendStream(relayUrl, sid.slice(), opts);
    await s.opened(opts.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS);
    return s;
  }

  /**
   * Sends one mailbox message: `{"desc": {"stream_id": b64}, "msg": b64}`.
   * @throws PairingError when the stream has ended.
   */
  send(msg: Uint8Array): void {
    if (this.ended !== undefined || this.ws.readyState !== OPEN) {
      throw this.ended ?? relayError('relay_closed', { detail: 'send stream is not open' });
    }
    this.ws.send(JSON.stringify({ desc: { stream_id: toBase64(this.streamId) }, msg: toBase64(msg) }));
  }

  protected onResult(_result: unknown): void {
    // The send call's own reply (CipherBoxDesc) when the relay ends it: nothing to do.
  }
}

/** The read side of one mailbox stream: an ordered queue of whole messages. */
export class ReceiveStream extends MailboxSocket implements AsyncIterable<Uint8Array> {
  private readonly queue: Uint8Array[] = [];
  private readonly waiters: { resolve: (m: Uint8Array) => void; reject: (e: unknown) => void }[] = [];

  private constructor(relayUrl: string, sid: Uint8Array, opts: MailboxOptions) {
    super(hashmailUrl(relayUrl, 'receive'), sid, opts);
  }

  static async open(
    relayUrl: string,
    sid: Uint8Array,
    opts: MailboxOptions = {},
  ): Promise<ReceiveStream> {
    const s = new ReceiveStream(relayUrl, sid.slice(), opts);
    await s.opened(opts.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS);
    s.ws.send(JSON.stringify({ stream_id: toBase64(s.streamId) }));
    return s;
  }

  protected onResult(result: unknown): void {
    const r = (typeof result === 'object' && result !== null ? result : {}) as { msg?: unknown };
    const msg = r.msg === undefined || r.msg === null ? '' : r.msg;
    if (typeof msg !== 'string') throw new Error('result.msg is not a string');
    const bytes = fromBase64(msg);
    const w = this.waiters.shift();
    if (w) w.resolve(bytes);
    else this.queue.push(bytes);
  }

  protected override onEnd(e: PairingError | null): void {
    const err = e ?? relayError('relay_closed', { detail: 'receive stream closed' });
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /**
   * The next message. Messages that arrived before the stream ended are still delivered; after
   * them this rejects with the PairingError that ended the stream (`relay_closed` after close()).
   * @param timeoutMs reject with PairingError `timeout` after this long (the stream stays usable).
   */
  next(timeoutMs?: number): Promise<Uint8Array> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.ended !== undefined) {
      return Promise.reject(
        this.ended ?? relayError('relay_closed', { detail: 'receive stream closed' }),
      );
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const w = { resolve, reject };
      this.waiters.push(w);
      if (timeoutMs !== undefined) {
        const timer = setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(
            new PairingError('timeout', MESSAGES.timeout, {
              detail: `no message in ${timeoutMs} ms`,
            }),
          );
        }, timeoutMs);
        w.resolve = (m) => {
          clearTimeout(timer);
          resolve(m);
        };
        w.reject = (e) => {
          clearTimeout(timer);
          reject(e);
        };
      }
    });
  }

  /** Yields messages until the stream ends; ends quietly after close(), else throws the cause. */
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      try {
        yield await this.next();
      } catch (e) {
        if (this.ended === null) return;
        throw e;
      }
    }
  }
}

/** Opens the write side of stream `sid`. */
export function openSend(relayUrl: string, sid: Uint8Array, opts?: MailboxOptions): Promise<SendStream> {
  return SendStream.open(relayUrl, sid, opts);
}

/** Opens the read side of stream `sid` (sends `{"stream_id": b64}` first). */
export function openReceive(
  relayUrl: string,
  sid: Uint8Array,
  opts?: MailboxOptions,
): Promise<ReceiveStream> {
  return ReceiveStream.open(relayUrl, sid, opts);
}
