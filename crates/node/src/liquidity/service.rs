//! The gateway's side of LSPS2: a fee menu, the buy, and the channel opened just in time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::PublicKey;
use lightning_liquidity::lsps0::ser::LSPSDateTime;
use lightning_liquidity::lsps2::event::LSPS2ServiceEvent;
use lightning_liquidity::lsps2::msgs::LSPS2RawOpeningFeeParams;

use crate::config::Lsps2ServiceSettings;
use crate::keys::KeysBackend;
use crate::node::NodeInner;

/// How long a fee menu stays valid (as ldk-node's): a JIT invoice expires before its offer.
const MENU_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// The CLTV delta the gateway asks for on the hop into the JIT channel (ldk-node uses 72).
const JIT_CLTV_EXPIRY_DELTA: u32 = 72;

/// The fee menu the gateway offers: one entry, from its settings.
fn fee_menu(settings: &Lsps2ServiceSettings) -> Vec<LSPS2RawOpeningFeeParams> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    vec![LSPS2RawOpeningFeeParams {
        min_fee_msat: settings.min_fee_msat,
        proportional: settings.proportional_millionths,
        valid_until: LSPSDateTime::new_from_duration_since_epoch(now + MENU_VALIDITY),
        min_lifetime: settings.min_lifetime_blocks,
        max_client_to_self_delay: settings.max_client_to_self_delay,
        min_payment_size_msat: settings.min_payment_msat,
        max_payment_size_msat: settings.max_payment_msat,
    }]
}

/// The size of the channel opened to forward `amount_msat` (the payment less the fee): that
/// plus the extra the settings give (inbound capacity for later payments, and the gateway's
/// reserve).
pub(crate) fn jit_channel_sat(settings: &Lsps2ServiceSettings, amount_msat: u64) -> u64 {
    amount_msat
        .div_ceil(1000)
        .saturating_add(settings.channel_extra_sat)
}

impl<K: KeysBackend> NodeInner<K> {
    /// Answers one LSPS2 service event.
    pub(crate) async fn handle_lsps2_service_event(&self, event: LSPS2ServiceEvent) {
        let (Some(settings), Some(service)) = (
            self.liquidity.settings.lsps2_service.as_ref(),
            self.liquidity.manager.lsps2_service_handler(),
        ) else {
            return;
        };
        match event {
            LSPS2ServiceEvent::GetInfo {
                request_id,
                counterparty_node_id,
                ..
            } => {
                if let Err(e) = service.opening_fee_params_generated(
                    &counterparty_node_id,
                    request_id,
                    fee_menu(settings),
                ) {
                    tracing::warn!(error = ?e, "cannot answer an LSPS2 fee request");
                }
            }
            LSPS2ServiceEvent::BuyRequest {
                request_id,
                counterparty_node_id,
                payment_size_msat,
                ..
            } => {
                let scid = self.channel_manager.get_intercept_scid();
                let user_channel_id = u128::from_be_bytes(rand::random());
                tracing::info!(
                    node = %self.logger_label,
                    client = %counterparty_node_id,
                    ?payment_size_msat,
                    scid,
                    "selling a JIT channel"
                );
                if let Err(e) = service
                    .invoice_parameters_generated(
                        &counterparty_node_id,
                        request_id,
                        scid,
                        JIT_CLTV_EXPIRY_DELTA,
                        false,
                        user_channel_id,
                    )
                    .await
                {
                    tracing::warn!(error = ?e, "cannot answer an LSPS2 buy request");
                }
            }
            LSPS2ServiceEvent::OpenChannel {
                their_network_key,
                amt_to_forward_msat,
                opening_fee_msat,
                user_channel_id,
                ..
            } => {
                let channel_sat = jit_channel_sat(settings, amt_to_forward_msat);
                if let Err(e) =
                    self.open_jit_channel(their_network_key, channel_sat, user_channel_id)
                {
                    tracing::warn!(
                        node = %self.logger_label,
                        client = %their_network_key,
                        error = %e,
                        "cannot open a JIT channel; its payment fails back"
                    );
                    let _ = service
                        .channel_open_failed(&their_network_key, user_channel_id)
                        .await;
                } else {
                    tracing::info!(
                        node = %self.logger_label,
                        client = %their_network_key,
                        channel_sat,
                        amt_to_forward_msat,
                        opening_fee_msat,
                        "opening a JIT channel"
                    );
                }
            }
        }
    }

    /// Opens the JIT channel (once: the event is replayed after a restart, and a channel with
    /// `user_channel_id` already open or opening is left alone). It is private, forwards for
    /// free, and lets the client have the whole channel in flight.
    fn open_jit_channel(
        &self,
        client: PublicKey,
        channel_sat: u64,
        user_channel_id: u128,
    ) -> Result<(), crate::error::NodeError> {
        if self
            .channel_manager
            .list_channels()
            .iter()
            .any(|c| c.user_channel_id == user_channel_id)
        {
            return Ok(());
        }
        if !self
            .peer_manager
            .list_peers()
            .iter()
            .any(|p| p.counterparty_node_id == client)
        {
            return Err(crate::error::NodeError::UnknownPeer(format!(
                "the client {client} is not connected"
            )));
        }
        let confirmed = self.wallet.balance().confirmed.to_sat();
        if channel_sat >= confirmed {
            return Err(crate::error::NodeError::InsufficientFunds(format!(
                "a JIT channel of {channel_sat} sat needs more than the {confirmed} sat \
                 confirmed on chain"
            )));
        }
        self.check_anchor_reserve(channel_sat)?;
        let mut config =
            crate::builder::user_config(&self.config.channels, self.keys.payment_limits());
        config.channel_handshake_config.announce_for_forwarding = false;
        config.channel_config.forwarding_fee_base_msat = 0;
        config.channel_config.forwarding_fee_proportional_millionths = 0;
        self.channel_manager
            .create_channel(client, channel_sat, 0, user_channel_id, None, Some(config))
            .map(|_| ())
            .map_err(crate::error::NodeError::from_channel_api)
    }
}
