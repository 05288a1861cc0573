//! The signer provider the channel manager sees.
//!
//! Channel signers come from the keys backend; the scripts that funds return to on a close or a
//! sweep come from the node's own watch-only wallet (derived from the backend's public
//! descriptors), so closed-channel funds land where the wallet sees them.

use std::sync::Arc;

use bitcoin::ScriptBuf;
use lightning::ln::script::ShutdownScript;
use lightning::sign::SignerProvider;

use crate::wallet::OnchainWallet;

/// A [`SignerProvider`] that delegates to the backend `K` but takes destination scripts from
/// the wallet.
pub struct WalletScriptsSignerProvider<K> {
    keys: Arc<K>,
    wallet: Arc<OnchainWallet>,
}

impl<K> WalletScriptsSignerProvider<K> {
    /// Wraps a backend and a wallet.
    pub fn new(keys: Arc<K>, wallet: Arc<OnchainWallet>) -> Self {
        Self { keys, wallet }
    }
}

impl<K: SignerProvider> SignerProvider for WalletScriptsSignerProvider<K> {
    type EcdsaSigner = K::EcdsaSigner;

    fn generate_channel_keys_id(&self, inbound: bool, user_channel_id: u128) -> [u8; 32] {
        self.keys.generate_channel_keys_id(inbound, user_channel_id)
    }

    fn derive_channel_signer(&self, channel_keys_id: [u8; 32]) -> Self::EcdsaSigner {
        self.keys.derive_channel_signer(channel_keys_id)
    }

    fn get_destination_script(&self, _channel_keys_id: [u8; 32]) -> Result<ScriptBuf, ()> {
        self.wallet
            .new_address()
            .map(|a| a.script_pubkey())
            .map_err(|e| {
                tracing::error!(error = %e, "no wallet address for a channel destination");
            })
    }

    fn get_shutdown_scriptpubkey(&self) -> Result<ShutdownScript, ()> {
        let script = self.get_destination_script([0; 32])?;
        ShutdownScript::try_from(script).map_err(|e| {
            tracing::error!(error = ?e, "wallet script is not a valid shutdown script");
        })
    }
}
