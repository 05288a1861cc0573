//! Serving the API on a TCP address: bind, authenticate every call, limit request sizes, and
//! shut down gracefully, but in bounded time.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use micronode_node::edge::IpAllowList;
use micronode_node::{KeysBackend, Node};
use micronode_proto::v1::lightning_server::LightningServer;
use micronode_proto::v1::tokens_server::TokensServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::Router;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tonic::transport::Server;

use crate::auth::{AuthGuard, Authenticator};
use crate::error::ApiError;
use crate::handlers::{stopped, ShutdownSignal};
use crate::pairing::{PairingBackend, PairingContext};
use crate::service::LightningService;
use crate::tokens_service::TokensService;

/// The largest request message the server decodes (1 MiB); larger ones are refused with
/// `OUT_OF_RANGE` before decoding. No request of this API comes near it.
pub const MAX_DECODING_MESSAGE_SIZE: usize = 1024 * 1024;
/// Requests in flight at once on one connection (HTTP/2 streams).
pub const MAX_CONCURRENT_STREAMS: u32 = 128;
/// The largest block of request headers accepted.
pub const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// How long a shutdown lets connections finish their calls before cutting them.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The task that serves until shutdown; its result is the server's.
pub type ServerTask = JoinHandle<Result<(), ApiError>>;

/// Settings of [`serve_with`].
#[derive(Clone)]
pub struct ServeOptions {
    /// After the shutdown signal, how long connections may finish their calls before they are
    /// cut. Without a bound, one client that connects and says nothing (the server waits for
    /// its HTTP/2 handshake) would hold the shutdown forever.
    pub shutdown_grace: Duration,
    /// Who may connect: a connection from elsewhere is closed at once (default: anyone).
    pub allow: IpAllowList,
    /// What runs the browser-wallet pairing sessions; without it the pairing RPCs say the node
    /// has no relay.
    pub pairing: Option<Arc<dyn PairingBackend>>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("shutdown_grace", &self.shutdown_grace)
            .field("allow", &self.allow)
            .field("pairing", &self.pairing.is_some())
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            allow: IpAllowList::any(),
            pairing: None,
        }
    }
}

/// Serves the node's API on `addr` until `shutdown` resolves, with [`ServeOptions::default`].
///
/// Binds first, so `addr` may have port 0: the bound address is returned with the serving task.
/// Serves the `Lightning` and `Tokens` services; every call of either must pass `auth`, which
/// grants it per method. If `auth` is a token authority, budget reservations a previous run left
/// open are settled in the background. On shutdown the server stops accepting, ends event streams and
/// payment waits, lets in-flight calls finish for up to [`DEFAULT_SHUTDOWN_GRACE`], cuts what
/// is left, and the task returns.
pub async fn serve<K: KeysBackend>(
    node: Arc<Node<K>>,
    addr: SocketAddr,
    auth: Arc<dyn Authenticator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, ServerTask), ApiError> {
    serve_with(node, addr, auth, shutdown, ServeOptions::default()).await
}

/// [`serve`] with explicit [`ServeOptions`].
pub async fn serve_with<K: KeysBackend>(
    node: Arc<Node<K>>,
    addr: SocketAddr,
    auth: Arc<dyn Authenticator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> Result<(SocketAddr, ServerTask), ApiError> {
    let pairing = options.pairing.clone();
    serve_router(addr, shutdown, options, move |mut server, stop_rx| {
        let (lightning, tokens) = guarded_services(node, auth, stop_rx, pairing);
        server.add_service(lightning).add_service(tokens)
    })
    .await
}

/// A guarded service with its type erased, as an in-process client calls it.
pub type InProcessService = tower::util::BoxCloneSyncService<
    tonic::codegen::http::Request<tonic::body::Body>,
    tonic::codegen::http::Response<tonic::body::Body>,
    std::convert::Infallible,
>;

/// A `Lightning` client that calls `node`'s API in this process, through the same checks as a
/// network call (every call must pass `auth` with the credential in its metadata), without a
/// socket. The browser wallet's tunnel uses it, so a request over the tunnel can do exactly what
/// the same token could do over gRPC. Its long calls end when `stop` becomes `true`.
pub fn in_process_client<K: KeysBackend>(
    node: Arc<Node<K>>,
    auth: Arc<dyn Authenticator>,
    stop: ShutdownSignal,
) -> micronode_proto::v1::lightning_client::LightningClient<InProcessService> {
    let service =
        LightningServer::new(LightningService::with_shutdown(node, stop).requiring_grants())
            .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE);
    micronode_proto::v1::lightning_client::LightningClient::new(InProcessService::new(
        AuthGuard::new(service, auth),
    ))
}

/// A guarded `Lightning` service over a node.
pub(crate) type GuardedLightning<K> = AuthGuard<LightningServer<LightningService<K>>>;
/// A guarded `Tokens` service.
pub(crate) type GuardedTokens = AuthGuard<TokensServer<TokensService>>;

/// The `Lightning` and `Tokens` services of `node`, every call of which must pass `auth`, their
/// long calls ending once `stop` is `true`. If `auth` is a token authority, budget
/// reservations a previous run left open are settled in the background.
pub(crate) fn guarded_services<K: KeysBackend>(
    node: Arc<Node<K>>,
    auth: Arc<dyn Authenticator>,
    stop: ShutdownSignal,
    pairing: Option<Arc<dyn PairingBackend>>,
) -> (GuardedLightning<K>, GuardedTokens) {
    let tokens = auth.token_authority();
    if let Some(tokens) = tokens.clone() {
        tokio::spawn(crate::budget::reconcile(node.clone(), tokens, stop.clone()));
    }
    let mut service = LightningService::with_shutdown(node, stop).requiring_grants();
    if let Some(backend) = pairing {
        service = service.with_pairing(PairingContext {
            backend,
            tokens: tokens.clone(),
        });
    }
    let lightning =
        LightningServer::new(service).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE);
    let tokens = TokensServer::new(TokensService::new(tokens))
        .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE);
    (
        AuthGuard::new(lightning, auth.clone()),
        AuthGuard::new(tokens, auth),
    )
}

/// Binds `addr`, builds the router with `build` (given the server, with this module's limits,
/// and the shutdown signal its long calls watch) and serves it until `shutdown` resolves, then
/// lets connections finish for the grace period and cuts the rest.
pub(crate) async fn serve_router(
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
    build: impl FnOnce(Server, ShutdownSignal) -> Router,
) -> Result<(SocketAddr, ServerTask), ApiError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ApiError::Bind { addr, source })?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let grace = options.shutdown_grace;
    let conn_stop = stop_rx.clone();
    let allow = options.allow.clone();
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .filter(move |conn| {
            let admitted = match conn.as_ref().map(TcpStream::peer_addr) {
                Ok(Ok(from)) if !allow.allows(from.ip()) => {
                    tracing::debug!(%from, "API connection refused: not in the allow-list");
                    false
                }
                _ => true,
            };
            futures::future::ready(admitted)
        })
        .map(move |conn| conn.map(|stream| Bounded::new(stream, conn_stop.clone(), grace)));
    let server = Server::builder()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .http2_max_header_list_size(MAX_HEADER_LIST_SIZE);
    let router = build(server, stop_rx);
    let signal = async move {
        shutdown.await;
        tracing::info!(addr = %bound, "gRPC API shutting down");
        // Ends event streams and payment waits, which would otherwise hold the shutdown, and
        // starts the grace period of every connection.
        let _ = stop_tx.send(true);
    };
    let task = tokio::spawn(async move {
        let result = router
            .serve_with_incoming_shutdown(incoming, signal)
            .await
            .map_err(ApiError::from);
        tracing::info!(addr = %bound, "gRPC API stopped");
        result
    });
    tracing::info!(addr = %bound, "gRPC API listening");
    Ok((bound, task))
}

/// A connection that fails every read and write once the server has been shutting down for
/// the grace period, so its task ends even if the client never finishes (or never starts) its
/// calls.
struct Bounded {
    stream: TcpStream,
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Bounded {
    fn new(stream: TcpStream, mut stop: ShutdownSignal, grace: Duration) -> Self {
        Self {
            stream,
            cut: Box::pin(async move {
                stopped(&mut stop).await;
                tokio::time::sleep(grace).await;
            }),
        }
    }

    /// `Err` once the grace period is over; otherwise registers for its end.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.cut.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the API server shut down",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl Connected for Bounded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Bounded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Bounded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
