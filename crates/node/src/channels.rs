//! Peers and channels.

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use lightning::chain::channelmonitor::Balance;
use lightning::ln::types::ChannelId;
use serde::Serialize;

use crate::error::NodeError;
use crate::keys::KeysBackend;
use crate::node::Node;

/// How long to wait for a peer handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    /// The peer's node id.
    pub node_id: String,
    /// The peer's address, if known.
    pub address: Option<String>,
    /// Whether the peer connected to us.
    pub inbound: bool,
}

/// A channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelInfo {
    /// The channel id (hex).
    pub channel_id: String,
    /// The counterparty's node id.
    pub counterparty: String,
    /// The funding outpoint `txid:vout`, once known.
    pub funding_txo: Option<String>,
    /// The short channel id, once confirmed.
    pub short_channel_id: Option<u64>,
    /// Total channel size (sat).
    pub capacity_sat: u64,
    /// Our balance in the channel (sat), including the reserve and, if we funded the channel,
    /// the commitment transaction's fee; HTLCs in flight are not counted, nor the two 330-sat
    /// anchor outputs the funder pays for.
    pub balance_sat: u64,
    /// What we can send now (msat).
    pub outbound_capacity_msat: u64,
    /// What we can receive now (msat).
    pub inbound_capacity_msat: u64,
    /// HTLCs in flight, both ways.
    pub pending_htlcs: usize,
    /// Confirmations of the funding transaction.
    pub confirmations: Option<u32>,
    /// Confirmations required.
    pub confirmations_required: Option<u32>,
    /// Whether we opened it.
    pub is_outbound: bool,
    /// Whether the channel is ready (funded and confirmed).
    pub is_ready: bool,
    /// Whether the channel can carry payments now (ready and peer connected).
    pub is_usable: bool,
    /// Whether the channel is announced to the network.
    pub is_announced: bool,
    /// Whether the channel has anchor outputs (`option_anchors_zero_fee_htlc_tx`); `false` is
    /// a `static_remotekey` channel with a peer that does not do anchors.
    pub anchors: bool,
}

/// Parses a hex channel id.
pub fn parse_channel_id(s: &str) -> Result<ChannelId, NodeError> {
    let bytes = hex::decode(s)
        .map_err(|_| NodeError::InvalidInput(format!("channel id {s:?} is not hex")))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| NodeError::InvalidInput(format!("channel id {s:?} is not 32 bytes")))?;
    Ok(ChannelId(arr))
}

/// Parses a node id.
pub fn parse_node_id(s: &str) -> Result<PublicKey, NodeError> {
    s.parse()
        .map_err(|_| NodeError::InvalidInput(format!("node id {s:?} is not a public key")))
}

impl<K: KeysBackend> Node<K> {
    /// Connects to a peer and waits for the handshake. Remembers the address for reconnects.
    pub async fn connect_peer(
        &self,
        node_id: PublicKey,
        addr: SocketAddr,
    ) -> Result<(), NodeError> {
        self.ensure_running()?;
        if node_id == self.inner.node_id {
            return Err(NodeError::InvalidInput(
                "cannot connect to ourselves".into(),
            ));
        }
        if self.inner.peer_manager.peer_by_node_id(&node_id).is_none() {
            let max = self.inner.config.channels.max_peers;
            let have = self.inner.peer_manager.list_peers().len();
            if max > 0 && have >= max as usize {
                return Err(NodeError::Connection(format!(
                    "the node has {have} peers, its cap is {max}"
                )));
            }
            let conn =
                self.inner.dial(node_id, addr).await.ok_or_else(|| {
                    NodeError::Connection(format!("cannot reach {node_id}@{addr}"))
                })?;
            let mut closed = Box::pin(tokio::spawn(conn));
            let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
            loop {
                if self.inner.peer_manager.peer_by_node_id(&node_id).is_some() {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(NodeError::Connection(format!(
                        "handshake with {node_id}@{addr} timed out"
                    )));
                }
                tokio::select! {
                    _ = &mut closed => {
                        return Err(NodeError::Connection(format!(
                            "{node_id}@{addr} closed the connection (wrong node id?)"
                        )));
                    }
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
        }
        // A store write: off the async workers.
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.peers.remember(&node_id, addr))
            .await
            .map_err(|e| NodeError::Internal(format!("peer store task failed: {e}")))?
    }

    /// Closes the connection to `node_id`, if there is one (it may connect or be dialed again).
    pub fn disconnect_peer(&self, node_id: PublicKey) {
        self.inner.peer_manager.disconnect_by_node_id(node_id);
    }

    /// Connected peers.
    pub fn list_peers(&self) -> Vec<PeerInfo> {
        self.inner
            .peer_manager
            .list_peers()
            .into_iter()
            .map(|p| PeerInfo {
                node_id: p.counterparty_node_id.to_string(),
                address: p.socket_address.map(|a| a.to_string()),
                inbound: p.is_inbound_connection,
            })
            .collect()
    }

    /// Opens a channel of `amount_sat` to a connected peer, pushing `push_msat` to them.
    /// Returns the (temporary) channel id; [`crate::NodeEvent::ChannelPending`] gives the final one.
    pub fn open_channel(
        &self,
        node_id: PublicKey,
        amount_sat: u64,
        push_msat: u64,
        announce: Option<bool>,
    ) -> Result<String, NodeError> {
        self.ensure_running()?;
        self.ensure_signer()?;
        if self.inner.peer_manager.peer_by_node_id(&node_id).is_none() {
            return Err(NodeError::UnknownPeer(format!(
                "{node_id} is not connected"
            )));
        }
        self.inner.check_channel_cap()?;
        if amount_sat == 0 || push_msat > amount_sat.saturating_mul(1000) {
            return Err(NodeError::InvalidInput(format!(
                "channel amount {amount_sat} sat with push {push_msat} msat is not valid"
            )));
        }
        let spendable = self.inner.wallet.balance().confirmed.to_sat();
        if amount_sat >= spendable {
            return Err(NodeError::InsufficientFunds(format!(
                "channel of {amount_sat} sat needs more than the {spendable} sat confirmed on chain"
            )));
        }
        self.inner.check_anchor_reserve(amount_sat)?;
        let limits = self.inner.keys.payment_limits();
        if let Some(limits) = limits {
            // The tenant's signer counts a push as a payment nobody approved, and refuses to
            // sign for forwards unless routing is on: say so now, not with a stuck channel.
            if push_msat > 0 {
                return Err(NodeError::InvalidInput(
                    "the signer does not push funds at channel open; pay an invoice instead".into(),
                ));
            }
            if announce == Some(true) && !limits.allow_routing {
                return Err(NodeError::InvalidInput(
                    "the signer's policy does not allow routing, so channels stay private".into(),
                ));
            }
        }
        let mut config = crate::builder::user_config(&self.inner.config.channels, limits);
        if let Some(announce) = announce {
            config.channel_handshake_config.announce_for_forwarding = announce;
        }
        let user_channel_id = u128::from_be_bytes(rand::random());
        let id = self
            .inner
            .channel_manager
            .create_channel(
                node_id,
                amount_sat,
                push_msat,
                user_channel_id,
                None,
                Some(config),
            )
            .map_err(NodeError::from_channel_api)?;
        Ok(id.to_string())
    }

    /// Every channel.
    pub fn list_channels(&self) -> Vec<ChannelInfo> {
        self.inner
            .channel_manager
            .list_channels()
            .into_iter()
            .map(|c| ChannelInfo {
                channel_id: c.channel_id.to_string(),
                counterparty: c.counterparty.node_id.to_string(),
                funding_txo: c.funding_txo.map(|o| o.to_string()),
                short_channel_id: c.short_channel_id,
                capacity_sat: c.channel_value_satoshis,
                balance_sat: self.channel_balance_sat(&c.channel_id),
                outbound_capacity_msat: c.outbound_capacity_msat,
                inbound_capacity_msat: c.inbound_capacity_msat,
                pending_htlcs: c.pending_inbound_htlcs.len() + c.pending_outbound_htlcs.len(),
                confirmations: c.confirmations,
                confirmations_required: c.confirmations_required,
                is_outbound: c.is_outbound,
                is_ready: c.is_channel_ready,
                is_usable: c.is_usable,
                is_announced: c.is_announced,
                anchors: c
                    .channel_type
                    .as_ref()
                    .is_some_and(|t| t.supports_anchors_zero_fee_htlc_tx()),
            })
            .collect()
    }

    fn channel_balance_sat(&self, channel_id: &ChannelId) -> u64 {
        let Ok(monitor) = self.inner.chain_monitor.get_monitor(*channel_id) else {
            return 0;
        };
        monitor
            .get_claimable_balances()
            .into_iter()
            .map(|b| match b {
                Balance::ClaimableOnChannelClose {
                    balance_candidates,
                    confirmed_balance_candidate_index,
                    ..
                } => balance_candidates
                    .get(confirmed_balance_candidate_index)
                    .map(|c| c.amount_satoshis + c.transaction_fee_satoshis)
                    .unwrap_or(0),
                _ => 0,
            })
            .sum()
    }

    /// Closes a channel: cooperatively, or by broadcasting our latest commitment (`force`).
    pub fn close_channel(&self, channel_id: &str, force: bool) -> Result<(), NodeError> {
        self.ensure_running()?;
        self.ensure_signer()?;
        let id = parse_channel_id(channel_id)?;
        let channel = self
            .inner
            .channel_manager
            .list_channels()
            .into_iter()
            .find(|c| c.channel_id == id)
            .ok_or_else(|| NodeError::UnknownChannel(channel_id.to_string()))?;
        let peer = channel.counterparty.node_id;
        let result = if force {
            self.inner
                .channel_manager
                .force_close_broadcasting_latest_txn(
                    &id,
                    &peer,
                    "force-closed by the node's owner".into(),
                )
        } else {
            self.inner.channel_manager.close_channel(&id, &peer)
        };
        result.map_err(NodeError::from_channel_api)
    }
}
