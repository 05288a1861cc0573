//! The background tasks: resolving pending outgoing payments against the node (at start-up,
//! periodically, and when the node reports a payment's outcome), and following the node's
//! events to credit incoming payments (reconciling with the node at start-up, after missed
//! events and after every reconnect).

use std::sync::Arc;
use std::time::Duration;

use micronode_proto::v1::event::Event;
use tokio::sync::watch;

use crate::service::Core;

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Resolves pending payments every `resolve_interval_secs` (and when woken) until `stop`.
pub async fn run_resolver(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_secs(core.config.resolve_interval_secs);
    loop {
        if let Err(e) = core.resolve_pending().await {
            tracing::warn!(error = %e, "resolving pending payments failed; will retry");
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(interval) => {}
            _ = core.resolve_now.notified() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Follows the node's events until `stop`, reconnecting with backoff.
pub async fn run_follower(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return;
        }
        match core.client.subscribe_events().await {
            Ok(mut stream) => {
                // Subscribed first, then reconciled: nothing paid in between is missed.
                if reconcile(&core).await {
                    backoff = Duration::from_millis(500);
                }
                loop {
                    let message = tokio::select! {
                        _ = stop.changed() => return,
                        m = stream.message() => m,
                    };
                    match message {
                        Ok(Some(event)) => handle(&core, event.event).await,
                        Ok(None) => {
                            tracing::info!("the node's event stream ended; reconnecting");
                            break;
                        }
                        Err(status) => {
                            tracing::warn!(error = %status.message(), "the node's event stream failed; reconnecting");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to the node's events; retrying"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn reconcile(core: &Core) -> bool {
    match core.reconcile_invoices().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "reconciling invoices with the node failed");
            false
        }
    }
}

async fn handle(core: &Core, event: Option<Event>) {
    match event {
        Some(Event::PaymentReceived(received)) => {
            match core
                .credit(received.payment_hash.clone(), received.amount_msat)
                .await
            {
                Ok(true) => {
                    tracing::info!(payment_hash = %received.payment_hash, "invoice credited")
                }
                Ok(false) => {}
                Err(e) => {
                    // The reconciliation after the next reconnect (or lag) credits it.
                    tracing::warn!(error = %e, "crediting a received payment failed");
                }
            }
        }
        Some(Event::PaymentSent(_)) | Some(Event::PaymentFailed(_)) => {
            core.resolve_now.notify_one();
        }
        Some(Event::EventsLagged(lag)) => {
            tracing::info!(missed = lag.missed, "missed node events; reconciling");
            reconcile(core).await;
            core.resolve_now.notify_one();
        }
        _ => {}
    }
}
