//! Errors at the API's edge, and how they become gRPC statuses.
//!
//! Every failed call gets a gRPC code, a message fit for the caller, and a stable
//! machine-readable [`ErrorCode`] in the `x-micronode-error` metadata. Server-side failures
//! (storage, configuration, bugs) never show their detail to the caller: they say
//! `internal error` and the detail goes to the server's log.

use std::net::SocketAddr;
use std::path::PathBuf;

use micronode_node::NodeError;
pub use micronode_proto::{ErrorCode, ERROR_CODE_METADATA};

/// The message a caller gets for a server-side failure.
pub const INTERNAL_MESSAGE: &str = "internal error";

/// An error of the API: a bad request, a node error, or a failure to serve.
///
/// Causes are kept as [`std::error::Error::source`], not repeated in the message: print with
/// `{:#}` (anyhow) or walk the chain to see them.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field is malformed, missing or out of range.
    #[error("invalid input: {0}")]
    InvalidRequest(String),
    /// The node refused or failed the operation.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A blocking task of the API panicked or was cancelled.
    #[error("API task failed: {0}")]
    Task(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The cookie file could not be written or read.
    #[error("cookie file {}", path.display())]
    Cookie {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC transport failed while serving.
    #[error("the gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
    /// A capability token was refused, or the token authority failed.
    #[error(transparent)]
    Token(#[from] crate::tokens::TokenError),
    /// The call is refused for a reason the caller may read, with its code.
    #[error("{message}")]
    Refused {
        /// The machine-readable code.
        code: ErrorCode,
        /// What the caller is told.
        message: String,
    },
}

impl ApiError {
    /// A malformed request field.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidRequest(message.into())
    }

    /// A refusal with `code` and a message for the caller.
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Refused {
            code,
            message: message.into(),
        }
    }

    /// The machine-readable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidRequest(_) => ErrorCode::InvalidInput,
            ApiError::Node(e) => node_error_code(e),
            ApiError::Token(e) => e.code(),
            ApiError::Refused { code, .. } => *code,
            ApiError::Task(_)
            | ApiError::Bind { .. }
            | ApiError::Cookie { .. }
            | ApiError::Transport(_) => ErrorCode::Internal,
        }
    }

    /// The message the caller sees. Server-side detail is left out (see [`INTERNAL_MESSAGE`]).
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Node(NodeError::Chain(detail)) => chain_message(detail),
            ApiError::Node(NodeError::BroadcastDeferred { txid, .. }) => format!(
                "the chain source is unavailable: transaction {txid} is signed and kept, and \
                 will be broadcast when it answers (do not send it again)"
            ),
            _ if self.code() == ErrorCode::Internal => INTERNAL_MESSAGE.to_string(),
            other => other.to_string(),
        }
    }

    /// The gRPC status for this error, with its [`ErrorCode`] in the metadata. Logs the detail
    /// of server-side failures, which the status leaves out.
    pub fn to_status(&self) -> tonic::Status {
        let code = self.code();
        match code {
            ErrorCode::Internal => {
                tracing::error!(error = %Chain(self), "request failed internally")
            }
            ErrorCode::ChainUnavailable => tracing::warn!(error = %self, "chain source failed"),
            _ => tracing::debug!(error = %self, %code, "request refused"),
        }
        code.status(self.public_message())
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        e.to_status()
    }
}

/// Displays an error followed by its chain of causes (`a: b: c`), for logs.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The code of each node error.
pub fn node_error_code(e: &NodeError) -> ErrorCode {
    match e {
        NodeError::InvalidInput(_) => ErrorCode::InvalidInput,
        NodeError::UnknownPeer(_) => ErrorCode::UnknownPeer,
        NodeError::UnknownChannel(_) => ErrorCode::UnknownChannel,
        NodeError::UnknownPayment(_) => ErrorCode::UnknownPayment,
        NodeError::InsufficientFunds(_) => ErrorCode::InsufficientFunds,
        NodeError::DuplicatePayment(_) => ErrorCode::DuplicatePayment,
        NodeError::Connection(_) => ErrorCode::ConnectionFailed,
        NodeError::Chain(_) | NodeError::BroadcastDeferred { .. } => ErrorCode::ChainUnavailable,
        NodeError::NotRunning => ErrorCode::NotRunning,
        NodeError::Signer(_) => ErrorCode::SignerUnavailable,
        NodeError::SignerOffline => ErrorCode::SignerOffline,
        NodeError::SignerRefused { .. } => ErrorCode::SignerPolicyRefused,
        NodeError::SignerRevoked => ErrorCode::SignerRevoked,
        NodeError::Channel(_) => ErrorCode::ChannelError,
        NodeError::Payment(_) => ErrorCode::PaymentError,
        NodeError::Wallet(_) => ErrorCode::WalletError,
        NodeError::Timeout(_) => ErrorCode::Timeout,
        NodeError::Storage(_)
        | NodeError::File(_)
        | NodeError::Config(_)
        | NodeError::Internal(_) => ErrorCode::Internal,
    }
}

/// What a caller learns of a chain-source failure: bitcoind's own refusal (for example a
/// transaction below the mempool's minimum fee) is worth showing; where bitcoind lives and how
/// it could not be reached is not.
fn chain_message(detail: &str) -> String {
    const RPC_REFUSAL: &str = "bitcoind RPC error";
    match detail.find(RPC_REFUSAL) {
        Some(at) => format!("chain source refused: {}", &detail[at..]),
        None => "the chain source is unavailable".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn status_of(e: NodeError) -> tonic::Status {
        ApiError::from(e).to_status()
    }

    #[test]
    fn node_errors_map_to_the_documented_codes() {
        let table = [
            (
                NodeError::InvalidInput("x".into()),
                Code::InvalidArgument,
                "INVALID_INPUT",
            ),
            (
                NodeError::UnknownPeer("x".into()),
                Code::NotFound,
                "UNKNOWN_PEER",
            ),
            (
                NodeError::UnknownChannel("x".into()),
                Code::NotFound,
                "UNKNOWN_CHANNEL",
            ),
            (
                NodeError::UnknownPayment("x".into()),
                Code::NotFound,
                "UNKNOWN_PAYMENT",
            ),
            (
                NodeError::InsufficientFunds("x".into()),
                Code::FailedPrecondition,
                "INSUFFICIENT_FUNDS",
            ),
            (
                NodeError::DuplicatePayment("x".into()),
                Code::AlreadyExists,
                "DUPLICATE_PAYMENT",
            ),
            (
                NodeError::Connection("x".into()),
                Code::Unavailable,
                "CONNECTION_FAILED",
            ),
            (
                NodeError::Chain("x".into()),
                Code::Unavailable,
                "CHAIN_UNAVAILABLE",
            ),
            (NodeError::NotRunning, Code::Unavailable, "NOT_RUNNING"),
            (
                NodeError::Signer("x".into()),
                Code::Unavailable,
                "SIGNER_UNAVAILABLE",
            ),
            (
                NodeError::Channel("x".into()),
                Code::FailedPrecondition,
                "CHANNEL_ERROR",
            ),
            (
                NodeError::Payment("x".into()),
                Code::FailedPrecondition,
                "PAYMENT_ERROR",
            ),
            (
                NodeError::Wallet("x".into()),
                Code::FailedPrecondition,
                "WALLET_ERROR",
            ),
            (
                NodeError::Timeout("x".into()),
                Code::DeadlineExceeded,
                "TIMEOUT",
            ),
            (NodeError::Internal("x".into()), Code::Internal, "INTERNAL"),
            (NodeError::Config("x".into()), Code::Internal, "INTERNAL"),
            (
                NodeError::Storage(std::io::Error::other("x")),
                Code::Internal,
                "INTERNAL",
            ),
        ];
        for (error, code, name) in table {
            let status = status_of(error);
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(
                status
                    .metadata()
                    .get(ERROR_CODE_METADATA)
                    .and_then(|v| v.to_str().ok()),
                Some(name)
            );
        }
    }

    #[test]
    fn server_side_detail_stays_on_the_server() {
        for e in [
            NodeError::Internal("poisoned lock in /srv/node/x".into()),
            NodeError::Config("secret path /etc/x".into()),
            NodeError::Storage(std::io::Error::other("disk /dev/sda1 full")),
        ] {
            assert_eq!(status_of(e).message(), INTERNAL_MESSAGE);
        }
        let task = ApiError::Task("panicked at src/x.rs:1".into()).to_status();
        assert_eq!(task.code(), Code::Internal);
        assert_eq!(task.message(), INTERNAL_MESSAGE);
        let unreachable = status_of(NodeError::Chain(
            "bitcoind is not reachable at http://10.0.0.5:8332/: refused".into(),
        ));
        assert_eq!(unreachable.message(), "the chain source is unavailable");
        let refused = status_of(NodeError::Chain(
            "bitcoind RPC error -26: min relay fee not met".into(),
        ));
        assert_eq!(
            refused.message(),
            "chain source refused: bitcoind RPC error -26: min relay fee not met"
        );
    }

    #[test]
    fn caller_errors_keep_their_message() {
        let status = status_of(NodeError::UnknownPeer("02ab is not connected".into()));
        assert_eq!(status.message(), "unknown peer: 02ab is not connected");
        let status = ApiError::invalid("node_id: not hex").to_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "invalid input: node_id: not hex");
    }
}
