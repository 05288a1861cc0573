//! Lightning Node Connect's protocol, for a tenant's browser wallet that reaches the tenant's
//! node through a mailbox relay the operator runs and cannot read.
//!
//! - [`Phrase`]: the 10-word pairing phrase (110 bits) and its scrypt-stretched [`Password`];
//! - [`StreamIds`]: the two mailbox streams of a session, from the phrase and then from the
//!   static keys;
//! - [`Handshake`]: `Noise_XXeke+SPAKE2_secp256k1_ChaChaPoly_SHA256` on the first connection
//!   (a wrong phrase fails act 1 at the node, which then ends the session: one online guess)
//!   and `Noise_KK` after;
//! - [`Transport`]: one encrypted frame per message, with LNC's key rotation;
//! - [`seal`]: the app's key sealed for the phrase's holder, so the node relays it unread.
//!
//! The wire format, and where we differ from LNC (no go-back-N layer), is in `docs/pairing.md`.
#![deny(missing_docs)]

mod cipher;
pub mod error;
pub mod handshake;
pub mod keys;
pub mod phrase;
pub mod seal;
pub mod sid;
pub mod transport;

pub use error::{LncError, Result};
pub use handshake::{Established, Handshake, Pattern, HANDSHAKE_VERSION};
pub use phrase::{Password, Phrase, ENTROPY_BYTES, PHRASE_WORDS};
pub use secp256k1::{PublicKey, SecretKey};
pub use sid::{StreamIds, SID_LEN};
pub use transport::Transport;
