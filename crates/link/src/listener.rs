//! Node side: accept signers that dial in.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{mpsc, Mutex};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::error::{LinkError, Result};
use crate::handshake::{respond, PeerInfo, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::identity::LinkIdentity;
use crate::pairing::PairingStore;
use crate::transport::LinkConnection;

/// Tuning of a [`LinkListener`].
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// How long one incoming connection may take to finish its handshake.
    pub handshake_timeout: Duration,
    /// How many handshakes may be in progress at once; a new connection beyond that drops the
    /// oldest pending one (a flood of idle connections cannot lock the signer out).
    pub max_pending_handshakes: usize,
    /// Which remote addresses may connect; others are closed before any handshake.
    pub admit: Admission,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_pending_handshakes: 32,
            admit: Admission::any(),
        }
    }
}

/// A rule on the remote address of a new connection (an allow-list).
#[derive(Clone)]
pub struct Admission(Option<Arc<dyn Fn(IpAddr) -> bool + Send + Sync>>);

impl Admission {
    /// Every address may connect.
    pub fn any() -> Self {
        Self(None)
    }

    /// Addresses for which `rule` is true may connect.
    pub fn only(rule: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(rule)))
    }

    /// Whether `ip` may connect.
    pub fn admits(&self, ip: IpAddr) -> bool {
        self.0.as_ref().is_none_or(|rule| rule(ip))
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Admission(rule)"
        } else {
            "Admission(any)"
        })
    }
}

type Outcome = Result<(LinkConnection, PeerInfo)>;

/// Listens for signers. Handshakes run concurrently in a background task, each under a
/// timeout, so a silent or slow client cannot hold up others; [`LinkListener::accept`]
/// hands out their outcomes. Dropping the listener stops it, including handshakes in
/// progress (established connections are unaffected).
#[derive(Debug)]
pub struct LinkListener {
    local_addr: SocketAddr,
    outcomes: Mutex<mpsc::Receiver<Outcome>>,
    task: JoinHandle<()>,
}

impl LinkListener {
    /// Binds `addr` with the default [`ListenerConfig`].
    pub async fn bind(
        addr: impl ToSocketAddrs,
        identity: Arc<LinkIdentity>,
        pairing: Arc<PairingStore>,
    ) -> Result<Self> {
        Self::bind_with_config(addr, identity, pairing, ListenerConfig::default()).await
    }

    /// Binds `addr`: the node's static key is `identity`; which signer is paired and which
    /// pairing code is pending come from `pairing` at each handshake.
    pub async fn bind_with_config(
        addr: impl ToSocketAddrs,
        identity: Arc<LinkIdentity>,
        pairing: Arc<PairingStore>,
        config: ListenerConfig,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let slots = config.max_pending_handshakes.max(1);
        let (tx, rx) = mpsc::channel(slots);
        let task = tokio::spawn(accept_loop(listener, identity, pairing, config, tx));
        tracing::info!(%local_addr, "link listener bound");
        Ok(Self {
            local_addr,
            outcomes: Mutex::new(rx),
            task,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the next incoming connection to finish its handshake.
    ///
    /// `Ok` is an authenticated link (with a newly paired signer, if it was a pairing). An
    /// `Err` concerns one incoming connection only (it has been logged and closed) and the
    /// listener keeps going; call `accept` again. Only [`LinkError::ListenerClosed`] means
    /// it has stopped. Cancel-safe. Rejections are reported on a best-effort basis: when
    /// the caller falls behind, some may be dropped (they are still logged).
    pub async fn accept(&self) -> Result<(LinkConnection, PeerInfo)> {
        let mut outcomes = self.outcomes.lock().await;
        outcomes
            .recv()
            .await
            .unwrap_or(Err(LinkError::ListenerClosed))
    }
}

impl Drop for LinkListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    identity: Arc<LinkIdentity>,
    pairing: Arc<PairingStore>,
    config: ListenerConfig,
    tx: mpsc::Sender<Outcome>,
) {
    let max_pending = config.max_pending_handshakes.max(1);
    // Owning the handshake tasks here means aborting this task aborts them too.
    let mut handshakes = JoinSet::new();
    // Pending handshakes, oldest first. When the set is full, the oldest is dropped to make
    // room: anyone can open TCP connections and never finish a handshake, and a full set that
    // refused new connections would lock the real signer out until the flood stopped. A
    // handshake takes a few round trips, so a flood must outpace them to evict a real one.
    let mut pending: VecDeque<AbortHandle> = VecDeque::new();
    loop {
        let (stream, remote_addr) = match listener.accept().await {
            Ok((_, remote_addr)) if !config.admit.admits(remote_addr.ip()) => {
                tracing::debug!(%remote_addr, "link connection refused: not in the allow-list");
                continue;
            }
            Ok(accepted) => accepted,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "link listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while handshakes.try_join_next().is_some() {}
        pending.retain(|h| !h.is_finished());
        while pending.len() >= max_pending {
            if let Some(oldest) = pending.pop_front() {
                tracing::debug!("too many pending link handshakes; dropping the oldest");
                oldest.abort();
            }
        }
        let identity = identity.clone();
        let pairing = pairing.clone();
        let tx = tx.clone();
        let timeout = config.handshake_timeout;
        let handle = handshakes.spawn(async move {
            let handshake = respond(stream, remote_addr, &identity, &pairing);
            let outcome = match tokio::time::timeout(timeout, handshake).await {
                Ok(Ok(conn)) => {
                    let peer = conn.peer().clone();
                    tracing::info!(
                        %remote_addr,
                        signer = %peer.fingerprint(),
                        kind = ?peer.kind,
                        "link established"
                    );
                    // Handed out from a task of its own, so this handshake's slot frees now
                    // and a slow `accept` caller cannot get it evicted.
                    tokio::spawn(async move {
                        let _ = tx.send(Ok((conn, peer))).await;
                    });
                    return;
                }
                Ok(Err(e)) => e,
                Err(_) => LinkError::HandshakeTimeout,
            };
            match outcome {
                // Scanners, dropped connections: not worth more than debug.
                LinkError::Protocol(_)
                | LinkError::HandshakeRejected
                | LinkError::HandshakeTimeout
                | LinkError::Io(_) => {
                    tracing::debug!(%remote_addr, error = %outcome, "link handshake abandoned")
                }
                _ => tracing::warn!(%remote_addr, error = %outcome, "link handshake rejected"),
            }
            let _ = tx.try_send(Err(outcome));
        });
        pending.push_back(handle);
    }
}
