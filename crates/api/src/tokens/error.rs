//! Errors of capability tokens: refusals a caller sees with a precise code, and failures of the
//! token store that stay on the server.

use std::path::PathBuf;

use micronode_proto::ErrorCode;

/// Why a token was refused, or why the token authority failed.
///
/// The refusals ([`TokenError::Missing`] to [`TokenError::UnknownToken`]) carry messages fit
/// for the caller: they never contain the token, only its caveats. The rest are server-side
/// failures: the caller is told `internal error` and the detail goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The call carries no token.
    #[error("no token: send `authorization: Bearer <token>`")]
    Missing,
    /// The token is malformed, its signature does not verify against the node's root key, or
    /// it cannot be evaluated.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// An expiry caveat has passed.
    #[error("the token expired (caveat `{0}`)")]
    Expired(String),
    /// The token, or one it was attenuated from, is revoked.
    #[error("the token is revoked")]
    Revoked,
    /// The token belongs to another node.
    #[error("the token was made for another node ({0})")]
    WrongTenant(String),
    /// The token's rights or caveats do not allow the method.
    #[error("{method} is not allowed by this token: {reason}")]
    MethodNotAllowed {
        /// The RPC.
        method: String,
        /// Which right or caveat refused it.
        reason: String,
    },
    /// The payment would exceed a budget or the per-payment maximum.
    #[error("over budget: {0}")]
    BudgetExceeded(String),
    /// No registered token has this id.
    #[error("no registered token has id {0}")]
    UnknownToken(String),
    /// A caveat asked of [`Caveats`](crate::tokens::Caveats) is malformed.
    #[error("invalid caveat: {0}")]
    Caveat(String),
    /// Token management on a node that authenticates with its cookie.
    #[error("this node does not use capability tokens")]
    Disabled,
    /// The data directory has no token store.
    #[error("no token store in {}", .0.display())]
    NotInitialised(PathBuf),
    /// `init` on a data directory that already has a token store.
    #[error("a token store already exists in {}; remove it to start afresh (every token of the node becomes invalid)", .0.display())]
    AlreadyInitialised(PathBuf),
    /// The token store was made for another node.
    #[error("the token store in {} belongs to node {stored}, not to {node}", path.display())]
    TenantMismatch {
        /// The store's folder.
        path: PathBuf,
        /// The node it was made for.
        stored: String,
        /// The node opening it.
        node: String,
    },
    /// SQLite failed.
    #[error("token store {}", path.display())]
    Store {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("token store {}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store holds something it could not have written.
    #[error("the token store is corrupt: {0}")]
    Corrupt(String),
    /// biscuit failed to build or serialise a token or an authorizer.
    #[error("biscuit: {0}")]
    Biscuit(String),
    /// The node's keys backend failed.
    #[error("keys: {0}")]
    Keys(String),
    /// A lock was poisoned by a panic elsewhere.
    #[error("token authority lock poisoned")]
    Poisoned,
}

impl TokenError {
    /// The machine-readable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::Missing => ErrorCode::TokenMissing,
            TokenError::Invalid(_) => ErrorCode::TokenInvalid,
            TokenError::Expired(_) => ErrorCode::TokenExpired,
            TokenError::Revoked => ErrorCode::TokenRevoked,
            TokenError::WrongTenant(_) => ErrorCode::TokenWrongTenant,
            TokenError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            TokenError::BudgetExceeded(_) => ErrorCode::BudgetExceeded,
            TokenError::UnknownToken(_) => ErrorCode::UnknownToken,
            TokenError::Caveat(_) => ErrorCode::InvalidInput,
            TokenError::Disabled => ErrorCode::TokensDisabled,
            TokenError::NotInitialised(_)
            | TokenError::AlreadyInitialised(_)
            | TokenError::TenantMismatch { .. }
            | TokenError::Store { .. }
            | TokenError::Io { .. }
            | TokenError::Corrupt(_)
            | TokenError::Biscuit(_)
            | TokenError::Keys(_)
            | TokenError::Poisoned => ErrorCode::Internal,
        }
    }

    /// The gRPC status of this error, with its code in the metadata. Server-side failures say
    /// only `internal error` to the caller and are logged with their cause.
    pub fn to_status(&self) -> tonic::Status {
        let code = self.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = %crate::error::Chain(self), "token authority failed");
            code.status(crate::error::INTERNAL_MESSAGE)
        } else {
            tracing::debug!(error = %self, %code, "token refused");
            code.status(self.to_string())
        }
    }

    /// A store error on `path`.
    pub(crate) fn store(path: &std::path::Path) -> impl FnOnce(rusqlite::Error) -> TokenError {
        let path = path.to_path_buf();
        move |source| TokenError::Store { path, source }
    }

    /// A file error on `path`.
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TokenError {
        let path = path.to_path_buf();
        move |source| TokenError::Io { path, source }
    }

    /// A biscuit failure while building (not a refusal of a presented token).
    pub(crate) fn biscuit(e: biscuit_auth::error::Token) -> TokenError {
        TokenError::Biscuit(e.to_string())
    }
}
