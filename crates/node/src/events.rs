//! Handling LDK's events, and the node's own event stream.

use lightning::events::{Event, PathFailure, ReplayEvent};
use serde::Serialize;

use crate::keys::KeysBackend;
use crate::node::NodeInner;
use crate::payments::{PaymentDirection, PaymentKind, PaymentRecord, PaymentStatus};

/// Something that happened on the node, for subscribers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeEvent {
    /// A channel's funding transaction was broadcast.
    ChannelPending {
        /// Channel id (hex).
        channel_id: String,
        /// Counterparty node id.
        counterparty: String,
        /// Funding outpoint `txid:vout`.
        funding_txo: String,
    },
    /// A channel is ready to use.
    ChannelReady {
        /// Channel id (hex).
        channel_id: String,
        /// Counterparty node id.
        counterparty: String,
    },
    /// A channel closed.
    ChannelClosed {
        /// Channel id (hex).
        channel_id: String,
        /// Counterparty node id, if known.
        counterparty: Option<String>,
        /// Why it closed.
        reason: String,
    },
    /// We received a payment.
    PaymentReceived {
        /// Payment hash (hex).
        payment_hash: String,
        /// Amount received (msat).
        amount_msat: u64,
    },
    /// A payment we sent settled.
    PaymentSent {
        /// Payment id (hex).
        payment_id: String,
        /// Payment hash (hex).
        payment_hash: String,
        /// Routing fee paid (msat).
        fee_msat: Option<u64>,
    },
    /// A payment we sent failed for good.
    PaymentFailed {
        /// Payment id (hex).
        payment_id: String,
        /// Payment hash (hex), if known.
        payment_hash: Option<String>,
        /// Why.
        reason: String,
    },
    /// We forwarded a payment.
    PaymentForwarded {
        /// Fee earned (msat).
        fee_msat: Option<u64>,
        /// Amount forwarded (msat).
        amount_msat: Option<u64>,
    },
    /// Outputs from a closed channel are being swept to the wallet.
    OutputsTracked {
        /// How many outputs.
        count: usize,
    },
}

impl<K: KeysBackend> NodeInner<K> {
    fn emit(&self, event: NodeEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Handles one LDK event. Returning `Err` makes LDK replay it later (used when a write
    /// failed, so nothing is lost).
    pub(crate) async fn handle_event(&self, event: Event) -> Result<(), ReplayEvent> {
        let Some(event) = self.liquidity_sees(event).await else {
            return Ok(());
        };
        match event {
            Event::FundingGenerationReady {
                temporary_channel_id,
                counterparty_node_id,
                channel_value_satoshis,
                output_script,
                ..
            } => self.fund_channel(
                temporary_channel_id,
                counterparty_node_id,
                channel_value_satoshis,
                output_script,
            ),
            Event::FundingTxBroadcastSafe { funding_txo, .. } => {
                return self.broadcast_deferred_funding(funding_txo.txid).await;
            }
            Event::PaymentClaimable {
                payment_hash,
                purpose,
                counterparty_skimmed_fee_msat,
                ..
            } => match purpose.preimage() {
                Some(preimage)
                    if self.skim_agreed(&payment_hash.0, counterparty_skimmed_fee_msat) =>
                {
                    self.channel_manager.claim_funds(preimage)
                }
                _ => self.channel_manager.fail_htlc_backwards(&payment_hash),
            },
            Event::PaymentClaimed {
                payment_hash,
                amount_msat,
                purpose,
                ..
            } => {
                let preimage = purpose.preimage().map(|p| p.0);
                let hash = payment_hash.0;
                let updated =
                    self.payments
                        .update_with_manager(PaymentDirection::Inbound, &hash, |r| {
                            r.status = PaymentStatus::Succeeded;
                            r.amount_msat = Some(amount_msat);
                            r.preimage = preimage.or(r.preimage);
                        });
                if updated.is_none() {
                    let mut record = PaymentRecord::new_pending(
                        hash,
                        hash,
                        PaymentDirection::Inbound,
                        PaymentKind::Keysend,
                        Some(amount_msat),
                    );
                    record.status = PaymentStatus::Succeeded;
                    record.preimage = preimage;
                    self.payments.upsert_with_manager(record);
                }
                self.emit(NodeEvent::PaymentReceived {
                    payment_hash: hex::encode(hash),
                    amount_msat,
                });
            }
            Event::PaymentSent {
                payment_id,
                payment_preimage,
                payment_hash,
                fee_paid_msat,
                ..
            } => {
                let id = payment_id.map(|p| p.0).unwrap_or(payment_hash.0);
                self.payments
                    .update_with_manager(PaymentDirection::Outbound, &id, |r| {
                        r.status = PaymentStatus::Succeeded;
                        r.preimage = Some(payment_preimage.0);
                        r.fee_msat = fee_paid_msat;
                        r.failure_reason = None;
                    });
                self.emit(NodeEvent::PaymentSent {
                    payment_id: hex::encode(id),
                    payment_hash: hex::encode(payment_hash.0),
                    fee_msat: fee_paid_msat,
                });
            }
            Event::PaymentFailed {
                payment_id,
                payment_hash,
                reason,
            } => {
                let reason = reason
                    .map(|r| format!("{r:?}"))
                    .unwrap_or_else(|| "unknown".into());
                self.payments
                    .update_with_manager(PaymentDirection::Outbound, &payment_id.0, |r| {
                        r.status = PaymentStatus::Failed;
                        r.failure_reason = Some(reason.clone());
                    });
                self.emit(NodeEvent::PaymentFailed {
                    payment_id: hex::encode(payment_id.0),
                    payment_hash: payment_hash.map(|h| hex::encode(h.0)),
                    reason,
                });
            }
            Event::SpendableOutputs {
                outputs,
                channel_id,
            } => {
                let count = outputs.len();
                // Static outputs pay to the wallet's own scripts (see `seam`), so the wallet
                // already has them; only channel-specific outputs need a sweep.
                self.sweeper
                    .track_spendable_outputs(outputs, channel_id, true, None)
                    .map_err(|()| {
                        tracing::error!("could not persist outputs to sweep; will replay");
                        ReplayEvent()
                    })?;
                self.emit(NodeEvent::OutputsTracked { count });
            }
            Event::ChannelPending {
                channel_id,
                counterparty_node_id,
                funding_txo,
                ..
            } => {
                self.emit(NodeEvent::ChannelPending {
                    channel_id: channel_id.to_string(),
                    counterparty: counterparty_node_id.to_string(),
                    funding_txo: funding_txo.to_string(),
                });
            }
            Event::ChannelReady {
                channel_id,
                counterparty_node_id,
                ..
            } => {
                self.emit(NodeEvent::ChannelReady {
                    channel_id: channel_id.to_string(),
                    counterparty: counterparty_node_id.to_string(),
                });
            }
            Event::ChannelClosed {
                channel_id,
                reason,
                counterparty_node_id,
                ..
            } => {
                tracing::info!(node = %self.logger_label, %channel_id, %reason, "channel closed");
                self.emit(NodeEvent::ChannelClosed {
                    channel_id: channel_id.to_string(),
                    counterparty: counterparty_node_id.map(|n| n.to_string()),
                    reason: reason.to_string(),
                });
            }
            Event::PaymentForwarded {
                total_fee_earned_msat,
                outbound_amount_forwarded_msat,
                ..
            } => {
                self.emit(NodeEvent::PaymentForwarded {
                    fee_msat: total_fee_earned_msat,
                    amount_msat: outbound_amount_forwarded_msat,
                });
            }
            Event::ConnectionNeeded { node_id, addresses } => {
                for address in addresses {
                    if let Ok(mut addrs) =
                        std::net::ToSocketAddrs::to_socket_addrs(&address.to_string())
                    {
                        if let Some(addr) = addrs.next() {
                            let pm = self.peer_manager.clone();
                            let network = self.config.peer_network.clone();
                            let store = self.store.clone();
                            tokio::spawn(async move {
                                if let Some(conn) =
                                    crate::peer_net::dial(pm, &network, store, node_id, addr).await
                                {
                                    conn.await;
                                }
                            });
                            break;
                        }
                    }
                }
            }
            Event::PaymentPathFailed {
                failure: PathFailure::OnPath { network_update },
                ..
            } => {
                // The background processor would apply this for a private graph; the graph is
                // shared here, so the node applies what its own payments learned.
                if let Some(update) = network_update {
                    self.chain.graph.handle_network_update(&update);
                }
            }
            Event::HTLCHandlingFailed {
                prev_channel_id,
                failure_type,
                ..
            } => {
                tracing::debug!(%prev_channel_id, ?failure_type, "HTLC handling failed");
            }
            Event::BumpTransaction(bump) => {
                // The signer is asked to sign: keep it off the async workers.
                let bumper = self.bumper.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || bumper.handle(&bump)).await {
                    tracing::error!(error = %e, "fee bump task failed");
                }
            }
            Event::OpenChannelRequest {
                temporary_channel_id,
                counterparty_node_id,
                funding_satoshis,
                channel_type,
                ..
            } => self.answer_channel_request(
                temporary_channel_id,
                counterparty_node_id,
                funding_satoshis,
                &channel_type,
            ),
            Event::DiscardFunding {
                channel_id,
                funding_info,
            } => {
                tracing::info!(%channel_id, "funding discarded");
                // The funding was never broadcast: its coins are the wallet's to spend again.
                if let lightning::events::FundingInfo::Tx { transaction } = funding_info {
                    self.wallet
                        .forget_refused(&transaction)
                        .map_err(|e| replay("funding discarded", e))?;
                }
            }
            other => tracing::debug!(event = ?other, "unhandled LDK event"),
        }
        Ok(())
    }
}

impl<K: KeysBackend> NodeInner<K> {
    /// Whether a payment's sender may have taken `skimmed_msat` from it: only the opening fee
    /// agreed for a JIT invoice (see `liquidity`), and nothing from any other payment.
    fn skim_agreed(&self, payment_hash: &[u8; 32], skimmed_msat: u64) -> bool {
        if skimmed_msat == 0 {
            return true;
        }
        let limit = self
            .payments
            .get(PaymentDirection::Inbound, payment_hash)
            .and_then(|r| r.lsp_fee_limit_msat)
            .unwrap_or(0);
        if skimmed_msat > limit {
            tracing::warn!(
                node = %self.logger_label,
                payment_hash = %hex::encode(payment_hash),
                skimmed_msat,
                limit,
                "refusing a payment the forwarding peer took more from than agreed"
            );
            return false;
        }
        true
    }
}

fn replay(what: &str, e: crate::error::NodeError) -> ReplayEvent {
    tracing::error!(error = %e, "{what}: could not record; the event will be replayed");
    ReplayEvent()
}
