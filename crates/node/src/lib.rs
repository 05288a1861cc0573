//! One Lightning node as a library value, built from the `lightning` (LDK) crates.
//!
//! A [`Node`] is generic over its keys backend ([`KeysBackend`]): the node reaches keys only
//! through LDK's signer traits and a wallet-signing interface, so the in-process
//! [`LocalKeys`] and a remote validating signer are interchangeable. Many nodes can live in one
//! process; they share one [`micronode_chain::ChainServices`] (chain feed, fee estimator,
//! broadcaster).
#![deny(missing_docs)]

mod anchors;
mod builder;
mod bump;
mod chain_listener;
pub mod channels;
pub mod config;
/// What a public listener lets in (allow-lists, token buckets): the `micronode-edge` crate.
pub use micronode_edge as edge;
pub use micronode_store as store;
pub mod error;
pub mod events;
pub mod fleet;
mod funding;
pub mod keys;
mod liquidity;
pub mod logger;
mod node;
pub mod onchain;
pub mod outbox;
pub mod pay;
pub mod payments;
pub mod peer_net;
pub mod peers;
pub mod persist;
pub mod remote;
pub mod seam;
pub mod types;
pub mod wallet;

pub use channels::{ChannelInfo, PeerInfo};
pub use config::{
    ChannelSettings, LiquiditySettings, LspSettings, Lsps2ServiceSettings, NodeConfig, StoreChoice,
};
pub use error::NodeError;
pub use events::NodeEvent;
pub use keys::{
    KeysBackend, LocalKeys, PaymentApproval, SignerLimits, WalletDescriptors, WalletPathLookup,
    WalletSigner,
};
pub use liquidity::JitOffer;
pub use node::{Node, NodeInfo};
pub use onchain::{LightningBalance, OnchainBalance};
pub use outbox::{BroadcastStatus, FailingBroadcast};
pub use pay::{CreatedInvoice, InvoiceDescription, PaymentsPage};
pub use payments::{PaymentDirection, PaymentKind, PaymentRecord, PaymentStatus};
pub use remote::RemoteKeys;
pub use wallet::SendAmount;
