//! `micronode cli token ...`: bake (attenuate offline, then register), list, revoke and inspect
//! capability tokens.
//!
//! Baking needs no key: the node cannot mint after a stateless init, so a holder narrows a
//! token it has (`--token` / `MICRONODE_TOKEN`) by appending a block of caveats, and registers
//! the result so the node can list and revoke it by id. The node stores ids and caveats only.

use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context};
use micronode_api::tokens::{self, Budget, Caveats, TokenSummary};
use micronode_proto::v1;
use serde_json::{json, Value};

use super::render::{kv, msat, Render};
use super::{call, connect_tokens, request, Printer, Target};

/// Token commands.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a narrower token from the one given with --token, offline, and register it with the
    /// node (ids and caveats only). Prints the new token.
    Bake {
        /// Allowed method groups (read, invoice, pay, admin) or RPC names, comma-separated
        /// [default: those of the parent].
        #[arg(long, value_delimiter = ',')]
        methods: Vec<String>,
        /// How long the token lives: a number and s, m, h, d or w (e.g. 24h).
        #[arg(long)]
        expiry: Option<String>,
        /// A spending budget, `<sat>/<period>` with period day, week, month or total (repeatable).
        #[arg(long = "budget")]
        budgets: Vec<String>,
        /// The most one payment may cost (amount plus routing-fee limit), in satoshis.
        #[arg(long)]
        max_payment: Option<String>,
        /// A name for the listing, e.g. the app it is for.
        #[arg(long, default_value = "")]
        label: String,
        /// Do not contact the node: only attenuate.
        #[arg(long)]
        no_register: bool,
    },
    /// The node's registered tokens: ids, caveats and spending.
    List,
    /// Revoke a token (and every token made from it) by its id or a revocation id.
    Revoke {
        /// A registered token's id, or a revocation id (`token inspect` shows both).
        id: String,
    },
    /// Show a token's ids and caveats, offline (the signature is not checked).
    Inspect {
        /// The token [default: the one given with --token].
        token: Option<String>,
    },
}

/// Runs a token command.
pub(crate) async fn run(
    args: &Target,
    json: bool,
    command: TokenCommand,
    out: &mut Printer,
) -> anyhow::Result<()> {
    match command {
        TokenCommand::Bake {
            methods,
            expiry,
            budgets,
            max_payment,
            label,
            no_register,
        } => {
            let parent = args.token.as_deref().ok_or_else(|| {
                anyhow!("baking narrows a token you hold: pass --token or set MICRONODE_TOKEN")
            })?;
            let caveats = Caveats {
                methods,
                expires_at: expiry
                    .map(|e| parse_lifetime(&e).map(|d| SystemTime::now() + d))
                    .transpose()?,
                budgets: budgets
                    .iter()
                    .map(|b| b.parse::<Budget>())
                    .collect::<Result<_, _>>()?,
                max_payment_sat: max_payment
                    .map(|m| tokens::caveats::parse_sat(&m))
                    .transpose()?,
            };
            let token = tokens::attenuate(parent, &caveats)?;
            let summary = tokens::inspect(&token)?;
            let registration = if no_register {
                None
            } else {
                let mut client = connect_tokens(args).await?;
                Some(
                    call(client.register_token(request(v1::RegisterTokenRequest {
                        token: token.clone(),
                        label,
                    })))
                    .await
                    .map_err(|e| e.to_string()),
                )
            };
            let baked = Baked {
                token,
                summary,
                registration,
            };
            out.result(json, &baked);
        }
        TokenCommand::List => {
            let mut client = connect_tokens(args).await?;
            let list = call(client.list_tokens(request(v1::ListTokensRequest {}))).await?;
            out.result(json, &list);
        }
        TokenCommand::Revoke { id } => {
            let mut client = connect_tokens(args).await?;
            let revoked = call(client.revoke_token(request(v1::RevokeTokenRequest { id }))).await?;
            out.result(json, &revoked);
        }
        TokenCommand::Inspect { token } => {
            let token = token
                .or_else(|| args.token.clone())
                .context("give a token, or --token")?;
            out.result(json, &Inspected(tokens::inspect(&token)?));
        }
    }
    Ok(())
}

/// A lifetime: a whole number and a unit, `s`, `m`, `h`, `d` or `w`.
fn parse_lifetime(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| anyhow!("{text:?}: give a unit, e.g. 24h"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| anyhow!("{text:?} is not a lifetime, e.g. 30m, 24h, 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => bail!("unknown unit {other:?} in {text:?} (s, m, h, d, w)"),
    };
    if n == 0 {
        bail!("a lifetime must be positive");
    }
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| anyhow!("{text:?} is too long"))
}

/// A baked token and its registration.
struct Baked {
    token: String,
    summary: TokenSummary,
    /// `None`: not attempted (`--no-register`); `Some(Err)`: the node refused.
    registration: Option<Result<v1::RegisterTokenResponse, String>>,
}

impl Render for Baked {
    fn text(&self) -> String {
        let registered = match &self.registration {
            None => "no (--no-register)".to_string(),
            Some(Ok(_)) => "yes".to_string(),
            Some(Err(e)) => format!("no: {e} (the token works all the same)"),
        };
        let mut text = kv(&[
            ("token", self.token.clone()),
            ("id", self.summary.id.clone()),
            (
                "parent_id",
                self.summary.parent_id.clone().unwrap_or_else(|| "-".into()),
            ),
            ("registered", registered),
        ]);
        text.push_str("\ncaveats:\n");
        text.push_str(&indent(
            self.summary.blocks.last().map(String::as_str).unwrap_or(""),
        ));
        text
    }

    fn json(&self) -> Value {
        let (registered, error) = match &self.registration {
            None => (false, Value::Null),
            Some(Ok(_)) => (true, Value::Null),
            Some(Err(e)) => (false, Value::String(e.clone())),
        };
        json!({
            "token": self.token,
            "id": self.summary.id,
            "parent_id": self.summary.parent_id,
            "caveats": self.summary.blocks.last(),
            "registered": registered,
            "register_error": error,
        })
    }
}

/// A token read offline.
struct Inspected(TokenSummary);

impl Render for Inspected {
    fn text(&self) -> String {
        let s = &self.0;
        let mut text = kv(&[
            ("id", s.id.clone()),
            (
                "parent_id",
                s.parent_id.clone().unwrap_or_else(|| "-".into()),
            ),
            ("tenant", s.tenant.clone().unwrap_or_else(|| "-".into())),
        ]);
        for (i, (block, rev)) in s.blocks.iter().zip(&s.revocation_ids).enumerate() {
            text.push_str(&format!(
                "\nblock {i} (revocation id {rev}):\n{}",
                indent(block)
            ));
        }
        text
    }

    fn json(&self) -> Value {
        let s = &self.0;
        json!({
            "id": s.id,
            "parent_id": s.parent_id,
            "tenant": s.tenant,
            "revocation_ids": s.revocation_ids,
            "blocks": s.blocks,
        })
    }
}

impl Render for v1::ListTokensResponse {
    fn text(&self) -> String {
        if self.tokens.is_empty() {
            return "no registered tokens".into();
        }
        self.tokens
            .iter()
            .map(|t| {
                let mut text = kv(&[
                    ("id", t.id.clone()),
                    ("label", t.label.clone()),
                    (
                        "parent_id",
                        t.parent_id.clone().unwrap_or_else(|| "-".into()),
                    ),
                    ("revoked", if t.revoked { "yes" } else { "no" }.to_string()),
                    ("spent_day", msat(t.spent_day_msat)),
                    ("spent_total", msat(t.spent_total_msat)),
                ]);
                text.push_str("\ncaveats:\n");
                let caveats = t
                    .blocks
                    .iter()
                    .skip(1)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("");
                text.push_str(&indent(if caveats.is_empty() {
                    "none (a root token)"
                } else {
                    &caveats
                }));
                text
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    fn json(&self) -> Value {
        Value::Array(
            self.tokens
                .iter()
                .map(|t| {
                    json!({
                        "id": t.id,
                        "label": t.label,
                        "parent_id": t.parent_id,
                        "revoked": t.revoked,
                        "revocation_ids": t.revocation_ids,
                        "blocks": t.blocks,
                        "registered_at": t.registered_at,
                        "spent_msat": {
                            "day": t.spent_day_msat,
                            "week": t.spent_week_msat,
                            "month": t.spent_month_msat,
                            "total": t.spent_total_msat,
                        },
                    })
                })
                .collect(),
        )
    }
}

impl Render for v1::RevokeTokenResponse {
    fn text(&self) -> String {
        let ids = if self.revoked_ids.is_empty() {
            "no registered token".to_string()
        } else {
            self.revoked_ids.join(", ")
        };
        format!(
            "revoked {} (and every token made from it); registered tokens now revoked: {ids}",
            self.revocation_id
        )
    }

    fn json(&self) -> Value {
        json!({ "revocation_id": self.revocation_id, "revoked_ids": self.revoked_ids })
    }
}

/// Each line indented by four spaces.
fn indent(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(
            parse_lifetime("24h").expect("24h"),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            parse_lifetime("2w").expect("2w"),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(parse_lifetime("90s").expect("90s"), Duration::from_secs(90));
        for bad in ["24", "h", "0h", "1y", "-1h", ""] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
