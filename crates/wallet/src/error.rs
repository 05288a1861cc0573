//! What can go wrong running pairing sessions.

/// An error of the wallet link.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The sessions file could not be read or written.
    #[error("the pairing sessions file")]
    Store(#[source] micronode_files::FileError),
    /// The sessions file is not what this version writes.
    #[error("the pairing sessions file is damaged")]
    Corrupt(#[source] serde_json::Error),
    /// A request to register a session is not valid.
    #[error("{0}")]
    Invalid(String),
    /// A blocking task failed.
    #[error("a background task failed: {0}")]
    Task(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, WalletError>;
