// One error type for everything the pairing code can report to the app. `code` is for the
// program; `message` is written for the person using the wallet.

export type PairingErrorCode =
  // The phrase as typed.
  | 'wrong_word_count'
  | 'unknown_word'
  // Bytes that cannot be a phrase's entropy (a programming error, not a typing one).
  | 'bad_entropy'
  // The handshake.
  | 'wrong_phrase'
  | 'pairing_not_found'
  | 'handshake_failed'
  | 'timeout'
  // After the handshake.
  | 'decrypt_failed'
  | 'message_too_large'
  | 'closed'
  // The relay.
  | 'relay_unreachable'
  | 'relay_not_found'
  | 'relay_busy'
  | 'relay_rate_limited'
  | 'relay_error'
  | 'relay_closed'
  | 'bad_argument';

export interface PairingErrorDetails {
  /** The offending word, for `unknown_word`. */
  word?: string;
  /** 1-based position of the offending word, for `unknown_word`. */
  position?: number;
  /** gRPC status code from the relay, for `relay_*` errors that came as `{"error": ...}`. */
  grpcCode?: number;
  /** Technical detail for logs (never shown as the message). */
  detail?: string;
  cause?: unknown;
}

export class PairingError extends Error {
  readonly code: PairingErrorCode;
  readonly word?: string;
  readonly position?: number;
  readonly grpcCode?: number;
  readonly detail?: string;

  constructor(code: PairingErrorCode, message: string, details: PairingErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'PairingError';
    this.code = code;
    if (details.word !== undefined) this.word = details.word;
    if (details.position !== undefined) this.position = details.position;
    if (details.grpcCode !== undefined) this.grpcCode = details.grpcCode;
    if (details.detail !== undefined) this.detail = details.detail;
  }
}

export function isPairingError(e: unknown, code?: PairingErrorCode): e is PairingError {
  return e instanceof PairingError && (code === undefined || e.code === code);
}

/** The messages used in more than one place. */
export const MESSAGES = {
  wrongPhrase: 'That phrase did not match. The pairing is now cancelled: create a new one.',
  pairingNotFound:
    'No pairing is waiting for this phrase. Check the words, or create a new pairing on your node.',
  handshakeFailed:
    'Your node did not answer as expected, so the connection was stopped. Try again in a moment.',
  timeout: 'Your node did not answer in time. Check that it is running, then try again.',
  decryptFailed:
    'A message from your node could not be verified, so the connection was closed. Reconnect to continue.',
  closed: 'The connection to your node is closed.',
} as const;
