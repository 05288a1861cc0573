//! The hub's operations on top of the store and the node: making invoices, paying invoices
//! and keysends (hold, call the node, settle or refund), and resolving payments whose outcome
//! the hub did not see.

use std::str::FromStr;

use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef};
use micronode_client::{ClientError, InvoiceDescription, NodeClient};
use micronode_proto::v1::{self, PaymentDirection, PaymentStatus as NodeStatus};
use micronode_proto::ErrorCode;
use tokio::sync::Notify;

use crate::config::HubConfig;
use crate::error::{HubError, LndHubCode, Refusal};
use crate::invoices::{self, InvoiceRecord, NewInvoice};
use crate::payments::{self, ExternalPayment, PaymentRecord, PaymentStatus};
use crate::store::{now, Store};

/// The message for a payment the tenant's signer refused by policy.
pub const POLICY_REFUSAL: &str = "payment refused: the hub's spending allowance at the tenant's \
     signer is used up (the signer refused it by policy); the tenant must raise the hub app's budget";

/// Everything a request needs: the store, the configuration, the node.
pub struct Core {
    /// The database.
    pub store: Store,
    /// The configuration.
    pub config: HubConfig,
    /// The tenant's node.
    pub client: NodeClient,
    /// Wakes the resolver (a payment's outcome may be known).
    pub resolve_now: Notify,
}

/// A BOLT11 invoice parsed from untrusted text (`lightning:` prefix allowed).
pub fn parse_invoice(text: &str) -> Result<Bolt11Invoice, Refusal> {
    let text = text.trim();
    // `get` (not indexing): untrusted text may have a multi-byte character at byte 10.
    let text = match (text.get(..10), text.get(10..)) {
        (Some(scheme), Some(rest)) if scheme.eq_ignore_ascii_case("lightning:") => rest,
        _ => text,
    };
    Bolt11Invoice::from_str(text).map_err(|_| Refusal::invalid_invoice("not a valid invoice"))
}

/// An invoice's description text (empty for a description hash).
pub fn invoice_memo(invoice: &Bolt11Invoice) -> String {
    match invoice.description() {
        Bolt11InvoiceDescriptionRef::Direct(d) => d.to_string(),
        Bolt11InvoiceDescriptionRef::Hash(_) => String::new(),
    }
}

/// Whether a node error means the payment was certainly not started (safe to refund at once).
fn certainly_not_sent(e: &ClientError) -> bool {
    match e {
        ClientError::InvalidInput(_)
        | ClientError::Credential(_)
        | ClientError::Endpoint { .. } => true,
        ClientError::Connect { .. } => false,
        ClientError::Api { code, .. } => matches!(
            code,
            Some(
                ErrorCode::InvalidInput
                    | ErrorCode::UnknownPeer
                    | ErrorCode::InsufficientFunds
                    | ErrorCode::DuplicatePayment
                    | ErrorCode::PaymentError
                    | ErrorCode::SignerPolicyRefused
                    | ErrorCode::SignerRevoked
                    | ErrorCode::BudgetExceeded
                    | ErrorCode::MethodNotAllowed
                    | ErrorCode::Unauthenticated
                    | ErrorCode::TokenMissing
                    | ErrorCode::TokenInvalid
                    | ErrorCode::TokenExpired
                    | ErrorCode::TokenRevoked
                    | ErrorCode::TokenWrongTenant
                    | ErrorCode::UnknownTenant
                    | ErrorCode::TenantSuspended
                    | ErrorCode::RateLimited
            )
        ),
    }
}

fn refusal_reason(e: &ClientError) -> String {
    if e.is_policy_refusal() || e.code() == Some(ErrorCode::BudgetExceeded) {
        return POLICY_REFUSAL.to_string();
    }
    match e {
        ClientError::Api { status, .. } => format!("payment failed: {}", status.message()),
        other => format!("payment failed: {other}"),
    }
}

fn failed_reason(reason: Option<&str>) -> String {
    match reason {
        Some(r) if r.to_ascii_lowercase().contains("policy") => POLICY_REFUSAL.to_string(),
        Some(r) => format!("payment failed: {r}"),
        None => "payment failed".to_string(),
    }
}

impl Core {
    /// Makes an invoice on the node for `account` (`None`: the tenant's own) and records it.
    pub async fn make_invoice(
        &self,
        account: Option<i64>,
        amount_msat: Option<u64>,
        description: InvoiceDescription,
        expiry_secs: u32,
    ) -> Result<InvoiceRecord, HubError> {
        let (memo, description_hash) = match &description {
            InvoiceDescription::Text(t) => (t.clone(), None),
            InvoiceDescription::Hash(h) => (String::new(), Some(hex::encode(h))),
        };
        let created = self
            .client
            .create_invoice(amount_msat, description, Some(expiry_secs))
            .await?;
        let new = NewInvoice {
            payment_hash: created.payment_hash.clone(),
            account_id: account,
            bolt11: created.invoice,
            amount_msat,
            memo,
            description_hash,
            expires_at: now().saturating_add(i64::from(expiry_secs)),
        };
        let hash = created.payment_hash;
        self.store
            .run(move |conn, _| {
                invoices::record(conn, &new)?;
                invoices::by_hash(conn, &hash)?
                    .ok_or(HubError::Db(rusqlite::Error::QueryReturnedNoRows))
            })
            .await
    }

    /// Pays `text` from `account`: internally if the invoice is this hub's, else over
    /// Lightning. `amount_sat` only for an invoice without an amount. The final record, or a
    /// refusal (code 9 while the outcome is unknown).
    pub async fn pay_invoice(
        &self,
        account: i64,
        text: &str,
        amount_sat: Option<u64>,
    ) -> Result<PaymentRecord, HubError> {
        let invoice = parse_invoice(text)?;
        let amount_msat = match invoice.amount_milli_satoshis() {
            Some(a) if a > 0 => a,
            _ => match amount_sat {
                Some(a) if a > 0 => a
                    .checked_mul(1000)
                    .ok_or_else(|| Refusal::bad_arguments("amount too large"))?,
                _ => {
                    return Err(Refusal::bad_arguments(
                        "this invoice has no amount: give an amount (sat)",
                    )
                    .into())
                }
            },
        };
        let any_amount = invoice.amount_milli_satoshis().is_none();
        let hash = hex::encode(AsRef::<[u8]>::as_ref(invoice.payment_hash()));
        let memo = invoice_memo(&invoice);
        let bolt11 = invoice.to_string();

        let internal = {
            let hash = hash.clone();
            self.store
                .run(move |conn, _| invoices::by_hash(conn, &hash))
                .await?
        };
        if let Some(target) = internal {
            if target.amount_msat.is_some_and(|a| a as u64 != amount_msat) {
                return Err(Refusal::bad_arguments("amount does not match the invoice").into());
            }
            return self
                .store
                .transaction(move |tx, system| {
                    payments::pay_internal(tx, system, account, &target, amount_msat)
                })
                .await;
        }
        if invoice.is_expired() {
            return Err(Refusal::invalid_invoice("this invoice has expired").into());
        }
        let reserve = self.config.fee_reserve_msat(amount_msat);
        let external = ExternalPayment {
            kind: "bolt11",
            payment_hash: Some(hash),
            bolt11: Some(bolt11.clone()),
            destination: None,
            amount_msat,
            reserve_msat: reserve,
            memo,
        };
        let held = self
            .store
            .transaction(move |tx, system| payments::hold(tx, system, account, &external))
            .await?;
        let result = self
            .client
            .pay_invoice(
                &bolt11,
                any_amount.then_some(amount_msat),
                Some(reserve),
                Some(self.config.payment_wait_secs),
            )
            .await;
        self.finish(held.id, result).await
    }

    /// Sends `amount_sat` to `destination` (a node id) by keysend from `account`.
    pub async fn keysend(
        &self,
        account: i64,
        destination: &str,
        amount_sat: u64,
    ) -> Result<PaymentRecord, HubError> {
        let destination = destination.trim().to_ascii_lowercase();
        if destination.len() != 66 || bitcoin::secp256k1::PublicKey::from_str(&destination).is_err()
        {
            return Err(Refusal::bad_arguments("destination is not a node id").into());
        }
        let amount_msat = match amount_sat.checked_mul(1000) {
            Some(a) if a > 0 => a,
            _ => return Err(Refusal::bad_arguments("amount must be positive").into()),
        };
        let reserve = self.config.fee_reserve_msat(amount_msat);
        // The hub draws the preimage, so the payment's hash (the node's id for it) is recorded
        // with the hold before the node is asked: after a crash the resolver finds it.
        let preimage: [u8; 32] = rand::random();
        let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(preimage));
        let external = ExternalPayment {
            kind: "keysend",
            payment_hash: Some(hash),
            bolt11: None,
            destination: Some(destination.clone()),
            amount_msat,
            reserve_msat: reserve,
            memo: String::new(),
        };
        let held = self
            .store
            .transaction(move |tx, system| payments::hold(tx, system, account, &external))
            .await?;
        let result = self
            .client
            .keysend(
                &destination,
                amount_msat,
                Some(reserve),
                Some(preimage),
                Some(self.config.payment_wait_secs),
            )
            .await;
        self.finish(held.id, result).await
    }

    /// Applies the node's answer to a held payment and reports its outcome.
    async fn finish(
        &self,
        id: i64,
        result: Result<v1::Payment, ClientError>,
    ) -> Result<PaymentRecord, HubError> {
        match result {
            Ok(p) => self.apply(id, &p).await?,
            Err(e) if certainly_not_sent(&e) => {
                let reason = refusal_reason(&e);
                tracing::info!(payment = id, error = %e, "payment refused by the node; refunded");
                self.store
                    .transaction(move |tx, system| payments::refund(tx, system, id, &reason))
                    .await?;
            }
            Err(e) => {
                tracing::warn!(payment = id, error = %e, "payment outcome unknown; the resolver will finish it");
            }
        }
        let record = self
            .store
            .run(move |conn, _| payments::get(conn, id))
            .await?
            .ok_or(HubError::Db(rusqlite::Error::QueryReturnedNoRows))?;
        match record.status {
            PaymentStatus::Succeeded => Ok(record),
            PaymentStatus::Pending => Err(Refusal::new(
                LndHubCode::PaymentInTransit,
                "payment in transit: its outcome is not known yet",
            )
            .into()),
            PaymentStatus::Failed => Err(Refusal::new(
                LndHubCode::PaymentFailed,
                record
                    .failure
                    .unwrap_or_else(|| "payment failed".to_string()),
            )
            .into()),
        }
    }

    /// Settles or refunds held payment `id` per the node's record `p` (pending: nothing).
    async fn apply(&self, id: i64, p: &v1::Payment) -> Result<(), HubError> {
        match p.status() {
            NodeStatus::Succeeded => {
                let fee = p.fee_msat.unwrap_or(0);
                let preimage = p.preimage.clone();
                let hash = p.payment_hash.clone();
                self.store
                    .transaction(move |tx, system| {
                        payments::settle(tx, system, id, fee, preimage.as_deref(), Some(&hash))
                    })
                    .await?;
            }
            NodeStatus::Failed => {
                let reason = failed_reason(p.failure_reason.as_deref());
                self.store
                    .transaction(move |tx, system| payments::refund(tx, system, id, &reason))
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Resolves every pending external payment against the node: succeeded → settle, failed
    /// → refund, unknown to the node and older than the grace period → refund.
    pub async fn resolve_pending(&self) -> Result<(), HubError> {
        let pending = self.store.run(|conn, _| payments::pending(conn)).await?;
        let grace = i64::try_from(self.config.resolve_grace_secs).unwrap_or(i64::MAX);
        for held in pending {
            let found = match &held.node_id {
                Some(node_id) => {
                    match self
                        .client
                        .get_payment(node_id, Some(PaymentDirection::Outbound))
                        .await
                    {
                        Ok(found) => found,
                        Err(e) => {
                            tracing::debug!(payment = held.id, error = %e, "cannot look up a pending payment");
                            continue;
                        }
                    }
                }
                None => None,
            };
            // A record older than our hold is another payment of the same invoice (e.g. the
            // tenant paid it itself before): not ours.
            let found = found.filter(|p| (p.created_at as i64) + 5 >= held.created_at);
            match found {
                Some(p) => self.apply(held.id, &p).await?,
                None if now() - held.created_at > grace => {
                    let id = held.id;
                    tracing::info!(
                        payment = id,
                        "pending payment unknown to the node after the grace period; refunded"
                    );
                    self.store
                        .transaction(move |tx, system| {
                            payments::refund(
                                tx,
                                system,
                                id,
                                "payment failed: never reached the node",
                            )
                        })
                        .await?;
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Credits the invoice `payment_hash` with `amount_msat` if the hub made it and it is not
    /// credited yet.
    pub async fn credit(&self, payment_hash: String, amount_msat: u64) -> Result<bool, HubError> {
        self.store
            .transaction(move |tx, system| {
                invoices::credit_external(tx, system, &payment_hash, amount_msat)
            })
            .await
    }

    /// Asks the node about every unpaid invoice: paid ones are credited, expired ones closed.
    pub async fn reconcile_invoices(&self) -> Result<(), HubError> {
        let open = self
            .store
            .run(|conn, _| invoices::unreconciled(conn))
            .await?;
        for invoice in open {
            let found = self
                .client
                .get_payment(&invoice.payment_hash, Some(PaymentDirection::Inbound))
                .await?;
            match found {
                Some(p) if p.status() == NodeStatus::Succeeded => {
                    let amount = p
                        .amount_msat
                        .or(invoice.amount_msat.map(|a| a as u64))
                        .unwrap_or(0);
                    self.credit(invoice.payment_hash.clone(), amount).await?;
                }
                Some(p) if p.status() == NodeStatus::Failed => {
                    let id = invoice.id;
                    self.store
                        .run(move |conn, _| invoices::close(conn, id))
                        .await?;
                }
                None if invoice.expires_at + 86_400 < now() => {
                    let id = invoice.id;
                    self.store
                        .run(move |conn, _| invoices::close(conn, id))
                        .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_invoice_text_is_refused_without_panicking() {
        for text in [
            "",
            "lightning:",
            "lightninǵ:lnbc1",
            "ééééééé:lnbcrt1",
            "lnbcrt1garbage",
        ] {
            let refusal = parse_invoice(text).expect_err(text);
            assert_eq!(refusal.code, LndHubCode::InvalidInvoice, "{text}");
        }
    }
}
