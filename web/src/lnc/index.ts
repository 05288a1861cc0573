// Lightning Node Connect's protocol, client side, as docs/pairing.md specifies it.

export { PairingError, isPairingError, MESSAGES } from './errors.js';
export type { PairingErrorCode, PairingErrorDetails } from './errors.js';
export {
  phraseToEntropy,
  entropyToPhrase,
  newPhrase,
  stretch,
  PHRASE_WORDS,
  ENTROPY_BYTES,
  SCRYPT,
} from './phrase.js';
export { sidFromEntropy, sidPaired, streamIds, SID_BYTES } from './sid.js';
export type { StreamIds } from './sid.js';
export { publicKey, randomPrivateKey, ecdh, mask, unmask, N_POINT_HEX } from './keys.js';
export {
  CipherState,
  SymmetricState,
  Handshake,
  Transport,
  AeadError,
  PROLOGUE,
  PROTOCOL_NAME_XX,
  PROTOCOL_NAME_KK,
  HANDSHAKE_VERSION,
  KEY_ROTATION_INTERVAL,
  MAX_PLAINTEXT,
} from './noise.js';
export type { HandshakeOptions, HandshakePatternName } from './noise.js';
export { openSend, openReceive, hashmailUrl, SendStream, ReceiveStream } from './mailbox.js';
export type { MailboxOptions, WebSocketLike, WebSocketConstructor } from './mailbox.js';
export { connect } from './session.js';
export type { ConnectOptions, Session, StoredPairing } from './session.js';
