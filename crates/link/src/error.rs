//! The one error type of the link.

use std::path::PathBuf;

use crate::code::PairingCodeError;

/// Everything that can go wrong on the link.
///
/// Errors about one incoming connection never poison a [`crate::LinkListener`]: it keeps
/// accepting. Errors from a [`crate::LinkConnection`] (or one of its halves) after the
/// handshake are final for that half: later calls return [`LinkError::Broken`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// A socket operation failed.
    #[error("link I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// The peer closed the connection cleanly, between two messages.
    #[error("the peer closed the link")]
    Closed,

    /// An earlier error (or a cancelled send) left this connection half unusable.
    #[error("the link failed earlier and can no longer be used")]
    Broken,

    /// The handshake did not finish within the configured time.
    #[error("the link handshake timed out")]
    HandshakeTimeout,

    /// The peer closed the connection before the handshake finished. Seen by the signer when
    /// the node refuses it: the node does not know this signer's key, the node is not the one
    /// that was pinned, or the pairing code is wrong, used or expired (the node does not say
    /// which, so that unauthenticated peers learn nothing).
    #[error("the peer closed the link during the handshake (it rejected us)")]
    HandshakeRejected,

    /// A handshake message or key confirmation from the peer failed to authenticate: the peer
    /// does not hold the pinned static key, it pinned a different key for us, or the message is
    /// a replay of an earlier session or was tampered with.
    #[error("the link handshake failed: {0}")]
    HandshakeFailed(&'static str),

    /// Node side: a pairing attempt did not authenticate under the pending pairing code (a
    /// wrong code, or a replayed or tampered pairing attempt).
    #[error("pairing failed: the signer does not know the pending pairing code")]
    WrongPairingCode,

    /// Node side: a signer asked for a pinned (KK) link but no signer is paired.
    #[error("no signer is paired with this node")]
    NotPaired,

    /// Node side: a signer asked to pair but no pairing code is pending.
    #[error("no pairing code is pending")]
    NoPendingPairing,

    /// Node side: the pending pairing code has expired.
    #[error("the pairing code has expired")]
    PairingCodeExpired,

    /// Node side: the pairing code was used (or replaced) while this pairing was in flight.
    #[error("the pairing code has already been used")]
    PairingCodeUsed,

    /// A pairing code string could not be parsed.
    #[error("invalid pairing code: {0}")]
    InvalidPairingCode(#[from] PairingCodeError),

    /// The peer speaks another version of the link protocol.
    #[error("link protocol version mismatch: ours is {ours}, the peer's is {theirs}")]
    VersionMismatch {
        /// Our protocol version.
        ours: u8,
        /// The version the peer announced.
        theirs: u8,
    },

    /// The peer sent bytes that do not follow the link protocol.
    #[error("link protocol violation: {0}")]
    Protocol(&'static str),

    /// A message is larger than the limit (on send, nothing was written; on receive, the
    /// connection is closed).
    #[error("link message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The size of the message.
        len: usize,
        /// The limit in force.
        max: usize,
    },

    /// A transport frame failed to decrypt: it was tampered with, replayed or reordered.
    #[error("a link frame failed to decrypt (tampered, replayed or reordered)")]
    Decrypt,

    /// Noise reported an unexpected error (a local setup problem, not the peer's fault).
    #[error("noise error: {0}")]
    Noise(#[from] snow::Error),

    /// A key or state file could not be read or written.
    #[error("link file {path}: {source}")]
    Storage {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A key or state file exists but its contents are not valid.
    #[error("link file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The listener's background task has stopped.
    #[error("the link listener has shut down")]
    ListenerClosed,

    /// `connect_with_backoff` was cancelled before it connected.
    #[error("connecting was cancelled")]
    Cancelled,
}

impl LinkError {
    /// Whether trying again later could succeed (network trouble, a node that is down or
    /// not yet configured), as opposed to a local problem that retrying cannot fix.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            LinkError::Noise(_)
                | LinkError::InvalidPairingCode(_)
                | LinkError::Storage { .. }
                | LinkError::Corrupt { .. }
                | LinkError::Cancelled
        )
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = LinkError> = std::result::Result<T, E>;
