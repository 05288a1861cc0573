//! Forgetting settled payments promptly, so that a tenant has no daily ceiling on payments.
//!
//! VLS tracks every payment it approved (`NodeState::invoices` with its `payments` entry) and
//! every invoice the node issued, until a day after the invoice expires. It refuses a new
//! payment once it tracks `max_invoices` of them, and it rewrites its whole node state, every
//! tracked payment included, on each approval. So a tenant could make about 1,000 payments a
//! day, and each approval cost more the more payments the day held.
//!
//! This module forgets a payment as soon as it is finished:
//!
//! - **Outgoing:** the payee released the preimage (VLS saw it: `is_fulfilled`) and no HTLC of
//!   it is left on any current commitment (`is_no_outgoing`). That is final: the payee only
//!   releases the preimage once every part arrived, so no part can still be on its way.
//! - **Incoming:** VLS marked the issued invoice paid and no HTLC of it is left.
//!
//! A payment must be seen finished in two passes in a row ([`PRUNE_SETTLED_INTERVAL`] apart)
//! before it is forgotten. Unfinished payments (in flight, failed, or whose preimage VLS lost
//! in a restart) are left to VLS's own pruning.
//!
//! What VLS's long memory also gave, and what replaces it: while VLS tracks a paid invoice, a
//! second approval of it adds nothing and its HTLCs stay within the invoice's amount. Once VLS
//! has forgotten it, the node could ask again and pay the same invoice twice. So before VLS
//! forgets an outgoing payment, its hash is recorded in the signer's store as settled, and a
//! new approval of that hash is refused (`policy-payment-already-settled`) until the invoice
//! has expired with VLS's tolerance ([`INVOICE_EXPIRY_TOLERANCE_SECS`]; VLS refuses an expired
//! invoice itself) and for at least [`SETTLED_REFUSAL_SECS`] (for keysends, whose hash is the
//! node's choice). A new HTLC of a forgotten hash has no approved payment, and VLS refuses it.

use std::collections::HashSet;
use std::time::Duration;

use lightning_signer::lightning::types::payment::PaymentHash;
use lightning_signer::node::{NodeState, PaymentState};

use crate::balance::CREDIT_LIFETIME_SECS;
use crate::engine::SignerEngine;
use crate::outcome::Outcome;

/// How often the signer looks for finished payments to forget.
pub const PRUNE_SETTLED_INTERVAL: Duration = Duration::from_millis(500);
/// How long a settled payment's hash is refused at least, in seconds.
pub const SETTLED_REFUSAL_SECS: u64 = CREDIT_LIFETIME_SECS;
/// After its expiry an invoice is still refused this long by our record, in seconds: more than
/// VLS's own tolerance for clocks ahead (about two hours), after which VLS refuses it.
pub const INVOICE_EXPIRY_TOLERANCE_SECS: u64 = 3 * 3_600;
/// The rule named when a settled payment is approved again.
pub const SETTLED_RULE: &str = "policy-payment-already-settled";

/// The finished payments a pass found: outgoing (with the time until which their hash is
/// refused) and incoming.
#[derive(Default)]
struct Finished {
    outgoing: Vec<([u8; 32], u64)>,
    incoming: Vec<[u8; 32]>,
}

impl Finished {
    fn hashes(&self) -> HashSet<[u8; 32]> {
        self.outgoing
            .iter()
            .map(|(h, _)| *h)
            .chain(self.incoming.iter().copied())
            .collect()
    }

    fn keep_only(&mut self, seen_before: &HashSet<[u8; 32]>) {
        self.outgoing.retain(|(h, _)| seen_before.contains(h));
        self.incoming.retain(|h| seen_before.contains(h));
    }

    fn is_empty(&self) -> bool {
        self.outgoing.is_empty() && self.incoming.is_empty()
    }
}

fn outgoing_finished(state: &NodeState, hash: &PaymentHash) -> bool {
    state
        .payments
        .get(hash)
        .is_some_and(|p| p.is_fulfilled() && p.is_no_outgoing())
}

fn incoming_finished(state: &NodeState, hash: &PaymentHash) -> bool {
    !state.invoices.contains_key(hash)
        && state
            .issued_invoices
            .get(hash)
            .is_some_and(|i| i.is_fulfilled)
        && state
            .payments
            .get(hash)
            .is_none_or(|p| p.is_no_incoming() && p.is_no_outgoing())
}

/// Until when a settled payment's hash is refused, in unix seconds.
fn refuse_until(invoice: &PaymentState, now: u64) -> u64 {
    let expires = invoice
        .duration_since_epoch
        .saturating_add(invoice.expiry_duration)
        .as_secs();
    expires
        .saturating_add(INVOICE_EXPIRY_TOLERANCE_SECS)
        .max(now.saturating_add(SETTLED_REFUSAL_SECS))
}

fn find_finished(state: &NodeState, now: u64) -> Finished {
    Finished {
        outgoing: state
            .invoices
            .iter()
            .filter(|(hash, _)| outgoing_finished(state, hash))
            .map(|(hash, invoice)| (hash.0, refuse_until(invoice, now)))
            .collect(),
        incoming: state
            .issued_invoices
            .keys()
            .filter(|hash| incoming_finished(state, hash))
            .map(|hash| hash.0)
            .collect(),
    }
}

impl SignerEngine {
    /// One pass: forgets, in VLS, the payments that were finished in this pass and the one
    /// before; returns how many. Blocking (the signer's store and VLS's persistence).
    pub fn prune_settled_payments(&self) -> Result<usize, Outcome> {
        let node = self.node();
        let now = crate::balance::now();
        let mut finished = find_finished(&node.get_state(), now);
        {
            let mut seen = self
                .finished_last_pass
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let this_pass = finished.hashes();
            finished.keep_only(&seen);
            *seen = this_pass;
        }
        if finished.is_empty() {
            return Ok(0);
        }
        // Durably refuse their hashes before VLS forgets them (outside VLS's state lock).
        self.store.record_settled(&finished.outgoing)?;
        let mut state = node.get_state();
        let mut forgotten = 0;
        for (hash, _) in &finished.outgoing {
            let hash = PaymentHash(*hash);
            if outgoing_finished(&state, &hash) && state.invoices.remove(&hash).is_some() {
                state.payments.remove(&hash);
                forgotten += 1;
            }
        }
        for hash in &finished.incoming {
            let hash = PaymentHash(*hash);
            if incoming_finished(&state, &hash) && state.issued_invoices.remove(&hash).is_some() {
                state.payments.remove(&hash);
                forgotten += 1;
            }
        }
        if forgotten > 0 {
            node.get_persister()
                .update_node(&node.get_id(), &state)
                .map_err(|e| Outcome::bad(format!("cannot persist the node state: {e:?}")))?;
            tracing::debug!(
                forgotten,
                tracked = state.invoices.len(),
                "forgot settled payments"
            );
        }
        Ok(forgotten)
    }

    /// Refuses a new approval of a payment that settled and was forgotten.
    pub(crate) fn refuse_settled(&self, hash: &[u8; 32]) -> Result<(), Outcome> {
        match self.store.settled_until(hash)? {
            Some(until) if until >= crate::balance::now() => Err(Outcome::refused(
                SETTLED_RULE,
                format!("payment {} was already paid", hex::encode(hash)),
            )),
            _ => Ok(()),
        }
    }

    /// Forgets settled hashes whose refusal has ended.
    pub(crate) fn prune_settled_records(&self) -> Result<(), Outcome> {
        Ok(self.store.prune_settled(crate::balance::now())?)
    }
}
