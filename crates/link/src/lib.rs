//! The link between a tenant's signer and the node it signs for.
//!
//! The signer may sit behind NAT, so it **dials out** over TCP to the node
//! ([`LinkConnector`]); the node listens ([`LinkListener`]). Once connected, the link is a
//! mutually authenticated, encrypted, ordered duplex channel of whole messages
//! ([`LinkConnection`]); the RPC on top (the node asks, the signer answers) is not part of
//! this crate.
//!
//! # Keys and pairing
//!
//! Each side has a long-term static X25519 key ([`LinkIdentity`], saved with mode 0600).
//! Each side pins the other's public key; the pins are established once, by **pairing**:
//!
//! 1. The node creates a one-time [`PairingCode`] ([`PairingStore::new_pairing_code`]):
//!    128 random bits, shown as `MN-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX` (Crockford base32
//!    with two check characters). The store keeps only the key derived from it, with an
//!    expiry.
//! 2. The tenant types the code into the signer, which connects with
//!    [`ConnectMode::Pairing`]. The handshake is `Noise_XXpsk3_25519_ChaChaPoly_SHA256`
//!    with `psk = SHA-256("micronode link pairing v1" || code secret)`: static keys are
//!    exchanged encrypted and the PSK, mixed into the last message, proves that both sides
//!    know the code. The node pins the signer's key and consumes the code in one durable
//!    step, so a code works exactly once; the signer gets the node's key in
//!    [`PeerInfo::remote_key`] and must store it.
//! 3. Afterwards the signer connects with [`ConnectMode::Pinned`]:
//!    `Noise_KK_25519_ChaChaPoly_SHA256`, where each side already knows the other's static
//!    key. A peer with any other key fails the handshake.
//!
//! The 128-bit code is also what makes a transcript useless to an eavesdropper or a
//! man-in-the-middle for guessing the code offline.
//!
//! # Wire protocol
//!
//! ```text
//! signer -> node   preamble: "MNLK" | version (1) | mode (1 = pinned/KK, 2 = pairing/XXpsk3)
//! both             handshake messages, each: u16 BE length | Noise message (empty payloads)
//!                    KK:      -> e, es, ss              <- e, ee, se
//!                    XXpsk3:  -> e   <- e, ee, s, es   -> s, se, psk
//! both             key confirmation: the first transport message of each direction
//! both             transport frames, each: u16 BE length | Noise ciphertext (<= 65535)
//! ```
//!
//! The Noise prologue is `"micronode-link/1" || preamble`, so a different protocol label,
//! version or mode (e.g. an attacker flipping a pairing attempt to KK or back, to downgrade
//! it) makes the handshake fail; a version the node does not speak is refused outright
//! ([`LinkError::VersionMismatch`]). A pinned attempt from an unknown key fails the KK
//! handshake; a pairing attempt without the right code fails at the PSK; a pairing
//! attempt when no code is pending is refused.
//!
//! An application message (at most [`MAX_MESSAGE_LEN`], 4 MiB) is split into chunks of at
//! most 65519 plaintext bytes, one Noise transport message each. The first chunk starts
//! with a 5-byte header, `kind: u8 | total_len: u32 BE` (kind 1 is data, 2 the key
//! confirmation); later chunks carry only payload. Oversize messages are refused before
//! sending ([`LinkError::MessageTooLarge`]) and when announced by the peer.
//!
//! Both sides send a key confirmation as their first transport message and wait for the
//! peer's before a connection is handed out. The node's confirmation tells a pairing
//! signer that the node really knew the code (in XXpsk3 the signer otherwise finishes
//! before the PSK is checked); the signer's proves to the node that it holds this
//! session's ephemeral key. Handshakes time out after [`DEFAULT_HANDSHAKE_TIMEOUT`].
//!
//! # Replay
//!
//! Every handshake mixes in fresh ephemeral keys from both sides (`ee`), so the session
//! keys are new each time. A replayed first message from the signer can make the node
//! answer, but the replayer cannot produce the key confirmation (or, for pairing, the
//! third message) under the node's new ephemeral key, so the node never yields a
//! connection. A replayed node answer fails to decrypt at a signer whose ephemeral key is
//! new. Within a session, each direction's nonce is an implicit counter: a replayed,
//! dropped or reordered frame fails authentication ([`LinkError::Decrypt`]) and the
//! connection is closed.
//!
//! # Errors and logging
//!
//! Everything returns [`LinkError`]; bytes from the network never panic. Logs (via
//! `tracing`) mention peers by [`fingerprint`] only, never key material or pairing codes.

#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod code;
mod connector;
mod error;
mod fsutil;
mod handshake;
mod identity;
mod listener;
mod pairing;
mod transport;

pub use code::{PairingCode, PairingCodeError, PAIRING_SECRET_LEN};
pub use connector::{Backoff, ConnectMode, LinkConnector};
pub use error::{LinkError, Result};
pub use handshake::{HandshakeKind, PeerInfo, DEFAULT_HANDSHAKE_TIMEOUT, PROTOCOL_VERSION};
pub use identity::{fingerprint, LinkIdentity, KEY_LEN};
pub use listener::{Admission, LinkListener, ListenerConfig};
pub use pairing::{PairingPersistence, PairingStore, DEFAULT_PAIRING_TTL, PAIRING_FILE_NAME};
pub use transport::{LinkConnection, LinkReader, LinkWriter, MAX_MESSAGE_LEN};
