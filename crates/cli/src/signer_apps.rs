//! `micronode signer token ...` and `micronode signer status`: the tenant's apps, managed at
//! the tenant's signer. Baking needs the seed (the token root derives from it), so it asks
//! for the passphrase; `status` and `revoke` read and write the signer's app ledger only.
//! All of them work while `signer run` is running.

use std::path::Path;

use anyhow::{bail, Context};
use micronode_signer::apps::store::AppStore;
use micronode_signer::apps::{now, AppGate, APPS_FILE};
use micronode_signer::vault::SeedVault;

/// `micronode signer token ...`.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Authorise a new app: prints its credential (a token the node verifies and the key that
    /// signs its payments) once. Give it to the app (`--token` of the CLI); keep it secret.
    Bake {
        /// What its token lets it call at the node, comma-separated: read, invoice, pay, admin.
        #[arg(long, default_value = "read,invoice,pay")]
        rights: String,
        /// The app.
        #[command(flatten)]
        app: AppArgs,
    },
    /// Authorise a Nostr Wallet Connect app: makes its key here and prints, once, JSON with
    /// its id, public key (register it with `micronode nwc connect NAME --app-pubkey KEY`)
    /// and secret (the `secret` of the app's connection URI).
    Nwc {
        /// The app.
        #[command(flatten)]
        app: AppArgs,
    },
    /// Revoke an app by id: the signer approves nothing more for it.
    Revoke {
        /// The app's id (from `signer status`).
        id: String,
    },
}

/// What the tenant says of a new app.
#[derive(clap::Args, Debug)]
pub struct AppArgs {
    /// The app's name, shown by `signer status`.
    #[arg(long)]
    pub name: String,
    /// The most it may spend per period, in sat (amount plus routing-fee allowance).
    #[arg(long)]
    pub budget_sat: u64,
    /// The budget's period: day, week, month (30 days) or life.
    #[arg(long, default_value = "day")]
    pub period: String,
    /// Days until the app stops being valid [default: never].
    #[arg(long)]
    pub expires_in_days: Option<u64>,
}

/// Seconds of a budget period's name.
pub fn period_secs(name: &str) -> anyhow::Result<u64> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        "life" => 0,
        other => bail!("unknown budget period {other:?}: day, week, month or life"),
    })
}

pub(crate) fn rights_of(text: &str) -> anyhow::Result<Vec<String>> {
    let rights: Vec<String> = text
        .split(',')
        .map(|r| r.trim().to_ascii_lowercase())
        .filter(|r| !r.is_empty())
        .collect();
    for right in &rights {
        if !["read", "invoice", "pay", "admin"].contains(&right.as_str()) {
            bail!("unknown right {right:?}: read, invoice, pay or admin");
        }
    }
    if rights.is_empty() {
        bail!("give at least one right");
    }
    Ok(rights)
}

/// Runs `micronode signer token ...` on the signer in `dir`.
pub fn run_token(dir: &Path, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Bake { rights, app } => {
            let rights = rights_of(&rights)?;
            let (budget_sat, period) = (app.budget_sat, period_secs(&app.period)?);
            let app = add_app(dir, &app, &rights)?;
            eprintln!(
                "app {} ({}) may spend {} sat per {}; its credential follows (shown once):",
                app.record.name,
                app.record.id,
                budget_sat,
                describe_period(period)
            );
            println!("{}", app.credential.to_text());
            Ok(())
        }
        TokenCommand::Nwc { app } => {
            let (budget_sat, period) = (app.budget_sat, period_secs(&app.period)?);
            let app = add_app(dir, &app, &[])?;
            eprintln!(
                "NWC app {} ({}) may spend {} sat per {}; register its public key with the \
                 node's NWC service and give the secret to the app (shown once):",
                app.record.name,
                app.record.id,
                budget_sat,
                describe_period(period)
            );
            let line = serde_json::json!({
                "app_id": app.record.id,
                "app_pubkey": app.record.client_key,
                "app_secret": hex::encode(app.credential.client_key.secret_bytes()),
            });
            println!("{line}");
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let store = AppStore::open(&dir.join("state").join(APPS_FILE))?;
            if !store.revoke(id.trim(), now())? {
                bail!("no app {id:?} at this signer");
            }
            eprintln!("app {id} revoked: the signer approves nothing more for it");
            Ok(())
        }
    }
}

/// Unlocks the seed and records a new app at the signer in `dir`; also returns the tenant's
/// node id.
pub(crate) fn add_app_for_tenant(
    dir: &Path,
    app: &AppArgs,
    rights: &[String],
) -> anyhow::Result<(micronode_signer::apps::NewApp, String)> {
    let period = period_secs(&app.period)?;
    let vault = SeedVault::open(dir.join("seed.vault"))?;
    let seed = vault.unlock(&crate::signer_cmd::passphrase(false)?)?;
    let gate = AppGate::open_beside_signer(&dir.join("state"), &seed.signer_seed())?
        .context("the signer has not started yet: run `micronode signer run` once first")?;
    let expires_at = app
        .expires_in_days
        .map(|d| now().saturating_add(d.saturating_mul(86_400)));
    let new = gate
        .add_app(
            &app.name,
            rights,
            app.budget_sat.saturating_mul(1000),
            period,
            expires_at,
        )
        .map_err(|e| anyhow::anyhow!("cannot authorise the app: {e}"))?;
    Ok((new, gate.tenant().to_string()))
}

/// Unlocks the seed and records a new app at the signer in `dir`.
fn add_app(
    dir: &Path,
    app: &AppArgs,
    rights: &[String],
) -> anyhow::Result<micronode_signer::apps::NewApp> {
    add_app_for_tenant(dir, app, rights).map(|(app, _)| app)
}

fn describe_period(secs: u64) -> String {
    match secs {
        0 => "its life".into(),
        86_400 => "day".into(),
        s => format!("{} days", s / 86_400),
    }
}

/// `micronode signer status`: each app, its budget used and left, its last payments (JSON).
pub fn status(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let store = AppStore::open(&dir.join("state").join(APPS_FILE))?;
    let now = now();
    let mut apps = Vec::new();
    for app in store.apps()? {
        let since = match app.period_secs {
            0 => 0,
            p => now.saturating_sub(p),
        };
        let spent = store.spent_since(&app.id, since)?;
        let last = store.recent(&app.id, 5)?;
        apps.push(serde_json::json!({
            "id": app.id,
            "name": app.name,
            "client_key": app.client_key,
            "budget_msat": app.budget_msat,
            "period": describe_period(app.period_secs),
            "spent_msat": spent,
            "left_msat": app.budget_msat.saturating_sub(spent),
            "expires_at": app.expires_at,
            "revoked_at": app.revoked_at,
            "last_payments": last,
        }));
    }
    Ok(serde_json::json!({ "apps": apps }))
}
