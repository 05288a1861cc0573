//! [`RemoteKeys`]: the node's keys backend when the keys live in the tenant's signer.
//!
//! Every signature is a request to the signer. The node keeps only public material (node id,
//! wallet xpub, channel public keys, per-commitment points) plus three non-spending keys the
//! signer hands over at connect time, in memory only (see [`SignerHello`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use bitcoin::bip32::Xpub;
use bitcoin::secp256k1::ecdh::SharedSecret;
use bitcoin::secp256k1::ecdsa::{RecoverableSignature, RecoveryId, Signature};
use bitcoin::secp256k1::{All, PublicKey, Scalar, Secp256k1};
use bitcoin::{Psbt, ScriptBuf, Transaction, TxOut};
use lightning::ln::chan_utils::ChannelPublicKeys;
use lightning::ln::inbound_payment::ExpandedKey;
use lightning::ln::msgs::UnsignedGossipMessage;
use lightning::ln::script::ShutdownScript;
use lightning::sign::{
    EntropySource, NodeSigner, OutputSpender, PeerStorageKey, ReceiveAuthKey, Recipient,
    SignerProvider, SpendableOutputDescriptor,
};
use lightning::util::ser::{Readable, Writeable};
use lightning_invoice::RawBolt11Invoice;

use super::channel_signer::{ChannelShared, RemoteChannelSigner};
use super::protocol::{ChannelOp, Hex, SignerHello, SignerReply, SignerRequest, PROTOCOL_VERSION};
use super::transport::{RemoteError, SignerTransport};
use crate::error::NodeError;
use crate::keys::{WalletDescriptors, WalletPathLookup, WalletSigner};

/// The keys backend of a watch-only node: LDK's signer traits, forwarded to the tenant's signer.
pub struct RemoteKeys {
    core: Arc<RemoteCore>,
    node_id: PublicKey,
    wallet_xpub: Xpub,
    inbound_payment_key: ExpandedKey,
    peer_storage_key: PeerStorageKey,
    receive_auth_key: ReceiveAuthKey,
    channels: Mutex<HashMap<[u8; 32], Arc<ChannelShared>>>,
    pubkey_cache: PathBuf,
    limits: crate::keys::SignerLimits,
    app_token_root: String,
    /// The key the signer released to seal the node's state in a fleet's database.
    state_key: zeroize::Zeroizing<[u8; 32]>,
}

/// What channel signers share with the backend: the transport, the queue of validations made
/// while the signer was away, and the wallet's script-to-path lookup.
pub struct RemoteCore {
    transport: Arc<dyn SignerTransport>,
    /// Validations LDK made while the signer was away, replayed first when it returns.
    pending: Mutex<Vec<([u8; 32], ChannelOp)>>,
    wallet_paths: OnceLock<WalletPathLookup>,
    /// Set when the signer refused something temporarily (its chain view was behind).
    retry_hint: std::sync::atomic::AtomicBool,
    /// Set once the signer answered that the tenant revoked this node.
    revoked: std::sync::atomic::AtomicBool,
}

fn key32(bytes: &Hex, what: &str) -> Result<[u8; 32], NodeError> {
    bytes
        .0
        .as_slice()
        .try_into()
        .map_err(|_| NodeError::Signer(format!("{what} must be 32 bytes")))
}

impl RemoteKeys {
    /// Greets the connected signer and builds the backend. `pubkey_cache` is a file (public
    /// data only) where channel public keys are kept so channels can be loaded at start-up.
    pub fn connect(
        transport: Arc<dyn SignerTransport>,
        pubkey_cache: PathBuf,
    ) -> Result<Self, NodeError> {
        let reply = transport.call(SignerRequest::Hello {
            version: PROTOCOL_VERSION,
        })?;
        let SignerReply::Hello(hello) = reply else {
            return Err(NodeError::Signer("unexpected answer to hello".into()));
        };
        Self::from_hello(transport, hello, pubkey_cache)
    }

    fn from_hello(
        transport: Arc<dyn SignerTransport>,
        hello: SignerHello,
        pubkey_cache: PathBuf,
    ) -> Result<Self, NodeError> {
        if hello.version != PROTOCOL_VERSION {
            return Err(NodeError::Signer(format!(
                "signer speaks protocol {}, this node {PROTOCOL_VERSION}",
                hello.version
            )));
        }
        let node_id = PublicKey::from_slice(&hello.node_id.0)
            .map_err(|e| NodeError::Signer(format!("bad node id from signer: {e}")))?;
        let wallet_xpub = Xpub::from_str(&hello.wallet_xpub)
            .map_err(|e| NodeError::Signer(format!("bad wallet xpub from signer: {e}")))?;
        let channels = load_pubkey_cache(&pubkey_cache);
        Ok(Self {
            core: Arc::new(RemoteCore {
                transport,
                pending: Mutex::new(Vec::new()),
                wallet_paths: OnceLock::new(),
                retry_hint: std::sync::atomic::AtomicBool::new(false),
                revoked: std::sync::atomic::AtomicBool::new(false),
            }),
            node_id,
            wallet_xpub,
            inbound_payment_key: ExpandedKey::new(key32(&hello.inbound_payment_key, "key")?),
            peer_storage_key: PeerStorageKey {
                inner: key32(&hello.peer_storage_key, "peer storage key")?,
            },
            receive_auth_key: ReceiveAuthKey(key32(&hello.receive_auth_key, "auth key")?),
            limits: crate::keys::SignerLimits {
                allow_routing: hello.allow_routing,
                fee_allowance: hello.fee_allowance,
                max_dust_in_flight_sat: hello.max_dust_in_flight_sat,
                requires_app_requests: hello.requires_app_requests,
            },
            app_token_root: hello.app_token_root,
            state_key: zeroize::Zeroizing::new(key32(&hello.state_key, "state key")?),
            channels: Mutex::new(
                channels
                    .into_iter()
                    .map(|(id, keys)| (id, Arc::new(ChannelShared::new(keys))))
                    .collect(),
            ),
            pubkey_cache,
        })
    }

    /// The Lightning node id (the signer's).
    pub fn node_id(&self) -> PublicKey {
        self.node_id
    }

    /// Ends the signer link for good (the node has stopped and will not run again in this
    /// process): its port and thread are freed even while something still holds the node.
    pub fn close_link(&self) {
        self.core.transport.close();
    }

    /// The key the signer released to seal this node's state in a fleet's database (see
    /// `SignerHello::state_key`).
    pub fn state_key(&self) -> crate::store::DataKey {
        crate::store::DataKey::from_bytes(*self.state_key)
    }

    fn call(&self, request: SignerRequest) -> Result<SignerReply, RemoteError> {
        self.core.call(request)
    }

    /// Whether the signer is connected.
    pub fn is_online(&self) -> bool {
        self.core.is_online()
    }

    fn channel(&self, keys_id: [u8; 32]) -> Result<Arc<ChannelShared>, RemoteError> {
        if let Some(shared) = self.lock_channels().get(&keys_id) {
            return Ok(shared.clone());
        }
        let reply = self.call(SignerRequest::ChannelPubkeys {
            keys_id: Hex(keys_id.to_vec()),
        })?;
        self.remember_channel(reply).map(|(_, shared)| shared)
    }

    fn remember_channel(
        &self,
        reply: SignerReply,
    ) -> Result<([u8; 32], Arc<ChannelShared>), RemoteError> {
        let SignerReply::ChannelKeys { keys_id, pubkeys } = reply else {
            return Err(RemoteError::Failed("expected channel keys".into()));
        };
        let keys_id: [u8; 32] = keys_id
            .0
            .as_slice()
            .try_into()
            .map_err(|_| RemoteError::Failed("keys id must be 32 bytes".into()))?;
        let pubkeys = ChannelPublicKeys::read(&mut &pubkeys.0[..])
            .map_err(|e| RemoteError::Failed(format!("bad channel keys: {e:?}")))?;
        let shared = Arc::new(ChannelShared::new(pubkeys));
        let mut channels = self.lock_channels();
        channels.insert(keys_id, shared.clone());
        save_pubkey_cache(&self.pubkey_cache, &channels);
        Ok((keys_id, shared))
    }

    fn lock_channels(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<ChannelShared>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A stand-in when the signer vanished between the online check and a channel's creation:
    /// every key is the node id, so nothing can be signed and the channel never opens.
    fn unusable_pubkeys(&self) -> ChannelPublicKeys {
        use lightning::ln::channel_keys::{
            DelayedPaymentBasepoint, HtlcBasepoint, RevocationBasepoint,
        };
        ChannelPublicKeys {
            funding_pubkey: self.node_id,
            revocation_basepoint: RevocationBasepoint(self.node_id),
            payment_point: self.node_id,
            delayed_payment_basepoint: DelayedPaymentBasepoint(self.node_id),
            htlc_basepoint: HtlcBasepoint(self.node_id),
        }
    }
}

impl RemoteCore {
    /// Sends a request, replaying queued validations first so the signer sees channel states
    /// in LDK's order.
    pub(crate) fn call(&self, request: SignerRequest) -> Result<SignerReply, RemoteError> {
        self.flush_pending()?;
        let result = self.transport.call(request);
        match &result {
            Err(RemoteError::Refused {
                temporary: true, ..
            }) => self
                .retry_hint
                .store(true, std::sync::atomic::Ordering::SeqCst),
            Err(RemoteError::Revoked) => self
                .revoked
                .store(true, std::sync::atomic::Ordering::SeqCst),
            _ => {}
        }
        result
    }

    /// Whether the signer answered that the tenant revoked this node.
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Replays validations queued while the signer was away (or refused temporarily). A
    /// permanent refusal is logged and dropped: the signer then refuses that channel's next
    /// signature, which keeps the funds safe. A temporary one stops the replay, keeping the
    /// order, until the next retry.
    pub fn flush_pending(&self) -> Result<(), RemoteError> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((keys_id, op)) = pending.first().cloned() {
            let request = SignerRequest::Channel {
                keys_id: Hex(keys_id.to_vec()),
                op,
            };
            match self.transport.call(request) {
                Ok(_) => {}
                Err(RemoteError::Offline) => return Err(RemoteError::Offline),
                Err(
                    e @ RemoteError::Refused {
                        temporary: true, ..
                    },
                ) => {
                    // The signer's chain view is behind: keep the order, try again later.
                    self.retry_hint
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    return Err(e);
                }
                Err(e) => {
                    tracing::error!(error = %e, "signer refused a state validated while it was away")
                }
            }
            pending.remove(0);
        }
        Ok(())
    }

    /// Queues a validation LDK needs answered now while the signer is away.
    pub(crate) fn queue_validation(&self, keys_id: [u8; 32], op: ChannelOp) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((keys_id, op));
    }

    /// Whether the signer is connected.
    pub fn is_online(&self) -> bool {
        self.transport.is_online()
    }

    /// The wallet path (chain, index) of a wallet script, if it is one.
    pub(crate) fn wallet_path(&self, script: &ScriptBuf) -> Vec<u32> {
        self.wallet_paths
            .get()
            .and_then(|lookup| lookup(script))
            .map(|(chain, index)| vec![chain, index])
            .unwrap_or_default()
    }
}

fn load_pubkey_cache(path: &std::path::Path) -> HashMap<[u8; 32], ChannelPublicKeys> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let Ok(entries) = serde_json::from_str::<HashMap<String, String>>(&text) else {
        tracing::warn!(path = %path.display(), "channel key cache unreadable; asking the signer");
        return HashMap::new();
    };
    entries
        .into_iter()
        .filter_map(|(id, keys)| {
            let id: [u8; 32] = hex::decode(id).ok()?.try_into().ok()?;
            let keys = ChannelPublicKeys::read(&mut &hex::decode(keys).ok()?[..]).ok()?;
            Some((id, keys))
        })
        .collect()
}

fn save_pubkey_cache(path: &std::path::Path, channels: &HashMap<[u8; 32], Arc<ChannelShared>>) {
    let entries: HashMap<String, String> = channels
        .iter()
        .map(|(id, shared)| (hex::encode(id), hex::encode(shared.pubkeys.encode())))
        .collect();
    let result = serde_json::to_vec(&entries)
        .map_err(|e| NodeError::Internal(e.to_string()))
        .and_then(|bytes| Ok(micronode_files::write_private(path, &bytes)?));
    if let Err(e) = result {
        tracing::error!(error = %e, "could not save the channel key cache");
    }
}

impl WalletSigner for RemoteKeys {
    fn wallet_descriptors(&self) -> Result<WalletDescriptors, NodeError> {
        let (external, internal) =
            super::protocol::wallet_descriptors(&self.wallet_xpub.to_string());
        Ok(WalletDescriptors { external, internal })
    }

    fn sign_wallet_psbt(&self, psbt: &mut Psbt) -> Result<(), NodeError> {
        self.sign_wallet_psbt_for_app(psbt, None)
    }

    fn sign_wallet_psbt_for_app(
        &self,
        psbt: &mut Psbt,
        authorization: Option<micronode_signer_protocol::PaymentAuthorization>,
    ) -> Result<(), NodeError> {
        let reply = self.call(SignerRequest::SignWalletPsbt {
            psbt: Hex(psbt.serialize()),
            authorization,
        })?;
        let SignerReply::Psbt { psbt: signed } = reply else {
            return Err(NodeError::Signer("expected a PSBT".into()));
        };
        let signed = Psbt::deserialize(&signed.0)
            .map_err(|e| NodeError::Signer(format!("bad PSBT from signer: {e}")))?;
        if signed.unsigned_tx != psbt.unsigned_tx {
            return Err(NodeError::Signer(
                "signer returned a different transaction".into(),
            ));
        }
        *psbt = signed;
        Ok(())
    }

    fn signs_funding_after_setup(&self) -> bool {
        true
    }

    fn attach_wallet_paths(&self, lookup: WalletPathLookup) {
        let _ = self.core.wallet_paths.set(lookup);
    }

    fn approve_payment(&self, request: &crate::keys::PaymentApproval) -> Result<(), NodeError> {
        let request = match request {
            crate::keys::PaymentApproval::Invoice {
                invoice,
                amount_msat,
                authorization,
            } => SignerRequest::ApproveInvoice {
                invoice: invoice.clone(),
                amount_msat: *amount_msat,
                authorization: authorization.clone(),
            },
            crate::keys::PaymentApproval::Keysend {
                payee,
                payment_hash,
                amount_msat,
                authorization,
            } => SignerRequest::ApproveKeysend {
                payee: Hex(payee.serialize().to_vec()),
                payment_hash: Hex(payment_hash.to_vec()),
                amount_msat: *amount_msat,
                authorization: authorization.clone(),
            },
        };
        self.call(request)?;
        Ok(())
    }

    fn signer_online(&self) -> bool {
        self.is_online()
    }

    fn signer_revoked(&self) -> bool {
        self.core.is_revoked()
    }

    fn signer_connections(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.core.transport.connections())
    }

    fn resume_signing(&self) -> Result<(), NodeError> {
        self.core.flush_pending().map_err(NodeError::from)
    }

    fn payment_limits(&self) -> Option<crate::keys::SignerLimits> {
        Some(self.limits)
    }

    fn app_token_root(&self) -> Option<String> {
        Some(self.app_token_root.clone())
    }

    fn take_retry_hint(&self) -> bool {
        self.core
            .retry_hint
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

impl EntropySource for RemoteKeys {
    fn get_secure_random_bytes(&self) -> [u8; 32] {
        // Randomness for onions and ids need not come from the signer.
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        bytes
    }
}

fn expect_signature(reply: SignerReply) -> Result<Signature, ()> {
    match reply {
        SignerReply::Signature { sig } => Signature::from_compact(&sig.0).map_err(|_| ()),
        _ => Err(()),
    }
}

pub(crate) fn log_failure(what: &str, e: &RemoteError) {
    match e {
        RemoteError::Offline => tracing::debug!(op = what, "signer offline"),
        other => tracing::warn!(op = what, error = %other, "signer did not sign"),
    }
}

impl NodeSigner for RemoteKeys {
    fn get_expanded_key(&self) -> ExpandedKey {
        self.inbound_payment_key
    }
    fn get_peer_storage_key(&self) -> PeerStorageKey {
        self.peer_storage_key
    }
    fn get_receive_auth_key(&self) -> ReceiveAuthKey {
        self.receive_auth_key
    }
    fn get_node_id(&self, recipient: Recipient) -> Result<PublicKey, ()> {
        match recipient {
            Recipient::Node => Ok(self.node_id),
            Recipient::PhantomNode => Err(()),
        }
    }
    fn ecdh(
        &self,
        recipient: Recipient,
        other_key: &PublicKey,
        tweak: Option<&Scalar>,
    ) -> Result<SharedSecret, ()> {
        if !matches!(recipient, Recipient::Node) {
            return Err(());
        }
        let reply = self
            .call(SignerRequest::Ecdh {
                other_key: Hex(other_key.serialize().to_vec()),
                tweak: tweak.map(|t| Hex(t.to_be_bytes().to_vec())),
            })
            .map_err(|e| log_failure("ecdh", &e))?;
        match reply {
            SignerReply::Secret32 { bytes } => SharedSecret::from_slice(&bytes.0).map_err(|_| ()),
            _ => Err(()),
        }
    }
    fn sign_invoice(
        &self,
        invoice: &RawBolt11Invoice,
        recipient: Recipient,
    ) -> Result<RecoverableSignature, ()> {
        if !matches!(recipient, Recipient::Node) {
            return Err(());
        }
        // The raw invoice travels as an invoice string with a placeholder signature.
        let placeholder = invoice
            .clone()
            .sign::<_, ()>(|_| {
                let id = RecoveryId::from_i32(0).map_err(|_| ())?;
                RecoverableSignature::from_compact(&[1u8; 64], id).map_err(|_| ())
            })?
            .to_string();
        let reply = self
            .call(SignerRequest::SignInvoice {
                invoice: placeholder,
            })
            .map_err(|e| log_failure("sign_invoice", &e))?;
        let SignerReply::RecoverableSignature { sig } = reply else {
            return Err(());
        };
        let (id, compact) = sig.0.split_first().ok_or(())?;
        let id = RecoveryId::from_i32(i32::from(*id)).map_err(|_| ())?;
        RecoverableSignature::from_compact(compact, id).map_err(|_| ())
    }
    fn sign_bolt12_invoice(
        &self,
        _invoice: &lightning::offers::invoice::UnsignedBolt12Invoice,
    ) -> Result<bitcoin::secp256k1::schnorr::Signature, ()> {
        tracing::warn!("BOLT 12 invoices are not supported with a remote signer yet");
        Err(())
    }
    fn sign_gossip_message(&self, msg: UnsignedGossipMessage) -> Result<Signature, ()> {
        let message = match &msg {
            UnsignedGossipMessage::ChannelAnnouncement(m) => typed(256, m),
            UnsignedGossipMessage::ChannelUpdate(m) => typed(258, m),
            UnsignedGossipMessage::NodeAnnouncement(m) => typed(257, m),
        };
        let reply = self.call(SignerRequest::SignGossip {
            message: Hex(message.clone()),
        });
        match reply {
            Ok(reply) => expect_signature(reply),
            // LDK panics when it cannot sign a channel_update (it expects a signer that is
            // always there), which would take the node down while the tenant's signer is
            // away. A placeholder keeps it up: peers apply a private channel's update without
            // checking its signature, and gossip peers drop it until the next signed one.
            Err(e) if matches!(msg, UnsignedGossipMessage::ChannelUpdate(_)) => {
                tracing::warn!(error = %e, "channel_update sent with a placeholder signature: the signer is unavailable");
                Ok(placeholder_signature(&message))
            }
            Err(e) => {
                log_failure("sign_gossip", &e);
                Err(())
            }
        }
    }
    fn sign_message(&self, msg: &[u8]) -> Result<String, ()> {
        let reply = self
            .call(SignerRequest::SignMessage {
                message: Hex(msg.to_vec()),
            })
            .map_err(|e| log_failure("sign_message", &e))?;
        match reply {
            SignerReply::MessageSignature { signature } => Ok(signature),
            _ => Err(()),
        }
    }
}

/// A well-formed signature over `message` by a throwaway key: valid encoding, invalid for the
/// node key.
fn placeholder_signature(message: &[u8]) -> Signature {
    use bitcoin::hashes::{sha256d, Hash};
    let digest = sha256d::Hash::hash(message).to_byte_array();
    let key = bitcoin::secp256k1::SecretKey::new(&mut rand::thread_rng());
    Secp256k1::signing_only().sign_ecdsa(&bitcoin::secp256k1::Message::from_digest(digest), &key)
}

fn typed(kind: u16, message: &impl Writeable) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend(message.encode());
    out
}

impl SignerProvider for RemoteKeys {
    type EcdsaSigner = RemoteChannelSigner;

    fn generate_channel_keys_id(&self, inbound: bool, user_channel_id: u128) -> [u8; 32] {
        let created = self
            .call(SignerRequest::NewChannel {
                inbound,
                user_channel_id,
            })
            .and_then(|reply| self.remember_channel(reply));
        match created {
            Ok((keys_id, _)) => keys_id,
            Err(e) => {
                tracing::error!(error = %e, "signer could not create channel keys");
                self.get_secure_random_bytes()
            }
        }
    }

    fn derive_channel_signer(&self, channel_keys_id: [u8; 32]) -> RemoteChannelSigner {
        let shared = self.channel(channel_keys_id).unwrap_or_else(|e| {
            tracing::error!(error = %e, "no public keys for a channel; it cannot be signed");
            Arc::new(ChannelShared::new(self.unusable_pubkeys()))
        });
        RemoteChannelSigner::new(channel_keys_id, shared, self.core.clone())
    }

    fn get_destination_script(&self, _channel_keys_id: [u8; 32]) -> Result<ScriptBuf, ()> {
        // The node takes destinations from its watch-only wallet (see `seam`).
        Err(())
    }

    fn get_shutdown_scriptpubkey(&self) -> Result<ShutdownScript, ()> {
        Err(())
    }
}

impl OutputSpender for RemoteKeys {
    fn spend_spendable_outputs(
        &self,
        descriptors: &[&SpendableOutputDescriptor],
        outputs: Vec<TxOut>,
        change_destination_script: ScriptBuf,
        feerate_sat_per_1000_weight: u32,
        locktime: Option<bitcoin::absolute::LockTime>,
        _secp_ctx: &Secp256k1<All>,
    ) -> Result<Transaction, ()> {
        let change_path = self.core.wallet_path(&change_destination_script);
        let reply = self
            .call(SignerRequest::SpendOutputs {
                descriptors: descriptors.iter().map(|d| Hex(d.encode())).collect(),
                outputs: Hex(bitcoin::consensus::serialize(&outputs)),
                change_script: Hex(change_destination_script.to_bytes()),
                change_path,
                feerate_sat_per_kw: feerate_sat_per_1000_weight,
                locktime: locktime.map(|l| l.to_consensus_u32()),
            })
            .map_err(|e| log_failure("spend_outputs", &e))?;
        match reply {
            SignerReply::Transaction { tx } => {
                bitcoin::consensus::deserialize(&tx.0).map_err(|_| ())
            }
            _ => Err(()),
        }
    }
}
