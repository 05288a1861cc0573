//! Inbound liquidity with JIT channels (bLIP-52, LSPS2), on `lightning-liquidity`.
//!
//! A gateway serves LSPS2 (`service`): a client asks for its fee menu, buys a channel for one
//! payment and gets an intercept short channel id to put in its invoice. When the payment
//! arrives, the gateway holds the HTLC, opens a channel to the client, and forwards the payment
//! minus the opening fee once the channel is ready; if the open fails, the HTLC fails back.
//!
//! A tenant is a client (`client`): an invoice that its channels cannot receive is made a JIT
//! invoice through its LSP, within the fee limits of its settings, and the node accepts the
//! LSP's channel and the underpaid HTLC only for the fee it agreed to.

mod client;
mod service;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lightning::events::Event;
use lightning::ln::types::ChannelId;
use lightning::util::persist::KVStoreSyncWrapper;
use lightning_liquidity::events::LiquidityEvent;
use lightning_liquidity::lsps0::ser::LSPSRequestId;
use lightning_liquidity::lsps2::client::LSPS2ClientConfig;
use lightning_liquidity::lsps2::event::LSPS2ClientEvent;
use lightning_liquidity::lsps2::service::LSPS2ServiceConfig;
use lightning_liquidity::{LiquidityClientConfig, LiquidityServiceConfig};
use tokio::sync::{oneshot, watch};

use crate::config::LiquiditySettings;
use crate::error::NodeError;
use crate::keys::KeysBackend;
use crate::node::NodeInner;
use crate::types::{ChannelManager, LiquidityManager, Store};

pub use client::JitOffer;

/// The store key of the secret the gateway signs its fee promises with.
const PROMISE_SECRET_KEY: &str = "lsps2_promise_secret";

/// A node's LSPS2 parts: the manager (the custom message handler of its peer manager) and the
/// client requests waiting for the LSP's answer.
pub(crate) struct Liquidity<K: KeysBackend> {
    pub(crate) manager: Arc<LiquidityManager<K>>,
    pub(crate) settings: LiquiditySettings,
    waiters: Mutex<HashMap<LSPSRequestId, oneshot::Sender<LSPS2ClientEvent>>>,
}

impl<K: KeysBackend> Liquidity<K> {
    /// Builds the manager for what `settings` asks: a service, a client, both or neither (a
    /// node with neither still answers LSPS0's protocol listing).
    pub(crate) async fn new(
        settings: &LiquiditySettings,
        keys: Arc<K>,
        channel_manager: Arc<ChannelManager<K>>,
        store: Arc<Store>,
        broadcaster: Arc<micronode_chain::SharedBroadcaster>,
    ) -> Result<Self, NodeError> {
        let service_config = match &settings.lsps2_service {
            Some(_) => Some(LiquidityServiceConfig {
                lsps2_service_config: Some(LSPS2ServiceConfig {
                    promise_secret: promise_secret(&store, keys.as_ref())?,
                }),
                lsps5_service_config: None,
                advertise_service: true,
            }),
            None => None,
        };
        let client_config = settings.lsp.as_ref().map(|_| LiquidityClientConfig {
            lsps1_client_config: None,
            lsps2_client_config: Some(LSPS2ClientConfig {}),
            lsps5_client_config: None,
        });
        let manager = LiquidityManager::<K>::new(
            keys.clone(),
            keys,
            channel_manager,
            None,
            None,
            KVStoreSyncWrapper(store),
            broadcaster,
            service_config,
            client_config,
        )
        .await
        .map_err(|e| NodeError::Storage(std::io::Error::other(e.to_string())))?;
        Ok(Self {
            manager: Arc::new(manager),
            settings: settings.clone(),
            waiters: Mutex::new(HashMap::new()),
        })
    }

    /// Hands a client event to the request waiting for it.
    fn answer(&self, request_id: &LSPSRequestId, event: LSPS2ClientEvent) {
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(request_id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(event);
            }
            None => tracing::debug!(?request_id, "an LSPS2 answer nobody waits for"),
        }
    }
}

/// The gateway's promise secret: random once, then kept in the node's store (promises it made
/// stay valid across a restart).
fn promise_secret<K: KeysBackend>(store: &Store, keys: &K) -> Result<[u8; 32], NodeError> {
    use lightning::util::persist::KVStoreSync;
    match store.read("", "", PROMISE_SECRET_KEY) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| NodeError::Internal("the stored LSPS2 promise secret is damaged".into())),
        Err(e) if e.kind() == lightning::io::ErrorKind::NotFound => {
            let secret = keys.get_secure_random_bytes();
            store.write("", "", PROMISE_SECRET_KEY, secret.to_vec())?;
            Ok(secret)
        }
        Err(e) => Err(e.into()),
    }
}

impl<K: KeysBackend> NodeInner<K> {
    /// Handles the liquidity manager's events until the node stops.
    pub(crate) async fn liquidity_event_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let event = tokio::select! {
                event = self.liquidity.manager.next_event_async() => event,
                _ = stop.wait_for(|s| *s) => return,
            };
            match event {
                LiquidityEvent::LSPS2Service(event) => self.handle_lsps2_service_event(event).await,
                LiquidityEvent::LSPS2Client(event) => {
                    let request_id = match &event {
                        LSPS2ClientEvent::OpeningParametersReady { request_id, .. }
                        | LSPS2ClientEvent::InvoiceParametersReady { request_id, .. }
                        | LSPS2ClientEvent::GetInfoFailed { request_id, .. }
                        | LSPS2ClientEvent::BuyRequestFailed { request_id, .. } => {
                            request_id.clone()
                        }
                    };
                    self.liquidity.answer(&request_id, event);
                }
                other => tracing::debug!(event = ?other, "unhandled liquidity event"),
            }
        }
    }

    /// The part of LDK's event handling that concerns JIT channels: the gateway's intercepted
    /// HTLCs and channel life cycle. Returns the event when it is not only LSPS2's business.
    pub(crate) async fn liquidity_sees(&self, event: Event) -> Option<Event> {
        let Some(service) = self.liquidity.manager.lsps2_service_handler() else {
            if let Event::HTLCIntercepted { intercept_id, .. } = event {
                // Nothing here issues intercept ids without the service; refuse at once.
                let _ = self.channel_manager.fail_intercepted_htlc(intercept_id);
                return None;
            }
            return Some(event);
        };
        match &event {
            Event::HTLCIntercepted {
                intercept_id,
                requested_next_hop_scid,
                payment_hash,
                expected_outbound_amount_msat,
                ..
            } => {
                if let Err(e) = service
                    .htlc_intercepted(
                        *requested_next_hop_scid,
                        *intercept_id,
                        *expected_outbound_amount_msat,
                        *payment_hash,
                    )
                    .await
                {
                    tracing::warn!(node = %self.logger_label, error = ?e, "refusing an intercepted HTLC");
                    let _ = self.channel_manager.fail_intercepted_htlc(*intercept_id);
                }
                return None;
            }
            Event::ChannelReady {
                user_channel_id,
                channel_id,
                counterparty_node_id,
                ..
            } => {
                if let Err(e) = service
                    .channel_ready(*user_channel_id, channel_id, counterparty_node_id)
                    .await
                {
                    tracing::debug!(%channel_id, error = ?e, "not a JIT channel");
                }
            }
            Event::HTLCHandlingFailed { failure_type, .. } => {
                let _ = service.htlc_handling_failed(failure_type.clone()).await;
            }
            Event::PaymentForwarded {
                next_channel_id: Some(next),
                skimmed_fee_msat,
                ..
            } => {
                let _ = service
                    .payment_forwarded(*next, skimmed_fee_msat.unwrap_or(0))
                    .await;
            }
            Event::ChannelClosed {
                user_channel_id,
                counterparty_node_id: Some(counterparty),
                channel_id,
                ..
            } => {
                self.jit_open_failed(service, channel_id, counterparty, *user_channel_id)
                    .await
            }
            _ => {}
        }
        Some(event)
    }

    /// A channel closed before it was ready: if it was a JIT channel, its held HTLCs fail back
    /// so the payer can retry.
    async fn jit_open_failed(
        &self,
        service: &lightning_liquidity::lsps2::service::LSPS2ServiceHandler<
            Arc<ChannelManager<K>>,
            KVStoreSyncWrapper<Arc<Store>>,
            Arc<micronode_chain::SharedBroadcaster>,
        >,
        channel_id: &ChannelId,
        counterparty: &bitcoin::secp256k1::PublicKey,
        user_channel_id: u128,
    ) {
        if service
            .channel_open_failed(counterparty, user_channel_id)
            .await
            .is_ok()
        {
            tracing::warn!(node = %self.logger_label, %channel_id, %counterparty, "a JIT channel failed to open; its payment fails back");
        }
    }
}
