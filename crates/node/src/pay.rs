//! Invoices and payments.

use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::PublicKey;
use lightning::ln::channelmanager::{
    Bolt11InvoiceParameters, Bolt11PaymentError, PaymentId, RecipientOnionFields, Retry,
    RetryableSendFailure,
};
use lightning::routing::router::{PaymentParameters, RouteParameters, RouteParametersConfig};
use lightning::types::payment::PaymentPreimage;
use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description, Sha256};
use serde::Serialize;

use crate::error::NodeError;
use crate::keys::KeysBackend;
use crate::node::Node;
use crate::payments::{PaymentDirection, PaymentKind, PaymentRecord, PaymentStatus};

/// A new invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreatedInvoice {
    /// The BOLT11 invoice text.
    pub invoice: String,
    /// Its payment hash (hex).
    pub payment_hash: String,
}

/// What an invoice describes: text shown to the payer, or the SHA-256 of a description kept
/// elsewhere (BOLT11's `h` field, which LNURL-pay asks for its metadata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvoiceDescription {
    /// The description itself, at most 639 bytes.
    Text(String),
    /// The SHA-256 of the description.
    Hash([u8; 32]),
}

impl InvoiceDescription {
    /// The BOLT11 field, or an `InvalidInput` error for a description too long.
    pub(crate) fn to_bolt11(&self) -> Result<Bolt11InvoiceDescription, NodeError> {
        Ok(match self {
            InvoiceDescription::Text(text) => Bolt11InvoiceDescription::Direct(
                Description::new(text.clone())
                    .map_err(|e| NodeError::InvalidInput(format!("invalid description: {e}")))?,
            ),
            InvoiceDescription::Hash(hash) => {
                Bolt11InvoiceDescription::Hash(Sha256(sha256::Hash::from_byte_array(*hash)))
            }
        })
    }
}

impl From<&str> for InvoiceDescription {
    fn from(text: &str) -> Self {
        InvoiceDescription::Text(text.to_string())
    }
}

impl From<&String> for InvoiceDescription {
    fn from(text: &String) -> Self {
        InvoiceDescription::Text(text.clone())
    }
}

impl From<String> for InvoiceDescription {
    fn from(text: String) -> Self {
        InvoiceDescription::Text(text)
    }
}

/// The largest page [`Node::list_payments_page`] returns.
pub const MAX_PAYMENT_PAGE: usize = 1000;

/// Cursors are `p<creation index>`: opaque to clients, stable across restarts.
const CURSOR_PREFIX: &str = "p";

/// One page of the payment history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PaymentsPage {
    /// The payments, newest first.
    pub payments: Vec<PaymentRecord>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The final CLTV delta for keysend payments.
const KEYSEND_FINAL_CLTV: u32 = 40;

/// Parses a BOLT11 invoice.
pub fn parse_invoice(s: &str) -> Result<Bolt11Invoice, NodeError> {
    s.trim()
        .parse::<Bolt11Invoice>()
        .map_err(|e| NodeError::InvalidInput(format!("invalid invoice: {e}")))
}

/// Parses a 32-byte hex id or hash.
pub fn parse_hash(s: &str) -> Result<[u8; 32], NodeError> {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| NodeError::InvalidInput(format!("{s:?} is not a 32-byte hex value")))
}

fn map_send_failure(e: RetryableSendFailure) -> NodeError {
    match e {
        RetryableSendFailure::DuplicatePayment => {
            NodeError::DuplicatePayment("a payment with this id is already pending or paid".into())
        }
        RetryableSendFailure::RouteNotFound => NodeError::Payment("no route found".into()),
        RetryableSendFailure::PaymentExpired => {
            NodeError::Payment("the invoice has expired".into())
        }
        other => NodeError::Payment(format!("{other:?}")),
    }
}

impl<K: KeysBackend> Node<K> {
    /// Creates a BOLT11 invoice. `amount_msat` of `None` makes an any-amount invoice.
    pub fn create_invoice(
        &self,
        amount_msat: Option<u64>,
        description: impl Into<InvoiceDescription>,
        expiry_secs: u32,
    ) -> Result<CreatedInvoice, NodeError> {
        self.ensure_running()?;
        self.ensure_signer()?;
        if amount_msat == Some(0) {
            return Err(NodeError::InvalidInput(
                "invoice amount must be positive".into(),
            ));
        }
        let description = description.into().to_bolt11()?;
        let invoice = self
            .inner
            .channel_manager
            .create_bolt11_invoice(Bolt11InvoiceParameters {
                amount_msats: amount_msat,
                description,
                invoice_expiry_delta_secs: Some(expiry_secs),
                ..Default::default()
            })
            .map_err(|e| NodeError::Payment(format!("cannot create invoice: {e}")))?;
        let hash = *invoice.payment_hash().as_byte_array();
        self.inner
            .payments
            .upsert(PaymentRecord::for_invoice(&invoice, amount_msat))?;
        Ok(CreatedInvoice {
            invoice: invoice.to_string(),
            payment_hash: hex::encode(hash),
        })
    }

    /// Starts paying a BOLT11 invoice; returns the payment id (the payment hash). Use
    /// [`Node::wait_payment`] for the outcome. A remote signer that requires app requests
    /// refuses it: use [`Node::pay_invoice_for_app`].
    pub fn pay_invoice(
        &self,
        invoice: &str,
        amount_msat: Option<u64>,
        max_fee_msat: Option<u64>,
    ) -> Result<[u8; 32], NodeError> {
        self.pay_invoice_for_app(invoice, amount_msat, max_fee_msat, None)
    }

    /// [`Node::pay_invoice`] with the app's signed request, which the tenant's signer checks
    /// against the payment before approving it.
    pub fn pay_invoice_for_app(
        &self,
        invoice: &str,
        amount_msat: Option<u64>,
        max_fee_msat: Option<u64>,
        authorization: Option<micronode_signer_protocol::PaymentAuthorization>,
    ) -> Result<[u8; 32], NodeError> {
        self.ensure_running()?;
        self.ensure_signer()?;
        let invoice = parse_invoice(invoice)?;
        if invoice.network() != self.inner.config.network {
            return Err(NodeError::InvalidInput(format!(
                "invoice is for {}, node is on {}",
                invoice.network(),
                self.inner.config.network
            )));
        }
        if invoice.is_expired() {
            return Err(NodeError::InvalidInput("the invoice has expired".into()));
        }
        let amount = match (invoice.amount_milli_satoshis(), amount_msat) {
            (Some(a), None) => a,
            (Some(a), Some(b)) if b >= a => b,
            (Some(a), Some(b)) => {
                return Err(NodeError::InvalidInput(format!(
                    "amount {b} msat is below the invoice's {a} msat"
                )))
            }
            (None, Some(b)) if b > 0 => b,
            (None, _) => {
                return Err(NodeError::InvalidInput(
                    "the invoice has no amount; give one".into(),
                ))
            }
        };
        let outbound: u64 = self
            .inner
            .channel_manager
            .list_usable_channels()
            .iter()
            .map(|c| c.next_outbound_htlc_limit_msat)
            .sum();
        if amount > outbound {
            return Err(NodeError::InsufficientFunds(format!(
                "{amount} msat is more than the {outbound} msat we can send now"
            )));
        }
        let hash = *invoice.payment_hash().as_byte_array();
        let id = PaymentId(hash);
        if let Some(existing) = self.inner.payments.get(PaymentDirection::Outbound, &hash) {
            if existing.status != PaymentStatus::Failed {
                return Err(NodeError::DuplicatePayment(hex::encode(hash)));
            }
        }
        // A validating signer checks its payment policy (velocity, fees) here, and later signs
        // only commitments whose outgoing HTLCs match approved payments.
        self.inner
            .keys
            .approve_payment(&crate::keys::PaymentApproval::Invoice {
                invoice: invoice.to_string(),
                amount_msat: Some(amount),
                authorization,
            })?;
        let mut record = PaymentRecord::new_pending(
            hash,
            hash,
            PaymentDirection::Outbound,
            PaymentKind::Bolt11 {
                invoice: invoice.to_string(),
            },
            Some(amount),
        );
        record.counterparty = Some(invoice.get_payee_pub_key().to_string());
        self.inner.payments.upsert(record)?;
        let config = RouteParametersConfig {
            max_total_routing_fee_msat: self.fee_limit(amount, max_fee_msat),
            ..Default::default()
        };
        let retry = Retry::Timeout(Duration::from_secs(self.inner.config.payment_retry_secs));
        let sent = self.inner.channel_manager.pay_for_bolt11_invoice(
            &invoice,
            id,
            amount_msat,
            config,
            retry,
        );
        if let Err(e) = sent {
            let err = match e {
                Bolt11PaymentError::InvalidAmount => {
                    NodeError::InvalidInput("invalid amount for this invoice".into())
                }
                Bolt11PaymentError::SendingFailed(f) => map_send_failure(f),
            };
            self.mark_failed(&hash, &err)?;
            return Err(err);
        }
        Ok(hash)
    }

    /// Starts a keysend (spontaneous) payment; returns the payment id. A remote signer that
    /// requires app requests refuses it: use [`Node::keysend_for_app`].
    pub fn keysend(
        &self,
        node_id: PublicKey,
        amount_msat: u64,
        max_fee_msat: Option<u64>,
    ) -> Result<[u8; 32], NodeError> {
        self.keysend_for_app(node_id, amount_msat, max_fee_msat, None)
    }

    /// [`Node::keysend`] with the app's signed request, which the tenant's signer checks
    /// against the payment before approving it.
    pub fn keysend_for_app(
        &self,
        node_id: PublicKey,
        amount_msat: u64,
        max_fee_msat: Option<u64>,
        authorization: Option<micronode_signer_protocol::PaymentAuthorization>,
    ) -> Result<[u8; 32], NodeError> {
        self.keysend_with_preimage(node_id, amount_msat, max_fee_msat, None, authorization)
    }

    /// [`Node::keysend_for_app`] with the preimage the caller chose (`None`: the node draws
    /// one). The payment's hash and id are its SHA-256, so a caller can record the payment
    /// before it starts and find it after a crash. A preimage already used is refused as a
    /// duplicate payment.
    pub fn keysend_with_preimage(
        &self,
        node_id: PublicKey,
        amount_msat: u64,
        max_fee_msat: Option<u64>,
        preimage: Option<[u8; 32]>,
        authorization: Option<micronode_signer_protocol::PaymentAuthorization>,
    ) -> Result<[u8; 32], NodeError> {
        self.ensure_running()?;
        self.ensure_signer()?;
        if amount_msat == 0 {
            return Err(NodeError::InvalidInput(
                "keysend amount must be positive".into(),
            ));
        }
        let preimage = PaymentPreimage(preimage.unwrap_or_else(rand::random));
        let hash = sha256::Hash::hash(&preimage.0).to_byte_array();
        let id = PaymentId(hash);
        self.inner
            .keys
            .approve_payment(&crate::keys::PaymentApproval::Keysend {
                payee: node_id,
                payment_hash: hash,
                amount_msat,
                authorization,
            })?;
        let mut record = PaymentRecord::new_pending(
            hash,
            hash,
            PaymentDirection::Outbound,
            PaymentKind::Keysend,
            Some(amount_msat),
        );
        record.counterparty = Some(node_id.to_string());
        record.preimage = Some(preimage.0);
        self.inner.payments.insert_new(record)?;
        let mut params = RouteParameters::from_payment_params_and_value(
            PaymentParameters::for_keysend(node_id, KEYSEND_FINAL_CLTV, false),
            amount_msat,
        );
        params.max_total_routing_fee_msat = self
            .fee_limit(amount_msat, max_fee_msat)
            .or(params.max_total_routing_fee_msat);
        let retry = Retry::Timeout(Duration::from_secs(self.inner.config.payment_retry_secs));
        if let Err(e) = self.inner.channel_manager.send_spontaneous_payment(
            Some(preimage),
            RecipientOnionFields::spontaneous_empty(),
            id,
            params,
            retry,
        ) {
            let err = map_send_failure(e);
            self.mark_failed(&hash, &err)?;
            return Err(err);
        }
        Ok(hash)
    }

    /// The routing-fee limit of a payment: what the caller asked, within the signer's fee
    /// allowance (a payment over it would be refused mid-flight and stall the channel).
    fn fee_limit(&self, amount_msat: u64, requested: Option<u64>) -> Option<u64> {
        match self.inner.keys.payment_limits() {
            Some(limits) => {
                let allowance = limits.fee_allowance.for_amount(amount_msat);
                Some(requested.map_or(allowance, |r| r.min(allowance)))
            }
            None => requested,
        }
    }

    fn mark_failed(&self, id: &[u8; 32], err: &NodeError) -> Result<(), NodeError> {
        self.inner
            .payments
            .update(PaymentDirection::Outbound, id, |r| {
                r.status = PaymentStatus::Failed;
                r.failure_reason = Some(err.to_string());
            })?;
        Ok(())
    }

    /// Waits until an outbound payment succeeds or fails, or `timeout` passes.
    pub async fn wait_payment(
        &self,
        id: &[u8; 32],
        timeout: Duration,
    ) -> Result<PaymentRecord, NodeError> {
        let payments = &self.inner.payments;
        let current = |id| {
            payments
                .get(PaymentDirection::Outbound, id)
                .ok_or_else(|| NodeError::UnknownPayment(hex::encode(id)))
        };
        let record = current(id)?;
        if record.status != PaymentStatus::Pending {
            return Ok(record);
        }
        let resolved = payments.resolved(PaymentDirection::Outbound, id);
        // It may have resolved between the first look and registering.
        let record = current(id)?;
        if record.status != PaymentStatus::Pending {
            drop(resolved);
            payments.prune_waiters(PaymentDirection::Outbound, id);
            return Ok(record);
        }
        match tokio::time::timeout(timeout, resolved).await {
            Ok(Ok(record)) => Ok(record),
            Ok(Err(_)) => Err(NodeError::NotRunning),
            Err(_) => Err(NodeError::Timeout(format!(
                "payment {} still pending",
                hex::encode(id)
            ))),
        }
    }

    /// One payment, looked up by id (or payment hash) in either direction; outbound first.
    pub fn payment(&self, id: &[u8; 32]) -> Option<PaymentRecord> {
        self.inner
            .payments
            .get(PaymentDirection::Outbound, id)
            .or_else(|| self.inner.payments.get(PaymentDirection::Inbound, id))
    }

    /// One payment in a given direction.
    pub fn payment_in(&self, direction: PaymentDirection, id: &[u8; 32]) -> Option<PaymentRecord> {
        self.inner.payments.get(direction, id)
    }

    /// The whole payment history, oldest first.
    pub fn list_payments(&self) -> Vec<PaymentRecord> {
        self.inner.payments.list()
    }

    /// One page of the payment history, newest first: up to `page_size` payments (1 to
    /// [`MAX_PAYMENT_PAGE`]) from `cursor` (a [`PaymentsPage::next_cursor`] from the page before;
    /// `None` starts at the newest). The order is by creation and stable while paging.
    pub fn list_payments_page(
        &self,
        page_size: usize,
        cursor: Option<&str>,
    ) -> Result<PaymentsPage, NodeError> {
        if !(1..=MAX_PAYMENT_PAGE).contains(&page_size) {
            return Err(NodeError::InvalidInput(format!(
                "page size must be 1 to {MAX_PAYMENT_PAGE}"
            )));
        }
        let before = match cursor {
            None => None,
            Some(c) => Some(
                c.strip_prefix(CURSOR_PREFIX)
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| NodeError::InvalidInput(format!("bad cursor {c:?}")))?,
            ),
        };
        let page = self.inner.payments.page(page_size, before);
        Ok(PaymentsPage {
            payments: page.payments,
            next_cursor: page.next_before.map(|i| format!("{CURSOR_PREFIX}{i}")),
        })
    }
}

impl<K: KeysBackend> crate::node::NodeInner<K> {
    /// After a restart, marks as failed every outbound payment still pending in our history that
    /// LDK does not know: the process stopped after recording it but before the HTLC was
    /// committed, so it never left the node. Payments LDK knows resolve through its events.
    pub(crate) fn fail_payments_lost_before_sending(&self) -> Result<usize, NodeError> {
        use lightning::ln::channelmanager::RecentPaymentDetails;
        let known: std::collections::HashSet<[u8; 32]> = self
            .channel_manager
            .list_recent_payments()
            .into_iter()
            .map(|p| match p {
                RecentPaymentDetails::AwaitingInvoice { payment_id }
                | RecentPaymentDetails::Pending { payment_id, .. }
                | RecentPaymentDetails::Fulfilled { payment_id, .. }
                | RecentPaymentDetails::Abandoned { payment_id, .. } => payment_id.0,
            })
            .collect();
        let mut failed = 0;
        for record in self.payments.list() {
            if record.direction == PaymentDirection::Outbound
                && record.status == PaymentStatus::Pending
                && !known.contains(&record.id)
            {
                self.payments
                    .update(PaymentDirection::Outbound, &record.id, |r| {
                        r.status = PaymentStatus::Failed;
                        r.failure_reason =
                            Some("interrupted before the payment left the node".into());
                    })?;
                failed += 1;
            }
        }
        Ok(failed)
    }
}
