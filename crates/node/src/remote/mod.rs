//! The node's side of a remote signer: the request protocol, and [`RemoteKeys`], the keys
//! backend that forwards LDK's signer traits to the tenant's signer over a transport.
//!
//! The node holds no private key: it keeps public material (node id, wallet xpub, channel
//! public keys) and answers nothing on the signer's behalf. See `docs/remote-signer.md`.

pub mod attach;
pub mod channel_signer;
pub mod keys;
pub mod link_transport;
pub mod transport;

pub use micronode_signer_protocol as protocol;

pub use channel_signer::RemoteChannelSigner;
pub use keys::{RemoteCore, RemoteKeys};
pub use link_transport::LinkSignerTransport;
pub use protocol::{SignerPublicInfo, SignerRequest, SignerResponse, PROTOCOL_VERSION};
pub use transport::{RemoteError, SignerTransport};
