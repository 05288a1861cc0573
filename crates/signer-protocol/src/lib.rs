//! The node ↔ signer request protocol.
//!
//! The node is the caller: it sends one [`SignerRequest`] per signing operation and the signer
//! answers with a [`SignerResponse`]. Messages are JSON (one per link frame); LDK values travel
//! as their own LDK serialization (`Writeable`), Bitcoin values as consensus encoding, both as
//! hex. The link under it (`micronode-link`) provides authentication, encryption and replay
//! protection; this crate only defines meaning. The written schema is `SCHEMA.md` beside this
//! crate's `Cargo.toml`; a test keeps it in step with the types.
//!
//! Commitment numbers are sent exactly as LDK gives them (counting down from 2^48 - 1); the
//! signer converts them for VLS.
//!
//! The node is untrusted: the signer treats every field of every request as chosen by an
//! attacker (see `docs/remote-signer.md`, "Threat model").

#![deny(missing_docs)]

pub mod app_request;
mod public;
mod requests;
mod responses;

use serde::{Deserialize, Serialize};

pub use app_request::{
    AppCredential, AppMethod, AppRequest, PaymentAuthorization, SignedAppRequest,
    APP_REQUEST_METADATA,
};
pub use public::{wallet_descriptors, SignerPublicInfo, WalletLayout};
pub use requests::{ChannelOp, SignerRequest};
pub use responses::{FeeAllowance, SignerHello, SignerReply, SignerResponse};

/// Version of this protocol. The signer refuses a node that speaks another one.
///
/// 2: the hello carries the signer's payment limits the node must respect (routing, fee
/// allowance); refusals say whether they are temporary.
/// 3: the hello carries the tenant's app-token root and whether payments need an app's signed
/// request; payment approvals carry that request.
pub const PROTOCOL_VERSION: u32 = 3;

/// Bytes that travel as a hex string.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Hex(pub Vec<u8>);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map(Hex).map_err(serde::de::Error::custom)
    }
}

impl From<Vec<u8>> for Hex {
    fn from(v: Vec<u8>) -> Self {
        Hex(v)
    }
}

/// A `u128` as a decimal string: JSON numbers that large do not survive the internally tagged
/// enums serde buffers through.
pub(crate) mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One request with its correlation id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// Chosen by the node, echoed in the response.
    pub id: u64,
    /// What is asked.
    pub request: SignerRequest,
}

/// One response with the id of its request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    /// The request's id.
    pub id: u64,
    /// The answer.
    pub response: SignerResponse,
}

#[cfg(test)]
mod tests;
