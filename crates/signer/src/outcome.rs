//! A request's outcome before it becomes a [`SignerResponse`]: a refusal names the rule that
//! fired, so the tenant's log and the operator's API both say why.

use lightning_signer::util::status::{Code, Status};
use micronode_signer_protocol::SignerResponse;

/// The rule reported for a VLS policy failure that carries no rule name.
pub const UNNAMED_POLICY_RULE: &str = "policy-violation";

/// VLS rules whose status message does not carry their name: (message fragment, rule).
const UNNAMED_VLS_RULES: &[(&str, &str)] = &[
    // The balance accounting (`enforce_balance`).
    ("shortfall", "policy-routing-balanced"),
    // A first state giving the counterparty more than the (zero) push.
    (
        "initial commitment may only send push_value_msat",
        "policy-commitment-initial-funding-value",
    ),
];

/// Why a request was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Refused by a rule.
    Refused {
        /// The rule.
        rule: String,
        /// Why.
        message: String,
        /// Whether the same request may pass later (e.g. the chain view must catch up).
        temporary: bool,
    },
    /// Malformed or impossible request.
    Failed(String),
}

impl Outcome {
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Outcome::Failed(message.into())
    }

    pub(crate) fn refused(rule: &str, message: impl Into<String>) -> Self {
        Outcome::Refused {
            rule: rule.to_string(),
            message: message.into(),
            temporary: false,
        }
    }

    pub(crate) fn temporarily_refused(rule: &str, message: impl Into<String>) -> Self {
        Outcome::Refused {
            rule: rule.to_string(),
            message: message.into(),
            temporary: true,
        }
    }

    /// Whether this is a refusal that may clear by itself.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Outcome::Refused {
                temporary: true,
                ..
            }
        )
    }

    /// VLS reports policy violations as statuses whose message names the rule
    /// (`policy-...`); a few of its checks say "policy failure" without a name, and count as
    /// [`UNNAMED_POLICY_RULE`]; anything else is a plain failure. VLS's temporary policy
    /// errors stay temporary.
    pub(crate) fn from_status(status: Status) -> Self {
        let message = status.message().to_string();
        let temporary = status.code() == Code::Temporary;
        let rule = message
            .split(|c: char| c.is_whitespace() || c == ':' || c == '"')
            .find(|w| w.starts_with("policy-"))
            .map(str::to_string);
        match rule {
            Some(rule) => Outcome::Refused {
                rule,
                message,
                temporary,
            },
            // VLS tracks at most `max_invoices` outgoing payments until they are pruned (a day
            // after their invoice expires): a limit on the tenant's payment rate.
            None if message.contains("too many invoices") => {
                Outcome::refused("policy-max-invoices", message)
            }
            // A few of VLS's rules lose their name on the way to a status; these are the ones
            // a compromised operator meets (its tag, from VLS's source, by its message).
            None => match UNNAMED_VLS_RULES
                .iter()
                .find(|(fragment, _)| message.contains(fragment))
            {
                Some((_, rule)) => Outcome::Refused {
                    rule: rule.to_string(),
                    message,
                    temporary,
                },
                None if message.contains("policy failure") || temporary => Outcome::Refused {
                    rule: UNNAMED_POLICY_RULE.to_string(),
                    message,
                    temporary,
                },
                None => Outcome::Failed(message),
            },
        }
    }

    /// Names a refusal VLS left unnamed, for the request it answers.
    pub(crate) fn naming_unnamed(self, rule: &str) -> Self {
        match self {
            Outcome::Refused {
                rule: r,
                message,
                temporary,
            } if r == UNNAMED_POLICY_RULE => Outcome::Refused {
                rule: rule.to_string(),
                message,
                temporary,
            },
            other => other,
        }
    }

    /// The response the node gets.
    pub(crate) fn into_response(self) -> SignerResponse {
        match self {
            Outcome::Refused {
                rule,
                message,
                temporary,
            } => SignerResponse::Refused {
                rule,
                message,
                temporary,
            },
            Outcome::Failed(message) => SignerResponse::Failed { message },
        }
    }
}

impl From<crate::store::StoreError> for Outcome {
    fn from(e: crate::store::StoreError) -> Self {
        Outcome::Failed(format!("the signer's store failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(outcome: Outcome) -> Option<String> {
        match outcome {
            Outcome::Refused { rule, .. } => Some(rule),
            Outcome::Failed(_) => None,
        }
    }

    #[test]
    fn vls_statuses_become_typed_refusals_or_failures() {
        let named = Status::failed_precondition(
            "policy failure: validate_onchain_tx: ValidationError { tag: \"policy-onchain-fee-range\" }",
        );
        assert_eq!(
            rule_of(Outcome::from_status(named)).as_deref(),
            Some("policy-onchain-fee-range")
        );
        let unnamed = Status::failed_precondition("policy failure: holder output not to wallet");
        let outcome = Outcome::from_status(unnamed);
        assert_eq!(rule_of(outcome).as_deref(), Some(UNNAMED_POLICY_RULE));
        let renamed = Outcome::from_status(Status::failed_precondition("policy failure: x"))
            .naming_unnamed("policy-mutual-destination-allowlisted");
        assert_eq!(
            rule_of(renamed).as_deref(),
            Some("policy-mutual-destination-allowlisted")
        );
        let shortfall = Status::failed_precondition("policy failure: shortfall 1038 + 8 - 9");
        assert_eq!(
            rule_of(Outcome::from_status(shortfall)).as_deref(),
            Some("policy-routing-balanced")
        );
        let push = Status::failed_precondition(
            "policy failure: validate_commitment_tx: initial commitment may only send \
             push_value_msat (0) to fundee",
        );
        assert_eq!(
            rule_of(Outcome::from_status(push)).as_deref(),
            Some("policy-commitment-initial-funding-value")
        );
        let full = Status::failed_precondition("too many invoices (1000 >= 1000)");
        assert_eq!(
            rule_of(Outcome::from_status(full)).as_deref(),
            Some("policy-max-invoices")
        );
        let plain = Status::invalid_argument("no such channel: 00");
        assert_eq!(rule_of(Outcome::from_status(plain)), None);
        // A named rule is never renamed.
        let kept = Outcome::refused("velocity-limit", "over").naming_unnamed("other");
        assert_eq!(rule_of(kept).as_deref(), Some("velocity-limit"));
    }

    #[test]
    fn temporary_vls_refusals_stay_temporary() {
        let status = Status::temporary(
            "policy-commitment-spends-active-utxo: tried commitment 1 when funding is not buried",
        );
        let outcome = Outcome::from_status(status);
        assert!(outcome.is_temporary());
        assert_eq!(
            rule_of(outcome).as_deref(),
            Some("policy-commitment-spends-active-utxo")
        );
        assert!(!Outcome::refused("x", "y").is_temporary());
    }
}
