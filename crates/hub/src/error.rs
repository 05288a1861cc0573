//! The hub's errors: [`HubError`] for the service itself, and the LndHub error codes
//! ([`LndHubCode`]) that the HTTP API answers with.

use std::path::PathBuf;

use micronode_client::ClientError;

/// What went wrong in the hub (storage, configuration, the node, serving).
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The database could not be opened or set up.
    #[error("cannot open the hub database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A database operation failed.
    #[error("hub database error")]
    Db(#[from] rusqlite::Error),
    /// Creating the data directory or securing the database file failed.
    #[error("hub files")]
    Files(#[from] micronode_files::FileError),
    /// A blocking database task panicked or was cancelled.
    #[error("a database task did not finish")]
    Join(#[from] tokio::task::JoinError),
    /// Serving HTTP failed.
    #[error("cannot serve the hub's HTTP API")]
    Serve(#[source] std::io::Error),
    /// The configuration is invalid.
    #[error("invalid hub configuration: {0}")]
    Config(String),
    /// The configuration file cannot be parsed.
    #[error("cannot parse the hub configuration")]
    ConfigParse(#[from] toml::de::Error),
    /// The node answered with an error or could not be reached.
    #[error("the node failed")]
    Node(#[from] ClientError),
    /// A ledger transaction whose entries do not sum to zero was refused (a bug).
    #[error("unbalanced ledger transaction ({0} msat)")]
    Unbalanced(i128),
    /// Something the caller asked for is refused (see [`Refusal`]).
    #[error("{0}")]
    Refused(#[from] Refusal),
}

/// The LndHub error codes (BlueWallet's LndHub `controllers/api.js`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LndHubCode {
    /// 1: bad auth (clients re-authenticate on it).
    BadAuth = 1,
    /// 2: not enough balance.
    NotEnoughBalance = 2,
    /// 4: not a valid invoice.
    InvalidInvoice = 4,
    /// 6: general server error.
    ServerError = 6,
    /// 7: the node failed.
    NodeFailure = 7,
    /// 8: bad arguments.
    BadArguments = 8,
    /// 9: the payment is in transit (its outcome is not known yet).
    PaymentInTransit = 9,
    /// 10: the payment failed.
    PaymentFailed = 10,
}

/// A request the hub refuses, with the LndHub code and a message safe to show the user
/// (never a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// The LndHub code.
    pub code: LndHubCode,
    /// Why, in words.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: LndHubCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// Code 1, "bad auth".
    pub fn bad_auth() -> Refusal {
        Refusal::new(LndHubCode::BadAuth, "bad auth")
    }

    /// Code 8 with `message`.
    pub fn bad_arguments(message: impl Into<String>) -> Refusal {
        Refusal::new(LndHubCode::BadArguments, message)
    }

    /// Code 4 with `message`.
    pub fn invalid_invoice(message: impl Into<String>) -> Refusal {
        Refusal::new(LndHubCode::InvalidInvoice, message)
    }

    /// Code 2.
    pub fn not_enough_balance() -> Refusal {
        Refusal::new(LndHubCode::NotEnoughBalance, "not enough balance")
    }
}

impl HubError {
    /// The refusal to show the user: the refusal itself, or a generic server or node error
    /// (details are logged, not shown).
    pub fn to_refusal(&self) -> Refusal {
        match self {
            HubError::Refused(r) => r.clone(),
            HubError::Node(_) => Refusal::new(LndHubCode::NodeFailure, "the node failed"),
            _ => Refusal::new(LndHubCode::ServerError, "server error"),
        }
    }
}
