//! The relay's error statuses on the wire: a gRPC code, a machine-readable reason and a
//! message, encoded as grpc-gateway does (`{"code", "message", "details"}`, with the reason in
//! a `google.rpc.ErrorInfo` detail).

use std::fmt;

/// gRPC `INVALID_ARGUMENT`.
pub const CODE_INVALID_ARGUMENT: i32 = 3;
/// gRPC `NOT_FOUND`.
pub const CODE_NOT_FOUND: i32 = 5;
/// gRPC `ALREADY_EXISTS`.
pub const CODE_ALREADY_EXISTS: i32 = 6;
/// gRPC `RESOURCE_EXHAUSTED`.
pub const CODE_RESOURCE_EXHAUSTED: i32 = 8;
/// gRPC `FAILED_PRECONDITION`.
pub const CODE_FAILED_PRECONDITION: i32 = 9;
/// gRPC `INTERNAL`.
pub const CODE_INTERNAL: i32 = 13;
/// gRPC `UNAVAILABLE`.
pub const CODE_UNAVAILABLE: i32 = 14;

/// The `domain` of the relay's `google.rpc.ErrorInfo` details.
pub const ERROR_DOMAIN: &str = "hashmail.micronode";

/// Why the relay refused a request or ended a stream: the `reason` of the `ErrorInfo` detail
/// that comes with every error, so a client need not parse messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The stream does not exist (never created, deleted, or expired): `NOT_FOUND`.
    StreamNotFound,
    /// The stream was deleted while this connection used it: `NOT_FOUND`.
    StreamDeleted,
    /// The stream reached its time to live: `NOT_FOUND`.
    StreamExpired,
    /// The stream already exists: `ALREADY_EXISTS`.
    StreamExists,
    /// Another connection is the stream's reader (or writer): `FAILED_PRECONDITION`.
    StreamOccupied,
    /// The stream's message rate limit was exceeded: `RESOURCE_EXHAUSTED`.
    RateLimited,
    /// A message was larger than the relay allows: `RESOURCE_EXHAUSTED`.
    MessageTooLarge,
    /// The relay holds as many streams as it allows: `RESOURCE_EXHAUSTED`.
    TooManyStreams,
    /// The relay's memory for queued messages is used up: `RESOURCE_EXHAUSTED`.
    BufferFull,
    /// The request was malformed: `INVALID_ARGUMENT`.
    InvalidRequest,
    /// The relay is shutting down: `UNAVAILABLE`.
    ShuttingDown,
    /// The relay failed: `INTERNAL`.
    Internal,
}

impl Reason {
    const ALL: [Reason; 12] = [
        Reason::StreamNotFound,
        Reason::StreamDeleted,
        Reason::StreamExpired,
        Reason::StreamExists,
        Reason::StreamOccupied,
        Reason::RateLimited,
        Reason::MessageTooLarge,
        Reason::TooManyStreams,
        Reason::BufferFull,
        Reason::InvalidRequest,
        Reason::ShuttingDown,
        Reason::Internal,
    ];

    /// The wire spelling, e.g. `STREAM_NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::StreamNotFound => "STREAM_NOT_FOUND",
            Reason::StreamDeleted => "STREAM_DELETED",
            Reason::StreamExpired => "STREAM_EXPIRED",
            Reason::StreamExists => "STREAM_EXISTS",
            Reason::StreamOccupied => "STREAM_OCCUPIED",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::MessageTooLarge => "MESSAGE_TOO_LARGE",
            Reason::TooManyStreams => "TOO_MANY_STREAMS",
            Reason::BufferFull => "BUFFER_FULL",
            Reason::InvalidRequest => "INVALID_REQUEST",
            Reason::ShuttingDown => "SHUTTING_DOWN",
            Reason::Internal => "INTERNAL",
        }
    }

    /// The reason with this wire spelling.
    pub fn from_wire(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The gRPC code that goes with the reason.
    pub fn code(self) -> i32 {
        match self {
            Reason::StreamNotFound | Reason::StreamDeleted | Reason::StreamExpired => {
                CODE_NOT_FOUND
            }
            Reason::StreamExists => CODE_ALREADY_EXISTS,
            Reason::StreamOccupied => CODE_FAILED_PRECONDITION,
            Reason::RateLimited
            | Reason::MessageTooLarge
            | Reason::TooManyStreams
            | Reason::BufferFull => CODE_RESOURCE_EXHAUSTED,
            Reason::InvalidRequest => CODE_INVALID_ARGUMENT,
            Reason::ShuttingDown => CODE_UNAVAILABLE,
            Reason::Internal => CODE_INTERNAL,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error status as the relay sends it, or as a client read it from a relay.
///
/// Messages never contain message bytes: the relay writes them from fixed text, lengths and
/// limits only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The gRPC code.
    pub code: i32,
    /// The reason, when the relay sent one we know.
    pub reason: Option<Reason>,
    /// A human-readable message.
    pub message: String,
}

impl Status {
    /// A status with the code of `reason`.
    pub fn new(reason: Reason, message: impl Into<String>) -> Status {
        Status {
            code: reason.code(),
            reason: Some(reason),
            message: message.into(),
        }
    }

    /// `stream not found` (LNC clients look for this text).
    pub fn not_found() -> Status {
        Status::new(Reason::StreamNotFound, "stream not found")
    }

    /// An `INVALID_ARGUMENT` status.
    pub fn invalid(message: impl Into<String>) -> Status {
        Status::new(Reason::InvalidRequest, message)
    }

    /// The HTTP status grpc-gateway uses for this code.
    pub fn http_status(&self) -> u16 {
        match self.code {
            CODE_INVALID_ARGUMENT | CODE_FAILED_PRECONDITION => 400,
            CODE_NOT_FOUND => 404,
            CODE_ALREADY_EXISTS => 409,
            CODE_RESOURCE_EXHAUSTED => 429,
            CODE_UNAVAILABLE => 503,
            _ => 500,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "code {}", self.code)?;
        if let Some(reason) = self.reason {
            write!(f, " ({reason})")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_wire(reason.as_str()), Some(reason));
        }
        assert_eq!(Reason::from_wire("NOPE"), None);
    }

    #[test]
    fn http_statuses_follow_grpc_gateway() {
        assert_eq!(Status::not_found().http_status(), 404);
        assert_eq!(Status::new(Reason::StreamExists, "x").http_status(), 409);
        assert_eq!(Status::new(Reason::TooManyStreams, "x").http_status(), 429);
        assert_eq!(Status::invalid("x").http_status(), 400);
    }
}
