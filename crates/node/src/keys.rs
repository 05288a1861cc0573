//! The signing boundary.
//!
//! The node reaches private keys only through [`KeysBackend`]: LDK's signer traits
//! ([`NodeSigner`], [`SignerProvider`], [`EntropySource`], [`OutputSpender`]) plus
//! wallet signing of PSBTs and the wallet's *public* descriptors. The node itself never holds a
//! private key: its on-chain wallet is watch-only and asks the backend to sign.
//!
//! [`LocalKeys`] is the in-process backend (LDK's `KeysManager` plus a BIP84 wallet key, both
//! from one seed). A remote, validating signer plugs in by implementing the same trait.

use std::path::Path;
use std::time::SystemTime;

use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use bitcoin::secp256k1::{All, Secp256k1};
use bitcoin::{Network, Psbt};
use lightning::sign::{EntropySource, KeysManager, NodeSigner, OutputSpender, SignerProvider};

use crate::error::NodeError;

/// The public half of the on-chain wallet, as output descriptors with key origins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletDescriptors {
    /// Receive addresses, e.g. `wpkh([fp/84'/1'/0']tpub.../0/*)`.
    pub external: String,
    /// Change addresses, e.g. `wpkh([fp/84'/1'/0']tpub.../1/*)`.
    pub internal: String,
}

/// Maps a wallet script to its derivation `(chain, index)` under the wallet account.
pub type WalletPathLookup =
    std::sync::Arc<dyn Fn(&bitcoin::ScriptBuf) -> Option<(u32, u32)> + Send + Sync>;

/// A payment the node asks the signer to approve before sending it.
#[derive(Clone, Debug)]
pub enum PaymentApproval {
    /// Paying a BOLT 11 invoice.
    Invoice {
        /// The invoice text.
        invoice: String,
        /// The amount when the invoice has none.
        amount_msat: Option<u64>,
        /// The app's signed request for it, when an app asked.
        authorization: Option<micronode_signer_protocol::PaymentAuthorization>,
    },
    /// A spontaneous payment.
    Keysend {
        /// The payee.
        payee: bitcoin::secp256k1::PublicKey,
        /// The payment hash.
        payment_hash: [u8; 32],
        /// The amount.
        amount_msat: u64,
        /// The app's signed request for it, when an app asked.
        authorization: Option<micronode_signer_protocol::PaymentAuthorization>,
    },
}

/// What a validating signer will refuse, so the node does not ask for it: channels a signer
/// would refuse to sign for get stuck and end in a force close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignerLimits {
    /// Whether the node may forward payments; when false, its channels are private and it
    /// accepts no forwards.
    pub allow_routing: bool,
    /// The most a payment may spend in routing fees.
    pub fee_allowance: micronode_signer_protocol::FeeAllowance,
    /// The most value a channel may hold in dust HTLCs, in sat (the node's dust exposure cap).
    pub max_dust_in_flight_sat: u64,
    /// Whether the signer approves only payments an app of the tenant signed a request for.
    pub requires_app_requests: bool,
}

/// The wallet-signing interface, plus the few signer calls that are not LDK traits: public
/// descriptors out, signatures on PSBTs in, payment approvals, and the signer's presence.
pub trait WalletSigner: Send + Sync {
    /// The public descriptors of the on-chain wallet. They carry no private key.
    fn wallet_descriptors(&self) -> Result<WalletDescriptors, NodeError>;

    /// Signs every input of `psbt` that belongs to the wallet. Inputs carry BIP32 derivations
    /// (key origins) so the backend can find its keys. Implementations MUST refuse to sign
    /// what is unsafe for the key owner.
    fn sign_wallet_psbt(&self, psbt: &mut Psbt) -> Result<(), NodeError>;

    /// [`WalletSigner::sign_wallet_psbt`] for an on-chain send an app asked for, with its
    /// signed request (a validating signer then lets the output it names pay outside the
    /// wallet). In-process keys have nothing to check.
    fn sign_wallet_psbt_for_app(
        &self,
        psbt: &mut Psbt,
        authorization: Option<micronode_signer_protocol::PaymentAuthorization>,
    ) -> Result<(), NodeError> {
        let _ = authorization;
        self.sign_wallet_psbt(psbt)
    }

    /// Whether funding transactions must be signed only after the channel is set up with the
    /// signer (a validating signer checks that the funding output belongs to a known channel).
    fn signs_funding_after_setup(&self) -> bool {
        false
    }

    /// Gives the backend the wallet's script-to-path lookup, so it can tell the signer which
    /// wallet key a close or sweep pays to.
    fn attach_wallet_paths(&self, _lookup: WalletPathLookup) {}

    /// Asks the signer to approve an outgoing payment (velocity and fee policy). In-process
    /// keys approve everything; budgets are enforced by the API layer.
    fn approve_payment(&self, _payment: &PaymentApproval) -> Result<(), NodeError> {
        Ok(())
    }

    /// Whether the signer can sign right now. In-process keys always can.
    fn signer_online(&self) -> bool {
        true
    }

    /// Whether the tenant's signer said it revoked this node. In-process keys never do.
    fn signer_revoked(&self) -> bool {
        false
    }

    /// A counter that changes each time a remote signer connects; `None` for in-process keys.
    fn signer_connections(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Called (off the async runtime) after the signer reconnects, before LDK retries.
    fn resume_signing(&self) -> Result<(), NodeError> {
        Ok(())
    }

    /// The signer's limits the node must respect; `None` for in-process keys.
    fn payment_limits(&self) -> Option<SignerLimits> {
        None
    }

    /// The public key (`ed25519/<hex>`) of the tenant's app-token root, when the tenant's
    /// signer holds it: the node then verifies tokens with it and mints none.
    fn app_token_root(&self) -> Option<String> {
        None
    }

    /// Whether a signature was refused for a reason that may clear by itself (the signer's
    /// view of the chain behind the node's); clears the flag. The node then has LDK retry.
    fn take_retry_hint(&self) -> bool {
        false
    }
}

/// Everything the node may ask of its keys. Implementations MUST refuse to sign what is unsafe
/// for the key owner; the node treats every `Err` as "not signed" and never retries blindly.
pub trait KeysBackend:
    NodeSigner
    + SignerProvider<EcdsaSigner: Send + Sync + 'static>
    + EntropySource
    + OutputSpender
    + WalletSigner
    + 'static
{
}

impl<T> KeysBackend for T where
    T: NodeSigner
        + SignerProvider<EcdsaSigner: Send + Sync + 'static>
        + EntropySource
        + OutputSpender
        + WalletSigner
        + 'static
{
}

/// In-process keys: LDK's `KeysManager` for Lightning and a BIP84 account for the wallet, both
/// derived from one 32-byte seed.
pub struct LocalKeys {
    keys_manager: KeysManager,
    master: Xpriv,
    network: Network,
    secp: Secp256k1<All>,
}

impl LocalKeys {
    /// Builds the keys from a seed.
    pub fn from_seed(seed: &[u8; 32], network: Network) -> Result<Self, NodeError> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|e| NodeError::Internal(format!("system clock before 1970: {e}")))?;
        let keys_manager = KeysManager::new(seed, now.as_secs(), now.subsec_nanos(), true);
        let master = Xpriv::new_master(network, seed).map_err(|e| {
            NodeError::Internal(format!("cannot derive the wallet master key: {e}"))
        })?;
        Ok(Self {
            keys_manager,
            master,
            network,
            secp: Secp256k1::new(),
        })
    }

    /// Loads the seed from `dir/keys_seed`, creating it (mode 0600) on first use.
    pub fn load_or_create(dir: &Path, network: Network) -> Result<Self, NodeError> {
        micronode_files::own_private_dir(dir)?;
        let seed = load_or_create_seed(&dir.join("keys_seed"))?;
        Self::from_seed(&seed, network)
    }

    fn account_path(&self) -> Result<DerivationPath, NodeError> {
        let coin = if self.network == Network::Bitcoin {
            0
        } else {
            1
        };
        format!("m/84'/{coin}'/0'")
            .parse()
            .map_err(|e| NodeError::Internal(format!("bad derivation path: {e}")))
    }
}

impl WalletSigner for LocalKeys {
    fn wallet_descriptors(&self) -> Result<WalletDescriptors, NodeError> {
        let path = self.account_path()?;
        let account = self
            .master
            .derive_priv(&self.secp, &path)
            .map_err(|e| NodeError::Internal(format!("cannot derive the wallet account: {e}")))?;
        let xpub = Xpub::from_priv(&self.secp, &account);
        let fingerprint = self.master.fingerprint(&self.secp);
        let origin = format!(
            "[{fingerprint}/{}]",
            path.to_string().trim_start_matches("m/")
        );
        Ok(WalletDescriptors {
            external: format!("wpkh({origin}{xpub}/0/*)"),
            internal: format!("wpkh({origin}{xpub}/1/*)"),
        })
    }

    fn sign_wallet_psbt(&self, psbt: &mut Psbt) -> Result<(), NodeError> {
        psbt.sign(&self.master, &self.secp).map_err(|(_, errors)| {
            NodeError::Signer(format!(
                "wallet signing failed for {} input(s)",
                errors.len()
            ))
        })?;
        Ok(())
    }
}

// Delegation of LDK's traits to the KeysManager.
impl EntropySource for LocalKeys {
    fn get_secure_random_bytes(&self) -> [u8; 32] {
        self.keys_manager.get_secure_random_bytes()
    }
}

impl NodeSigner for LocalKeys {
    fn get_expanded_key(&self) -> lightning::ln::inbound_payment::ExpandedKey {
        self.keys_manager.get_expanded_key()
    }
    fn get_peer_storage_key(&self) -> lightning::sign::PeerStorageKey {
        self.keys_manager.get_peer_storage_key()
    }
    fn get_receive_auth_key(&self) -> lightning::sign::ReceiveAuthKey {
        self.keys_manager.get_receive_auth_key()
    }
    fn get_node_id(
        &self,
        recipient: lightning::sign::Recipient,
    ) -> Result<bitcoin::secp256k1::PublicKey, ()> {
        self.keys_manager.get_node_id(recipient)
    }
    fn ecdh(
        &self,
        recipient: lightning::sign::Recipient,
        other_key: &bitcoin::secp256k1::PublicKey,
        tweak: Option<&bitcoin::secp256k1::Scalar>,
    ) -> Result<bitcoin::secp256k1::ecdh::SharedSecret, ()> {
        self.keys_manager.ecdh(recipient, other_key, tweak)
    }
    fn sign_invoice(
        &self,
        invoice: &lightning_invoice::RawBolt11Invoice,
        recipient: lightning::sign::Recipient,
    ) -> Result<bitcoin::secp256k1::ecdsa::RecoverableSignature, ()> {
        self.keys_manager.sign_invoice(invoice, recipient)
    }
    fn sign_bolt12_invoice(
        &self,
        invoice: &lightning::offers::invoice::UnsignedBolt12Invoice,
    ) -> Result<bitcoin::secp256k1::schnorr::Signature, ()> {
        self.keys_manager.sign_bolt12_invoice(invoice)
    }
    fn sign_gossip_message(
        &self,
        msg: lightning::ln::msgs::UnsignedGossipMessage,
    ) -> Result<bitcoin::secp256k1::ecdsa::Signature, ()> {
        self.keys_manager.sign_gossip_message(msg)
    }
    fn sign_message(&self, msg: &[u8]) -> Result<String, ()> {
        self.keys_manager.sign_message(msg)
    }
}

impl SignerProvider for LocalKeys {
    type EcdsaSigner = lightning::sign::InMemorySigner;
    fn generate_channel_keys_id(&self, inbound: bool, user_channel_id: u128) -> [u8; 32] {
        self.keys_manager
            .generate_channel_keys_id(inbound, user_channel_id)
    }
    fn derive_channel_signer(&self, channel_keys_id: [u8; 32]) -> Self::EcdsaSigner {
        self.keys_manager.derive_channel_signer(channel_keys_id)
    }
    fn get_destination_script(&self, channel_keys_id: [u8; 32]) -> Result<bitcoin::ScriptBuf, ()> {
        self.keys_manager.get_destination_script(channel_keys_id)
    }
    fn get_shutdown_scriptpubkey(&self) -> Result<lightning::ln::script::ShutdownScript, ()> {
        self.keys_manager.get_shutdown_scriptpubkey()
    }
}

impl OutputSpender for LocalKeys {
    fn spend_spendable_outputs(
        &self,
        descriptors: &[&lightning::sign::SpendableOutputDescriptor],
        outputs: Vec<bitcoin::TxOut>,
        change_destination_script: bitcoin::ScriptBuf,
        feerate_sat_per_1000_weight: u32,
        locktime: Option<bitcoin::absolute::LockTime>,
        secp_ctx: &Secp256k1<All>,
    ) -> Result<bitcoin::Transaction, ()> {
        self.keys_manager.spend_spendable_outputs(
            descriptors,
            outputs,
            change_destination_script,
            feerate_sat_per_1000_weight,
            locktime,
            secp_ctx,
        )
    }
}

/// Reads a 32-byte seed from `path`, or creates one from the OS's randomness (owner-only).
fn load_or_create_seed(path: &Path) -> Result<[u8; 32], NodeError> {
    if let Some(bytes) = micronode_files::read_private(path)? {
        return bytes.as_slice().try_into().map_err(|_| {
            NodeError::Config(format!("{} must hold exactly 32 bytes", path.display()))
        });
    }
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    micronode_files::write_new_private(path, &seed)?;
    Ok(seed)
}
