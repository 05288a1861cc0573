//! The host's errors, and the admin API codes they map to.

use micronode_proto::ErrorCode;

/// What went wrong on a host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The tenant name is not allowed.
    #[error("invalid tenant name {0:?}: use 1 to 64 letters, digits, '-', '_' or '.'")]
    InvalidName(String),
    /// A tenant of this name exists.
    #[error("a tenant named {0:?} exists already")]
    NameTaken(String),
    /// No tenant has this id or name.
    #[error("no tenant {0:?} on this host")]
    UnknownTenant(String),
    /// The tenant still has channels or funds waiting on chain.
    #[error(
        "tenant {tenant} still has {channels} channel(s) and {pending_sat} sat waiting on chain \
         after closes; close its channels first (delete with close_channels)"
    )]
    HasFunds {
        /// The tenant.
        tenant: String,
        /// Its channels.
        channels: usize,
        /// Funds waiting on chain after closes.
        pending_sat: u64,
    },
    /// The operation needs the tenant's node running (its signer connected).
    #[error("tenant {0}'s node is not running (its signer has not connected, or it failed)")]
    NotRunning(String),
    /// The operation does not apply in the tenant's state.
    #[error("{0}")]
    WrongState(String),
    /// A tenant bundle is malformed or could not be written.
    #[error("tenant bundle: {0}")]
    Bundle(String),
    /// The registry's database failed.
    #[error("host registry: {0}")]
    Registry(String),
    /// The fleet's registry (on PostgreSQL) failed.
    #[error("fleet registry: {0}")]
    FleetRegistry(#[from] micronode_store::PgError),
    /// A fleet lease could not be taken, kept or released.
    #[error("fleet lease: {0}")]
    Lease(#[from] micronode_store::LeaseError),
    /// A private file or directory could not be written.
    #[error(transparent)]
    Files(#[from] micronode_files::FileError),
    /// A tenant's or the gateway's node failed.
    #[error(transparent)]
    Node(#[from] micronode_node::NodeError),
    /// The API could not be served.
    #[error(transparent)]
    Api(#[from] micronode_api::ApiError),
    /// Nostr Wallet Connect could not be started.
    #[error(transparent)]
    Nwc(#[from] micronode_nwc::NwcError),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task of the host was cancelled or panicked.
    #[error("a host task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl HostError {
    /// A database error while doing `what`.
    pub(crate) fn sqlite(what: &str, e: rusqlite::Error) -> HostError {
        HostError::Registry(format!("{what}: {e}"))
    }

    /// An I/O error while doing `what`.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HostError {
        let what = what.into();
        move |source| HostError::Io { what, source }
    }

    /// The admin API's code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            HostError::InvalidName(_) => ErrorCode::InvalidInput,
            HostError::NameTaken(_) => ErrorCode::TenantExists,
            HostError::UnknownTenant(_) => ErrorCode::UnknownTenant,
            HostError::HasFunds { .. } => ErrorCode::TenantHasFunds,
            HostError::NotRunning(_) => ErrorCode::NotRunning,
            HostError::WrongState(_) | HostError::Bundle(_) => ErrorCode::InvalidInput,
            HostError::Node(e) => micronode_api::error::node_error_code(e),
            HostError::Registry(_)
            | HostError::FleetRegistry(_)
            | HostError::Lease(_)
            | HostError::Files(_)
            | HostError::Api(_)
            | HostError::Nwc(_)
            | HostError::Io { .. }
            | HostError::Task(_) => ErrorCode::Internal,
        }
    }
}

/// The admin API's status for a host error; internal causes stay in the host's log.
impl From<HostError> for tonic::Status {
    fn from(e: HostError) -> tonic::Status {
        let code = e.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = %e, "admin call failed");
            code.status("internal error; see the host's log")
        } else {
            code.status(e.to_string())
        }
    }
}
