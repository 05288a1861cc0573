//! Every message the signer signs with a node or channel key is parsed and checked first, so it
//! can never be a transaction digest in disguise.
//!
//! VLS signs gossip and channel announcements as given: `sha256d` of whatever bytes parse as
//! the message. A channel announcement's encoding starts with an arbitrary-length feature
//! field and may end with arbitrary "excess data", so a node that supplies the bytes controls
//! almost all of them, and the channel's *funding key* signs the digest. If those bytes are a
//! transaction's BIP 143 sighash preimage, the signature spends the funding output. Here an
//! announcement is signed only if it names the signer's network (its genesis hash), this node,
//! this channel's funding key and the counterparty's, and the short channel id of the funding
//! output as the signer's own chain view saw it confirmed, with no excess data: 32 + 33 + 33
//! fixed bytes at fixed offsets that no sighash preimage can match.
//!
//! Node-key messages (node announcements, channel updates, invoices, `signmessage`) cannot move
//! funds (the node key is in no script), but are checked all the same: they speak for the
//! tenant's node. `signmessage` is signed under the `"Lightning Signed Message:"` prefix.

use lightning_signer::bitcoin::constants::ChainHash;
use lightning_signer::bitcoin::secp256k1::PublicKey;
use lightning_signer::bitcoin::OutPoint;
use lightning_signer::channel::{ChannelBase, ChannelSlot};
use lightning_signer::lightning::ln::msgs::{
    UnsignedChannelAnnouncement, UnsignedChannelUpdate, UnsignedNodeAnnouncement,
};
use lightning_signer::lightning::routing::gossip::NodeId;
use lightning_signer::lightning_invoice::{Currency, RawBolt11Invoice};

use crate::engine::SignerEngine;
use crate::outcome::Outcome;

/// The rule named when a message to sign is not what it claims to be.
pub const GOSSIP_RULE: &str = "policy-gossip-content";
/// The rule named when an invoice to sign is not this node's.
pub const INVOICE_RULE: &str = "policy-invoice-content";

fn refuse(message: impl Into<String>) -> Outcome {
    Outcome::refused(GOSSIP_RULE, message)
}

/// The short channel id of an output: block height, index in the block, output index.
pub(crate) fn short_channel_id(height: u32, tx_index: u32, vout: u32) -> Option<u64> {
    if height >= 1 << 24 || tx_index >= 1 << 24 || vout >= 1 << 16 {
        return None;
    }
    Some((u64::from(height) << 40) | (u64::from(tx_index) << 16) | u64::from(vout))
}

impl SignerEngine {
    fn chain_hash(&self) -> ChainHash {
        ChainHash::using_genesis_block(self.network)
    }

    fn is_us(&self, id: &NodeId) -> bool {
        id.as_slice() == self.node_id().serialize()
    }

    /// The short channel id of `funding` as the chain view saw it confirmed; a temporary
    /// refusal if it has not (yet).
    fn confirmed_scid(&self, funding: &OutPoint) -> Result<u64, Outcome> {
        let (height, index) = self.store.funding_position(funding)?.ok_or_else(|| {
            Outcome::temporarily_refused(
                GOSSIP_RULE,
                format!("funding output {funding} is not confirmed in the signer's chain view"),
            )
        })?;
        short_channel_id(height, index, funding.vout)
            .ok_or_else(|| refuse("the funding position does not fit a short channel id"))
    }

    /// Checks a channel announcement for the channel with these funding keys and output (signed
    /// with its funding key, or with the node key for the node's half).
    pub(crate) fn check_channel_announcement(
        &self,
        our_funding_key: &PublicKey,
        their_funding_key: &PublicKey,
        funding: &OutPoint,
        msg: &UnsignedChannelAnnouncement,
    ) -> Result<(), Outcome> {
        if msg.chain_hash != self.chain_hash() {
            return Err(refuse("the announcement is for another chain"));
        }
        if !msg.excess_data.is_empty() {
            return Err(refuse("the announcement carries excess data"));
        }
        if msg.features.requires_unknown_bits() {
            return Err(refuse("the announcement requires unknown features"));
        }
        let ours_first = if self.is_us(&msg.node_id_1) {
            true
        } else if self.is_us(&msg.node_id_2) {
            false
        } else {
            return Err(refuse("the announcement does not name this node"));
        };
        let our_funding = NodeId::from_pubkey(our_funding_key);
        let their_funding = NodeId::from_pubkey(their_funding_key);
        let (mine, theirs) = if ours_first {
            (&msg.bitcoin_key_1, &msg.bitcoin_key_2)
        } else {
            (&msg.bitcoin_key_2, &msg.bitcoin_key_1)
        };
        if *mine != our_funding || *theirs != their_funding {
            return Err(refuse(
                "the announcement's funding keys are not this channel's",
            ));
        }
        let scid = self.confirmed_scid(funding)?;
        if msg.short_channel_id != scid {
            return Err(refuse(format!(
                "the announcement's short channel id {} is not the funding output's {scid}",
                msg.short_channel_id
            )));
        }
        Ok(())
    }

    /// Checks a node-key channel announcement: it must announce one of this signer's channels.
    pub(crate) fn check_node_channel_announcement(
        &self,
        msg: &UnsignedChannelAnnouncement,
    ) -> Result<(), Outcome> {
        for (_, slot) in self.ready_channels() {
            let keys = {
                let guard = slot.lock().unwrap_or_else(|p| p.into_inner());
                match &*guard {
                    ChannelSlot::Ready(chan) => Some((
                        chan.get_channel_basepoints().funding_pubkey,
                        chan.setup.counterparty_points.funding_pubkey,
                        chan.setup.funding_outpoint,
                    )),
                    ChannelSlot::Stub(_) => None,
                }
            };
            let Some((ours, theirs, funding)) = keys else {
                continue;
            };
            if self.store.funding_position(&funding)?.is_some()
                && self.confirmed_scid(&funding)? == msg.short_channel_id
            {
                return self.check_channel_announcement(&ours, &theirs, &funding, msg);
            }
        }
        Err(refuse(format!(
            "short channel id {} is none of this node's confirmed channels",
            msg.short_channel_id
        )))
    }

    /// Checks a node announcement: this node, nothing unparsed.
    pub(crate) fn check_node_announcement(
        &self,
        msg: &UnsignedNodeAnnouncement,
    ) -> Result<(), Outcome> {
        if !self.is_us(&msg.node_id) {
            return Err(refuse("the node announcement is for another node"));
        }
        if !msg.excess_data.is_empty() || !msg.excess_address_data.is_empty() {
            return Err(refuse("the node announcement carries excess data"));
        }
        if msg.features.requires_unknown_bits() {
            return Err(refuse("the node announcement requires unknown features"));
        }
        Ok(())
    }

    /// Checks a channel update: this chain, nothing unparsed. Its short channel id is not
    /// checked: private channels use aliases the signer does not know; the node key signs it
    /// and guards no funds.
    pub(crate) fn check_channel_update(&self, msg: &UnsignedChannelUpdate) -> Result<(), Outcome> {
        if msg.chain_hash != self.chain_hash() {
            return Err(refuse("the channel update is for another chain"));
        }
        if !msg.excess_data.is_empty() {
            return Err(refuse("the channel update carries excess data"));
        }
        Ok(())
    }

    /// Checks an invoice this node is to issue: the signer's network, this node as payee (if
    /// named), a payment hash and a payment secret.
    pub(crate) fn check_invoice(&self, raw: &RawBolt11Invoice) -> Result<(), Outcome> {
        let currency = Currency::from(self.network);
        if raw.currency() != currency {
            return Err(Outcome::refused(
                INVOICE_RULE,
                format!(
                    "the invoice is for {:?}, the signer is on {}",
                    raw.currency(),
                    self.network
                ),
            ));
        }
        if let Some(payee) = raw.payee_pub_key() {
            let payee: &PublicKey = &payee.0;
            if *payee != self.node_id() {
                return Err(Outcome::refused(
                    INVOICE_RULE,
                    "the invoice names another payee",
                ));
            }
        }
        if raw.payment_hash().is_none() || raw.payment_secret().is_none() {
            return Err(Outcome::refused(
                INVOICE_RULE,
                "the invoice lacks a payment hash or payment secret",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::short_channel_id;

    #[test]
    fn short_channel_ids_pack_height_index_and_output() {
        assert_eq!(short_channel_id(1, 2, 3), Some((1 << 40) | (2 << 16) | 3));
        assert_eq!(short_channel_id(1 << 24, 0, 0), None);
        assert_eq!(short_channel_id(0, 0, 1 << 16), None);
    }
}
