//! The machine-readable error codes of the API, carried in the `x-micronode-error` response
//! metadata of a failed call. The table in `lightning.proto` is their documentation; this module
//! gives clients and the server one spelling of them.

use std::fmt;
use std::str::FromStr;

/// The response metadata key that carries an [`ErrorCode`].
pub const ERROR_CODE_METADATA: &str = "x-micronode-error";

/// The request metadata key that carries the credentials (`Bearer <token>`).
pub const AUTHORIZATION_METADATA: &str = "authorization";

/// A stable, machine-readable error code. Each has one gRPC status code (see
/// [`ErrorCode::grpc_code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A request field is malformed, missing or out of range.
    InvalidInput,
    /// The peer is unknown or not connected.
    UnknownPeer,
    /// No such channel.
    UnknownChannel,
    /// No such payment.
    UnknownPayment,
    /// Not enough funds on chain or in channels.
    InsufficientFunds,
    /// The payment is already in flight or was paid.
    DuplicatePayment,
    /// The channel operation was refused.
    ChannelError,
    /// The payment was refused or failed.
    PaymentError,
    /// The on-chain wallet could not build the transaction.
    WalletError,
    /// Connecting to the peer failed.
    ConnectionFailed,
    /// The node's chain source (bitcoind) failed.
    ChainUnavailable,
    /// The keys backend refused or could not sign.
    SignerUnavailable,
    /// The tenant's remote signer is not connected; nothing was signed.
    SignerOffline,
    /// The tenant's signer refused by policy (the rule is in the message).
    SignerPolicyRefused,
    /// The tenant revoked the node's access to the signer.
    SignerRevoked,
    /// The node is stopping or not running.
    NotRunning,
    /// A wait ran out; the operation may still complete.
    Timeout,
    /// A server-side failure; details are in the server's log.
    Internal,
    /// Missing or wrong credentials.
    Unauthenticated,
    /// The node uses capability tokens and the call carries none.
    TokenMissing,
    /// The token is malformed, its signature does not verify against the node's root key, or
    /// it cannot be evaluated.
    TokenInvalid,
    /// The token's expiry caveat has passed.
    TokenExpired,
    /// The token, or one it was attenuated from, is revoked.
    TokenRevoked,
    /// The token was made for another node (another tenant).
    TokenWrongTenant,
    /// The token's rights or caveats do not allow this method.
    MethodNotAllowed,
    /// The payment would exceed a budget or the per-payment maximum of the token (or of one it
    /// was attenuated from).
    BudgetExceeded,
    /// The node does not use capability tokens (it authenticates with its cookie).
    TokensDisabled,
    /// No registered token has this id.
    UnknownToken,
    /// The host has no such tenant, or the tenant's node is not running.
    UnknownTenant,
    /// The tenant is suspended by its host: its API and apps are refused.
    TenantSuspended,
    /// A tenant of this name exists already.
    TenantExists,
    /// The tenant still has channels or funds waiting on chain after a close.
    TenantHasFunds,
    /// Too many calls of this tenant in a short time; retry later.
    RateLimited,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 33] = [
        ErrorCode::InvalidInput,
        ErrorCode::UnknownPeer,
        ErrorCode::UnknownChannel,
        ErrorCode::UnknownPayment,
        ErrorCode::InsufficientFunds,
        ErrorCode::DuplicatePayment,
        ErrorCode::ChannelError,
        ErrorCode::PaymentError,
        ErrorCode::WalletError,
        ErrorCode::ConnectionFailed,
        ErrorCode::ChainUnavailable,
        ErrorCode::SignerUnavailable,
        ErrorCode::SignerOffline,
        ErrorCode::SignerPolicyRefused,
        ErrorCode::SignerRevoked,
        ErrorCode::NotRunning,
        ErrorCode::Timeout,
        ErrorCode::Internal,
        ErrorCode::Unauthenticated,
        ErrorCode::TokenMissing,
        ErrorCode::TokenInvalid,
        ErrorCode::TokenExpired,
        ErrorCode::TokenRevoked,
        ErrorCode::TokenWrongTenant,
        ErrorCode::MethodNotAllowed,
        ErrorCode::BudgetExceeded,
        ErrorCode::TokensDisabled,
        ErrorCode::UnknownToken,
        ErrorCode::UnknownTenant,
        ErrorCode::TenantSuspended,
        ErrorCode::TenantExists,
        ErrorCode::TenantHasFunds,
        ErrorCode::RateLimited,
    ];

    /// The code as it appears in the metadata, e.g. `INVALID_INPUT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::UnknownPeer => "UNKNOWN_PEER",
            ErrorCode::UnknownChannel => "UNKNOWN_CHANNEL",
            ErrorCode::UnknownPayment => "UNKNOWN_PAYMENT",
            ErrorCode::InsufficientFunds => "INSUFFICIENT_FUNDS",
            ErrorCode::DuplicatePayment => "DUPLICATE_PAYMENT",
            ErrorCode::ChannelError => "CHANNEL_ERROR",
            ErrorCode::PaymentError => "PAYMENT_ERROR",
            ErrorCode::WalletError => "WALLET_ERROR",
            ErrorCode::ConnectionFailed => "CONNECTION_FAILED",
            ErrorCode::ChainUnavailable => "CHAIN_UNAVAILABLE",
            ErrorCode::SignerUnavailable => "SIGNER_UNAVAILABLE",
            ErrorCode::SignerOffline => "SIGNER_OFFLINE",
            ErrorCode::SignerPolicyRefused => "SIGNER_POLICY_REFUSED",
            ErrorCode::SignerRevoked => "SIGNER_REVOKED",
            ErrorCode::NotRunning => "NOT_RUNNING",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::TokenMissing => "TOKEN_MISSING",
            ErrorCode::TokenInvalid => "TOKEN_INVALID",
            ErrorCode::TokenExpired => "TOKEN_EXPIRED",
            ErrorCode::TokenRevoked => "TOKEN_REVOKED",
            ErrorCode::TokenWrongTenant => "TOKEN_WRONG_TENANT",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::BudgetExceeded => "BUDGET_EXCEEDED",
            ErrorCode::TokensDisabled => "TOKENS_DISABLED",
            ErrorCode::UnknownToken => "UNKNOWN_TOKEN",
            ErrorCode::UnknownTenant => "UNKNOWN_TENANT",
            ErrorCode::TenantSuspended => "TENANT_SUSPENDED",
            ErrorCode::TenantExists => "TENANT_EXISTS",
            ErrorCode::TenantHasFunds => "TENANT_HAS_FUNDS",
            ErrorCode::RateLimited => "RATE_LIMITED",
        }
    }

    /// The gRPC status code that goes with this code.
    pub const fn grpc_code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            ErrorCode::InvalidInput => Code::InvalidArgument,
            ErrorCode::UnknownPeer
            | ErrorCode::UnknownChannel
            | ErrorCode::UnknownPayment
            | ErrorCode::UnknownToken
            | ErrorCode::UnknownTenant => Code::NotFound,
            ErrorCode::InsufficientFunds
            | ErrorCode::TokensDisabled
            | ErrorCode::ChannelError
            | ErrorCode::PaymentError
            | ErrorCode::WalletError
            | ErrorCode::TenantHasFunds => Code::FailedPrecondition,
            ErrorCode::DuplicatePayment | ErrorCode::TenantExists => Code::AlreadyExists,
            ErrorCode::ConnectionFailed
            | ErrorCode::ChainUnavailable
            | ErrorCode::SignerUnavailable
            | ErrorCode::SignerOffline
            | ErrorCode::NotRunning => Code::Unavailable,
            ErrorCode::SignerPolicyRefused | ErrorCode::SignerRevoked => Code::PermissionDenied,
            ErrorCode::Timeout => Code::DeadlineExceeded,
            ErrorCode::Internal => Code::Internal,
            ErrorCode::Unauthenticated
            | ErrorCode::TokenMissing
            | ErrorCode::TokenInvalid
            | ErrorCode::TokenExpired
            | ErrorCode::TokenRevoked
            | ErrorCode::TokenWrongTenant => Code::Unauthenticated,
            ErrorCode::MethodNotAllowed | ErrorCode::TenantSuspended => Code::PermissionDenied,
            ErrorCode::BudgetExceeded | ErrorCode::RateLimited => Code::ResourceExhausted,
        }
    }

    /// The code a failed call carries, if it carries one.
    pub fn of_status(status: &tonic::Status) -> Option<ErrorCode> {
        status
            .metadata()
            .get(ERROR_CODE_METADATA)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    /// A status with this code's gRPC code, `message`, and the code in its metadata.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        let mut status = tonic::Status::new(self.grpc_code(), message);
        status.metadata_mut().insert(
            ERROR_CODE_METADATA,
            tonic::metadata::MetadataValue::from_static(self.as_str()),
        );
        status
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of the codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownErrorCode(pub String);

impl fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown error code {:?}", self.0)
    }
}

impl std::error::Error for UnknownErrorCode {}

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownErrorCode(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_text_and_status() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            let status = code.status("boom");
            assert_eq!(status.code(), code.grpc_code());
            assert_eq!(ErrorCode::of_status(&status), Some(code));
        }
        assert!("NOPE".parse::<ErrorCode>().is_err());
        assert_eq!(ErrorCode::of_status(&tonic::Status::internal("x")), None);
    }
}
