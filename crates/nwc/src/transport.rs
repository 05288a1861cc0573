//! The websocket transport every relay connection of ours uses: the default one of rust-nostr
//! with `TCP_NODELAY` set on the socket.
//!
//! Why: NWC traffic is small request/response messages. With Nagle's algorithm on, a second
//! small write on a connection waits until the first is acknowledged, and the peer delays that
//! acknowledgement by up to 40 ms when it has nothing to send back. async-wsocket (under
//! nostr-sdk) connects without `TCP_NODELAY`, which gave every NWC request a flat ~44 ms on a
//! loopback relay (docs/benchmarks.md). nostr-sdk takes a custom [`WebSocketTransport`] for
//! exactly this; the handshake and framing stay tokio-tungstenite's, as in the default one.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_wsocket::futures_util::stream::SplitSink;
use async_wsocket::futures_util::{Sink, SinkExt, StreamExt, TryStreamExt};
use async_wsocket::{Message, WebSocket};
use nostr_sdk::nostr::util::BoxedFuture;
use nostr_sdk::nostr::Url;
use nostr_sdk::pool::transport::error::TransportError;
use nostr_sdk::pool::transport::websocket::{
    DefaultWebsocketTransport, WebSocketSink, WebSocketStream, WebSocketTransport,
};
use nostr_sdk::pool::ConnectionMode;
use nostr_sdk::RelayPool;
use tokio::net::TcpStream;

/// Connects like rust-nostr's default transport, with `TCP_NODELAY` on the socket. Proxied
/// and Tor connections (which we do not configure) fall back to the default transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelayTransport;

/// A relay pool whose connections use [`NoDelayTransport`].
pub fn relay_pool() -> RelayPool {
    RelayPool::builder()
        .websocket_transport(NoDelayTransport)
        .build()
}

/// Why a direct connection could not be made.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("the relay URL has no host")]
    NoHost,
    #[error("the relay URL has no port and no known default")]
    NoPort,
    #[error("timed out connecting to the relay")]
    Timeout,
    #[error("TCP connection failed")]
    Tcp(#[source] std::io::Error),
    #[error("websocket handshake failed")]
    Handshake(#[source] tokio_tungstenite::tungstenite::Error),
}

async fn connect_direct(url: &Url, timeout: Duration) -> Result<WebSocket, ConnectError> {
    let host = url.host_str().ok_or(ConnectError::NoHost)?;
    let port = url.port_or_known_default().ok_or(ConnectError::NoPort)?;
    let connect = async {
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(ConnectError::Tcp)?;
        tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
        // Boxed as in async-wsocket: the handshake future is large.
        let (stream, _) = Box::pin(tokio_tungstenite::client_async_tls(url.as_str(), tcp))
            .await
            .map_err(ConnectError::Handshake)?;
        Ok(WebSocket::Tokio(stream))
    };
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

impl WebSocketTransport for NoDelayTransport {
    fn support_ping(&self) -> bool {
        true
    }

    fn connect<'a>(
        &'a self,
        url: &'a Url,
        mode: &'a ConnectionMode,
        timeout: Duration,
    ) -> BoxedFuture<'a, Result<(WebSocketSink, WebSocketStream), TransportError>> {
        if !matches!(mode, ConnectionMode::Direct) {
            return DefaultWebsocketTransport.connect(url, mode, timeout);
        }
        Box::pin(async move {
            let socket = connect_direct(url, timeout)
                .await
                .map_err(TransportError::backend)?;
            let (tx, rx) = socket.split();
            let sink: WebSocketSink = Box::new(ErrorMappedSink(tx));
            let stream: WebSocketStream = Box::pin(rx.map_err(TransportError::backend));
            Ok((sink, stream))
        })
    }
}

/// The websocket's sink with its errors turned into [`TransportError`]. Written out rather
/// than with `sink_map_err`, which rust-nostr found can panic (rust-nostr/nostr#984).
struct ErrorMappedSink(SplitSink<WebSocket, Message>);

impl Sink<Message> for ErrorMappedSink {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready_unpin(cx).map_err(TransportError::backend)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.0
            .start_send_unpin(item)
            .map_err(TransportError::backend)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_flush_unpin(cx).map_err(TransportError::backend)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_close_unpin(cx).map_err(TransportError::backend)
    }
}
