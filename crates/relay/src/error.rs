//! The crate's typed errors, for the server and the client alike.

use crate::status::{
    Reason, Status, CODE_ALREADY_EXISTS, CODE_FAILED_PRECONDITION, CODE_INVALID_ARGUMENT,
    CODE_NOT_FOUND, CODE_RESOURCE_EXHAUSTED, CODE_UNAVAILABLE,
};

/// What can go wrong running the relay or talking to one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The stream does not exist: never created, deleted, or expired. The client should
    /// create it again (or tell its user the session is gone).
    #[error("stream not found ({0})")]
    NotFound(String),
    /// The stream already exists.
    #[error("stream already exists")]
    AlreadyExists,
    /// Another connection is the stream's reader (or writer); one of each at a time.
    #[error("stream occupied: {0}")]
    Busy(String),
    /// The stream's message rate limit was exceeded; the relay closed the connection.
    #[error("rate limit exceeded ({0})")]
    RateLimited(String),
    /// A message was larger than the relay allows; the relay closed the connection.
    #[error("message too large ({0})")]
    TooLarge(String),
    /// The relay is out of a resource (streams, queue memory).
    #[error("relay resources exhausted ({0})")]
    Exhausted(String),
    /// The relay found the request malformed.
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// The connection to the relay ended (the relay shut down or restarted, the network
    /// dropped, or the connection was closed earlier).
    #[error("the connection to the relay is closed")]
    Closed,
    /// Another error status from the relay.
    #[error("relay error {0}")]
    Relay(Status),
    /// The relay (or what answered in its place) broke the protocol.
    #[error("relay protocol error: {0}")]
    Protocol(String),
    /// The relay URL is malformed or of an unsupported kind.
    #[error("relay URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An I/O error.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP error talking to the relay.
    #[error("HTTP {context}")]
    Http {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: hyper::Error,
    },
    /// The HTTP request to the relay could not be formed.
    #[error("forming the request to the relay")]
    Request(#[source] axum::http::Error),
    /// An HTTP body could not be read.
    #[error("{context}")]
    Body {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: axum::Error,
    },
    /// A websocket error talking to the relay.
    #[error("websocket {context}")]
    WebSocket {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The relay's configuration is invalid.
    #[error("invalid relay configuration: {0}")]
    Config(String),
    /// The relay was started outside a tokio runtime.
    #[error("the relay needs a tokio runtime")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    /// Serving (accepting connections) failed.
    #[error("serving the relay failed")]
    Serve(#[source] std::io::Error),
}

impl RelayError {
    /// The typed error for an error status a relay sent. Understands our relay's reasons and,
    /// without one, the codes and messages of aperture's (`stream not found`,
    /// `... stream occupied`).
    pub fn from_status(status: Status) -> RelayError {
        let message = status.message.clone();
        match status.reason {
            Some(Reason::StreamNotFound | Reason::StreamDeleted | Reason::StreamExpired) => {
                RelayError::NotFound(message)
            }
            Some(Reason::StreamExists) => RelayError::AlreadyExists,
            Some(Reason::StreamOccupied) => RelayError::Busy(message),
            Some(Reason::RateLimited) => RelayError::RateLimited(message),
            Some(Reason::MessageTooLarge) => RelayError::TooLarge(message),
            Some(Reason::TooManyStreams | Reason::BufferFull) => RelayError::Exhausted(message),
            Some(Reason::InvalidRequest) => RelayError::InvalidArgument(message),
            Some(Reason::ShuttingDown) => RelayError::Closed,
            Some(Reason::Internal) => RelayError::Relay(status),
            None => match status.code {
                _ if message.contains("stream not found") => RelayError::NotFound(message),
                _ if message.contains("stream occupied") => RelayError::Busy(message),
                CODE_NOT_FOUND => RelayError::NotFound(message),
                CODE_ALREADY_EXISTS => RelayError::AlreadyExists,
                CODE_FAILED_PRECONDITION => RelayError::Busy(message),
                CODE_RESOURCE_EXHAUSTED => RelayError::Exhausted(message),
                CODE_INVALID_ARGUMENT => RelayError::InvalidArgument(message),
                CODE_UNAVAILABLE => RelayError::Closed,
                _ => RelayError::Relay(status),
            },
        }
    }

    /// A websocket error, with a closed connection reported as [`RelayError::Closed`].
    pub(crate) fn websocket(
        context: &'static str,
        source: tokio_tungstenite::tungstenite::Error,
    ) -> RelayError {
        use tokio_tungstenite::tungstenite::error::ProtocolError;
        use tokio_tungstenite::tungstenite::Error as WsError;
        match source {
            WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => RelayError::Closed,
            WsError::Io(source) => RelayError::Io { context, source },
            source => RelayError::WebSocket {
                context,
                source: Box::new(source),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_typed_errors() {
        assert!(matches!(
            RelayError::from_status(Status::not_found()),
            RelayError::NotFound(_)
        ));
        assert!(matches!(
            RelayError::from_status(Status::new(Reason::RateLimited, "x")),
            RelayError::RateLimited(_)
        ));
        assert!(matches!(
            RelayError::from_status(Status::new(Reason::ShuttingDown, "x")),
            RelayError::Closed
        ));
        // aperture's errors carry no reason and code UNKNOWN.
        let aperture = |message: &str| Status {
            code: 2,
            reason: None,
            message: message.into(),
        };
        assert!(matches!(
            RelayError::from_status(aperture("read stream occupied")),
            RelayError::Busy(_)
        ));
        assert!(matches!(
            RelayError::from_status(aperture("stream not found")),
            RelayError::NotFound(_)
        ));
        assert!(matches!(
            RelayError::from_status(aperture("EOF")),
            RelayError::Relay(_)
        ));
    }
}
