//! The tenant's remote signer.
//!
//! The operator runs the tenant's node; this signer holds the keys and assumes the operator is
//! the attacker. Module map: [`vault`] keeps the BIP39 seed encrypted at rest; [`engine`] is
//! the VLS node built from it, with durable state; [`policy`] and [`velocity`] are the
//! tenant's rules; [`dispatch`], `channel_ops`, `commitments` and `onchain` answer the node's
//! requests, after [`balance`] (accounting with dust), [`fees`] (sweep fees from amounts the
//! signer knows), [`wallet_layout`] (one layout recovery scans) and [`gossip`] (what key
//! signatures may cover) have had their say; [`chain`] is the signer's own view of the chain
//! and [`watchtower`] punishes revoked states on it; [`recover`] is the exit without the
//! operator; [`serve`] dials out to the node; [`config`] reads `signer.toml`; [`apps`] binds
//! every payment to a request signed by one of the tenant's apps.

#![deny(missing_docs)]

mod anchor_ops;
pub mod apps;
pub mod balance;
pub mod chain;
mod channel_ops;
mod commitments;
pub mod config;
pub mod dispatch;
pub mod engine;
pub mod fees;
pub mod gossip;
mod onchain;
pub mod outcome;
pub mod policy;
pub mod recover;
pub mod serve;
pub mod settled;
pub mod store;
pub mod vault;
pub mod velocity;
pub mod wallet_layout;
pub mod watchtower;

pub use config::{open_signer, SignerConfig};
pub use engine::{EngineError, SignerEngine};
pub use outcome::Outcome;
pub use policy::PolicyConfig;
