//! The tenant's remote signer.
//!
//! Module map: [`vault`] keeps the BIP39 seed encrypted at rest; [`engine`] is the VLS node
//! built from it, with durable state; [`policy`] and [`velocity`] are the tenant's rules;
//! [`dispatch`] and `channel_ops` answer the node's requests; [`recover`] builds the exit
//! without the operator.

mod channel_ops;
pub mod dispatch;
pub mod engine;
pub mod policy;
pub mod recover;
pub mod serve;
pub mod vault;
pub mod velocity;

pub(crate) use micronode_node::secret_file as files;

pub use engine::{EngineError, SignerEngine};
pub use policy::PolicyConfig;
