// The node's auth data from act 2 (docs/pairing.md, "Auth data"), parsed defensively: it comes
// from the operator's node, so nothing in it is trusted beyond what it is shown for.

export interface AuthData {
  version: number;
  session_id: string;
  label: string;
  node_id: string;
  network: string;
  /** Unix seconds, or null when the session does not expire. */
  expires_at: number | null;
  rights: string[];
  sealed_app_key: string | null;
  budget_sat: number | null;
  /** 0: the session's whole life. */
  period_secs: number;
}

export class AuthDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthDataError';
  }
}

function str(v: unknown, dflt = ''): string {
  return typeof v === 'string' ? v : dflt;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null;
}

/** Parses the auth data bytes (UTF-8 JSON). @throws AuthDataError */
export function parseAuthData(bytes: Uint8Array | string): AuthData {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof bytes === 'string' ? bytes : new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new AuthDataError('the node sent auth data that is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new AuthDataError('the node sent auth data that is not a JSON object');
  }
  const o = raw as Record<string, unknown>;
  const sealed = o['sealed_app_key'];
  if (sealed !== undefined && sealed !== null && (typeof sealed !== 'string' || !/^([0-9a-fA-F]{2})+$/.test(sealed))) {
    throw new AuthDataError('the sealed app key is not hex');
  }
  return {
    version: num(o['version']) ?? 0,
    session_id: str(o['session_id']),
    label: str(o['label']),
    node_id: str(o['node_id']),
    network: str(o['network'], 'bitcoin'),
    expires_at: num(o['expires_at']),
    rights: Array.isArray(o['rights']) ? o['rights'].filter((r): r is string => typeof r === 'string') : [],
    sealed_app_key: typeof sealed === 'string' ? sealed.toLowerCase() : null,
    budget_sat: num(o['budget_sat']),
    period_secs: num(o['period_secs']) ?? 0,
  };
}

export function hasRight(auth: AuthData, right: 'read' | 'invoice' | 'pay'): boolean {
  return auth.rights.includes(right) || auth.rights.includes('admin');
}
