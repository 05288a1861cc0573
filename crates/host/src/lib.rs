//! micronode's hosting platform: one process runs the operator's gateway and many tenant
//! nodes on one chain feed.
//!
//! - [`Host`] starts the gateway (the operator's node, serving LSPS2 JIT channels) and every
//!   tenant in the [`registry`], each watch-only: its node starts once its own signer dials in.
//! - [`admin`] is the operator's gRPC API: create, list, show, suspend, resume and delete
//!   tenants; `create` returns the enrolment bundle the tenant's signer needs.
//! - In a fleet ([`FleetHosting`]), hosts sharing one PostgreSQL database run the tenants
//!   between them, each under a lease; the gateway is then a node of its own (docs/fleet.md).
//! - The tenants' APIs share one endpoint, the front door
//!   ([`micronode_api::serve_front_door`] over [`Host::directory`]): a call's token (or its
//!   `x-micronode-tenant` header) selects the tenant, whose own keys then check the token.
//! - [`metrics`] serves Prometheus' `/metrics`: tenants by state, signer connectivity,
//!   channels, block lag, payments summed over tenants, bitcoind calls.
//!
//! ```text
//!   operator ──admin cookie──▶ Admin ──▶ Host ──▶ registry (host.sqlite)
//!                                          │
//!   apps ──tenant token──▶ front door ──▶ tenant A node ◀──link── A's signer (A's device)
//!                                      ──▶ tenant B node ◀──link── B's signer
//!                                          │  all on one ChainServices (feed, fees, graph)
//!                                          ▼
//!                                       gateway ──JIT channels──▶ tenants
//! ```
#![deny(missing_docs)]

pub mod admin;
pub mod error;
mod fleet;
pub mod host;
pub mod metrics;
pub mod registry;
pub mod tenant;
pub mod transfer;

pub use admin::{serve_admin, AdminService, ADMIN_ADDRESS_FILE, ADMIN_COOKIE_FILE};
pub use error::HostError;
pub use host::{
    Deletion, FleetHosting, GatewayNode, Host, HostConfig, TenantStatus, TenantView,
    GATEWAY_COOKIE_FILE,
};
pub use metrics::serve_metrics;
pub use tenant::TenantNode;
