//! What the node needs from the link to its signer: a blocking call and an online flag.

use super::protocol::{SignerReply, SignerRequest, SignerResponse};
use crate::error::NodeError;

/// Why a remote signing call did not produce a result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// No signer is connected, or it did not answer in time.
    #[error("signer offline")]
    Offline,
    /// The signer's policy refused the request.
    #[error("refused by the signer's policy ({rule}): {message}")]
    Refused {
        /// The rule that fired.
        rule: String,
        /// Why.
        message: String,
        /// Whether the same request may pass later.
        temporary: bool,
    },
    /// The tenant revoked this node.
    #[error("the tenant revoked this node's access to the signer")]
    Revoked,
    /// The signer failed, or its answer was malformed.
    #[error("signer failed: {0}")]
    Failed(String),
}

impl From<RemoteError> for NodeError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Offline => NodeError::SignerOffline,
            RemoteError::Refused { rule, message, .. } => {
                NodeError::SignerRefused { rule, message }
            }
            RemoteError::Revoked => NodeError::SignerRevoked,
            RemoteError::Failed(m) => NodeError::Signer(m),
        }
    }
}

impl RemoteError {
    /// Maps a signer response to a result.
    pub fn from_response(response: SignerResponse) -> Result<SignerReply, RemoteError> {
        match response {
            SignerResponse::Ok { reply } => Ok(reply),
            SignerResponse::Refused {
                rule,
                message,
                temporary,
            } => Err(RemoteError::Refused {
                rule,
                message,
                temporary,
            }),
            SignerResponse::Failed { message } => Err(RemoteError::Failed(message)),
            SignerResponse::Revoked => Err(RemoteError::Revoked),
        }
    }
}

/// A synchronous request/response channel to the signer. LDK's signer traits are synchronous,
/// so implementations must not need the caller's async runtime to make progress (run the I/O
/// on its own thread).
pub trait SignerTransport: Send + Sync {
    /// Sends `request` and waits for the answer. Fails fast with [`RemoteError::Offline`] when
    /// no signer is connected.
    fn call(&self, request: SignerRequest) -> Result<SignerReply, RemoteError>;

    /// Whether a signer is connected now.
    fn is_online(&self) -> bool;

    /// A counter bumped on every new signer connection.
    fn connections(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Ends the link for good: stops listening for the signer and drops its connection.
    /// Calls fail as offline afterwards.
    fn close(&self) {}
}
