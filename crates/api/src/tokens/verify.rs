//! Verifying a presented token and authorising one call with it: the signature against the
//! node's root public key, then biscuit's Datalog with the facts the node states for the call.
//! A refusal is classified into the precise [`TokenError`] the caller gets.

use std::collections::HashMap;
use std::time::Duration;

use biscuit_auth::builder::{boolean, fact, int, string, AuthorizerBuilder, Fact};
use biscuit_auth::error::{FailedCheck, Logic, Token as BiscuitError};
use biscuit_auth::{AuthorizerLimits, Biscuit, PublicKey, UnverifiedBiscuit};

use super::caveats::{method_rule, tenant_in, Period, Spending};
use super::error::TokenError;
use super::store::Spent;

/// The longest token accepted, in base64 characters (the request headers are limited to 16 KiB
/// anyway).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// The most blocks a token may have: an authority block and 15 attenuations.
pub const MAX_BLOCKS: usize = 16;

/// What the Datalog evaluation of one call may cost. Only tokens that verify against the root
/// key get evaluated, so only holders of real tokens can spend this.
fn limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 1000,
        max_iterations: 100,
        max_time: Duration::from_millis(20),
    }
}

/// The phase of an authorisation.
#[derive(Clone, Copy, Debug)]
pub enum Phase<'a> {
    /// Before the request is decoded: may this token call this method at all?
    Call,
    /// Before a payment starts: may it spend `cost_msat`, given what was already spent through
    /// each of its blocks (`spent[i]` for block `i`)?
    Spend {
        /// The most the payment can cost: amount plus routing-fee limit.
        cost_msat: u64,
        /// Spent so far through each block, in block order.
        spent: &'a [Spent],
    },
}

/// Verifies and authorises tokens of one node.
pub struct Verifier {
    root: PublicKey,
    tenant: String,
    base: AuthorizerBuilder,
}

impl Verifier {
    /// A verifier for tokens signed by `root` and made for `tenant`.
    pub fn new(root: PublicKey, tenant: &str) -> Result<Verifier, TokenError> {
        let params = HashMap::from([("tenant".to_string(), string(tenant))]);
        let base = AuthorizerBuilder::new()
            .code_with_params(
                "check if tenant({tenant});\nallow if right($r), group($r);",
                params,
                HashMap::new(),
            )
            .map_err(TokenError::biscuit)?
            .set_limits(limits());
        Ok(Verifier {
            root,
            tenant: tenant.to_string(),
            base,
        })
    }

    /// The root public key.
    pub fn root(&self) -> &PublicKey {
        &self.root
    }

    /// The tenant (node id).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Parses `text` and checks its signatures against the root key. A token that does not
    /// verify but claims another tenant is [`TokenError::WrongTenant`]; anything else that does
    /// not verify is [`TokenError::Invalid`].
    pub fn verify(&self, text: &str) -> Result<Biscuit, TokenError> {
        let text = text.trim();
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid(format!(
                "longer than {MAX_TOKEN_LEN} characters"
            )));
        }
        let unverified = UnverifiedBiscuit::from_base64(text)
            .map_err(|e| TokenError::Invalid(format!("not a token: {e}")))?;
        if unverified.block_count() > MAX_BLOCKS {
            return Err(TokenError::Invalid(format!(
                "more than {MAX_BLOCKS} blocks"
            )));
        }
        unverified.verify(self.root).map_err(|e| {
            // Only on refusal: read what the token claims, to tell another node's token apart.
            let claimed = UnverifiedBiscuit::from_base64(text)
                .ok()
                .and_then(|t| t.print_block_source(0).ok())
                .and_then(|source| tenant_in(&source));
            match claimed {
                Some(other) if other != self.tenant => TokenError::WrongTenant(other),
                _ => TokenError::Invalid(format!("it is not signed by this node's root key ({e})")),
            }
        })
    }

    /// Authorises `method` for `token` in `phase`.
    pub fn authorize(
        &self,
        token: &Biscuit,
        method: &str,
        phase: Phase<'_>,
    ) -> Result<(), TokenError> {
        let mut builder = self.base.clone().time();
        for f in self.facts(token, method, phase)? {
            builder = builder.fact(f).map_err(TokenError::biscuit)?;
        }
        let mut authorizer = builder.build(token).map_err(TokenError::biscuit)?;
        match authorizer.authorize() {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(e, method, phase)),
        }
    }

    fn facts(
        &self,
        token: &Biscuit,
        method: &str,
        phase: Phase<'_>,
    ) -> Result<Vec<Fact>, TokenError> {
        let rule = method_rule(method);
        let mut facts = vec![fact("method", &[string(method)])];
        facts.extend(
            rule.groups
                .iter()
                .map(|g| fact("group", &[string(g.as_str())])),
        );
        match phase {
            // Budget caveats pass on `metered(false)`. On-chain spending gets neither fact, so
            // every budget caveat fails it: a token with a budget cannot move funds unmetered.
            Phase::Call if rule.spending != Spending::Onchain => {
                facts.push(fact("metered", &[boolean(false)]));
            }
            Phase::Call => {}
            Phase::Spend { cost_msat, spent } => {
                ensure_budgets_name_their_block(token)?;
                if spent.len() != token.block_count() {
                    return Err(TokenError::Corrupt(format!(
                        "{} ledger sums for {} blocks",
                        spent.len(),
                        token.block_count()
                    )));
                }
                let cost = i64::try_from(cost_msat).map_err(|_| {
                    TokenError::BudgetExceeded(format!("{cost_msat} msat is out of range"))
                })?;
                facts.push(fact("metered", &[boolean(true)]));
                facts.push(fact("spend_msat", &[int(cost)]));
                for (block, sums) in spent.iter().enumerate() {
                    let block = i64::try_from(block).unwrap_or(i64::MAX);
                    for period in Period::ALL {
                        facts.push(fact(
                            "spent",
                            &[int(block), string(period.as_str()), int(sums.get(period))],
                        ));
                    }
                }
            }
        }
        Ok(facts)
    }
}

/// Every `spent(<block>, ...)` in block `i` must name `i`: a budget counts what was spent
/// through its own block. A check naming a later block would count only what one descendant
/// spent, and every fresh descendant would start with an empty ledger.
fn ensure_budgets_name_their_block(token: &Biscuit) -> Result<(), TokenError> {
    for block in 0..token.block_count() {
        let source = token
            .print_block_source(block)
            .map_err(|e| TokenError::Invalid(format!("unreadable block {block}: {e}")))?;
        for (at, _) in source.match_indices("spent(") {
            let rest = &source[at + "spent(".len()..];
            let named = rest.split(',').next().unwrap_or_default().trim();
            if named != block.to_string() {
                return Err(TokenError::Invalid(format!(
                    "a budget caveat of block {block} counts the spending of block {named:?}"
                )));
            }
        }
    }
    Ok(())
}

/// The precise error for a refused authorisation. Failed checks are told apart by the
/// predicates they use (the vocabulary of [`super::caveats`]); the most telling one wins:
/// tenant, then expiry, then budgets, then the rest.
fn classify(error: BiscuitError, method: &str, phase: Phase<'_>) -> TokenError {
    let checks = match error {
        BiscuitError::FailedLogic(Logic::Unauthorized { checks, .. })
        | BiscuitError::FailedLogic(Logic::NoMatchingPolicy { checks }) => checks,
        BiscuitError::RunLimit(limit) => {
            return TokenError::Invalid(format!("too costly to evaluate: {limit}"))
        }
        other => return TokenError::Invalid(format!("cannot be evaluated: {other}")),
    };
    let rules: Vec<(Option<u32>, &str)> = checks
        .iter()
        .map(|c| match c {
            FailedCheck::Block(b) => (Some(b.block_id), b.rule.as_str()),
            FailedCheck::Authorizer(a) => (None, a.rule.as_str()),
        })
        .collect();
    let find = |needle: &str| rules.iter().find(|(_, rule)| rule.contains(needle));
    if find("tenant(").is_some() {
        return TokenError::WrongTenant("its tenant is not this node".into());
    }
    if let Some((_, rule)) = find("time(") {
        return TokenError::Expired((*rule).to_string());
    }
    if let Some((block, rule)) = find("spend_msat(") {
        return match phase {
            Phase::Call => TokenError::MethodNotAllowed {
                method: method.to_string(),
                reason: "a token with a spending limit cannot move funds on chain or into \
                         channels"
                    .into(),
            },
            Phase::Spend { cost_msat, .. } => TokenError::BudgetExceeded(format!(
                "a payment costing up to {cost_msat} msat (amount plus routing-fee limit) is \
                 refused by caveat `{rule}` of block {}",
                block.unwrap_or_default()
            )),
        };
    }
    let reason = match rules.first() {
        Some((Some(block), rule)) => format!("caveat `{rule}` of block {block} failed"),
        Some((None, rule)) => format!("check `{rule}` failed"),
        None => "the token's rights do not include it".to_string(),
    };
    TokenError::MethodNotAllowed {
        method: method.to_string(),
        reason,
    }
}
