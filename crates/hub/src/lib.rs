//! LndHub accounts for a tenant's users, on top of the tenant node's gRPC API.
//!
//! The hub keeps a double-entry ledger in SQLite (`<data dir>/hub.sqlite`, [`ledger`]),
//! serves the LndHub HTTP API that BlueWallet, Zeus and Alby speak ([`http`]) and Lightning
//! Addresses ([`http::lnurl`]), and pays and receives through the tenant's node with
//! [`micronode_client::NodeClient`] (with an app credential, every payment is checked by the
//! tenant's signer against the hub app's budget). See `docs/hub.md`.

pub mod accounts;
pub mod config;
pub mod decode;
pub mod error;
pub mod http;
pub mod invoices;
pub mod ledger;
pub mod lnurl_client;
pub mod payments;
pub mod resolver;
pub mod service;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use micronode_client::NodeClient;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use accounts::{lndhub_uri, AccountSummary, Credentials, TokenPair};
pub use config::{HubConfig, SignupMode};
pub use error::{HubError, LndHubCode, Refusal};
pub use ledger::LedgerReport;
pub use lnurl_client::{invoice_for_address, LnurlError};
pub use store::Store;

use service::Core;

/// A running hub: its HTTP API and background tasks. Stop it with [`Hub::stop`].
pub struct Hub {
    addr: SocketAddr,
    core: Arc<Core>,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), HubError>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("addr", &self.addr).finish()
    }
}

impl Hub {
    /// Opens the hub's database in `data_dir`, starts resolving pending payments and
    /// following the node's events, and serves the HTTP API on `listener`.
    pub async fn start(
        config: HubConfig,
        data_dir: &Path,
        client: NodeClient,
        listener: TcpListener,
    ) -> Result<Hub, HubError> {
        config.validate()?;
        let dir = data_dir.to_path_buf();
        let store = tokio::task::spawn_blocking(move || Store::open(&dir)).await??;
        let addr = listener.local_addr().map_err(HubError::Serve)?;
        let core = Arc::new(Core {
            store,
            config,
            client,
            resolve_now: Notify::new(),
        });
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(resolver::run_resolver(core.clone(), stopped.clone())),
            tokio::spawn(resolver::run_follower(core.clone(), stopped.clone())),
        ];
        let router = http::router(core.clone());
        let mut server_stop = stopped;
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|s| *s).await;
            })
            .await
            .map_err(HubError::Serve)
        });
        tracing::info!(%addr, "hub serving");
        Ok(Hub {
            addr,
            core,
            stop,
            server,
            tasks,
        })
    }

    /// Where the HTTP API listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The operator's functions on this hub's database.
    pub fn admin(&self) -> HubAdmin {
        HubAdmin {
            store: self.core.store.clone(),
        }
    }

    /// Stops serving and the background tasks, and waits for them.
    pub async fn stop(self) -> Result<(), HubError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.server.await?
    }
}

/// Runs the hub (see [`Hub::start`]) until `shutdown` completes, then stops it.
pub async fn serve(
    config: HubConfig,
    data_dir: &Path,
    client: NodeClient,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), HubError> {
    let hub = Hub::start(config, data_dir, client, listener).await?;
    shutdown.await;
    hub.stop().await
}

/// The operator's functions on a hub's database (the CLI's `micronode hub ...` commands); they
/// work whether the hub runs or not.
#[derive(Debug, Clone)]
pub struct HubAdmin {
    store: Store,
}

impl HubAdmin {
    /// Opens the hub database in `data_dir` (creating it if needed).
    pub fn open(data_dir: &Path) -> Result<HubAdmin, HubError> {
        Ok(HubAdmin {
            store: Store::open(data_dir)?,
        })
    }

    /// Makes a single-use invite code for `signup = "invite"` (shown once).
    pub async fn create_invite(&self) -> Result<String, HubError> {
        self.store
            .run(|conn, _| accounts::create_invite(conn))
            .await
    }

    /// Creates an account whatever the sign-up mode (the operator's way to add users to a
    /// closed hub), holding the Lightning Address `address` when given (`reserved`: the
    /// tenant's own name, which no account may take). Its credentials, shown once.
    pub async fn create_account(
        &self,
        address: Option<String>,
        reserved: Option<String>,
    ) -> Result<Credentials, HubError> {
        self.store
            .transaction(move |tx, _| {
                let credentials = accounts::create(tx, None)?;
                if let Some(name) = &address {
                    let id = accounts::id_of(tx, &credentials.login)?;
                    accounts::claim_address(tx, id, name, reserved.as_deref())?;
                }
                Ok(credentials)
            })
            .await
    }

    /// Every account with its balance.
    pub async fn list_accounts(&self) -> Result<Vec<AccountSummary>, HubError> {
        self.store.run(|conn, _| accounts::list(conn)).await
    }

    /// Checks the ledger's invariants (see [`LedgerReport::is_ok`]).
    pub async fn check_ledger(&self) -> Result<LedgerReport, HubError> {
        self.store
            .run(|conn, system| ledger::check(conn, system))
            .await
    }

    /// The sum of all ledger entries (msat); 0 when the books balance.
    pub async fn ledger_sum(&self) -> Result<i64, HubError> {
        self.store.run(|conn, _| ledger::ledger_sum(conn)).await
    }
}
