//! Creating and deleting streams: one HTTP/1.1 request on a connection of its own.

use axum::body::{to_bytes, Body};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::{AbortOnDrop, RelayUrl};
use crate::error::RelayError;
use crate::stream_id::StreamId;
use crate::{wire, BOX_PATH};

/// The largest answer read from the relay.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Creates the stream `id` on the relay at `base_url` (`http://host:port`).
///
/// Errors: [`RelayError::AlreadyExists`] if it exists, [`RelayError::Exhausted`] if the relay
/// holds too many streams, [`RelayError::Io`] if the relay cannot be reached.
pub async fn create_stream(base_url: &str, id: &StreamId) -> Result<(), RelayError> {
    call(base_url, Method::POST, id).await
}

/// Deletes the stream `id`; its reader and writer, if any, are closed with `NOT_FOUND`.
///
/// Errors: [`RelayError::NotFound`] if there is no such stream.
pub async fn delete_stream(base_url: &str, id: &StreamId) -> Result<(), RelayError> {
    call(base_url, Method::DELETE, id).await
}

async fn call(base_url: &str, method: Method, id: &StreamId) -> Result<(), RelayError> {
    let url = RelayUrl::parse(base_url)?;
    let tcp = TcpStream::connect(&url.connect_to)
        .await
        .map_err(|source| RelayError::Io {
            context: "connecting to the relay",
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|source| RelayError::Http {
            context: "handshake with the relay",
            source,
        })?;
    let _connection = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "hashmail client: HTTP connection ended");
        }
    }));
    let request = Request::builder()
        .method(method)
        .uri(url.path(BOX_PATH))
        .header(HOST, &url.authority)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(wire::encode_box_auth(id)))
        .map_err(RelayError::Request)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|source| RelayError::Http {
            context: "request to the relay",
            source,
        })?;
    let status = response.status();
    let body = to_bytes(Body::new(response.into_body()), MAX_RESPONSE_BYTES)
        .await
        .map_err(|source| RelayError::Body {
            context: "reading the relay's answer",
            source,
        })?;
    if status.is_success() {
        return Ok(());
    }
    let relay_status = serde_json::from_slice::<Value>(&body)
        .ok()
        .as_ref()
        .and_then(wire::decode_status);
    match relay_status {
        Some(relay_status) => Err(RelayError::from_status(relay_status)),
        None => Err(RelayError::Protocol(format!(
            "the relay answered HTTP {status} without an error status"
        ))),
    }
}
