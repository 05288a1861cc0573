// A typed client for the wallet API over an LNC session (docs/pairing.md, "The wallet API over
// the tunnel"): request ids, a map of pending calls, per-call timeouts, events, and a new KK
// session whenever the current one ends (the relay restarted, the network dropped).

import { PairingError } from '../lnc/errors.js';
import type { Session } from '../lnc/session.js';
import { IDEMPOTENT, type Method, type Params, type Result, type WalletEvent } from './api.js';

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** Codes made here (the node's own codes come through unchanged, `fromNode` true). */
export type LocalErrorCode = 'NO_ANSWER' | 'CONNECTION_LOST' | 'CLOSED' | 'TOO_LARGE';

export class RpcError extends Error {
  constructor(
    /** The node's error code (`INVALID_INPUT`, `SIGNER_OFFLINE`, ...) or a LocalErrorCode. */
    readonly code: string,
    message: string,
    /** Whether the node sent this error (else the client made it). */
    readonly fromNode: boolean,
    /** The method that failed. */
    readonly method?: string,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

export interface RpcOptions {
  /** Opens a new session (KK with the stored keys). */
  reconnect: () => Promise<Session>;
  /** Default time to wait for an answer, ms (30,000). */
  callTimeoutMs?: number;
  /** Waits between reconnection attempts, ms; the last one repeats. */
  reconnectDelaysMs?: number[];
  /** Called with each new session's auth data. */
  onAuthData?: (authData: Uint8Array) => void;
  /** Where to report protocol oddities (default: console.warn). */
  log?: (message: string) => void;
}

export interface StateInfo {
  state: ConnectionState;
  /** Why the last connection attempt failed, while reconnecting. */
  lastError: unknown;
  /** Reconnection attempts since the last good session. */
  attempt: number;
}

interface Call {
  method: Method;
  params: unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
  id?: number;
}

const MAX_MESSAGE = 65_535;
// Quick at first (right after pairing the node is still making the KK streams), then slower.
const DEFAULT_DELAYS = [200, 500, 1_000, 2_000, 5_000, 10_000, 20_000];

export class WalletRpc {
  private session: Session | undefined;
  private stateValue: ConnectionState;
  private lastError: unknown = null;
  private attempt = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Call>();
  private readonly queue: Call[] = [];
  private readonly eventListeners = new Set<(e: WalletEvent) => void>();
  private readonly stateListeners = new Set<(s: StateInfo) => void>();
  private subscribed = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connecting = false;
  private everConnected = false;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();
  private readonly log: (m: string) => void;

  /**
   * @param session an open session to start with (after pairing or unlocking), or undefined to
   * connect with `opts.reconnect` right away.
   */
  constructor(
    private readonly opts: RpcOptions,
    session?: Session,
  ) {
    this.log = opts.log ?? ((m) => console.warn(`[rpc] ${m}`));
    this.stateValue = 'connecting';
    if (session) this.attach(session);
    else void this.tryConnect();
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  get info(): StateInfo {
    return { state: this.stateValue, lastError: this.lastError, attempt: this.attempt };
  }

  /** Calls a method; rejects with RpcError (the node's code, or a local one). */
  call<M extends Method>(method: M, params: Params<M>, opts: { timeoutMs?: number } = {}): Promise<Result<M>> {
    if (this.stateValue === 'closed') {
      return Promise.reject(new RpcError('CLOSED', 'The wallet is locked.', false, method));
    }
    return new Promise<Result<M>>((resolve, reject) => {
      const call: Call = {
        method,
        params,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: setTimeout(() => this.timeout(call), opts.timeoutMs ?? this.opts.callTimeoutMs ?? 30_000),
      };
      this.dispatch(call);
    });
  }

  /** Asks the node for events (again after every reconnection); returns the unsubscriber. */
  subscribe(listener: (e: WalletEvent) => void): () => void {
    this.eventListeners.add(listener);
    if (!this.subscribed) {
      this.subscribed = true;
      if (this.stateValue === 'connected') this.sendSubscribe(false);
    }
    return () => this.eventListeners.delete(listener);
  }

  onState(listener: (s: StateInfo) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Skips the wait before the next reconnection attempt. */
  reconnectNow(): void {
    if (this.stateValue === 'connected' || this.stateValue === 'closed' || this.connecting) return;
    clearTimeout(this.reconnectTimer);
    void this.tryConnect();
  }

  /** Ends the session for good; pending calls fail with CLOSED. */
  close(): void {
    if (this.stateValue === 'closed') return;
    this.setState('closed');
    clearTimeout(this.reconnectTimer);
    const s = this.session;
    this.session = undefined;
    s?.close();
    this.failAll(new RpcError('CLOSED', 'The wallet is locked.', false));
  }

  // ---

  /** (A method, so checks after an await are not narrowed away.) */
  private isClosed(): boolean {
    return this.stateValue === 'closed';
  }

  private setState(state: ConnectionState): void {
    this.stateValue = state;
    const info = this.info;
    for (const l of this.stateListeners) {
      try {
        l(info);
      } catch (e) {
        this.log(`state listener: ${String(e)}`);
      }
    }
  }

  private dispatch(call: Call): void {
    const session = this.session;
    if (this.stateValue !== 'connected' || !session) {
      this.queue.push(call);
      return;
    }
    const id = this.nextId++;
    const bytes = this.encoder.encode(JSON.stringify({ id, method: call.method, params: call.params }));
    if (bytes.length > MAX_MESSAGE) {
      this.settle(call);
      call.reject(new RpcError('TOO_LARGE', 'This request is too large to send.', false, call.method));
      return;
    }
    call.id = id;
    this.pending.set(id, call);
    try {
      session.send(bytes);
    } catch {
      // The session is ending; its end moves this call on (requeue or fail).
    }
  }

  private settle(call: Call): void {
    clearTimeout(call.timer);
    if (call.id !== undefined) this.pending.delete(call.id);
    const i = this.queue.indexOf(call);
    if (i >= 0) this.queue.splice(i, 1);
  }

  private timeout(call: Call): void {
    this.settle(call);
    call.reject(
      new RpcError(
        'NO_ANSWER',
        this.stateValue === 'connected'
          ? 'Your node did not answer in time.'
          : 'Could not reach your node in time.',
        false,
        call.method,
      ),
    );
  }

  private failAll(err: RpcError): void {
    const calls = [...this.pending.values(), ...this.queue];
    this.pending.clear();
    this.queue.length = 0;
    for (const c of calls) {
      clearTimeout(c.timer);
      c.reject(new RpcError(err.code, err.message, false, c.method));
    }
  }

  private attach(session: Session): void {
    const again = this.everConnected;
    this.everConnected = true;
    this.session = session;
    this.attempt = 0;
    this.lastError = null;
    this.opts.onAuthData?.(session.authData);
    this.setState('connected');
    void this.readLoop(session);
    for (const c of this.queue.splice(0)) this.dispatch(c);
    // Events may have been missed while the session was down: subscribe again, then tell
    // listeners to refresh, as the node's own `lagged` would.
    if (this.subscribed) this.sendSubscribe(again);
  }

  private sendSubscribe(thenLagged: boolean): void {
    this.call('subscribe', {})
      .then(() => {
        if (thenLagged) this.emit({ kind: 'lagged' });
      })
      .catch((e: unknown) => this.log(`subscribe failed: ${String(e)}`));
  }

  private async readLoop(session: Session): Promise<void> {
    try {
      for (;;) this.handle(await session.receive());
    } catch {
      // The session ended; `closed` says why.
    }
    const why = await session.closed;
    if (this.session !== session) return;
    this.session = undefined;
    this.lastError = why;
    // Reads go again on the next session; anything else may or may not have happened.
    for (const [id, call] of [...this.pending]) {
      this.pending.delete(id);
      delete call.id;
      if (IDEMPOTENT.has(call.method)) this.queue.push(call);
      else {
        clearTimeout(call.timer);
        call.reject(
          new RpcError(
            'CONNECTION_LOST',
            'The connection to your node dropped before it answered.',
            false,
            call.method,
          ),
        );
      }
    }
    if (this.stateValue === 'closed') return;
    this.setState('reconnecting');
    this.scheduleReconnect();
  }

  private handle(bytes: Uint8Array): void {
    let msg: unknown;
    try {
      msg = JSON.parse(this.decoder.decode(bytes));
    } catch {
      this.log('a message from the node is not JSON');
      return;
    }
    if (typeof msg !== 'object' || msg === null) return;
    const m = msg as { id?: unknown; result?: unknown; error?: unknown; event?: unknown };
    if (m.event !== undefined) {
      if (typeof m.event === 'object' && m.event !== null && typeof (m.event as { kind?: unknown }).kind === 'string') {
        this.emit(m.event as WalletEvent);
      }
      return;
    }
    if (typeof m.id !== 'number') return;
    const call = this.pending.get(m.id);
    if (!call) return;
    this.settle(call);
    if (m.error !== undefined) {
      const e = (typeof m.error === 'object' && m.error !== null ? m.error : {}) as { code?: unknown; message?: unknown };
      call.reject(
        new RpcError(
          typeof e.code === 'string' ? e.code : 'INTERNAL',
          typeof e.message === 'string' ? e.message : 'The node reported an error.',
          true,
          call.method,
        ),
      );
    } else {
      call.resolve(m.result ?? {});
    }
  }

  private emit(event: WalletEvent): void {
    for (const l of this.eventListeners) {
      try {
        l(event);
      } catch (e) {
        this.log(`event listener: ${String(e)}`);
      }
    }
  }

  private scheduleReconnect(): void {
    const delays = this.opts.reconnectDelaysMs ?? DEFAULT_DELAYS;
    const wait = delays[Math.min(this.attempt, delays.length - 1)] ?? 5_000;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.tryConnect(), wait);
  }

  private async tryConnect(): Promise<void> {
    if (this.connecting || this.stateValue === 'closed') return;
    this.connecting = true;
    let session: Session;
    try {
      session = await this.opts.reconnect();
    } catch (e) {
      this.connecting = false;
      if (this.isClosed()) return;
      this.lastError = e;
      this.attempt++;
      if (e instanceof PairingError && e.code === 'bad_argument') {
        // The stored keys are damaged: retrying cannot help.
        this.setState('closed');
        this.failAll(new RpcError('CLOSED', e.message, false));
        return;
      }
      // Still 'connecting' until a first session, else 'reconnecting'; listeners see lastError.
      this.setState(this.everConnected ? 'reconnecting' : 'connecting');
      this.scheduleReconnect();
      return;
    }
    this.connecting = false;
    if (this.isClosed()) {
      session.close();
      return;
    }
    this.attach(session);
  }
}
