// A small TypeScript "node" for tests and the throwaway browser harness: the responder side of
// the handshake over the fake relay (XX with the phrase, which carries the handshake only, then
// KK with the paired browser's key on every later connection, as docs/pairing.md "Connections"
// says), answering the wallet API (docs/pairing.md) from fixed data. It checks
// the browser's signed app requests the way the signer would (signature, method, target,
// amount). Test-only: not a model of a real node's behaviour beyond the wire format.

import { schnorr } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { WebSocket } from 'ws';
import { publicKey, randomPrivateKey } from '../../src/lnc/keys.js';
import { openReceive, openSend, type ReceiveStream, type SendStream } from '../../src/lnc/mailbox.js';
import { Handshake, type Transport } from '../../src/lnc/noise.js';
import { newPhrase, stretch } from '../../src/lnc/phrase.js';
import { sidFromEntropy, sidPaired, streamIds } from '../../src/lnc/sid.js';
import type { Balance, GetInfo, NwcConnection, Payment, WalletEvent } from '../../src/wallet/api.js';
import { delegationTarget, verifyAppRequest, type SignedAppRequest } from '../../src/wallet/appRequest.js';
import { decodeInvoice } from '../../src/wallet/invoice.js';
import { sealForEntropy } from '../../src/wallet/seal.js';
import { encodeInvoice } from './bolt11.js';
import type { FakeRelay } from './fake-relay.js';

export class NodeError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface FakeNodeOptions {
  relay: FakeRelay;
  /** The phrase's entropy (default: a new phrase). */
  entropy?: Uint8Array;
  nodeKey?: Uint8Array;
  /** The app key sealed into the auth data; null: a read-only session. */
  appKey?: Uint8Array | null;
  /** Fields of the auth data to override. */
  authData?: Record<string, unknown>;
  /** Routing fee of each payment, msat (default 1,000). */
  feeMsat?: number;
  /** How long pay_invoice takes, ms (default 200). */
  payDelayMs?: number;
  log?: (line: string) => void;
}

type Handler = (params: Record<string, any>) => unknown | Promise<unknown>;

export class FakeNode {
  readonly words: string[];
  readonly entropy: Uint8Array;
  readonly nodeKey: Uint8Array;
  readonly appKey: Uint8Array | null;
  /** The paired browser's static public key (33 bytes), after XX. */
  clientStatic: Uint8Array | undefined;
  readonly info: GetInfo;
  readonly balance: Balance = {
    spendable_sat: 250_000,
    receivable_sat: 750_000,
    onchain_sat: 100_000,
    onchain_pending_sat: 0,
    closing_sat: 0,
  };
  /** Newest last. */
  readonly payments: Payment[] = [];
  readonly connections: NwcConnection[] = [];
  /** Every request received: [method, params]. */
  readonly requests: [string, any][] = [];
  /** Replace a method's behaviour (throw a NodeError for an error answer). */
  readonly overrides = new Map<string, Handler>();
  /** Sessions completed, by pattern. */
  readonly sessions: ('XX' | 'KK')[] = [];
  /** Wait this long before offering a new session (to hold the browser in "Reconnecting"). */
  holdMs = 0;
  private subscribed = false;
  private current: { recv: ReceiveStream; send: SendStream; transport: Transport } | undefined;
  private stopped = false;
  private readonly done: Promise<void>;
  private readonly log: (line: string) => void;
  private nextNwcId = 1;
  private authDataBytes!: Uint8Array;

  private constructor(private readonly opts: FakeNodeOptions) {
    const phrase = opts.entropy ? undefined : newPhrase();
    this.entropy = opts.entropy ?? phrase!.entropy;
    this.words = phrase?.words ?? [];
    this.nodeKey = opts.nodeKey ?? randomPrivateKey();
    this.appKey = opts.appKey === undefined ? schnorr.utils.randomSecretKey() : opts.appKey;
    this.log = opts.log ?? (() => {});
    this.info = {
      node_id: bytesToHex(publicKey(this.nodeKey)),
      alias: 'fake-node',
      network: 'regtest',
      block_height: 150,
      signer: 'connected',
      usable_channels: 1,
    };
    this.done = this.run();
  }

  static start(opts: FakeNodeOptions): FakeNode {
    return new FakeNode(opts);
  }

  get appPubkey(): string | null {
    return this.appKey ? bytesToHex(schnorr.getPublicKey(this.appKey)) : null;
  }

  private makeAuthData(): Uint8Array {
    return new TextEncoder().encode(
      JSON.stringify({
        version: 1,
        session_id: 'ab'.repeat(8),
        label: 'Test browser',
        node_id: this.info.node_id,
        network: 'regtest',
        expires_at: Math.floor(Date.now() / 1000) + 30 * 86_400,
        token: 'dGVzdA==',
        rights: this.appKey ? ['read', 'invoice', 'pay'] : ['read', 'invoice'],
        sealed_app_key: this.appKey ? bytesToHex(sealForEntropy(this.entropy, this.appKey)) : null,
        budget_sat: 50_000,
        period_secs: 86_400,
        ...this.opts.authData,
      }),
    );
  }

  private async run(): Promise<void> {
    const opts = { WebSocket };
    const pw = await stretch(this.entropy);
    this.authDataBytes = this.makeAuthData();
    while (!this.stopped) {
      const paired = this.clientStatic;
      const sid = paired ? sidPaired(this.nodeKey, paired) : sidFromEntropy(this.entropy);
      const ids = streamIds(sid);
      this.opts.relay.createStream(ids.serverToClient);
      this.opts.relay.createStream(ids.clientToServer);
      let recv: ReceiveStream | undefined;
      let send: SendStream | undefined;
      try {
        recv = await openReceive(this.opts.relay.url, ids.clientToServer, opts);
        send = await openSend(this.opts.relay.url, ids.serverToClient, opts);
        if (!paired) {
          // The pairing connection carries the XX handshake only (docs/pairing.md,
          // "Connections"): then the phrase's streams go and the browser comes back with KK.
          const hs = new Handshake({ pattern: 'XX', initiator: false, localStatic: this.nodeKey, authData: this.authDataBytes, pw });
          hs.readAct(await recv.next());
          send.send(hs.writeAct());
          hs.readAct(await recv.next(60_000));
          this.clientStatic = hs.remoteStatic!.slice();
          this.sessions.push('XX');
          this.log('paired (XX)');
          continue;
        }
        // KK on the paired streams; a frame that does not decrypt is read as a new act 1 (a
        // browser that reloaded), a bad act 1 is dropped.
        let act1: Uint8Array = await recv.next();
        for (;;) {
          const hs = new Handshake({ pattern: 'KK', initiator: false, localStatic: this.nodeKey, authData: this.authDataBytes, remoteStatic: paired });
          try {
            hs.readAct(act1);
          } catch {
            this.log('a bad KK act 1, dropped');
            act1 = await recv.next();
            continue;
          }
          send.send(hs.writeAct());
          const transport = hs.transport();
          this.sessions.push('KK');
          this.log('session KK open');
          this.current = { recv, send, transport };
          this.subscribed = false;
          for (;;) {
            const frame = await recv.next();
            let text: string;
            try {
              text = new TextDecoder().decode(transport.decrypt(frame));
            } catch {
              this.log('a frame that does not decrypt: a new handshake?');
              act1 = frame;
              break;
            }
            void this.answer(text, transport, send);
          }
          this.current = undefined;
        }
      } catch (e) {
        if (!this.stopped) this.log(`connection ended: ${e instanceof Error ? e.message : String(e)}`);
      } finally {
        this.current = undefined;
        recv?.close();
        send?.close();
        this.opts.relay.deleteStream(ids.serverToClient);
        this.opts.relay.deleteStream(ids.clientToServer);
      }
      await new Promise((r) => setTimeout(r, 50 + this.holdMs));
      this.holdMs = 0;
    }
  }

  private write(transport: Transport, send: SendStream, obj: unknown): void {
    try {
      send.send(transport.encrypt(new TextEncoder().encode(JSON.stringify(obj))));
    } catch {
      // the session ended meanwhile
    }
  }

  private async answer(text: string, transport: Transport, send: SendStream): Promise<void> {
    let req: { id?: unknown; method?: unknown; params?: unknown };
    try {
      req = JSON.parse(text);
    } catch {
      return;
    }
    const id = req.id;
    const method = typeof req.method === 'string' ? req.method : '';
    const params = (req.params ?? {}) as Record<string, any>;
    this.requests.push([method, params]);
    this.log(`<- ${method} ${JSON.stringify(params).slice(0, 200)}`);
    try {
      const handler = this.overrides.get(method) ?? this.handlers[method];
      if (!handler) throw new NodeError('UNKNOWN_METHOD', `no method ${method}`);
      const result = await handler(params);
      this.write(transport, send, { id, result });
    } catch (e) {
      const err = e instanceof NodeError ? e : new NodeError('INTERNAL', String(e));
      this.write(transport, send, { id, error: { code: err.code, message: err.message } });
    }
  }

  /** Sends an event to the browser if it subscribed. */
  emit(event: WalletEvent): void {
    if (this.current && this.subscribed) this.write(this.current.transport, this.current.send, { event });
  }

  /** Marks an invoice this node made as paid (the harness's "someone paid it"). */
  receivePayment(paymentHash: string): boolean {
    const p = this.payments.find((x) => x.payment_hash === paymentHash && x.direction === 'inbound');
    if (!p || p.status !== 'pending') return false;
    p.status = 'succeeded';
    p.updated_at = now();
    this.balance.spendable_sat += (p.amount_msat ?? 0) / 1000;
    this.balance.receivable_sat -= (p.amount_msat ?? 0) / 1000;
    this.emit({ kind: 'payment_received', payment_hash: paymentHash, amount_msat: p.amount_msat ?? 0 });
    return true;
  }

  /** Ends the current session (both sides then start a new KK session). */
  dropSession(): void {
    this.current?.recv.close();
    this.current?.send.close();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.dropSession();
    await Promise.race([this.done, new Promise((r) => setTimeout(r, 1000))]);
  }

  private checkAppRequest(signed: SignedAppRequest | undefined, method: string, target: string, amountMsat: number): void {
    if (!this.appKey) throw new NodeError('SIGNER_POLICY_REFUSED', 'app-not-allowed');
    if (!signed || typeof signed !== 'object') throw new NodeError('SIGNER_POLICY_REFUSED', 'app-request-missing');
    if (!verifyAppRequest(signed, this.appPubkey!)) throw new NodeError('SIGNER_POLICY_REFUSED', 'app-request-signature');
    const r = signed.request;
    if (r.method !== method || r.target !== target || r.amount_msat !== amountMsat) {
      throw new NodeError('SIGNER_POLICY_REFUSED', 'app-request-mismatch');
    }
    if (Math.abs(r.time - now()) > 300) throw new NodeError('SIGNER_POLICY_REFUSED', 'app-request-stale');
    if (!/^[0-9a-f]{32}$/.test(r.nonce)) throw new NodeError('SIGNER_POLICY_REFUSED', 'app-request-signature');
  }

  private readonly handlers: Record<string, Handler> = {
    get_info: () => ({ ...this.info }),
    balance: () => ({ ...this.balance }),
    subscribe: () => {
      this.subscribed = true;
      return {};
    },
    fee_limit: (p) => {
      if (!Number.isSafeInteger(p.amount_sat) || p.amount_sat <= 0) throw new NodeError('INVALID_INPUT', 'amount_sat');
      return { max_fee_sat: Math.max(10, Math.ceil(p.amount_sat * 0.01)) };
    },
    create_invoice: (p) => {
      if (!Number.isSafeInteger(p.amount_sat) || p.amount_sat <= 0) throw new NodeError('INVALID_INPUT', 'amount_sat');
      const preimage = crypto.getRandomValues(new Uint8Array(32));
      const hash = bytesToHex(sha256(preimage));
      const expiry = typeof p.expiry_secs === 'number' ? p.expiry_secs : 3600;
      const invoice = encodeInvoice({
        network: 'regtest',
        amountMsat: p.amount_sat * 1000,
        paymentHash: hash,
        description: String(p.description ?? ''),
        expirySecs: expiry,
        nodeKey: this.nodeKey,
      });
      this.payments.push({
        payment_hash: hash,
        direction: 'inbound',
        status: 'pending',
        amount_msat: p.amount_sat * 1000,
        description: String(p.description ?? ''),
        invoice,
        created_at: now(),
        updated_at: now(),
      });
      return { invoice, payment_hash: hash, expires_at: now() + expiry };
    },
    pay_invoice: async (p) => {
      let inv;
      try {
        inv = decodeInvoice(String(p.invoice));
      } catch {
        throw new NodeError('INVALID_INPUT', 'not an invoice');
      }
      if (inv.amountMsat === null) throw new NodeError('INVALID_INPUT', 'amount-less invoice');
      this.checkAppRequest(p.app_request, 'pay_invoice', inv.paymentHash, inv.amountMsat);
      if (this.info.signer !== 'connected') throw new NodeError('SIGNER_OFFLINE', 'the signer is offline');
      const fee = this.opts.feeMsat ?? 1000;
      if (inv.amountMsat + fee > this.balance.spendable_sat * 1000) throw new NodeError('INSUFFICIENT_FUNDS', 'not enough');
      const payment: Payment = {
        payment_hash: inv.paymentHash,
        direction: 'outbound',
        status: 'pending',
        amount_msat: inv.amountMsat,
        ...(inv.description ? { description: inv.description } : {}),
        invoice: inv.bolt11,
        created_at: now(),
        updated_at: now(),
      };
      this.payments.push(payment);
      await new Promise((r) => setTimeout(r, this.opts.payDelayMs ?? 200));
      payment.status = 'succeeded';
      payment.fee_msat = fee;
      payment.updated_at = now();
      this.balance.spendable_sat -= (inv.amountMsat + fee) / 1000;
      this.emit({ kind: 'payment_sent', payment_hash: inv.paymentHash, fee_msat: fee });
      return { ...payment };
    },
    list_payments: (p) => {
      const limit = Math.min(Math.max(Number(p.limit ?? 50), 1), 200);
      const start = p.cursor ? Number(p.cursor) : 0;
      const newestFirst = this.payments.slice().reverse();
      const page = newestFirst.slice(start, start + limit);
      const next = start + limit < newestFirst.length ? String(start + limit) : undefined;
      return { payments: page, ...(next ? { next_cursor: next } : {}) };
    },
    nwc_list: () => ({ connections: this.connections.map((c) => ({ ...c })) }),
    nwc_create: (p) => {
      const period = Number(p.period_secs);
      const target = delegationTarget(String(p.app_pubkey), period, p.expires_at ?? undefined);
      this.checkAppRequest(p.delegation, 'delegate_nwc', target, Number(p.budget_sat) * 1000);
      const id = this.nextNwcId++;
      const wallet = bytesToHex(schnorr.getPublicKey(schnorr.utils.randomSecretKey()));
      this.connections.push({
        id,
        name: String(p.name),
        app_pubkey: String(p.app_pubkey),
        budget_sat: Number(p.budget_sat),
        period_secs: period,
        spent_sat: 0,
        expires_at: typeof p.expires_at === 'number' ? p.expires_at : null,
        status: 'active',
      });
      return { id, wallet_pubkey: wallet, relays: ['wss://nostr.example.com/'] };
    },
    nwc_revoke: (p) => {
      const c = this.connections.find((x) => x.id === p.id);
      if (!c) throw new NodeError('INVALID_INPUT', 'no such connection');
      c.status = 'revoked';
      return {};
    },
  };
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}
