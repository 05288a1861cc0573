//! What can go wrong in pairing, handshakes and frames.

/// An error of the Lightning Node Connect protocol layer.
#[derive(Debug, thiserror::Error)]
pub enum LncError {
    /// The phrase does not have exactly ten words.
    #[error("a pairing phrase has 10 words; this one has {0}")]
    WrongWordCount(usize),
    /// A word is not in the BIP-39 English list.
    #[error("'{0}' is not one of the pairing words; check the spelling")]
    UnknownWord(String),
    /// The words decode to entropy whose two padding bits are not zero.
    #[error("these words are not a pairing phrase (the last word does not fit)")]
    BadPadding,
    /// The stretched password is zero modulo the curve order (never happens in practice).
    #[error("the phrase gives an unusable password")]
    UnusablePassword,
    /// A handshake act or frame has the wrong length.
    #[error("{what} is {got} bytes, expected {expected}")]
    Length {
        /// What was being read.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The length it must have.
        expected: usize,
    },
    /// The peer proposed a handshake version we do not speak.
    #[error("handshake version {0} is not supported")]
    Version(u8),
    /// A public key in a handshake act is not a point on the curve.
    #[error("the peer sent an invalid public key")]
    BadKey(#[source] secp256k1::Error),
    /// A handshake act failed its authentication: with XX, the phrase did not match.
    #[error("the handshake failed: the other side does not know this pairing phrase or key")]
    HandshakeAuth,
    /// A frame failed to decrypt: replayed, reordered, truncated or forged.
    #[error(
        "a message failed authentication (replayed, reordered or forged); the connection is closed"
    )]
    FrameAuth,
    /// A message is longer than a frame can carry.
    #[error("a message of {0} bytes is longer than 65535")]
    TooLong(usize),
    /// The cipher refused to encrypt a message (only possible at 256 GiB or more).
    #[error("a message of {0} bytes could not be encrypted")]
    Encrypt(usize),
    /// A sealed key did not open: another phrase sealed it, or it was changed.
    #[error("the app key in this pairing does not open with this phrase")]
    Sealed,
    /// The handshake was used out of order.
    #[error("handshake step out of order: {0}")]
    OutOfOrder(&'static str),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, LncError>;
