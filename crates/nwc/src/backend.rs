//! The wallet the service fronts: a trait, so the in-process node ([`crate::NodeBackend`]) and,
//! later, a gRPC client of a remote node are interchangeable.

use micronode_node::InvoiceDescription;
use micronode_signer_protocol::PaymentAuthorization;
use std::future::Future;
use std::time::Duration;

use futures::stream::BoxStream;
use serde::Serialize;

/// Which way a transaction moved money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Received (an invoice we issued, or a keysend to us).
    Incoming,
    /// Sent.
    Outgoing,
}

/// Where a transaction stands, in NIP-47's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    /// Not settled yet.
    Pending,
    /// Settled.
    Settled,
    /// An invoice that expired unpaid.
    Expired,
    /// A payment that failed.
    Failed,
}

/// One invoice or payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transaction {
    /// Which way.
    pub direction: Direction,
    /// Where it stands.
    pub state: TxState,
    /// The BOLT11 invoice, if there is one (keysend has none).
    pub invoice: Option<String>,
    /// The invoice's description.
    pub description: Option<String>,
    /// The invoice's description hash (hex).
    pub description_hash: Option<String>,
    /// The preimage (hex), once known.
    pub preimage: Option<String>,
    /// The payment hash.
    pub payment_hash: [u8; 32],
    /// Amount (msat); 0 when unknown (an any-amount invoice not yet paid).
    pub amount_msat: u64,
    /// Routing fees paid (msat).
    pub fees_paid_msat: u64,
    /// Unix seconds when created.
    pub created_at: u64,
    /// Unix seconds when the invoice expires.
    pub expires_at: Option<u64>,
    /// Unix seconds when settled.
    pub settled_at: Option<u64>,
}

/// The node's identity and chain position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletInfo {
    /// Node alias.
    pub alias: String,
    /// Node public key (hex).
    pub pubkey: String,
    /// `mainnet`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// Best block height.
    pub block_height: u32,
    /// Best block hash.
    pub block_hash: String,
}

/// Filters of `list_transactions` (NIP-47's, plus paging).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransactionQuery {
    /// Created at or after (unix seconds).
    pub from: Option<u64>,
    /// Created at or before (unix seconds).
    pub until: Option<u64>,
    /// At most this many.
    pub limit: Option<u64>,
    /// Skip this many (after filtering, newest first).
    pub offset: Option<u64>,
    /// Include unsettled ones (open or expired invoices, pending or failed payments).
    pub unpaid: bool,
    /// Only this direction.
    pub direction: Option<Direction>,
}

impl TransactionQuery {
    /// Applies the query to a full list: filters, sorts newest first, pages.
    pub fn apply(&self, mut all: Vec<Transaction>) -> Vec<Transaction> {
        all.retain(|t| {
            self.from.is_none_or(|f| t.created_at >= f)
                && self.until.is_none_or(|u| t.created_at <= u)
                && (self.unpaid || t.state == TxState::Settled)
                && self.direction.is_none_or(|d| t.direction == d)
        });
        all.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.payment_hash.cmp(&a.payment_hash))
        });
        let offset = usize::try_from(self.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let limit = usize::try_from(self.limit.unwrap_or(u64::MAX)).unwrap_or(usize::MAX);
        all.into_iter().skip(offset).take(limit).collect()
    }
}

/// A payment event from the wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentEvent {
    /// We received a payment.
    Received {
        /// Its payment hash.
        payment_hash: [u8; 32],
    },
    /// A payment we sent settled.
    Sent {
        /// Its payment hash.
        payment_hash: [u8; 32],
    },
    /// A payment we sent failed for good.
    Failed {
        /// Its payment hash (the payment id for our node).
        payment_hash: [u8; 32],
    },
    /// Events were missed (a slow subscriber); the service reconciles from the wallet's state.
    Lagged,
}

/// What went wrong in the wallet, by kind, so the service can pick the NIP-47 code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendErrorKind {
    /// The input is malformed (bad invoice, node id, amount).
    InvalidInput,
    /// Not enough outbound liquidity.
    InsufficientBalance,
    /// The payment failed or was refused.
    PaymentFailed,
    /// This payment was already made or is in flight.
    Duplicate,
    /// No such payment.
    NotFound,
    /// A wait timed out; the payment may still complete.
    Timeout,
    /// The wallet is not running or unreachable.
    Unavailable,
    /// The tenant's signer found no request of this app for the payment (or a bad one).
    Unauthorized,
    /// The tenant's signer's budget for this app would be exceeded.
    QuotaExceeded,
    /// Anything else.
    Internal,
}

/// An error from the wallet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct BackendError {
    /// The kind.
    pub kind: BackendErrorKind,
    /// What happened.
    pub message: String,
}

impl BackendError {
    /// A new error.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A Lightning wallet as NWC needs it.
///
/// Implementations MUST NOT block the async runtime (use `spawn_blocking` for blocking work),
/// and MUST make `pay_invoice`/`pay_keysend` return only after the payment is recorded, so a
/// following [`WalletBackend::lookup_payment`] finds it.
pub trait WalletBackend: Send + Sync + 'static {
    /// Identity and chain position.
    fn get_info(&self) -> impl Future<Output = Result<WalletInfo, BackendError>> + Send;
    /// What the wallet can spend over Lightning now (msat).
    fn get_balance(&self) -> impl Future<Output = Result<u64, BackendError>> + Send;
    /// Creates an invoice (`None`: any amount) describing itself with text or a hash.
    fn make_invoice(
        &self,
        amount_msat: Option<u64>,
        description: InvoiceDescription,
        expiry_secs: u32,
    ) -> impl Future<Output = Result<Transaction, BackendError>> + Send;
    /// Starts paying an invoice; returns its payment hash. `authorization` is the app's
    /// request event, for a tenant signer that approves only what an app asked for.
    fn pay_invoice(
        &self,
        invoice: &str,
        amount_msat: Option<u64>,
        max_fee_msat: Option<u64>,
        authorization: Option<PaymentAuthorization>,
    ) -> impl Future<Output = Result<[u8; 32], BackendError>> + Send;
    /// Starts a keysend payment to a node (hex public key) with `preimage` if the app chose one
    /// (else the backend draws it); returns its payment hash.
    fn pay_keysend(
        &self,
        node_id: &str,
        amount_msat: u64,
        max_fee_msat: Option<u64>,
        preimage: Option<[u8; 32]>,
        authorization: Option<PaymentAuthorization>,
    ) -> impl Future<Output = Result<[u8; 32], BackendError>> + Send;
    /// Waits until an outgoing payment settles or fails, or `timeout` passes
    /// ([`BackendErrorKind::Timeout`]).
    fn wait_payment(
        &self,
        payment_hash: [u8; 32],
        timeout: Duration,
    ) -> impl Future<Output = Result<Transaction, BackendError>> + Send;
    /// One transaction by payment hash (outgoing first), if any.
    fn lookup_payment(
        &self,
        payment_hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<Transaction>, BackendError>> + Send;
    /// Transactions matching a query, newest first.
    fn list_transactions(
        &self,
        query: &TransactionQuery,
    ) -> impl Future<Output = Result<Vec<Transaction>, BackendError>> + Send;
    /// A stream of payment events. It MAY end when the wallet stops.
    fn payment_events(&self) -> BoxStream<'static, PaymentEvent>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(created_at: u64, direction: Direction, state: TxState, n: u8) -> Transaction {
        Transaction {
            direction,
            state,
            invoice: None,
            description: None,
            description_hash: None,
            preimage: None,
            payment_hash: [n; 32],
            amount_msat: 1000,
            fees_paid_msat: 0,
            created_at,
            expires_at: None,
            settled_at: None,
        }
    }

    #[test]
    fn query_filters_sorts_and_pages() {
        let all = vec![
            tx(10, Direction::Incoming, TxState::Settled, 1),
            tx(20, Direction::Outgoing, TxState::Settled, 2),
            tx(30, Direction::Incoming, TxState::Pending, 3),
            tx(40, Direction::Outgoing, TxState::Failed, 4),
            tx(50, Direction::Incoming, TxState::Settled, 5),
        ];
        let settled = TransactionQuery::default().apply(all.clone());
        assert_eq!(
            settled.iter().map(|t| t.created_at).collect::<Vec<_>>(),
            [50, 20, 10]
        );
        let unpaid = TransactionQuery {
            unpaid: true,
            ..Default::default()
        };
        assert_eq!(unpaid.apply(all.clone()).len(), 5);
        let page = TransactionQuery {
            unpaid: true,
            offset: Some(1),
            limit: Some(2),
            ..Default::default()
        };
        assert_eq!(
            page.apply(all.clone())
                .iter()
                .map(|t| t.created_at)
                .collect::<Vec<_>>(),
            [40, 30]
        );
        let window = TransactionQuery {
            unpaid: true,
            from: Some(20),
            until: Some(40),
            direction: Some(Direction::Incoming),
            ..Default::default()
        };
        assert_eq!(
            window
                .apply(all)
                .iter()
                .map(|t| t.created_at)
                .collect::<Vec<_>>(),
            [30]
        );
    }
}
