//! The websocket upgrade of `GET .../send` and `GET .../receive`: hyper hands over the
//! connection and a session task takes it (see [`super::session`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::http::{status_response, use_a_websocket};
use super::{session, Shared};
use crate::status::{Reason, Status};

/// Which half of a stream a websocket is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// `.../send`: the writer.
    Send,
    /// `.../receive`: the reader.
    Receive,
}

/// `GET .../send?method=POST`.
pub(super) async fn send(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    upgrade(shared, request, Side::Send)
}

/// `GET .../receive?method=POST`.
pub(super) async fn receive(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    upgrade(shared, request, Side::Receive)
}

fn header_has_token(
    headers: &HeaderMap,
    name: impl axum::http::header::AsHeaderName,
    token: &str,
) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(token))
}

fn upgrade(shared: Arc<Shared>, mut request: Request, side: Side) -> Response {
    let headers = request.headers();
    if !header_has_token(headers, UPGRADE, "websocket")
        || !header_has_token(headers, CONNECTION, "upgrade")
    {
        return status_response(&use_a_websocket());
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return status_response(&Status::invalid("Sec-WebSocket-Key is missing"));
    };
    if headers
        .get(SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut response =
            status_response(&Status::invalid("only websocket version 13 is supported"));
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return response;
    }
    let accept = derive_accept_key(key.as_bytes());
    let Ok(accept) = HeaderValue::from_str(&accept) else {
        return status_response(&Status::new(Reason::Internal, "cannot answer the upgrade"));
    };
    if shared.is_shutting_down() {
        return status_response(&Status::new(Reason::ShuttingDown, "relay shutting down"));
    }
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return status_response(&Status::new(
            Reason::Internal,
            "this server does not allow connection upgrades",
        ));
    };

    let guard = shared.session_guard();
    let config = WebSocketConfig::default()
        .max_message_size(Some(shared.config.max_frame_bytes()))
        .max_frame_size(Some(shared.config.max_frame_bytes()));
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "hashmail: websocket upgrade failed");
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        match side {
            Side::Send => session::send_session(ws, shared, guard).await,
            Side::Receive => session::receive_session(ws, shared, guard).await,
        }
    });

    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    response
}
