// The wallet API over the tunnel (docs/pairing.md, "The wallet API over the tunnel"): one JSON
// object per transport message. These are the shapes the browser relies on.

import type { SignedAppRequest } from './appRequest.js';

export type SignerState = 'connected' | 'offline' | 'revoked' | 'local';

export interface GetInfo {
  node_id: string;
  alias: string;
  network: string;
  block_height: number;
  signer: SignerState;
  usable_channels: number;
}

export interface Balance {
  spendable_sat: number;
  receivable_sat: number;
  onchain_sat: number;
  onchain_pending_sat: number;
  closing_sat: number;
}

export interface Payment {
  payment_hash: string;
  direction: 'inbound' | 'outbound';
  status: 'pending' | 'succeeded' | 'failed';
  // The node writes absent values as null.
  amount_msat?: number | null;
  fee_msat?: number | null;
  description?: string | null;
  invoice?: string | null;
  failure_reason?: string | null;
  created_at: number;
  updated_at: number;
}

export interface NwcConnection {
  id: number | string;
  name: string;
  app_pubkey: string;
  budget_sat: number;
  period_secs: number;
  spent_sat: number;
  expires_at: number | null;
  status: string;
}

export type WalletEvent =
  | { kind: 'payment_received'; payment_hash: string; amount_msat: number }
  | { kind: 'payment_sent'; payment_hash: string; fee_msat?: number | null }
  | { kind: 'payment_failed'; payment_hash: string; reason: string }
  | { kind: 'channel_ready' }
  | { kind: 'channel_closed' }
  | { kind: 'lagged' };

export interface Methods {
  get_info: { params: Record<string, never>; result: GetInfo };
  balance: { params: Record<string, never>; result: Balance };
  create_invoice: {
    params: { amount_sat: number; description: string; expiry_secs?: number };
    result: { invoice: string; payment_hash: string; expires_at: number };
  };
  fee_limit: { params: { amount_sat: number }; result: { max_fee_sat: number } };
  pay_invoice: { params: { invoice: string; app_request: SignedAppRequest }; result: Payment };
  list_payments: {
    params: { limit?: number; cursor?: string };
    result: { payments: Payment[]; next_cursor?: string | null };
  };
  subscribe: { params: Record<string, never>; result: Record<string, never> };
  nwc_list: { params: Record<string, never>; result: { connections: NwcConnection[] } };
  nwc_create: {
    params: {
      name: string;
      app_pubkey: string;
      budget_sat: number;
      period_secs: number;
      expires_at?: number;
      delegation: SignedAppRequest;
    };
    result: { id: number | string; wallet_pubkey: string; relays: string[] };
  };
  nwc_revoke: { params: { id: number | string }; result: Record<string, never> };
}

export type Method = keyof Methods;
export type Params<M extends Method> = Methods[M]['params'];
export type Result<M extends Method> = Methods[M]['result'];

/** Reads: safe to send again after a reconnection. */
export const IDEMPOTENT: ReadonlySet<Method> = new Set<Method>([
  'get_info',
  'balance',
  'fee_limit',
  'list_payments',
  'subscribe',
  'nwc_list',
]);
