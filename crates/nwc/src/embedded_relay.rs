//! An in-process Nostr relay for `micronode up`, local development and tests. It keeps
//! ephemeral NWC events in memory only and forgets everything on restart; production
//! deployments should use a real relay that does not drop idle connections.
//!
//! The relay logic is nostr-relay-builder's. We accept its connections ourselves so that each
//! socket has `TCP_NODELAY` set (see [`crate::transport`] for why): the relay writes an `OK`
//! to a publisher and, soon after, the response event on the same socket, and with Nagle's
//! algorithm on the second write waited for the client's delayed acknowledgement. hyper does
//! the HTTP upgrade and hands the upgraded socket to the relay.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::error::NwcError;

/// A running in-process relay; stopped on drop.
pub struct EmbeddedRelay {
    relay: LocalRelay,
    addr: SocketAddr,
    url: String,
    stop: Arc<Notify>,
}

impl EmbeddedRelay {
    /// Starts a relay on `addr` (port 0 picks a free port).
    pub async fn start(addr: SocketAddr) -> Result<Self, NwcError> {
        let builder = RelayBuilder::default().rate_limit(RateLimit {
            max_reqs: 1_000,
            notes_per_minute: 1_000_000,
        });
        let relay = LocalRelay::new(builder);
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            NwcError::Relay(format!("cannot start the embedded relay on {addr}: {e}"))
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| NwcError::Relay(format!("the embedded relay's address: {e}")))?;
        let stop = Arc::new(Notify::new());
        tokio::spawn(accept_loop(listener, relay.clone(), stop.clone()));
        Ok(Self {
            relay,
            addr: bound,
            url: format!("ws://{bound}"),
            stop,
        })
    }

    /// The address the relay listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's `ws://` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the relay: it stops listening and every connection drops.
    pub fn stop(&self) {
        // `notify_one` stores a permit, so the accept loop stops even if it is busy.
        self.stop.notify_one();
        self.relay.shutdown();
    }
}

impl Drop for EmbeddedRelay {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(listener: TcpListener, relay: LocalRelay, stop: Arc<Notify>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tokio::spawn(serve_connection(tcp, peer, relay.clone()));
                }
                Err(e) => tracing::warn!(error = %e, "embedded relay: accept failed"),
            },
            _ = stop.notified() => break,
        }
    }
}

async fn serve_connection(tcp: TcpStream, peer: SocketAddr, relay: LocalRelay) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "embedded relay: cannot set TCP_NODELAY");
    }
    let service = hyper::service::service_fn(move |req| {
        let relay = relay.clone();
        async move { Ok::<_, std::convert::Infallible>(upgrade(req, peer, relay)) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, %peer, "embedded relay: connection ended");
    }
}

/// Answers a websocket upgrade with 101 and hands the upgraded socket to the relay; anything
/// else gets 400.
fn upgrade(
    mut req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
    relay: LocalRelay,
) -> Response<String> {
    let is_websocket = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .filter(|_| is_websocket)
    else {
        let mut response =
            Response::new("this is a Nostr relay: connect with a websocket\n".into());
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                if let Err(e) = relay.take_connection(TokioIo::new(upgraded), peer).await {
                    tracing::debug!(error = %e, %peer, "embedded relay: session ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, %peer, "embedded relay: upgrade failed"),
        }
    });
    let mut response = Response::new(String::new());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}
