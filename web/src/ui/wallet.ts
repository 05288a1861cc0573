// The open wallet: the RPC client, what the node said about this session, and the app key.

import { connect, type Session, type StoredPairing } from '../lnc/session.js';
import { hasRight, parseAuthData, type AuthData } from '../wallet/authData.js';
import { invoiceNetworkOf, type InvoiceNetwork } from '../wallet/invoice.js';
import { WalletRpc } from '../wallet/rpc.js';

export class Wallet {
  readonly rpc: WalletRpc;
  /** The latest auth data (each session's act 2 carries it). */
  auth: AuthData;
  readonly appKey: Uint8Array | null;
  readonly relayUrl: string;
  private readonly pairing: StoredPairing;

  constructor(opts: {
    pairing: StoredPairing;
    authData: string;
    appKey: Uint8Array | null;
    relayUrl: string;
    session?: Session;
  }) {
    this.auth = safeParse(opts.authData) ?? parseAuthData('{}');
    this.pairing = { localStatic: opts.pairing.localStatic.slice(), remoteStatic: opts.pairing.remoteStatic.slice() };
    this.appKey = opts.appKey?.slice() ?? null;
    this.relayUrl = opts.relayUrl;
    const pairing = this.pairing;
    this.rpc = new WalletRpc(
      {
        reconnect: () => connect(opts.relayUrl, pairing),
        onAuthData: (bytes) => {
          // The sealed key is opened only at pairing; later sessions may or may not repeat it.
          const next = safeParse(bytes);
          if (next) this.auth = { ...next, sealed_app_key: this.auth.sealed_app_key };
        },
      },
      opts.session,
    );
  }

  /** Whether this pairing may pay: it has the app key and the right. */
  canPay(): boolean {
    return this.appKey !== null && hasRight(this.auth, 'pay');
  }

  canReceive(): boolean {
    return this.auth.rights.length === 0 || hasRight(this.auth, 'invoice') || hasRight(this.auth, 'pay');
  }

  /** The invoice network of this node. */
  network(): InvoiceNetwork | null {
    return invoiceNetworkOf(this.auth.network);
  }

  /** Ends the session and wipes the keys held in memory. */
  lock(): void {
    this.rpc.close();
    this.appKey?.fill(0);
    this.pairing.localStatic.fill(0);
  }
}

function safeParse(data: string | Uint8Array): AuthData | null {
  try {
    return parseAuthData(data);
  } catch {
    return null;
  }
}
