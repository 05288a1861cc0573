//! Nostr Wallet Connect (NIP-47) for a micronode Lightning node.
//!
//! <https://github.com/nostr-protocol/nips/blob/master/47.md>
//!
//! Apps (wallets, Nostr clients, web shops) reach the node through a Nostr relay: no port
//! forward, no API token. Each app gets its own **connection** ([`ConnectionSpec`]): its own
//! key pairs, allowed methods, a spending budget per period, an expiry, and revocation. The
//! connection URI `nostr+walletconnect://<wallet-pubkey>?relay=<url>&secret=<hex>` is shown
//! once ([`NewConnection::uri`], [`render_qr_terminal`]).
//!
//! - [`NwcService::start`] / [`NwcService::run`] run the service over any [`WalletBackend`];
//!   [`NodeBackend`] serves an in-process [`micronode_node::Node`].
//! - [`SharedRelays`] with [`NwcService::start_shared`] serve every tenant of a host on one
//!   set of relay connections; the wallet key a request is addressed to selects the tenant.
//! - [`NwcStore`] keeps connections, budgets and processed requests in the service's own
//!   SQLite file (0600); the CLI manages connections on it while the service runs.
//! - [`verify_management_request`] authorises management calls by the tenant's Nostr key
//!   (NIP-98); [`http_api::serve_management`] serves create/list/revoke over HTTP with it.
//!
//! Methods: `get_info`, `get_balance`, `make_invoice`, `pay_invoice`, `pay_keysend`,
//! `lookup_invoice`, `list_transactions`; notifications `payment_received` and
//! `payment_sent`. Hold invoices and the `multi_*` methods answer `NOT_IMPLEMENTED`.
//! Requests are accepted in NIP-44 v2 and NIP-04, and answered in the same scheme.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod backend;
pub mod budget;
pub mod config;
pub mod connections;
pub mod crypto;
pub mod embedded_relay;
pub mod error;
mod handler;
pub mod http_api;
pub mod management;
mod methods;
pub mod node_backend;
pub mod protocol;
pub mod qr;
mod service;
pub mod shared;
pub mod store;
pub mod transport;
mod util;

/// The rust-nostr SDK this crate is built on (for keys, URLs and events in callers).
pub use nostr_sdk;

pub use backend::{
    BackendError, BackendErrorKind, Direction, PaymentEvent, Transaction, TransactionQuery,
    TxState, WalletBackend, WalletInfo,
};
pub use budget::{Budget, BudgetRenewal, BudgetStatus};
pub use config::{NwcConfig, RateLimit};
pub use connections::{Connection, ConnectionSpec, ConnectionStatus, NewConnection};
pub use error::{ErrorCode, ManagementAuthError, Nip47Error, NwcError};
pub use management::{verify_authorization_header, verify_management_request};
pub use node_backend::NodeBackend;
pub use protocol::Method;
pub use qr::render_qr_terminal;
pub use service::{NwcHandle, NwcService};
pub use shared::SharedRelays;
pub use store::NwcStore;
pub use util::now_secs;
