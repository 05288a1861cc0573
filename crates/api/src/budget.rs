//! Spending budgets on the payment path.
//!
//! Before a metered payment starts, its handler reserves the most it can cost (the amount plus
//! the routing-fee limit) against every budget caveat of the token's chain
//! ([`TokenGrant::reserve_spend`](crate::tokens::TokenGrant::reserve_spend): an atomic check and
//! insert, so concurrent payments cannot overspend). If the node refuses the payment at once,
//! the reservation is released. Otherwise a watcher follows the payment: success settles the
//! reservation at the amount plus the fee actually paid, failure releases it. Reservations a
//! shutdown left open are settled by `reconcile` when the API serves again.

use std::sync::Arc;
use std::time::Duration;

use micronode_node::{
    KeysBackend, Node, NodeError, PaymentDirection, PaymentRecord, PaymentStatus,
};

use crate::auth::Grant;
use crate::error::ApiError;
use crate::handlers::{stopped, ShutdownSignal};
use crate::tokens::{SpendId, TokenAuthority};

/// LDK's routing-fee limit when a payment sets none: 1 % of the amount plus 50 sat
/// (`RouteParameters::from_payment_params_and_value`). Metered payments pass it explicitly, so
/// what is reserved is exactly what the node may spend.
pub fn default_fee_limit_msat(amount_msat: u64) -> u64 {
    amount_msat / 100 + 50_000
}

/// What a metered payment reserves: the amount plus its routing-fee limit. Fills in LDK's default
/// limit when the caller set none, so the node can never spend more than was reserved.
pub(crate) fn metered_cost(
    amount_msat: u64,
    max_fee_msat: &mut Option<u64>,
) -> Result<u64, crate::error::ApiError> {
    let fee_limit = *max_fee_msat.get_or_insert(default_fee_limit_msat(amount_msat));
    amount_msat
        .checked_add(fee_limit)
        .ok_or_else(|| crate::error::ApiError::invalid("amount plus fee limit overflows"))
}

/// How long a watcher waits between looks at a payment that is still pending.
const WATCH_SLICE: Duration = Duration::from_secs(3600);

/// A reservation of a metered payment's cost.
#[derive(Debug)]
pub(crate) struct Reservation {
    authority: TokenAuthority,
    spend: SpendId,
}

/// Reserves `cost_msat` against `grant`'s budgets; `None` for an unmetered grant. Fails with
/// `BUDGET_EXCEEDED` (or a revocation, expiry...) before anything is paid.
pub(crate) async fn reserve(
    grant: &Grant,
    cost_msat: u64,
    payment_id: Option<[u8; 32]>,
) -> Result<Option<Reservation>, ApiError> {
    let Some(token) = grant.token_grant().cloned() else {
        return Ok(None);
    };
    let spend = tokio::task::spawn_blocking(move || {
        token
            .reserve_spend(cost_msat, payment_id)
            .map(|spend| (spend, token.authority().clone()))
    })
    .await
    .map_err(|e| ApiError::Task(e.to_string()))??;
    Ok(Some(Reservation {
        authority: spend.1,
        spend: spend.0,
    }))
}

impl Reservation {
    /// The payment never started: the reservation no longer counts.
    pub(crate) async fn release(self) {
        let Reservation { authority, spend } = self;
        run_logged("release", move || authority.release_spend(spend)).await;
    }

    /// The payment `payment_id` started: records it and watches it until it settles or fails
    /// (or the server shuts down; [`reconcile`] then takes over at the next start).
    pub(crate) async fn track<K: KeysBackend>(
        self,
        node: Arc<Node<K>>,
        payment_id: [u8; 32],
        stop: ShutdownSignal,
    ) {
        let authority = self.authority.clone();
        let spend = self.spend;
        run_logged("attach", move || authority.attach_spend(spend, &payment_id)).await;
        tokio::spawn(watch(node, self.authority, self.spend, payment_id, stop));
    }
}

/// Follows a payment and settles or releases its reservation.
async fn watch<K: KeysBackend>(
    node: Arc<Node<K>>,
    authority: TokenAuthority,
    spend: SpendId,
    payment_id: [u8; 32],
    mut stop: ShutdownSignal,
) {
    loop {
        let outcome = tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            outcome = node.wait_payment(&payment_id, WATCH_SLICE) => outcome,
        };
        match outcome {
            Ok(record) => {
                resolve(&authority, spend, Some(record)).await;
                return;
            }
            Err(NodeError::Timeout(_)) => continue,
            Err(NodeError::UnknownPayment(_)) => {
                resolve(&authority, spend, None).await;
                return;
            }
            // The node is stopping: leave the reservation for the next start.
            Err(_) => return,
        }
    }
}

/// Settles (succeeded) or releases (failed, or unknown to the node) a reservation; leaves a
/// pending one alone.
async fn resolve(authority: &TokenAuthority, spend: SpendId, record: Option<PaymentRecord>) {
    let authority = authority.clone();
    match record {
        Some(r) if r.status == PaymentStatus::Succeeded => {
            // Without the fee, the reserved cost keeps counting (never less than was spent).
            let cost = match (r.amount_msat, r.fee_msat) {
                (Some(amount), Some(fee)) => Some(amount.saturating_add(fee)),
                _ => None,
            };
            run_logged("settle", move || authority.settle_spend(spend, cost)).await;
        }
        Some(r) if r.status == PaymentStatus::Pending => {}
        _ => run_logged("release", move || authority.release_spend(spend)).await,
    }
}

/// Settles the reservations a previous run left open: payments that succeeded or failed
/// meanwhile are resolved, those still in flight are watched again. A reservation without a
/// payment id (the process stopped between reserving and the node accepting a keysend) keeps
/// counting: the payment may have left, and a budget must never be under-counted.
pub(crate) async fn reconcile<K: KeysBackend>(
    node: Arc<Node<K>>,
    authority: TokenAuthority,
    stop: ShutdownSignal,
) {
    let listing = authority.clone();
    let open = match tokio::task::spawn_blocking(move || listing.open_spends()).await {
        Ok(Ok(open)) => open,
        Ok(Err(e)) => {
            tracing::error!(error = %crate::error::Chain(&e), "cannot list open budget reservations");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot list open budget reservations");
            return;
        }
    };
    for (spend, payment) in open {
        let Some(payment_id) = payment else { continue };
        match node.payment_in(PaymentDirection::Outbound, &payment_id) {
            Some(r) if r.status == PaymentStatus::Pending => {
                tokio::spawn(watch(
                    node.clone(),
                    authority.clone(),
                    spend,
                    payment_id,
                    stop.clone(),
                ));
            }
            record => resolve(&authority, spend, record).await,
        }
    }
}

/// Runs a ledger update on the blocking pool; a failure is logged (the reservation then keeps
/// counting, which errs on the side of the budget).
async fn run_logged<F>(what: &'static str, f: F)
where
    F: FnOnce() -> Result<(), crate::tokens::TokenError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %crate::error::Chain(&e), what, "budget ledger update failed")
        }
        Err(e) => tracing::error!(error = %e, what, "budget ledger update failed"),
    }
}
