//! The gRPC API of one micronode node.
//!
//! [`LightningService`] implements the `micronode.v1.Lightning` service (see the documented
//! `.proto` in `micronode-proto`) over an `Arc<`[`Node`](micronode_node::Node)`>`: one handler per
//! RPC in [`handlers`], conversions in [`adapter`], errors mapped to gRPC codes plus a stable
//! `x-micronode-error` code in [`error`]. [`serve`] binds an address, puts an
//! [`Authenticator`] in front of every call ([`CookieAuth`], or capability tokens with
//! [`TokenAuthority`]), limits request sizes, and shuts down gracefully in bounded time.
//! [`TokensService`] manages tokens; [`tokens`] is the token model (biscuit) and its store.
//!
//! ```text
//!  client ──HTTP/2──▶ AuthGuard ──────────▶ LightningServer (decode, ≤ 1 MiB)
//!                      Authenticator::authorize(method, metadata) → Grant (in extensions)
//!                                             ▼
//!                                   LightningService ──▶ handlers::handle_<rpc>
//!                                                          │  adapter: proto ⇄ node types
//!                                                          │  budget: reserve before paying
//!                                                          ▼
//!                                                 Node<K> (blocking calls on spawn_blocking)
//! ```
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod adapter;
pub mod app_request;
pub mod auth;
pub mod budget;
pub mod error;
pub mod front_door;
pub mod handlers;
pub mod pairing;
mod server;
mod service;
pub mod tokens;
mod tokens_service;

pub use auth::{
    bearer, read_cookie, unauthenticated, Authenticator, CookieAuth, CookieOrTokens, Grant,
};
pub use error::{ApiError, ErrorCode, ERROR_CODE_METADATA};
pub use front_door::{serve_front_door, TenantApi, TenantDirectory};
pub use micronode_node::edge::RateLimit;
pub use pairing::{NewPairing, PairingBackend, PairingCaller};
pub use server::{
    in_process_client, serve, serve_with, InProcessService, ServeOptions, ServerTask,
    DEFAULT_SHUTDOWN_GRACE, MAX_CONCURRENT_STREAMS, MAX_DECODING_MESSAGE_SIZE,
    MAX_HEADER_LIST_SIZE,
};
pub use service::LightningService;
pub use tokens::{TokenAuthority, TokenError};
pub use tokens_service::TokensService;
