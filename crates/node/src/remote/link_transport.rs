//! [`LinkSignerTransport`]: the node's end of the signer link.
//!
//! The node listens; the tenant's signer dials in (it may sit behind NAT) over the
//! authenticated, encrypted `micronode-link`. The link runs on its own thread and runtime, so
//! LDK's synchronous signer calls can block on an answer without starving the I/O.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use micronode_link::{
    Admission, LinkConnection, LinkIdentity, LinkListener, ListenerConfig, PairingStore,
};
use tokio::sync::{mpsc, watch};

use super::protocol::{RequestEnvelope, ResponseEnvelope, SignerReply, SignerRequest};
use super::transport::{RemoteError, SignerTransport};
use crate::edge::IpAllowList;
use crate::error::NodeError;

type Pending = Arc<Mutex<HashMap<u64, std_mpsc::SyncSender<ResponseEnvelope>>>>;

/// The node's end of the link to its signer.
pub struct LinkSignerTransport {
    online: Arc<AtomicBool>,
    outbox: Arc<Mutex<Option<mpsc::UnboundedSender<RequestEnvelope>>>>,
    pending: Pending,
    next_id: AtomicU64,
    connections: watch::Receiver<u64>,
    timeout: Duration,
    local_addr: SocketAddr,
    /// Dropped with the transport or by [`SignerTransport::close`]: the link's thread then
    /// stops listening, drops the signer's connection and ends (a host that deletes a tenant,
    /// or lets another host run it, frees its port and thread).
    closed: Mutex<Option<watch::Sender<()>>>,
}

impl LinkSignerTransport {
    /// Binds `addr` and starts accepting the paired signer (or a signer with the pending
    /// pairing code) from the addresses `allow` lets in. `timeout` bounds each signing call.
    pub fn start(
        addr: SocketAddr,
        identity: Arc<LinkIdentity>,
        pairing: Arc<PairingStore>,
        timeout: Duration,
        allow: &IpAllowList,
    ) -> Result<Self, NodeError> {
        let config = ListenerConfig {
            admit: if allow.is_any() {
                Admission::any()
            } else {
                let allow = allow.clone();
                Admission::only(move |ip| allow.allows(ip))
            },
            ..ListenerConfig::default()
        };
        let online = Arc::new(AtomicBool::new(false));
        let outbox = Arc::new(Mutex::new(None));
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let (conn_tx, conn_rx) = watch::channel(0u64);
        let (bound_tx, bound_rx) = std_mpsc::channel();
        let (closed_tx, mut closed_rx) = watch::channel(());
        let (o, b, p) = (online.clone(), outbox.clone(), pending.clone());
        std::thread::Builder::new()
            .name("signer-link".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let bound = LinkListener::bind_with_config(addr, identity, pairing, config);
                    let listener = match bound.await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = bound_tx.send(Ok(listener.local_addr()));
                    tokio::select! {
                        _ = accept_loop(listener, o, b, p, conn_tx) => {}
                        // Only an error ever: nothing is sent, the sender is dropped.
                        _ = closed_rx.changed() => {}
                    }
                });
            })
            .map_err(|e| NodeError::Internal(format!("cannot start the signer link: {e}")))?;
        let local_addr = bound_rx
            .recv()
            .map_err(|_| NodeError::Internal("signer link thread died".into()))?
            .map_err(|e| {
                NodeError::Config(format!("cannot listen for the signer on {addr}: {e}"))
            })?;
        Ok(Self {
            online,
            outbox,
            pending,
            next_id: AtomicU64::new(1),
            connections: conn_rx,
            timeout,
            local_addr,
            closed: Mutex::new(Some(closed_tx)),
        })
    }

    /// Where signers dial in.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until a signer is connected (it has dialled in and finished the handshake).
    pub async fn wait_online(&self) {
        let mut connections = self.connections.clone();
        while !self.is_online() {
            if connections.changed().await.is_err() {
                return;
            }
        }
    }
}

async fn accept_loop(
    listener: LinkListener,
    online: Arc<AtomicBool>,
    outbox: Arc<Mutex<Option<mpsc::UnboundedSender<RequestEnvelope>>>>,
    pending: Pending,
    connections: watch::Sender<u64>,
) {
    let mut current: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(micronode_link::LinkError::ListenerClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "signer connection rejected");
                continue;
            }
        };
        tracing::info!(signer = %peer.fingerprint(), kind = ?peer.kind, "signer connected");
        // One signer at a time: a new authenticated connection replaces the old one.
        if let Some(old) = current.take() {
            old.abort();
        }
        fail_pending(&pending);
        let (tx, rx) = mpsc::unbounded_channel();
        *outbox.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        online.store(true, Ordering::SeqCst);
        connections.send_modify(|n| *n += 1);
        let (o, b, p) = (online.clone(), outbox.clone(), pending.clone());
        current = Some(tokio::spawn(async move {
            serve(conn, rx, p.clone()).await;
            o.store(false, Ordering::SeqCst);
            *b.lock().unwrap_or_else(|p| p.into_inner()) = None;
            fail_pending(&p);
            tracing::warn!("signer disconnected; the node is read-only until it returns");
        }));
    }
}

/// Drops every waiter: their calls fail as "signer offline".
fn fail_pending(pending: &Pending) {
    pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

async fn serve(
    conn: LinkConnection,
    mut requests: mpsc::UnboundedReceiver<RequestEnvelope>,
    pending: Pending,
) {
    let (mut reader, mut writer) = conn.into_split();
    let writing = async {
        while let Some(request) = requests.recv().await {
            let bytes = match serde_json::to_vec(&request) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode a signer request");
                    continue;
                }
            };
            if let Err(e) = writer.send(&bytes).await {
                tracing::warn!(error = %e, "signer link write failed");
                return;
            }
        }
    };
    let reading = async {
        loop {
            let bytes = match reader.recv().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::info!(error = %e, "signer link closed");
                    return;
                }
            };
            let response: ResponseEnvelope = match serde_json::from_slice(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "malformed answer from the signer; dropping the link");
                    return;
                }
            };
            let waiter = pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&response.id);
            if let Some(waiter) = waiter {
                let _ = waiter.try_send(response);
            }
        }
    };
    tokio::select! {
        _ = writing => {}
        _ = reading => {}
    }
}

impl SignerTransport for LinkSignerTransport {
    fn close(&self) {
        self.closed.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn call(&self, request: SignerRequest) -> Result<SignerReply, RemoteError> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = std_mpsc::sync_channel(1);
        {
            let outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
            let Some(outbox) = outbox.as_ref() else {
                return Err(RemoteError::Offline);
            };
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, tx);
            if outbox.send(RequestEnvelope { id, request }).is_err() {
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                return Err(RemoteError::Offline);
            }
        }
        match rx.recv_timeout(self.timeout) {
            Ok(response) => RemoteError::from_response(response.response),
            Err(_) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                Err(RemoteError::Offline)
            }
        }
    }

    fn is_online(&self) -> bool {
        self.online.load(Ordering::SeqCst)
    }

    fn connections(&self) -> watch::Receiver<u64> {
        self.connections.clone()
    }
}
