//! [`WalletBackend`] over an in-process [`micronode_node::Node`].

use micronode_signer_protocol::PaymentAuthorization;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef};
use micronode_node::{
    InvoiceDescription, KeysBackend, Node, NodeError, NodeEvent, PaymentDirection, PaymentKind,
    PaymentRecord, PaymentStatus,
};

use crate::backend::{
    BackendError, BackendErrorKind, Direction, PaymentEvent, Transaction, TransactionQuery,
    TxState, WalletBackend, WalletInfo,
};
use crate::util::now_secs;

/// The service's view of a node running in the same process.
pub struct NodeBackend<K: KeysBackend> {
    node: Arc<Node<K>>,
}

impl<K: KeysBackend> NodeBackend<K> {
    /// Wraps a node.
    pub fn new(node: Arc<Node<K>>) -> Self {
        Self { node }
    }
}

impl<K: KeysBackend> Clone for NodeBackend<K> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
        }
    }
}

fn map_err(e: NodeError) -> BackendError {
    let kind = match &e {
        NodeError::InvalidInput(_) => BackendErrorKind::InvalidInput,
        NodeError::InsufficientFunds(_) => BackendErrorKind::InsufficientBalance,
        NodeError::Payment(_) | NodeError::UnknownPeer(_) | NodeError::Connection(_) => {
            BackendErrorKind::PaymentFailed
        }
        NodeError::DuplicatePayment(_) => BackendErrorKind::Duplicate,
        NodeError::UnknownPayment(_) => BackendErrorKind::NotFound,
        NodeError::Timeout(_) => BackendErrorKind::Timeout,
        NodeError::NotRunning => BackendErrorKind::Unavailable,
        // The tenant's signer refused: no app asked for this payment, or its budget is spent.
        NodeError::SignerRefused { rule, .. } if rule == "app-budget-exceeded" => {
            BackendErrorKind::QuotaExceeded
        }
        NodeError::SignerRefused { rule, .. } if rule.starts_with("app-") => {
            BackendErrorKind::Unauthorized
        }
        _ => BackendErrorKind::Internal,
    };
    BackendError::new(kind, e.to_string())
}

/// The network name NIP-47 uses.
fn network_name(network: &str) -> String {
    match network {
        "bitcoin" => "mainnet".into(),
        "testnet4" => "testnet".into(),
        other => other.into(),
    }
}

/// Converts a node payment record to a NIP-47 transaction.
pub fn transaction_from_record(record: &PaymentRecord) -> Transaction {
    let invoice = match &record.kind {
        PaymentKind::Bolt11 { invoice } => Some(invoice.clone()),
        PaymentKind::Keysend => None,
    };
    let parsed = invoice
        .as_deref()
        .and_then(|i| i.parse::<Bolt11Invoice>().ok());
    let (description, description_hash, expires_at) = match &parsed {
        Some(inv) => {
            let (d, h) = match inv.description() {
                Bolt11InvoiceDescriptionRef::Direct(d) => (Some(d.to_string()), None),
                Bolt11InvoiceDescriptionRef::Hash(h) => (None, Some(h.0.to_string())),
            };
            let expiry = inv
                .duration_since_epoch()
                .checked_add(inv.expiry_time())
                .map(|d| d.as_secs());
            (d, h, expiry)
        }
        None => (None, None, None),
    };
    let direction = match record.direction {
        PaymentDirection::Inbound => Direction::Incoming,
        PaymentDirection::Outbound => Direction::Outgoing,
    };
    let state = match (record.status, direction) {
        (PaymentStatus::Succeeded, _) => TxState::Settled,
        (PaymentStatus::Failed, Direction::Incoming) => TxState::Expired,
        (PaymentStatus::Failed, Direction::Outgoing) => TxState::Failed,
        (PaymentStatus::Pending, Direction::Incoming)
            if expires_at.is_some_and(|e| e <= now_secs()) =>
        {
            TxState::Expired
        }
        (PaymentStatus::Pending, _) => TxState::Pending,
    };
    let amount_msat = record
        .amount_msat
        .or_else(|| parsed.as_ref().and_then(|i| i.amount_milli_satoshis()))
        .unwrap_or(0);
    Transaction {
        direction,
        state,
        invoice,
        description,
        description_hash,
        preimage: record.preimage.map(hex::encode),
        payment_hash: record.payment_hash,
        amount_msat,
        fees_paid_msat: record.fee_msat.unwrap_or(0),
        created_at: record.created_at,
        expires_at,
        settled_at: (record.status == PaymentStatus::Succeeded).then_some(record.updated_at),
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
}

impl<K: KeysBackend> WalletBackend for NodeBackend<K> {
    async fn get_info(&self) -> Result<WalletInfo, BackendError> {
        let info = self.node.info();
        Ok(WalletInfo {
            alias: info.alias,
            pubkey: info.node_id,
            network: network_name(&info.network),
            block_height: info.block_height,
            block_hash: info.block_hash,
        })
    }

    async fn get_balance(&self) -> Result<u64, BackendError> {
        Ok(self
            .node
            .list_channels()
            .iter()
            .filter(|c| c.is_usable)
            .map(|c| c.outbound_capacity_msat)
            .sum())
    }

    async fn make_invoice(
        &self,
        amount_msat: Option<u64>,
        description: InvoiceDescription,
        expiry_secs: u32,
    ) -> Result<Transaction, BackendError> {
        let (created, _) = self
            .node
            .create_receivable_invoice(amount_msat, description, expiry_secs)
            .await
            .map_err(map_err)?;
        let hash = parse_hex32(&created.payment_hash)
            .ok_or_else(|| BackendError::new(BackendErrorKind::Internal, "bad payment hash"))?;
        let record = self
            .node
            .payment_in(PaymentDirection::Inbound, &hash)
            .ok_or_else(|| {
                BackendError::new(BackendErrorKind::Internal, "new invoice is not recorded")
            })?;
        Ok(transaction_from_record(&record))
    }

    async fn pay_invoice(
        &self,
        invoice: &str,
        amount_msat: Option<u64>,
        max_fee_msat: Option<u64>,
        authorization: Option<PaymentAuthorization>,
    ) -> Result<[u8; 32], BackendError> {
        self.node
            .pay_invoice_for_app(invoice, amount_msat, max_fee_msat, authorization)
            .map_err(map_err)
    }

    async fn pay_keysend(
        &self,
        node_id: &str,
        amount_msat: u64,
        max_fee_msat: Option<u64>,
        preimage: Option<[u8; 32]>,
        authorization: Option<PaymentAuthorization>,
    ) -> Result<[u8; 32], BackendError> {
        let node_id = micronode_node::channels::parse_node_id(node_id).map_err(map_err)?;
        self.node
            .keysend_with_preimage(node_id, amount_msat, max_fee_msat, preimage, authorization)
            .map_err(map_err)
    }

    async fn wait_payment(
        &self,
        payment_hash: [u8; 32],
        timeout: Duration,
    ) -> Result<Transaction, BackendError> {
        let record = self
            .node
            .wait_payment(&payment_hash, timeout)
            .await
            .map_err(map_err)?;
        Ok(transaction_from_record(&record))
    }

    async fn lookup_payment(
        &self,
        payment_hash: [u8; 32],
    ) -> Result<Option<Transaction>, BackendError> {
        Ok(self
            .node
            .payment(&payment_hash)
            .map(|r| transaction_from_record(&r)))
    }

    async fn list_transactions(
        &self,
        query: &TransactionQuery,
    ) -> Result<Vec<Transaction>, BackendError> {
        // The node keeps its history in memory and has no filtered listing; filter here.
        let all = self
            .node
            .list_payments()
            .iter()
            .map(transaction_from_record)
            .collect();
        Ok(query.apply(all))
    }

    fn payment_events(&self) -> BoxStream<'static, PaymentEvent> {
        let rx = self.node.subscribe_events();
        futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        if let Some(e) = map_event(&event) {
                            return Some((e, rx));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        return Some((PaymentEvent::Lagged, rx))
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }
}

fn map_event(event: &NodeEvent) -> Option<PaymentEvent> {
    match event {
        NodeEvent::PaymentReceived { payment_hash, .. } => {
            parse_hex32(payment_hash).map(|payment_hash| PaymentEvent::Received { payment_hash })
        }
        NodeEvent::PaymentSent { payment_hash, .. } => {
            parse_hex32(payment_hash).map(|payment_hash| PaymentEvent::Sent { payment_hash })
        }
        // Our node's payment id is the payment hash (BOLT11 and keysend alike).
        NodeEvent::PaymentFailed { payment_id, .. } => {
            parse_hex32(payment_id).map(|payment_hash| PaymentEvent::Failed { payment_hash })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_records_to_nip47_states() {
        let mut r = PaymentRecord::new_pending(
            [1; 32],
            [1; 32],
            PaymentDirection::Outbound,
            PaymentKind::Keysend,
            Some(5000),
        );
        assert_eq!(transaction_from_record(&r).state, TxState::Pending);
        r.status = PaymentStatus::Failed;
        assert_eq!(transaction_from_record(&r).state, TxState::Failed);
        r.status = PaymentStatus::Succeeded;
        r.fee_msat = Some(7);
        let t = transaction_from_record(&r);
        assert_eq!(t.state, TxState::Settled);
        assert_eq!(t.fees_paid_msat, 7);
        assert_eq!(t.settled_at, Some(r.updated_at));
        assert!(t.invoice.is_none());
        r.direction = PaymentDirection::Inbound;
        r.status = PaymentStatus::Failed;
        assert_eq!(transaction_from_record(&r).state, TxState::Expired);
        assert_eq!(network_name("bitcoin"), "mainnet");
        assert_eq!(network_name("regtest"), "regtest");
    }
}
