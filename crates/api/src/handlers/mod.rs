//! One handler per RPC, one file each: `handle_<rpc>(node, req) -> Result<Resp, ApiError>`
//! (the `Tokens` service's take the [`TokenAuthority`](crate::tokens::TokenAuthority) instead of
//! the node; the paying ones also take the call's [`Grant`](crate::auth::Grant)).
//!
//! Handlers check the request's fields (through [`crate::adapter`]), call the node, and convert
//! the answer. Node methods that may touch disk run in [`tokio::task::spawn_blocking`] (see
//! `blocking`) so they never stall the async workers.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node, NodeError};
use tokio::sync::watch;

use crate::error::ApiError;

mod close_channel;
mod connect_peer;
mod create_invoice;
mod get_info;
mod get_payment;
mod keysend;
mod lightning_balance;
mod list_channels;
mod list_payments;
mod list_peers;
mod list_tokens;
mod new_address;
mod onchain_balance;
mod open_channel;
mod pay_invoice;
mod register_token;
mod revoke_token;
mod send_onchain;
mod subscribe_events;

pub use close_channel::handle_close_channel;
pub use connect_peer::handle_connect_peer;
pub use create_invoice::handle_create_invoice;
pub use get_info::handle_get_info;
pub use get_payment::handle_get_payment;
pub use keysend::handle_keysend;
pub use lightning_balance::handle_lightning_balance;
pub use list_channels::handle_list_channels;
pub use list_payments::handle_list_payments;
pub use list_peers::handle_list_peers;
pub use list_tokens::handle_list_tokens;
pub use new_address::handle_new_address;
pub use onchain_balance::handle_onchain_balance;
pub use open_channel::handle_open_channel;
pub use pay_invoice::handle_pay_invoice;
pub use register_token::handle_register_token;
pub use revoke_token::handle_revoke_token;
pub use send_onchain::handle_send_onchain;
pub use subscribe_events::{handle_subscribe_events, EventStream};

/// Becomes `true` when the server shuts down, so long calls (payment waits, event streams) end
/// and let the shutdown complete.
pub type ShutdownSignal = watch::Receiver<bool>;

/// Resolves once `stop` is `true`; never, if nobody can set it any more.
pub(crate) async fn stopped(stop: &mut ShutdownSignal) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs a node method that may block (disk, signer) on the blocking pool.
pub(crate) async fn blocking<K, T, F>(node: &Arc<Node<K>>, f: F) -> Result<T, ApiError>
where
    K: KeysBackend,
    T: Send + 'static,
    F: FnOnce(&Node<K>) -> Result<T, NodeError> + Send + 'static,
{
    let node = node.clone();
    tokio::task::spawn_blocking(move || f(&node))
        .await
        .map_err(|e| ApiError::Task(e.to_string()))?
        .map_err(ApiError::from)
}

/// Runs a token-store operation (disk) on the blocking pool.
pub(crate) async fn blocking_tokens<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, crate::tokens::TokenError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Task(e.to_string()))?
        .map_err(ApiError::from)
}

/// Waits for an outbound payment's outcome, unless the server shuts down first.
pub(crate) async fn wait_outcome<K: KeysBackend>(
    node: &Node<K>,
    id: &[u8; 32],
    timeout: std::time::Duration,
    mut stop: ShutdownSignal,
) -> Result<micronode_node::PaymentRecord, ApiError> {
    tokio::select! {
        outcome = node.wait_payment(id, timeout) => Ok(outcome?),
        _ = stopped(&mut stop) => Err(ApiError::Node(NodeError::NotRunning)),
    }
}

/// Ends a pay handler: attaches the budget reservation to the started payment (or releases it
/// if the node refused at once), then waits for the outcome or returns the pending record.
pub(crate) async fn finish_payment<K: KeysBackend>(
    node: &Arc<Node<K>>,
    started: Result<[u8; 32], ApiError>,
    reservation: Option<crate::budget::Reservation>,
    wait: Option<std::time::Duration>,
    stop: ShutdownSignal,
) -> Result<micronode_proto::v1::Payment, ApiError> {
    let id = match (started, reservation) {
        (Ok(id), Some(reservation)) => {
            reservation.track(node.clone(), id, stop.clone()).await;
            id
        }
        (Ok(id), None) => id,
        (Err(e), Some(reservation)) => {
            reservation.release().await;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    let record = match wait {
        Some(timeout) => wait_outcome(node, &id, timeout, stop).await?,
        None => outbound_record(node, &id)?,
    };
    Ok(crate::adapter::payment(record))
}

/// The current record of an outbound payment that was just started.
pub(crate) fn outbound_record<K: KeysBackend>(
    node: &Node<K>,
    id: &[u8; 32],
) -> Result<micronode_node::PaymentRecord, ApiError> {
    node.payment_in(micronode_node::PaymentDirection::Outbound, id)
        .ok_or_else(|| {
            ApiError::Node(NodeError::Internal(format!(
                "payment {} was started but has no record",
                hex::encode(id)
            )))
        })
}
