//! The Datalog vocabulary of micronode tokens: which methods belong to which group, the facts
//! the node states for each call, and the caveats a holder adds when attenuating offline.
//!
//! ```text
//! authority block (minted once, by `node init --stateless`):
//!     tenant("<node id>"); token_id("<random hex>"); right("admin");
//! attenuation blocks (added by any holder, never removed):
//!     check if group($g), ["pay"].contains($g) or method($m), ["GetInfo"].contains($m);
//!     check if time($time), $time <= 2026-11-21T10:00:00Z;
//!     check if metered(false) or spend_msat($c), $c <= 5000000;
//!     check if metered(false) or spend_msat($c), spent(1, "day", $s), $s + $c <= 10000000;
//! authorizer (the node, on every call):
//!     time(<now>); method("PayInvoice"); group("pay"); group("admin"); metered(false);
//!     check if tenant("<this node id>");
//!     allow if right($r), group($r);
//! and before a payment, instead of metered(false):
//!     metered(true); spend_msat(<amount + fee limit>); spent(<block>, "<period>", <msat>) ...
//! ```
//!
//! Rights live only in the authority block, which the authorizer trusts; attenuation blocks can
//! only add checks, and every check of every block must pass, so the narrowest caveat of the
//! chain wins. A budget caveat names its own block index: the node keeps one ledger per block
//! revocation id and states, for each block of the presented token, what was spent through it.
//! Spending through a token counts in the ledger of each of its blocks, so a child's spending
//! counts against every ancestor's budget.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use biscuit_auth::builder::BlockBuilder;
use biscuit_auth::builder_ext::BuilderExt;
use biscuit_auth::UnverifiedBiscuit;
use bitcoin::hashes::{sha256, Hash};

use super::error::TokenError;

/// A group of methods a token may be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodGroup {
    /// Reading the node's state: info, balances, peers, channels, payments, events.
    Read,
    /// Creating invoices and looking them up.
    Invoice,
    /// Paying invoices and keysend, and reading what a payer needs.
    Pay,
    /// Everything, including on-chain spending, channels, peers and token management.
    Admin,
}

impl MethodGroup {
    /// Every group.
    pub const ALL: [MethodGroup; 4] = [
        MethodGroup::Read,
        MethodGroup::Invoice,
        MethodGroup::Pay,
        MethodGroup::Admin,
    ];

    /// The group's name in tokens and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            MethodGroup::Read => "read",
            MethodGroup::Invoice => "invoice",
            MethodGroup::Pay => "pay",
            MethodGroup::Admin => "admin",
        }
    }
}

impl FromStr for MethodGroup {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MethodGroup::ALL
            .into_iter()
            .find(|g| g.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| TokenError::Caveat(format!("unknown method group {s:?}")))
    }
}

/// How a method moves the node's funds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spending {
    /// It does not.
    None,
    /// A Lightning payment: metered against the token's budgets before it starts.
    Lightning,
    /// On chain or into channels: not metered, so tokens with a budget may not call it.
    Onchain,
}

/// What the node knows of one RPC.
#[derive(Clone, Copy, Debug)]
pub struct MethodRule {
    /// The RPC's name, as in the request path.
    pub name: &'static str,
    /// The groups that include it (always [`MethodGroup::Admin`]).
    pub groups: &'static [MethodGroup],
    /// How it moves funds.
    pub spending: Spending,
}

use MethodGroup::{Admin, Invoice, Pay, Read};

const fn rule(
    name: &'static str,
    groups: &'static [MethodGroup],
    spending: Spending,
) -> MethodRule {
    MethodRule {
        name,
        groups,
        spending,
    }
}

/// Every RPC of the `Lightning` and `Tokens` services and its groups.
pub const METHODS: &[MethodRule] = &[
    rule("GetInfo", &[Read, Invoice, Pay, Admin], Spending::None),
    rule("NewAddress", &[Admin], Spending::None),
    rule("OnchainBalance", &[Read, Admin], Spending::None),
    rule("LightningBalance", &[Read, Pay, Admin], Spending::None),
    rule("SendOnchain", &[Admin], Spending::Onchain),
    rule("ConnectPeer", &[Admin], Spending::None),
    rule("ListPeers", &[Read, Admin], Spending::None),
    rule("OpenChannel", &[Admin], Spending::Onchain),
    rule("ListChannels", &[Read, Admin], Spending::None),
    rule("CloseChannel", &[Admin], Spending::Onchain),
    rule("CreateInvoice", &[Invoice, Admin], Spending::None),
    rule("PayInvoice", &[Pay, Admin], Spending::Lightning),
    rule("Keysend", &[Pay, Admin], Spending::Lightning),
    rule("GetPayment", &[Read, Invoice, Pay, Admin], Spending::None),
    rule("ListPayments", &[Read, Pay, Admin], Spending::None),
    rule("SubscribeEvents", &[Read, Admin], Spending::None),
    // A session's own token may register, see and end that session (the handler checks).
    rule(
        "CreatePairing",
        &[Read, Invoice, Pay, Admin],
        Spending::None,
    ),
    rule("ListPairings", &[Read, Invoice, Pay, Admin], Spending::None),
    rule(
        "RevokePairing",
        &[Read, Invoice, Pay, Admin],
        Spending::None,
    ),
    rule("RegisterToken", &[Admin], Spending::None),
    rule("ListTokens", &[Admin], Spending::None),
    rule("RevokeToken", &[Admin], Spending::None),
];

/// A method missing from [`METHODS`] (a path the node does not serve, or an RPC added without
/// updating the table): admin only, and treated as spending outside budgets.
const UNKNOWN_METHOD: MethodRule = rule("", &[Admin], Spending::Onchain);

/// The rule of the RPC called `name`; unknown names get the most restrictive one.
pub fn method_rule(name: &str) -> &'static MethodRule {
    METHODS
        .iter()
        .find(|m| m.name == name)
        .unwrap_or(&UNKNOWN_METHOD)
}

/// A budget period. Windows are rolling: `day` is the last 24 hours, `month` the last 30 days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    /// The last 24 hours.
    Day,
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
    /// Ever.
    Total,
}

impl Period {
    /// Every period.
    pub const ALL: [Period; 4] = [Period::Day, Period::Week, Period::Month, Period::Total];

    /// The period's name in tokens.
    pub const fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Total => "total",
        }
    }

    /// The window in seconds; `None` for [`Period::Total`].
    pub const fn window_secs(self) -> Option<u64> {
        match self {
            Period::Day => Some(86_400),
            Period::Week => Some(7 * 86_400),
            Period::Month => Some(30 * 86_400),
            Period::Total => None,
        }
    }
}

impl FromStr for Period {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "day" | "daily" | "d" => Ok(Period::Day),
            "week" | "weekly" | "w" => Ok(Period::Week),
            "month" | "monthly" | "m" => Ok(Period::Month),
            "total" | "ever" | "lifetime" => Ok(Period::Total),
            other => Err(TokenError::Caveat(format!(
                "unknown budget period {other:?} (day, week, month, total)"
            ))),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At most `limit_sat` spent per `period`, routing fees included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The limit in satoshis.
    pub limit_sat: u64,
    /// The period.
    pub period: Period,
}

impl FromStr for Budget {
    type Err = TokenError;

    /// `<sat>/<period>`, e.g. `10000/day` or `1_000_000/month`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (amount, period) = s.split_once('/').ok_or_else(|| {
            TokenError::Caveat(format!(
                "budget {s:?}: expected <sat>/<period>, e.g. 10000/day"
            ))
        })?;
        Ok(Budget {
            limit_sat: parse_sat(amount)?,
            period: period.trim().parse()?,
        })
    }
}

/// A whole number of satoshis, with `_` or `,` allowed as separators.
pub fn parse_sat(text: &str) -> Result<u64, TokenError> {
    let digits: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, '_' | ','))
        .collect();
    digits
        .parse()
        .map_err(|_| TokenError::Caveat(format!("{text:?} is not a whole number of satoshis")))
}

/// Satoshis as millisatoshis that fit Datalog's i64.
fn sat_to_msat(sat: u64) -> Result<i64, TokenError> {
    sat.checked_mul(1000)
        .and_then(|m| i64::try_from(m).ok())
        .ok_or_else(|| TokenError::Caveat(format!("{sat} sat is too large")))
}

/// The caveats of one attenuation block. Every field narrows the token; empty ones add nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caveats {
    /// Allowed method groups (`read`, `invoice`, `pay`, `admin`) and RPC names (`GetInfo`);
    /// empty: no method caveat.
    pub methods: Vec<String>,
    /// The token stops working at this time.
    pub expires_at: Option<SystemTime>,
    /// Spending budgets per period.
    pub budgets: Vec<Budget>,
    /// The most one payment may cost (amount plus routing-fee limit), in satoshis.
    pub max_payment_sat: Option<u64>,
}

impl Caveats {
    /// Whether no caveat is set.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
            && self.expires_at.is_none()
            && self.budgets.is_empty()
            && self.max_payment_sat.is_none()
    }

    /// The Datalog of these caveats for the block at `block_index` (the number of blocks the
    /// token has before it). Budget caveats name that index: it selects their ledger.
    pub fn block(&self, block_index: usize) -> Result<BlockBuilder, TokenError> {
        let mut block = BlockBuilder::new();
        if !self.methods.is_empty() {
            block = add(block, &self.method_check()?)?;
        }
        if let Some(at) = self.expires_at {
            block = block.check_expiration_date(at);
        }
        if let Some(max) = self.max_payment_sat {
            let max = sat_to_msat(max)?;
            block = add(
                block,
                &format!("check if metered(false) or spend_msat($c), $c <= {max}"),
            )?;
        }
        for budget in &self.budgets {
            let limit = sat_to_msat(budget.limit_sat)?;
            block = add(
                block,
                &format!(
                    "check if metered(false) or spend_msat($c), spent({block_index}, \"{}\", $s), $s + $c <= {limit}",
                    budget.period
                ),
            )?;
        }
        Ok(block)
    }

    fn method_check(&self) -> Result<String, TokenError> {
        let mut groups = Vec::new();
        let mut names = Vec::new();
        for m in &self.methods {
            let m = m.trim();
            if let Ok(group) = m.parse::<MethodGroup>() {
                groups.push(format!("{:?}", group.as_str()));
            } else if let Some(rule) = METHODS.iter().find(|r| r.name.eq_ignore_ascii_case(m)) {
                names.push(format!("{:?}", rule.name));
            } else {
                return Err(TokenError::Caveat(format!(
                    "{m:?} is neither a method group (read, invoice, pay, admin) nor an RPC name"
                )));
            }
        }
        let mut alternatives = Vec::new();
        if !groups.is_empty() {
            alternatives.push(format!("group($g), [{}].contains($g)", groups.join(", ")));
        }
        if !names.is_empty() {
            alternatives.push(format!("method($m), [{}].contains($m)", names.join(", ")));
        }
        Ok(format!("check if {}", alternatives.join(" or ")))
    }
}

fn add(block: BlockBuilder, check: &str) -> Result<BlockBuilder, TokenError> {
    block
        .check(check)
        .map_err(|e| TokenError::Biscuit(format!("caveat `{check}`: {e}")))
}

/// Attenuates `token` offline: appends a block with `caveats`. Needs no key and no node; the
/// result can do at most what `token` can. The signature is not checked here (the node does).
pub fn attenuate(token: &str, caveats: &Caveats) -> Result<String, TokenError> {
    let parent = UnverifiedBiscuit::from_base64(token.trim())
        .map_err(|e| TokenError::Invalid(format!("not a token: {e}")))?;
    let block = caveats.block(parent.block_count())?;
    let child = parent.append(block).map_err(|e| match e {
        biscuit_auth::error::Token::AppendOnSealed => {
            TokenError::Invalid("the token is sealed and cannot be attenuated".into())
        }
        other => TokenError::biscuit(other),
    })?;
    child.to_base64().map_err(TokenError::biscuit)
}

/// What a token says about itself: its ids and its blocks. Never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSummary {
    /// The token's id (see [`token_id`]).
    pub id: String,
    /// The id of the token it was attenuated from; `None` for a root token.
    pub parent_id: Option<String>,
    /// The node it claims to belong to (its authority block's `tenant` fact).
    pub tenant: Option<String>,
    /// The revocation id of each block (hex).
    pub revocation_ids: Vec<String>,
    /// The Datalog source of each block.
    pub blocks: Vec<String>,
}

impl TokenSummary {
    /// A summary from a token's revocation ids and block sources.
    pub(crate) fn new(revocation_ids: &[Vec<u8>], blocks: Vec<String>) -> TokenSummary {
        let n = revocation_ids.len();
        TokenSummary {
            id: revocation_ids
                .last()
                .map(|r| token_id(r))
                .unwrap_or_default(),
            parent_id: (n >= 2).then(|| token_id(&revocation_ids[n - 2])),
            tenant: blocks.first().and_then(|b| tenant_in(b)),
            revocation_ids: revocation_ids.iter().map(hex::encode).collect(),
            blocks,
        }
    }
}

/// Reads a token without checking its signature: for people and the CLI, never for access.
pub fn inspect(token: &str) -> Result<TokenSummary, TokenError> {
    let token = UnverifiedBiscuit::from_base64(token.trim())
        .map_err(|e| TokenError::Invalid(format!("not a token: {e}")))?;
    let blocks = (0..token.block_count())
        .map(|i| token.print_block_source(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TokenError::Invalid(format!("unreadable block: {e}")))?;
    Ok(TokenSummary::new(&token.revocation_identifiers(), blocks))
}

/// A token's id: the first 16 bytes of SHA-256 of its last block's revocation id, in hex.
/// Each attenuation has its own id; the parent's id is that of the block before.
pub fn token_id(last_revocation_id: &[u8]) -> String {
    let hash = sha256::Hash::hash(last_revocation_id);
    hex::encode(&hash.as_byte_array()[..16])
}

/// The value of the `tenant("...")` fact in a block's source, if any.
pub(crate) fn tenant_in(source: &str) -> Option<String> {
    let start = source.find("tenant(\"")? + "tenant(\"".len();
    let len = source[start..].find('"')?;
    Some(source[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_budgets_and_groups() {
        assert_eq!(
            "10_000/day".parse::<Budget>().expect("budget"),
            Budget {
                limit_sat: 10_000,
                period: Period::Day
            }
        );
        assert_eq!(
            "5/Month".parse::<Budget>().expect("budget").period,
            Period::Month
        );
        for bad in ["10000", "x/day", "10/year", "-1/day"] {
            assert!(bad.parse::<Budget>().is_err(), "{bad}");
        }
        assert_eq!("PAY".parse::<MethodGroup>().expect("group"), Pay);
        assert!("root".parse::<MethodGroup>().is_err());
    }

    #[test]
    fn every_method_is_admin_and_unknown_ones_are_admin_only() {
        for m in METHODS {
            assert!(m.groups.contains(&Admin), "{}", m.name);
        }
        let unknown = method_rule("Shutdown");
        assert_eq!(unknown.groups, &[Admin]);
        assert_eq!(unknown.spending, Spending::Onchain);
        assert_eq!(method_rule("PayInvoice").spending, Spending::Lightning);
    }

    #[test]
    fn caveats_become_datalog() {
        let caveats = Caveats {
            methods: vec!["pay".into(), "getinfo".into()],
            expires_at: Some(
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000),
            ),
            budgets: vec!["10000/day".parse().expect("budget")],
            max_payment_sat: Some(5000),
        };
        let source = caveats.block(3).expect("block").to_string();
        assert!(
            source.contains(
                r#"group($g), ["pay"].contains($g) or method($m), ["GetInfo"].contains($m)"#
            ),
            "{source}"
        );
        assert!(source.contains("time($time)"), "{source}");
        assert!(source.contains("$c <= 5000000"), "{source}");
        assert!(
            source.contains(r#"spent(3, "day", $s), $s + $c <= 10000000"#),
            "{source}"
        );
        assert!(Caveats {
            methods: vec!["root".into()],
            ..Caveats::default()
        }
        .block(1)
        .is_err());
        assert!(Caveats::default().is_empty());
    }

    #[test]
    fn reads_the_tenant_fact() {
        assert_eq!(
            tenant_in("tenant(\"02ab\");\nright(\"admin\");\n").as_deref(),
            Some("02ab")
        );
        assert_eq!(tenant_in("right(\"admin\");"), None);
    }
}
