//! A tenant's side of LSPS2: an invoice its channels cannot receive becomes a JIT invoice
//! through its LSP, and only the fee it agreed to may be taken from the payment.

use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::PublicKey;
use lightning::ln::channelmanager::MIN_FINAL_CLTV_EXPIRY_DELTA;
use lightning::routing::gossip::RoutingFees;
use lightning::routing::router::{RouteHint, RouteHintHop};
use lightning::sign::Recipient;
use lightning_invoice::{Bolt11Invoice, Currency, InvoiceBuilder};
use lightning_liquidity::lsps2::event::LSPS2ClientEvent;
use lightning_liquidity::lsps2::msgs::LSPS2OpeningFeeParams;
use lightning_liquidity::lsps2::utils::compute_opening_fee;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::config::LspSettings;
use crate::error::NodeError;
use crate::keys::KeysBackend;
use crate::node::{Node, NodeInner};
use crate::pay::{CreatedInvoice, InvoiceDescription};
use crate::payments::PaymentRecord;

/// How long the node waits for each answer of the LSP.
const LSP_ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// How long before the LSP's offer expires its invoice must expire, in seconds.
const OFFER_MARGIN_SECS: u64 = 60;

/// Blocks added to the wait for the JIT channel's confirmations in a JIT invoice's final CLTV
/// delta (blocks come irregularly).
const CONFIRMATION_WAIT_MARGIN_BLOCKS: u64 = 6;

/// What a JIT invoice bought: the channel's opening fee, taken from the payment by the LSP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JitOffer {
    /// The LSP's node id.
    pub lsp: String,
    /// The opening fee the LSP takes from the payment, in msat.
    pub opening_fee_msat: u64,
    /// The intercept short channel id in the invoice's route hint.
    pub intercept_scid: u64,
}

/// The cheapest offer of `menu` for `amount_msat` within the node's limits, with its fee.
fn choose_offer(
    lsp: &LspSettings,
    menu: Vec<LSPS2OpeningFeeParams>,
    amount_msat: u64,
) -> Result<(LSPS2OpeningFeeParams, u64), NodeError> {
    let affordable = |fee: u64| {
        let proportional_cap =
            u128::from(amount_msat) * u128::from(lsp.max_proportional_millionths) / 1_000_000;
        fee < amount_msat && (fee <= lsp.max_fee_msat || u128::from(fee) <= proportional_cap)
    };
    let mut cheapest: Option<(LSPS2OpeningFeeParams, u64)> = None;
    let mut seen = Vec::new();
    for params in menu {
        if params.valid_until.is_past()
            || amount_msat < params.min_payment_size_msat
            || amount_msat > params.max_payment_size_msat
        {
            continue;
        }
        let Some(fee) = compute_opening_fee(
            amount_msat,
            params.min_fee_msat,
            u64::from(params.proportional),
        ) else {
            continue;
        };
        seen.push(fee);
        if affordable(fee) && cheapest.as_ref().is_none_or(|(_, best)| fee < *best) {
            cheapest = Some((params, fee));
        }
    }
    cheapest.ok_or_else(|| {
        NodeError::Payment(if seen.is_empty() {
            format!("the LSP offers no channel for a payment of {amount_msat} msat")
        } else {
            format!(
                "the LSP asks {} msat for a channel; this node pays at most {} msat or {} ppm",
                seen.iter().min().copied().unwrap_or_default(),
                lsp.max_fee_msat,
                lsp.max_proportional_millionths
            )
        })
    })
}

impl<K: KeysBackend> NodeInner<K> {
    /// Sends one LSPS2 request (made by `send` under the waiters' lock, so the answer cannot
    /// come before its waiter) and waits for its answer.
    async fn ask_lsp(
        &self,
        send: impl FnOnce() -> Result<lightning_liquidity::lsps0::ser::LSPSRequestId, NodeError>,
    ) -> Result<LSPS2ClientEvent, NodeError> {
        let (tx, rx) = oneshot::channel();
        let request_id = {
            let mut waiters = self
                .liquidity
                .waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let id = send()?;
            waiters.insert(id.clone(), tx);
            id
        };
        match tokio::time::timeout(LSP_ANSWER_TIMEOUT, rx).await {
            Ok(Ok(event)) => Ok(event),
            _ => {
                self.liquidity
                    .waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&request_id);
                Err(NodeError::Connection(
                    "the LSP did not answer in time".into(),
                ))
            }
        }
    }

    /// Lets the LSP's channels carry HTLCs short of the invoice by a skim: LDK does not keep
    /// this per-channel setting across a restart, so it is set again at every start (the
    /// skim itself is checked against the agreed fee, `NodeInner::skim_agreed`).
    pub(crate) fn allow_lsp_skims(&self) {
        let Some(lsp) = self.config.liquidity.lsp.as_ref() else {
            return;
        };
        let channels: Vec<_> = self
            .channel_manager
            .list_channels_with_counterparty(&lsp.node_id)
            .into_iter()
            .map(|c| c.channel_id)
            .collect();
        if channels.is_empty() {
            return;
        }
        let update = lightning::util::config::ChannelConfigUpdate {
            accept_underpaying_htlcs: Some(true),
            ..Default::default()
        };
        if let Err(e) =
            self.channel_manager
                .update_partial_channel_config(&lsp.node_id, &channels, &update)
        {
            tracing::warn!(node = %self.logger_label, error = ?e, "cannot let the LSP's channels carry JIT payments");
        }
    }

    /// Waits (a few seconds at most) for the channels with the LSP that are ready to become
    /// usable: after a start they are, once the peers have re-established them.
    async fn wait_lsp_channels(&self, lsp: &LspSettings) {
        let deadline = tokio::time::Instant::now() + LSP_ANSWER_TIMEOUT / 2;
        while tokio::time::Instant::now() < deadline {
            let settling = self
                .channel_manager
                .list_channels_with_counterparty(&lsp.node_id)
                .iter()
                .any(|c| c.is_channel_ready && !c.is_usable);
            if !settling {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the node's usable channels can receive `amount_msat` (summed, as a payer may
    /// split the payment).
    fn can_receive(&self, amount_msat: u64) -> bool {
        let inbound: u64 = self
            .channel_manager
            .list_usable_channels()
            .iter()
            .map(receivable_msat)
            .sum();
        inbound >= amount_msat
    }
}

impl<K: KeysBackend> Node<K> {
    /// Creates an invoice the node can be paid with: a plain invoice when its channels can
    /// receive the amount, otherwise, when the node has an LSP, a JIT invoice whose payment
    /// buys a channel from the LSP (the opening fee is taken from the payment; see
    /// [`Node::create_jit_invoice`]).
    pub async fn create_receivable_invoice(
        self: &Arc<Self>,
        amount_msat: Option<u64>,
        description: impl Into<InvoiceDescription>,
        expiry_secs: u32,
    ) -> Result<(CreatedInvoice, Option<JitOffer>), NodeError> {
        let description = description.into();
        if let (Some(amount), Some(lsp)) = (amount_msat, self.inner.config.liquidity.lsp.as_ref()) {
            // Channels with the LSP count only once re-established: connect first. An LSP
            // out of reach does not stop an invoice the other channels can receive.
            match self.connect_lsp(lsp).await {
                Ok(()) => self.inner.wait_lsp_channels(lsp).await,
                Err(e) => {
                    tracing::warn!(node = %self.inner.logger_label, error = %e, "the LSP is out of reach")
                }
            }
            if !self.inner.can_receive(amount) {
                return self
                    .create_jit_invoice(amount, description.clone(), expiry_secs)
                    .await
                    .map(|(invoice, offer)| (invoice, Some(offer)));
            }
        }
        let node = self.clone();
        tokio::task::spawn_blocking(move || {
            node.create_invoice(amount_msat, description, expiry_secs)
        })
        .await
        .map_err(|e| NodeError::Internal(format!("invoice task failed: {e}")))?
        .map(|invoice| (invoice, None))
    }

    /// Connects to the LSP unless connected ([`Node::connect_peer`] remembers it, so the node
    /// reconnects to it).
    async fn connect_lsp(&self, lsp: &LspSettings) -> Result<(), NodeError> {
        if self
            .inner
            .peer_manager
            .peer_by_node_id(&lsp.node_id)
            .is_some()
        {
            return Ok(());
        }
        self.connect_peer(lsp.node_id, lsp.addr).await
    }

    /// Buys a JIT channel from the node's LSP for a payment of `amount_msat` and returns the
    /// invoice that pays through it, with what the LSP will take. The LSP's cheapest offer
    /// within [`LspSettings`]' limits is taken.
    pub async fn create_jit_invoice(
        &self,
        amount_msat: u64,
        description: impl Into<InvoiceDescription>,
        expiry_secs: u32,
    ) -> Result<(CreatedInvoice, JitOffer), NodeError> {
        let description = description.into();
        self.ensure_running()?;
        self.ensure_signer()?;
        let inner = &self.inner;
        let lsp = inner
            .config
            .liquidity
            .lsp
            .clone()
            .ok_or_else(|| NodeError::Config("this node has no LSP".into()))?;
        let client = inner
            .liquidity
            .manager
            .lsps2_client_handler()
            .ok_or_else(|| NodeError::Config("this node has no LSP".into()))?;
        self.connect_lsp(&lsp).await?;

        let menu = match inner
            .ask_lsp(|| Ok(client.request_opening_params(lsp.node_id, None)))
            .await?
        {
            LSPS2ClientEvent::OpeningParametersReady {
                opening_fee_params_menu,
                ..
            } => opening_fee_params_menu,
            other => return Err(lsp_refused(other)),
        };
        let (params, opening_fee_msat) = choose_offer(&lsp, menu, amount_msat)?;
        // The LSP forgets a buy when its offer expires: the invoice must expire first.
        let offer_left = u64::try_from(params.valid_until.0.timestamp())
            .unwrap_or(0)
            .saturating_sub(crate::payments::now_secs())
            .saturating_sub(OFFER_MARGIN_SECS);
        let expiry_secs = expiry_secs.min(u32::try_from(offer_left).unwrap_or(u32::MAX));
        if expiry_secs == 0 {
            return Err(NodeError::Payment(
                "the LSP's offer expires too soon for an invoice".into(),
            ));
        }
        let (intercept_scid, cltv_expiry_delta) = match inner
            .ask_lsp(|| {
                client
                    .select_opening_params(lsp.node_id, Some(amount_msat), params)
                    .map_err(NodeError::from_channel_api)
            })
            .await?
        {
            LSPS2ClientEvent::InvoiceParametersReady {
                intercept_scid,
                cltv_expiry_delta,
                ..
            } => (intercept_scid, cltv_expiry_delta),
            other => return Err(lsp_refused(other)),
        };

        let invoice = self
            .jit_invoice(
                lsp.node_id,
                amount_msat,
                &description,
                expiry_secs,
                intercept_scid,
                cltv_expiry_delta,
            )
            .await?;
        let hash = *invoice.payment_hash().as_byte_array();
        let mut record = PaymentRecord::for_invoice(&invoice, Some(amount_msat));
        record.lsp_fee_limit_msat = Some(opening_fee_msat);
        let writer = inner.clone();
        tokio::task::spawn_blocking(move || writer.payments.upsert(record))
            .await
            .map_err(|e| NodeError::Internal(format!("payment store task failed: {e}")))??;
        tracing::info!(
            node = %inner.logger_label,
            lsp = %lsp.node_id,
            amount_msat,
            opening_fee_msat,
            intercept_scid,
            "created a JIT invoice"
        );
        Ok((
            CreatedInvoice {
                invoice: invoice.to_string(),
                payment_hash: hex::encode(hash),
            },
            JitOffer {
                lsp: lsp.node_id.to_string(),
                opening_fee_msat,
                intercept_scid,
            },
        ))
    }

    /// The blocks a JIT channel's funding may take to be deep enough for this node, with a
    /// margin.
    fn confirmation_wait_blocks(&self) -> u64 {
        let channels = &self.inner.config.channels;
        u64::from(
            channels
                .min_confirmations
                .max(channels.large_channel_min_confirmations),
        ) + CONFIRMATION_WAIT_MARGIN_BLOCKS
    }

    /// Builds and signs (through the keys, off the async workers) an invoice whose only route
    /// is the LSP's intercept channel.
    async fn jit_invoice(
        &self,
        lsp: PublicKey,
        amount_msat: u64,
        description: &InvoiceDescription,
        expiry_secs: u32,
        intercept_scid: u64,
        cltv_expiry_delta: u32,
    ) -> Result<Bolt11Invoice, NodeError> {
        let inner = &self.inner;
        let (payment_hash, payment_secret) = inner
            .channel_manager
            .create_inbound_payment(Some(amount_msat), expiry_secs, None)
            .map_err(|()| NodeError::InvalidInput("cannot create the payment".into()))?;
        let hint = RouteHint(vec![RouteHintHop {
            src_node_id: lsp,
            short_channel_id: intercept_scid,
            fees: RoutingFees {
                base_msat: 0,
                proportional_millionths: 0,
            },
            cltv_expiry_delta: u16::try_from(cltv_expiry_delta).map_err(|_| {
                NodeError::Payment(format!(
                    "the LSP asks an impossible CLTV delta of {cltv_expiry_delta}"
                ))
            })?,
            htlc_minimum_msat: None,
            htlc_maximum_msat: None,
        }]);
        let raw = InvoiceBuilder::new(Currency::from(inner.config.network))
            .invoice_description(description.to_bolt11()?)
            .payment_hash(sha256::Hash::from_byte_array(payment_hash.0))
            .payment_secret(payment_secret)
            .amount_milli_satoshis(amount_msat)
            .current_timestamp()
            .payee_pub_key(inner.node_id)
            .basic_mpp()
            // The HTLC reaches this node only once the channel's funding is deep enough: the
            // payer must leave room for that wait on top of LDK's minimum.
            .min_final_cltv_expiry_delta(
                u64::from(MIN_FINAL_CLTV_EXPIRY_DELTA) + self.confirmation_wait_blocks(),
            )
            .expiry_time(Duration::from_secs(u64::from(expiry_secs)))
            .private_route(hint)
            .build_raw()
            .map_err(|e| NodeError::InvalidInput(format!("cannot build the invoice: {e}")))?;
        let keys: Arc<K> = inner.keys.clone();
        let unsigned = raw.clone();
        let signature =
            tokio::task::spawn_blocking(move || keys.sign_invoice(&unsigned, Recipient::Node))
                .await
                .map_err(|e| NodeError::Internal(format!("signing task failed: {e}")))?
                .map_err(|()| NodeError::Signer("the signer did not sign the invoice".into()))?;
        let signed = raw
            .sign::<_, ()>(|_| Ok(signature))
            .map_err(|()| NodeError::Signer("the invoice signature is unusable".into()))?;
        Bolt11Invoice::from_signed(signed)
            .map_err(|e| NodeError::Signer(format!("the signed invoice is not valid: {e}")))
    }
}

/// The weight of an anchor channel's commitment with one more HTLC (BOLT 3).
const COMMITMENT_WITH_ONE_HTLC_WEIGHT: u64 = 1124 + 172;

/// What a channel can receive: its inbound capacity, less, when the peer funded it, what the
/// peer pays out of its balance to add an HTLC (the commitment's fee at its current rate, and
/// the two 330-sat anchors), which LDK's inbound capacity leaves in.
fn receivable_msat(channel: &lightning::ln::channel_state::ChannelDetails) -> u64 {
    if channel.is_outbound {
        return channel.inbound_capacity_msat;
    }
    let feerate = u64::from(channel.feerate_sat_per_1000_weight.unwrap_or(0));
    let funder_costs_sat = feerate * COMMITMENT_WITH_ONE_HTLC_WEIGHT / 1000 + 2 * 330;
    channel
        .inbound_capacity_msat
        .saturating_sub(funder_costs_sat * 1000)
}

fn lsp_refused(event: LSPS2ClientEvent) -> NodeError {
    match event {
        LSPS2ClientEvent::GetInfoFailed { error, .. }
        | LSPS2ClientEvent::BuyRequestFailed { error, .. } => NodeError::Payment(format!(
            "the LSP refused ({}): {}",
            error.code, error.message
        )),
        other => NodeError::Internal(format!("an unexpected LSP answer: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightning_liquidity::lsps0::ser::LSPSDateTime;

    fn offer(min_fee_msat: u64, proportional: u32) -> LSPS2OpeningFeeParams {
        let in_an_hour = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            + Duration::from_secs(3600);
        LSPS2OpeningFeeParams {
            min_fee_msat,
            proportional,
            valid_until: LSPSDateTime::new_from_duration_since_epoch(in_an_hour),
            min_lifetime: 1008,
            max_client_to_self_delay: 2016,
            min_payment_size_msat: 1_000_000,
            max_payment_size_msat: 1_000_000_000,
            promise: "00".into(),
        }
    }

    fn lsp() -> LspSettings {
        let key = PublicKey::from_slice(&[2; 33]).expect("key");
        LspSettings::new(key, ([127, 0, 0, 1], 9735).into())
    }

    #[test]
    fn the_cheapest_affordable_offer_is_taken() {
        let menu = vec![offer(3_000_000, 0), offer(2_000_000, 10_000)];
        let (params, fee) = choose_offer(&lsp(), menu, 100_000_000).expect("an offer");
        assert_eq!(fee, 2_000_000);
        assert_eq!(params.min_fee_msat, 2_000_000);
    }

    #[test]
    fn offers_above_the_limits_or_the_payment_are_refused() {
        // 6,000 sat is above the flat 5,000 sat limit and 2 % of 100,000 sat.
        let err = choose_offer(&lsp(), vec![offer(6_000_000, 0)], 100_000_000).unwrap_err();
        assert!(err.to_string().contains("6000000 msat"), "{err}");
        // Within 2 % of a large payment, above the flat limit: taken.
        let (_, fee) = choose_offer(&lsp(), vec![offer(6_000_000, 0)], 500_000_000).expect("2 %");
        assert_eq!(fee, 6_000_000);
        // A fee that eats the whole payment never is.
        let mut generous = lsp();
        generous.max_fee_msat = u64::MAX;
        let err = choose_offer(&generous, vec![offer(2_000_000, 0)], 2_000_000).unwrap_err();
        assert!(err.to_string().contains("asks 2000000 msat"), "{err}");
        // Outside the payment sizes the LSP serves.
        let err = choose_offer(&lsp(), vec![offer(1_000, 0)], 999_999).unwrap_err();
        assert!(err.to_string().contains("offers no channel"), "{err}");
    }
}
