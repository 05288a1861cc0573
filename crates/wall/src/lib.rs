//! An L402 paywall in front of a tenant's HTTP service.
//!
//! The wall is a reverse proxy. Requests under a priced route ([`WallConfig`]) without a token
//! get `402 Payment Required` with an invoice from the tenant's node and a macaroon bound to
//! it (`WWW-Authenticate: LSAT ...` and `WWW-Authenticate: L402 ...`); once the client has
//! paid, it sends `Authorization: L402 <macaroon>:<preimage>` and its requests go through to
//! the upstream until the token expires. Tokens are checked without a database: their root key
//! is derived from the wall's secret and the macaroon's identifier ([`l402`]).
//! See `docs/wall.md`.

#![deny(missing_docs)]

pub mod config;
pub mod invoices;
pub mod l402;
pub mod macaroon;
pub mod proxy;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

pub use config::{RouteConfig, WallConfig, WallSecret};
pub use invoices::{Invoice, InvoiceError, InvoiceSource, NodeInvoices};
pub use proxy::Wall;

/// What went wrong setting up or running the wall.
#[derive(Debug, thiserror::Error)]
pub enum WallError {
    /// The configuration file cannot be read.
    #[error("cannot read the wall configuration {}", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not valid TOML for [`WallConfig`].
    #[error("invalid wall configuration")]
    ConfigSyntax(#[source] toml::de::Error),
    /// The configuration's values are not usable.
    #[error("invalid wall configuration: {0}")]
    InvalidConfig(String),
    /// The secret file cannot be read or written.
    #[error("the wall's secret file")]
    SecretFile(#[source] micronode_files::FileError),
    /// The secret file does not hold 64 hex digits.
    #[error("{} does not hold a wall secret (64 hex digits)", .0.display())]
    SecretFormat(PathBuf),
    /// Serving failed.
    #[error("the wall's HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// Serves the wall on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
pub async fn serve<F>(
    config: WallConfig,
    secret: WallSecret,
    invoices: Arc<dyn InvoiceSource>,
    listener: tokio::net::TcpListener,
    shutdown: F,
) -> Result<(), WallError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let wall = Arc::new(Wall::new(config, secret, invoices)?);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, service = %wall.config().service, "L402 wall serving");
    }
    axum::serve(
        listener,
        wall.router()
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(WallError::Serve)
}
