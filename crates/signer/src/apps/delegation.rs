//! A Nostr Wallet Connect app a tenant's app delegated to (`docs/apps.md`, "Connections a
//! browser wallet makes").
//!
//! The browser wallet (an app authorised here, with its own token and client key) makes an NWC
//! app's key pair itself and signs a `delegate_nwc` request naming that key, a budget per
//! period and an expiry ([`Delegation`]). The node keeps it with the connection and attaches it
//! to every payment; the signer is not asked when the connection is made. On the NWC app's
//! first payment the signer checks the delegation as it checks any signed request (the token
//! chains to its root, names the app and its key, the signature is the key's), that it names the
//! event's author, has not expired, and that the delegating app is live and may pay; it then
//! records the NWC app as that app's **child** (its own budget, period and expiry, as signed).
//! Every payment of the child is charged to its budget and to its parent's, and stops when the
//! parent is revoked or expires.

use micronode_signer_protocol::app_request::{parse_delegation_target, Delegation};
use micronode_signer_protocol::AppMethod;

use super::store::AppRecord;
use super::{live, now, rules, AppGate};
use crate::outcome::Outcome;

/// The methods a child may have: payments only, and only those its parent may make.
const CHILD_METHODS: [AppMethod; 2] = [AppMethod::PayInvoice, AppMethod::Keysend];

/// The ledger id of the NWC app with key `app_key` (x-only hex) that the app `parent_id`
/// delegated to: `<parent id>:<the key's first 16 hex characters>`.
pub fn child_id(parent_id: &str, app_key: &str) -> String {
    let prefix = app_key.get(..16).unwrap_or(app_key);
    format!("{parent_id}:{prefix}")
}

impl AppGate {
    /// The app that delegated to `app`, if `app` is a child; refused if that app is gone.
    pub(super) fn parent_of(&self, app: &AppRecord) -> Result<Option<AppRecord>, Outcome> {
        let Some(parent_id) = &app.parent_id else {
            return Ok(None);
        };
        let parent = self
            .store
            .app(parent_id)
            .map_err(|e| Outcome::bad(e.to_string()))?
            .ok_or_else(|| {
                Outcome::refused(
                    rules::APP,
                    format!("the app that delegated to {} is unknown", app.name),
                )
            })?;
        Ok(Some(parent))
    }

    /// Checks `delegation` for the NWC app whose key (x-only hex) is `author`, unknown here,
    /// and records that app as the delegating app's child. Returns the child and its parent.
    pub(super) fn delegated(
        &self,
        delegation: &Delegation,
        author: &str,
    ) -> Result<(AppRecord, AppRecord), Outcome> {
        let parent = self.verify_signed(&delegation.token, &delegation.request)?;
        let signed = &delegation.request.request;
        if signed.method != AppMethod::DelegateNwc {
            return Err(Outcome::refused(
                rules::APP,
                format!(
                    "the connection's delegation is a {} request, not a delegate_nwc",
                    signed.method.as_str()
                ),
            ));
        }
        let target = parse_delegation_target(&signed.target)
            .map_err(|e| Outcome::refused(rules::APP, e.to_string()))?;
        if !target.app_pubkey.eq_ignore_ascii_case(author) {
            return Err(Outcome::refused(
                rules::APP,
                format!(
                    "the delegation of {} is for the NWC key {}, not for {author}, which signed \
                     this request",
                    parent.name, target.app_pubkey
                ),
            ));
        }
        let now = now();
        if let Some(at) = target.expires_at.filter(|at| now >= *at) {
            return Err(Outcome::refused(
                rules::APP,
                format!("the delegation of {} expired at {at}", parent.name),
            ));
        }
        live(&parent, AppMethod::PayInvoice, now).map_err(|why| {
            Outcome::refused(rules::APP, format!("{why}; it cannot delegate payments"))
        })?;
        let methods = CHILD_METHODS
            .iter()
            .map(|m| m.as_str().to_string())
            .filter(|m| parent.methods.contains(m))
            .collect();
        let child = AppRecord {
            id: child_id(&parent.id, &target.app_pubkey),
            name: format!("{} / nwc", parent.name),
            client_key: target.app_pubkey,
            methods,
            budget_msat: signed.amount_msat,
            period_secs: target.period_secs,
            expires_at: target.expires_at,
            created_at: now,
            revoked_at: None,
            parent_id: Some(parent.id.clone()),
        };
        // A concurrent first payment may have recorded it: the stored record stands.
        let stored = self
            .store
            .add_or_get(&child)
            .map_err(|e| Outcome::bad(e.to_string()))?
            .ok_or_else(|| {
                Outcome::refused(rules::APP, format!("the id {} is another app's", child.id))
            })?;
        if stored.parent_id.as_deref() != Some(parent.id.as_str()) {
            return Err(Outcome::refused(
                rules::APP,
                "the delegated key is another app's",
            ));
        }
        tracing::info!(app = %stored.id, parent = %parent.id, "an NWC app delegated to by an app, recorded");
        Ok((stored, parent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_ids_name_the_parent_and_the_key() {
        assert_eq!(child_id("p1", &"ab".repeat(32)), "p1:abababababababab");
        assert_eq!(child_id("p1", "short"), "p1:short");
    }
}
