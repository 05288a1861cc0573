//! Anchor channels: the on-chain reserve they need, and which inbound channels the node
//! accepts.
//!
//! An anchor channel's commitment is signed at a low fee rate and its HTLC transactions carry
//! no fee: when the channel closes on chain, the wallet pays the fee by CPFP (`bump`). A wallet
//! that cannot pay leaves HTLCs unclaimed until the peer can take them, so the node keeps
//! [`ChannelSettings::anchor_reserve_sat`] per anchor channel on chain and refuses a channel,
//! opened or accepted, that would leave less. Channels of any other type are refused both ways:
//! LDK retries a refused open without anchors, and funds nothing but an anchor channel here.
//!
//! [`ChannelSettings::anchor_reserve_sat`]: crate::config::ChannelSettings::anchor_reserve_sat

use bitcoin::secp256k1::PublicKey;
use lightning::ln::types::ChannelId;
use lightning::types::features::ChannelTypeFeatures;
use lightning::util::config::{
    ChannelConfigOverrides, ChannelConfigUpdate, ChannelHandshakeConfigUpdate,
};

use crate::error::NodeError;
use crate::keys::KeysBackend;
use crate::node::NodeInner;

impl<K: KeysBackend> NodeInner<K> {
    /// Channels of ours with anchors, open or being opened.
    fn anchor_channel_count(&self) -> u64 {
        let count = self
            .channel_manager
            .list_channels()
            .iter()
            .filter(|c| {
                c.channel_type
                    .as_ref()
                    .is_none_or(|t| t.supports_anchors_zero_fee_htlc_tx())
            })
            .count();
        u64::try_from(count).unwrap_or(u64::MAX)
    }

    /// Checks that after spending `spend_sat` on chain the wallet still holds the reserve for
    /// its anchor channels and one more.
    /// Refuses one more channel when the node has [`ChannelSettings::max_channels`] already.
    ///
    /// [`ChannelSettings::max_channels`]: crate::ChannelSettings::max_channels
    pub(crate) fn check_channel_cap(&self) -> Result<(), NodeError> {
        let max = self.config.channels.max_channels;
        let have = self.channel_manager.list_channels().len();
        if max > 0 && have >= max as usize {
            return Err(NodeError::Channel(format!(
                "the node has {have} channels, its cap is {max}"
            )));
        }
        Ok(())
    }

    pub(crate) fn check_anchor_reserve(&self, spend_sat: u64) -> Result<(), NodeError> {
        let per_channel = self.config.channels.anchor_reserve_sat;
        if per_channel == 0 {
            return Ok(());
        }
        let channels = self.anchor_channel_count().saturating_add(1);
        let needed = per_channel.saturating_mul(channels);
        let confirmed = self.wallet.balance().confirmed.to_sat();
        let left = confirmed.saturating_sub(spend_sat);
        if left < needed {
            return Err(NodeError::InsufficientFunds(format!(
                "an anchor channel needs {per_channel} sat kept on chain for fee bumps; with \
                 {channels} anchor channel(s) the wallet must keep {needed} sat, and it would \
                 have {left} sat confirmed"
            )));
        }
        Ok(())
    }

    /// Answers `OpenChannelRequest`: accepts an anchor channel when the reserve holds, with the
    /// confirmations its size needs, and rejects it otherwise (and any other channel type),
    /// telling the peer why.
    pub(crate) fn answer_channel_request(
        &self,
        temporary_channel_id: ChannelId,
        counterparty: PublicKey,
        funding_sat: u64,
        channel_type: &ChannelTypeFeatures,
    ) {
        // A peer refused for the anchor reserve retries without anchors; that is refused too:
        // every channel of this node is an anchor channel.
        // The LSP's JIT channel comes to a node that may have nothing on chain yet: it is
        // accepted without the reserve (see `docs/liquidity.md`), and its HTLCs may be short
        // of the invoice by the opening fee the node agreed (`NodeInner::skim_agreed`).
        let from_lsp = self
            .config
            .liquidity
            .lsp
            .as_ref()
            .is_some_and(|lsp| lsp.node_id == counterparty);
        let verdict = if let Err(capped) = self.check_channel_cap() {
            Err(capped)
        } else if channel_type.supports_anchors_zero_fee_htlc_tx()
            && !channel_type.supports_anchor_zero_fee_commitments()
        {
            if from_lsp {
                Ok(())
            } else {
                self.check_anchor_reserve(0)
            }
        } else {
            Err(NodeError::InvalidInput(format!(
                "only anchor channels (option_anchors_zero_fee_htlc_tx) are accepted, not \
                 {channel_type} (a peer retries without anchors after an anchor channel was \
                 refused: the earlier refusal in this log says why)"
            )))
        };
        let user_channel_id = u128::from_be_bytes(rand::random());
        let result = match verdict {
            Ok(()) => {
                let depth = self.config.channels.min_confirmations_for(funding_sat);
                let overrides = ChannelConfigOverrides {
                    handshake_overrides: Some(ChannelHandshakeConfigUpdate {
                        minimum_depth: Some(depth),
                        ..Default::default()
                    }),
                    update_overrides: from_lsp.then(|| ChannelConfigUpdate {
                        accept_underpaying_htlcs: Some(true),
                        ..Default::default()
                    }),
                };
                self.channel_manager
                    .accept_inbound_channel(
                        &temporary_channel_id,
                        &counterparty,
                        user_channel_id,
                        Some(overrides),
                    )
                    .map_err(NodeError::from_channel_api)
            }
            Err(reason) => {
                tracing::warn!(
                    node = %self.logger_label,
                    %counterparty,
                    funding_sat,
                    %reason,
                    "refusing an inbound channel"
                );
                self.channel_manager
                    .force_close_broadcasting_latest_txn(
                        &temporary_channel_id,
                        &counterparty,
                        format!("channel refused: {reason}"),
                    )
                    .map_err(NodeError::from_channel_api)
            }
        };
        if let Err(e) = result {
            tracing::warn!(node = %self.logger_label, error = %e, "cannot answer a channel request");
        }
    }

    /// Whether the unfunded channel `temporary_channel_id` is an anchor channel (LDK falls back
    /// to `static_remotekey` when a peer refuses anchors; such a channel is not funded).
    pub(crate) fn check_outbound_anchors(
        &self,
        temporary_channel_id: &ChannelId,
    ) -> Result<(), NodeError> {
        let anchors = self
            .channel_manager
            .list_channels()
            .iter()
            .find(|c| c.channel_id == *temporary_channel_id)
            .and_then(|c| c.channel_type.clone())
            .is_some_and(|t| t.supports_anchors_zero_fee_htlc_tx());
        if anchors {
            Ok(())
        } else {
            Err(NodeError::InvalidInput(
                "the peer does not accept anchor channels; this node opens no other kind".into(),
            ))
        }
    }
}
