//! The unary HTTP routes: create and delete a stream, and the answer to `send`/`receive`
//! over plain HTTP.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use super::Shared;
use crate::status::Status;
use crate::wire;

/// The largest create/delete body accepted.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON response.
pub(super) fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error response as grpc-gateway gives it: the HTTP status for the code, and
/// `{"code", "message", "details"}`.
pub(super) fn status_response(status: &Status) -> Response {
    let http =
        StatusCode::from_u16(status.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(http, wire::encode_status(status))
}

async fn read_box_auth(request: Request) -> Result<crate::StreamId, Status> {
    let body = to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            Status::invalid(format!(
                "the request body is unreadable or over {MAX_BODY_BYTES} bytes"
            ))
        })?;
    let text =
        std::str::from_utf8(&body).map_err(|_| Status::invalid("the request body is not UTF-8"))?;
    wire::parse_box_auth(text)
}

/// `POST /v1/lightning-node-connect/hashmail`: creates a stream.
pub(super) async fn create(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let result = match read_box_auth(request).await {
        Ok(id) => shared.registry.create(id).map(|()| id),
        Err(status) => Err(status),
    };
    match result {
        Ok(id) => {
            tracing::debug!(stream = %id, "hashmail: stream created");
            json_response(StatusCode::OK, r#"{"success":{}}"#.to_string())
        }
        Err(status) => {
            tracing::debug!(code = status.code, why = %status.message, "hashmail: create refused");
            status_response(&status)
        }
    }
}

/// `DELETE /v1/lightning-node-connect/hashmail`: deletes a stream (body as for create).
pub(super) async fn delete(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let result = match read_box_auth(request).await {
        Ok(id) => shared.registry.delete(&id).map(|()| id),
        Err(status) => Err(status),
    };
    match result {
        Ok(id) => {
            tracing::debug!(stream = %id, "hashmail: stream deleted");
            json_response(StatusCode::OK, "{}".to_string())
        }
        Err(status) => {
            tracing::debug!(code = status.code, why = %status.message, "hashmail: delete refused");
            status_response(&status)
        }
    }
}

/// The error for `send`/`receive` without a websocket upgrade.
pub(super) fn use_a_websocket() -> Status {
    Status::invalid(
        "send and receive are streaming calls: open a websocket (GET with Upgrade: websocket, \
         e.g. ws://host/v1/lightning-node-connect/hashmail/receive?method=POST); streaming \
         HTTP bodies are not supported",
    )
}

/// `POST .../send` and `POST .../receive`: refused, pointing at the websocket form.
pub(super) async fn streaming_over_http() -> Response {
    status_response(&use_a_websocket())
}
