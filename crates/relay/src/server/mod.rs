//! The relay server: [`Relay`] (state and an axum [`Router`]), [`serve`] and [`RelayHandle`].

mod http;
mod session;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::config::RelayConfig;
use crate::error::RelayError;
use crate::mailbox::Registry;
use crate::{BOX_PATH, RECEIVE_PATH, SEND_PATH};

/// How long a stopping relay waits for its websockets to send their last frames.
const SESSION_DRAIN: Duration = Duration::from_secs(5);

/// State shared by the routes and the websocket sessions.
pub(crate) struct Shared {
    pub(crate) config: RelayConfig,
    pub(crate) registry: Registry,
    /// `true` once the relay shuts down.
    pub(crate) shutdown: watch::Sender<bool>,
    sessions: AtomicUsize,
    sessions_done: Notify,
}

impl Shared {
    /// Whether the relay is shutting down.
    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Counts a websocket session until the guard drops.
    pub(crate) fn session_guard(self: &Arc<Self>) -> SessionGuard {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        SessionGuard(self.clone())
    }
}

/// Counts one live websocket session.
pub(crate) struct SessionGuard(Arc<Shared>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.0.sessions.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.sessions_done.notify_waiters();
        }
    }
}

/// A HashMail relay: its streams and limits. Cloning gives another handle on the same relay.
///
/// Mount [`Relay::router`] in any axum server whose connections allow upgrades (as
/// `axum::serve` does), or run it with [`Relay::serve`], [`serve`] or [`RelayHandle`].
#[derive(Clone)]
pub struct Relay {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("streams", &self.stream_count())
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Relay {
    /// A relay with no streams. Must be called within a tokio runtime: it starts the task that
    /// deletes expired and idle streams (it ends when the relay is dropped or shut down).
    pub fn new(config: RelayConfig) -> Result<Relay, RelayError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(RelayError::NoRuntime)?;
        let period = config.effective_sweep_interval();
        let (shutdown, stop) = watch::channel(false);
        let shared = Arc::new(Shared {
            registry: Registry::new(config.clone()),
            config,
            shutdown,
            sessions: AtomicUsize::new(0),
            sessions_done: Notify::new(),
        });
        runtime.spawn(sweeper(Arc::downgrade(&shared), period, stop));
        Ok(Relay { shared })
    }

    /// The routes of the HashMail API (see the crate documentation).
    pub fn router(&self) -> Router {
        Router::new()
            .route(BOX_PATH, post(http::create).delete(http::delete))
            .route(SEND_PATH, get(ws::send).post(http::streaming_over_http))
            .route(
                RECEIVE_PATH,
                get(ws::receive).post(http::streaming_over_http),
            )
            .with_state(self.shared.clone())
    }

    /// The relay's limits.
    pub fn config(&self) -> &RelayConfig {
        &self.shared.config
    }

    /// How many streams exist.
    pub fn stream_count(&self) -> usize {
        self.shared.registry.len()
    }

    /// How many message bytes wait for readers, across all streams.
    pub fn queued_bytes(&self) -> usize {
        self.shared.registry.queued_bytes()
    }

    /// Shuts the relay down: every stream is deleted, every websocket is sent `UNAVAILABLE`
    /// and closed, and new requests are refused. Cannot be undone.
    pub fn shutdown(&self) {
        self.shared.registry.shutdown();
        self.shared.shutdown.send_replace(true);
    }

    /// Resolves once no websocket session is left.
    pub async fn sessions_closed(&self) {
        loop {
            let done = self.shared.sessions_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.shared.sessions.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }

    /// Serves the relay on `listener` (with `TCP_NODELAY` on each connection) until
    /// `shutdown` resolves, then shuts it down and waits (up to 5 s) for its websockets to
    /// close.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RelayError> {
        self.serve_with(listener, Router::new(), shutdown).await
    }

    /// [`Relay::serve`], with `extra` routes beside the relay's (the browser wallet's page).
    pub async fn serve_with(
        self,
        listener: TcpListener,
        extra: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RelayError> {
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "hashmail: cannot set TCP_NODELAY");
            }
        });
        let relay = self.clone();
        let served = axum::serve(listener, self.router().merge(extra))
            .with_graceful_shutdown(async move {
                shutdown.await;
                relay.shutdown();
            })
            .await;
        self.shutdown();
        let _ = tokio::time::timeout(SESSION_DRAIN, self.sessions_closed()).await;
        served.map_err(RelayError::Serve)
    }
}

/// Serves a new relay with `config` on `listener` until `shutdown` resolves (see
/// [`Relay::serve`]).
pub async fn serve(
    listener: TcpListener,
    config: RelayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    Relay::new(config)?.serve(listener, shutdown).await
}

async fn sweeper(shared: Weak<Shared>, period: Duration, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            // Also resolves (with an error) when the relay is dropped.
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.registry.sweep(Instant::now());
    }
}

/// A relay running in a task of its own; dropping the handle stops it.
#[derive(Debug)]
pub struct RelayHandle {
    relay: Relay,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RelayError>>>,
}

impl RelayHandle {
    /// Starts a relay with `config` on `listener` (bind port 0 for a free port). Must be
    /// called within a tokio runtime.
    pub fn start(listener: TcpListener, config: RelayConfig) -> Result<RelayHandle, RelayError> {
        RelayHandle::start_with(listener, config, Router::new())
    }

    /// [`RelayHandle::start`], with `extra` routes beside the relay's.
    pub fn start_with(
        listener: TcpListener,
        config: RelayConfig,
        extra: Router,
    ) -> Result<RelayHandle, RelayError> {
        let addr = listener.local_addr().map_err(|source| RelayError::Io {
            context: "reading the relay's listening address",
            source,
        })?;
        let relay = Relay::new(config)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.clone().serve_with(listener, extra, async move {
            let _ = stopped.await;
        }));
        Ok(RelayHandle {
            relay,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's base URL, `http://<address>`, for the client functions.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The relay.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Stops the relay and waits until it has stopped listening and its websockets are
    /// closed (up to 5 s for those).
    pub async fn shutdown(mut self) -> Result<(), RelayError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| RelayError::Serve(std::io::Error::other(e)))?,
            None => Ok(()),
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
