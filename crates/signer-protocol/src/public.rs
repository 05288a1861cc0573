//! The public material of a signer, and the one wallet layout both sides agree on.

use serde::{Deserialize, Serialize};

/// The on-chain wallet's layout under the account key the signer exports: receive keys at
/// `xpub/0/i`, change keys at `xpub/1/i`, pay-to-witness-pubkey-hash only. The signer signs for
/// no other path or script type, and `micronode signer recover` scans exactly these.
pub struct WalletLayout;

impl WalletLayout {
    /// The receive chain.
    pub const RECEIVE: u32 = 0;
    /// The change chain.
    pub const CHANGE: u32 = 1;
}

/// Public material a watch-only node needs before its signer first connects, produced by
/// `micronode signer export-public`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerPublicInfo {
    /// The Lightning node id, hex.
    pub node_id: String,
    /// The network name (`regtest`, `signet`, `testnet`, `bitcoin`).
    pub network: String,
    /// The wallet account xpub.
    pub wallet_xpub: String,
    /// Receive descriptor, `wpkh(xpub/0/*)`.
    pub external_descriptor: String,
    /// Change descriptor, `wpkh(xpub/1/*)`.
    pub internal_descriptor: String,
}

impl SignerPublicInfo {
    /// Builds the descriptors from an account xpub.
    pub fn from_xpub(node_id: String, network: String, wallet_xpub: String) -> Self {
        let (external_descriptor, internal_descriptor) = wallet_descriptors(&wallet_xpub);
        Self {
            external_descriptor,
            internal_descriptor,
            node_id,
            network,
            wallet_xpub,
        }
    }
}

/// The watch-only wallet of a remote signer as (receive, change) descriptors:
/// `wpkh(xpub/0/*)` and `wpkh(xpub/1/*)` (see [`WalletLayout`]).
pub fn wallet_descriptors(wallet_xpub: &str) -> (String, String) {
    (
        format!("wpkh({wallet_xpub}/{}/*)", WalletLayout::RECEIVE),
        format!("wpkh({wallet_xpub}/{}/*)", WalletLayout::CHANGE),
    )
}
