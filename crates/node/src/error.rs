//! The node's typed errors. Each variant says what failed; causes are kept as text where they
//! come from LDK's string-only errors.

use lightning::util::errors::APIError;

/// An error from a node operation.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The caller's input is malformed (bad invoice, address, amount or id).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The peer is unknown or not connected.
    #[error("unknown peer: {0}")]
    UnknownPeer(String),
    /// The channel does not exist.
    #[error("unknown channel: {0}")]
    UnknownChannel(String),
    /// The payment does not exist.
    #[error("unknown payment: {0}")]
    UnknownPayment(String),
    /// Not enough funds on chain or in channels.
    #[error("insufficient funds: {0}")]
    InsufficientFunds(String),
    /// Connecting to a peer failed.
    #[error("connection failed: {0}")]
    Connection(String),
    /// LDK refused a channel operation.
    #[error("channel error: {0}")]
    Channel(String),
    /// LDK refused or failed a payment.
    #[error("payment error: {0}")]
    Payment(String),
    /// The payment was already sent or is in flight.
    #[error("duplicate payment: {0}")]
    DuplicatePayment(String),
    /// The signer refused or could not sign.
    #[error("signer error: {0}")]
    Signer(String),
    /// The remote signer is not connected; nothing was signed. Retry when it is back.
    #[error("signer offline: the tenant's signer is not connected")]
    SignerOffline,
    /// The remote signer's policy refused: signing would be unsafe for the key owner.
    #[error("refused by the signer's policy ({rule}): {message}")]
    SignerRefused {
        /// The rule that fired, e.g. `policy-commitment-payment-velocity`.
        rule: String,
        /// Why.
        message: String,
    },
    /// The tenant revoked this node's access to the signer.
    #[error("the tenant revoked this node's access to the signer")]
    SignerRevoked,
    /// The on-chain wallet failed.
    #[error("wallet error: {0}")]
    Wallet(String),
    /// bitcoind or the chain feed failed.
    #[error("chain source error: {0}")]
    Chain(String),
    /// bitcoind did not answer when the node broadcast a transaction it had signed: the
    /// transaction is recorded in the wallet and kept, and is broadcast as soon as bitcoind
    /// answers. Sending it again would pay twice.
    #[error(
        "bitcoind did not take transaction {txid}; it is signed and kept, and will be broadcast \
         when bitcoind answers (do not send it again)"
    )]
    BroadcastDeferred {
        /// The kept transaction.
        txid: String,
        /// Why bitcoind did not take it.
        #[source]
        source: micronode_chain::RpcError,
    },
    /// Reading or writing the node's store failed.
    #[error("storage error: {0}")]
    Storage(#[from] std::io::Error),
    /// A private file (keys seed, key cache) could not be read or written.
    #[error(transparent)]
    File(#[from] micronode_files::FileError),
    /// The configuration is invalid or refused.
    #[error("configuration error: {0}")]
    Config(String),
    /// The node is shutting down or not running.
    #[error("node is not running")]
    NotRunning,
    /// A wait timed out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl NodeError {
    /// Maps LDK's API error for a channel operation.
    pub(crate) fn from_channel_api(e: APIError) -> Self {
        match e {
            APIError::APIMisuseError { err } => NodeError::InvalidInput(err),
            APIError::FeeRateTooHigh { err, .. } => NodeError::Channel(err),
            APIError::InvalidRoute { err } => NodeError::Payment(err),
            APIError::ChannelUnavailable { err } => NodeError::Channel(err),
            APIError::MonitorUpdateInProgress => {
                NodeError::Channel("a channel monitor update is in progress".into())
            }
            APIError::IncompatibleShutdownScript { script } => {
                NodeError::Channel(format!("incompatible shutdown script {script}"))
            }
        }
    }
}

impl From<lightning::io::Error> for NodeError {
    fn from(e: lightning::io::Error) -> Self {
        NodeError::Storage(std::io::Error::from(e))
    }
}

impl From<micronode_chain::FeedError> for NodeError {
    fn from(e: micronode_chain::FeedError) -> Self {
        NodeError::Chain(e.to_string())
    }
}

impl From<micronode_chain::RpcError> for NodeError {
    fn from(e: micronode_chain::RpcError) -> Self {
        NodeError::Chain(e.to_string())
    }
}
