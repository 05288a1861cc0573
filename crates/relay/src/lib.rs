//! The mailbox relay of Lightning Node Connect ("HashMail") and its client.
//!
//! A relay holds **streams** ("cipher boxes"): one-way, in-order message queues named by a
//! 64-byte id. One connection writes a stream and one reads it, at a time; the pairing protocol
//! (docs/pairing.md) uses two streams per session, one each way, and encrypts everything it
//! puts in them, so the relay (and its operator) sees only ciphertext, lengths and timing.
//!
//! # The API (LNC's, as browsers use it)
//!
//! | route | what it does |
//! |---|---|
//! | `POST /v1/lightning-node-connect/hashmail` body `{"desc": {"stream_id": "<b64>"}, "lnd_auth": {}}` | creates a stream: `{"success": {}}` |
//! | `DELETE /v1/lightning-node-connect/hashmail`, same body | deletes a stream: `{}` |
//! | websocket `GET /v1/lightning-node-connect/hashmail/send?method=POST` | each text frame is `{"desc": {"stream_id": "<b64>"}, "msg": "<b64>"}` |
//! | websocket `GET /v1/lightning-node-connect/hashmail/receive?method=POST` | first text frame `{"stream_id": "<b64>"}`; then each server frame is `{"result": {"desc": {..}, "msg": "<b64>"}}` |
//!
//! This is grpc-gateway's mapping of `hashmailrpc.HashMail`: bytes in base64 (standard or
//! URL-safe, padded or not, are read; standard padded is written), proto field names
//! (`lowerCamelCase` ones are read too). `lnd_auth` may be left out: the relay authenticates
//! nobody, knowing a stream id is what lets one use the stream. `POST .../send` and
//! `POST .../receive` without a websocket answer 400 (streaming HTTP bodies are not supported).
//!
//! Errors are grpc-gateway statuses, `{"code": <grpc code>, "message": "...", "details":
//! [ErrorInfo]}`: as the body of an HTTP error (status 400, 404, 409, 429 or 503 from the
//! code), and on a websocket as one frame `{"error": {...}}` after which the relay closes the
//! socket. The `google.rpc.ErrorInfo` detail (domain `hashmail.micronode`) names a
//! [`Reason`]. Messages keep the texts LNC clients look for (`stream not found`,
//! `read stream occupied`, `write stream occupied`).
//!
//! | situation | code | reason |
//! |---|---|---|
//! | no such stream (on create: none; on send, receive, delete) | 5 `NOT_FOUND` | `STREAM_NOT_FOUND` |
//! | the stream was deleted / expired while in use | 5 | `STREAM_DELETED` / `STREAM_EXPIRED` |
//! | creating a stream that exists | 6 `ALREADY_EXISTS` | `STREAM_EXISTS` |
//! | a second reader or writer | 9 `FAILED_PRECONDITION` | `STREAM_OCCUPIED` |
//! | over the rate limit, too long | 8 `RESOURCE_EXHAUSTED` | `RATE_LIMITED` |
//! | a message over the size limit | 8 | `MESSAGE_TOO_LARGE` |
//! | too many streams; queue memory used up | 8 | `TOO_MANY_STREAMS`; `BUFFER_FULL` |
//! | bad JSON, wrong types, bad base64, a stream id not 64 bytes, a binary frame | 3 `INVALID_ARGUMENT` | `INVALID_REQUEST` |
//! | the relay is shutting down | 14 `UNAVAILABLE` | `SHUTTING_DOWN` |
//!
//! # Semantics and limits ([`RelayConfig`])
//!
//! - A stream must be created before use. Streams live in memory only: a relay restart loses
//!   them all, and clients re-create them (the pairing protocol then starts a new handshake).
//! - One reader and one writer per stream at a time; a second gets `STREAM_OCCUPIED` while the
//!   first keeps working. A slot frees when its connection closes, or when the client has
//!   answered none of the relay's pings for two ping intervals (default 30 s each).
//! - Messages written while no reader is attached wait in a per-stream queue (default at most
//!   1,024 messages and 1 MiB) and go, in order, to the next reader. When the queue is full
//!   the writer waits (backpressure) rather than anything being dropped. A message is
//!   delivered once: if a reader disconnects, what was already sent to it is gone, and what is
//!   still queued waits for the next reader. Queues across all streams are capped too
//!   (default 512 MiB); beyond it a writer gets `BUFFER_FULL`.
//! - Per stream, a token bucket limits the message rate (default 50 a second, burst 200). A
//!   writer over it waits for its next token if that comes within 1 s, and gets
//!   `RATE_LIMITED` otherwise.
//! - Messages are at most 64 KiB + 256 bytes (decoded) by default.
//! - A stream lives 24 h from creation by default, and is deleted after 1 h with nobody
//!   attached; either way its reader and writer are closed with `NOT_FOUND`.
//! - At most 100,000 streams by default.
//!
//! The relay never logs message bytes, and logs a stream id only as its first 4 bytes in hex;
//! `Debug` output of its types shows lengths, never contents. tungstenite, underneath, dumps
//! whole websocket frames at TRACE (through the `log` crate, which `tracing-subscriber`
//! forwards): never run the `tungstenite` target at TRACE in production.
//!
//! # Running it
//!
//! [`Relay::new`] then [`Relay::router`] to mount the routes in a host process, or
//! [`serve`] / [`Relay::serve`] on a listener until a shutdown future resolves, or
//! [`RelayHandle::start`] for a relay in a task of its own (tests). `micronode relay` runs one.
//!
//! # The client
//!
//! [`client::create_stream`] and [`client::delete_stream`] (HTTP), [`client::MailboxSender`]
//! and [`client::MailboxReceiver`] (websockets), on a base URL `http://host:port`. A sender
//! follows each message with a websocket ping and waits for the pong, so `send` reports the
//! relay's refusals and slows down with its backpressure. Errors are [`RelayError`]s.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod client;
pub mod config;
pub mod error;
mod mailbox;
mod rate;
pub mod server;
pub mod status;
pub mod stream_id;
mod wire;

pub use config::RelayConfig;
pub use error::RelayError;
pub use server::{serve, Relay, RelayHandle};
pub use status::{Reason, Status};
pub use stream_id::StreamId;

/// The route that creates (`POST`) and deletes (`DELETE`) streams.
pub const BOX_PATH: &str = "/v1/lightning-node-connect/hashmail";
/// The websocket route that writes a stream.
pub const SEND_PATH: &str = "/v1/lightning-node-connect/hashmail/send";
/// The websocket route that reads a stream.
pub const RECEIVE_PATH: &str = "/v1/lightning-node-connect/hashmail/receive";
