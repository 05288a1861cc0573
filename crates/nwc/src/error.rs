//! Errors: the NIP-47 error codes apps see, and the service's own typed errors.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A NIP-47 error code, exactly as the spec spells it on the wire.
///
/// nostr 0.44's `nip47::ErrorCode` lacks `UNSUPPORTED_ENCRYPTION`, so the service has its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The client sends commands too fast; it should retry in a few seconds.
    RateLimited,
    /// The command is unknown or intentionally not implemented.
    NotImplemented,
    /// The wallet cannot cover the amount (plus a fee reserve).
    InsufficientBalance,
    /// The connection's spending budget is exhausted.
    QuotaExceeded,
    /// This connection may not use this method.
    Restricted,
    /// No (active) wallet connection for this key.
    Unauthorized,
    /// An internal error.
    Internal,
    /// The request's encryption scheme is not supported (or its content is not valid in it).
    UnsupportedEncryption,
    /// The payment failed (no route, timeout, expired invoice, ...).
    PaymentFailed,
    /// The invoice or payment was not found.
    NotFound,
    /// Anything else, including malformed requests.
    Other,
}

impl ErrorCode {
    /// The wire spelling, e.g. `QUOTA_EXCEEDED`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RateLimited => "RATE_LIMITED",
            Self::NotImplemented => "NOT_IMPLEMENTED",
            Self::InsufficientBalance => "INSUFFICIENT_BALANCE",
            Self::QuotaExceeded => "QUOTA_EXCEEDED",
            Self::Restricted => "RESTRICTED",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Internal => "INTERNAL",
            Self::UnsupportedEncryption => "UNSUPPORTED_ENCRYPTION",
            Self::PaymentFailed => "PAYMENT_FAILED",
            Self::NotFound => "NOT_FOUND",
            Self::Other => "OTHER",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A NIP-47 error as sent to an app: a code and a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Nip47Error {
    /// The code.
    pub code: ErrorCode,
    /// What went wrong, for humans.
    pub message: String,
}

impl Nip47Error {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// An error of the service itself (setup, storage, relays), not of one request.
#[derive(Debug, thiserror::Error)]
pub enum NwcError {
    /// The SQLite store failed.
    #[error("storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A file or directory operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("configuration error: {0}")]
    Config(String),
    /// The relay pool refused an operation.
    #[error("relay error: {0}")]
    Relay(String),
    /// Stored data does not parse (a bug or a tampered file).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// No connection with this id or name.
    #[error("unknown connection: {0}")]
    UnknownConnection(String),
    /// A key or event could not be built or signed.
    #[error("nostr error: {0}")]
    Nostr(String),
    /// A background task failed (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl NwcError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Why a management request (create/list/revoke connections) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagementAuthError {
    /// No tenant key is recorded, so nobody may manage connections remotely.
    #[error("no tenant public key is recorded")]
    NoTenant,
    /// The event is not kind 27235 (NIP-98 HTTP auth).
    #[error("wrong event kind {0}; expected 27235")]
    WrongKind(u16),
    /// The event id or signature does not verify.
    #[error("invalid event id or signature")]
    BadSignature,
    /// The event is signed by another key than the tenant's.
    #[error("signed by {0}, not by the tenant")]
    NotTenant(String),
    /// A required tag (`u` or `method`) is missing.
    #[error("missing {0:?} tag")]
    MissingTag(&'static str),
    /// The signed URL or method does not match the request.
    #[error("the event authorises {signed}, not {requested}")]
    Mismatch {
        /// What the event authorises.
        signed: String,
        /// What was requested.
        requested: String,
    },
    /// The event is too old or from the future (NIP-98 allows 60 s).
    #[error("event time {created_at} is outside the allowed window around {now}")]
    Stale {
        /// The event's `created_at`.
        created_at: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// The body's hash does not match the `payload` tag.
    #[error("payload hash mismatch")]
    PayloadMismatch,
    /// The Authorization header is malformed.
    #[error("malformed authorization: {0}")]
    Malformed(String),
}
