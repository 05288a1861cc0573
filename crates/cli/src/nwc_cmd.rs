//! `micronode nwc`: manage Nostr Wallet Connect connections on the NWC service's data
//! directory. Works whether or not the service runs (it picks up changes within a second).

use std::path::PathBuf;

use anyhow::{bail, Context};
use micronode_nwc::nostr_sdk::{PublicKey, RelayUrl};
use micronode_nwc::{
    render_qr_terminal, BudgetRenewal, Connection, ConnectionSpec, Method, NwcStore,
};

use crate::config::micronode_home;

/// Options of `micronode nwc`.
#[derive(clap::Args, Debug)]
pub struct NwcArgs {
    /// The NWC service's data directory.
    #[arg(long, env = "MICRONODE_NWC_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: NwcCommand,
}

#[derive(clap::Subcommand, Debug)]
enum NwcCommand {
    /// Create a connection for an app and print its URI (once: its secret is not stored).
    Connect {
        /// A name for the app.
        name: String,
        /// Allowed methods, comma-separated (default: all supported).
        #[arg(long, value_delimiter = ',')]
        methods: Vec<String>,
        /// Only get_info, get_balance, lookup_invoice, list_transactions.
        #[arg(long, conflicts_with = "methods")]
        read_only: bool,
        /// Spending budget per period, in sat (fees included).
        #[arg(long)]
        budget_sat: Option<u64>,
        /// Budget period: daily, weekly, monthly, yearly, or never (a total budget).
        #[arg(long, default_value = "daily")]
        renewal: String,
        /// Expire the connection after this many days.
        #[arg(long)]
        expires_in_days: Option<u64>,
        /// No payment notifications.
        #[arg(long)]
        no_notifications: bool,
        /// Relay URL (repeatable); default: the relays the service last ran with.
        #[arg(long = "relay")]
        relays: Vec<String>,
        /// Do not print a QR code.
        #[arg(long)]
        no_qr: bool,
        /// The app's public key, made by the tenant's signer (`micronode signer token nwc`):
        /// required for a tenant whose signer approves only payments its apps signed. The
        /// URI printed then lacks the secret, which only the tenant's signer showed.
        #[arg(long)]
        app_pubkey: Option<String>,
    },
    /// List connections (no secrets).
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a connection by id or name; its next request gets UNAUTHORIZED.
    Revoke {
        /// Connection id or name.
        connection: String,
    },
    /// Show or set the tenant's Nostr public key (hex or npub), the only key that may manage
    /// connections remotely (NIP-98).
    Tenant {
        /// The key to record; omit to show the current one.
        pubkey: Option<String>,
    },
}

fn open(data_dir: Option<PathBuf>) -> anyhow::Result<NwcStore> {
    let dir = data_dir.unwrap_or_else(|| micronode_home().join("regtest").join("nwc"));
    NwcStore::open(&dir).with_context(|| format!("opening the NWC data in {}", dir.display()))
}

fn describe(c: &Connection, now: u64) -> String {
    let budget = c
        .budget
        .map(|b| format!("{} sat {}", b.amount_msat / 1000, b.renewal))
        .unwrap_or_else(|| "no budget".into());
    let methods: Vec<&str> = c.allowed_methods().iter().map(|m| m.as_str()).collect();
    format!(
        "{:>4}  {:<16} {:<8} {:<22} {}{}",
        c.id,
        c.name,
        format!("{:?}", c.status(now)).to_lowercase(),
        budget,
        methods.join(","),
        if c.notifications {
            " +notifications"
        } else {
            ""
        }
    )
}

/// Percent-encodes a relay URL for a URI's query (every byte but unreserved characters).
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Runs `micronode nwc`.
pub async fn run(args: NwcArgs) -> anyhow::Result<()> {
    let store = open(args.data_dir)?;
    let now = micronode_nwc::now_secs();
    match args.command {
        NwcCommand::Connect {
            name,
            methods,
            read_only,
            budget_sat,
            renewal,
            expires_in_days,
            no_notifications,
            relays,
            no_qr,
            app_pubkey,
        } => {
            let mut spec = if read_only {
                ConnectionSpec::read_only(name)
            } else {
                ConnectionSpec::full(name)
            };
            if !methods.is_empty() {
                let parsed = methods
                    .iter()
                    .map(|m| m.trim().parse::<Method>())
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(m) = parsed.iter().find(|m| !m.is_supported()) {
                    bail!("{m} is not supported by this service");
                }
                spec = spec.with_methods(parsed);
            }
            if let Some(sat) = budget_sat {
                let renewal: BudgetRenewal = renewal.parse()?;
                spec = spec.with_budget(sat.saturating_mul(1000), renewal);
            }
            if let Some(days) = expires_in_days {
                spec = spec.with_expiry(now.saturating_add(days.saturating_mul(86_400)));
            }
            spec.notifications = !no_notifications;
            let relays = if relays.is_empty() {
                store.relays()?
            } else {
                relays
                    .iter()
                    .map(|r| RelayUrl::parse(r).with_context(|| format!("relay {r:?}")))
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            if relays.is_empty() {
                bail!("no relay known yet: give --relay ws://... (or start the service once)");
            }
            if let Some(key) = app_pubkey {
                let key = PublicKey::parse(&key)
                    .with_context(|| format!("{key:?} is not a Nostr public key"))?;
                let connection = store.create_connection_for_app(&spec, &relays, key)?;
                eprintln!("connection {} created:", describe(&connection, now));
                eprintln!(
                    "The app's URI: append `&secret=<the app_secret its signer showed>` to this:"
                );
                let relays: Vec<String> = relays
                    .iter()
                    .map(|r| format!("relay={}", urlencode(r.as_str())))
                    .collect();
                println!(
                    "nostr+walletconnect://{}?{}",
                    connection.wallet_pubkey.to_hex(),
                    relays.join("&")
                );
                return Ok(());
            }
            let new = store.create_connection(&spec, &relays)?;
            eprintln!("connection {} created:", describe(&new.connection, now));
            if !no_qr {
                eprintln!("{}", render_qr_terminal(&new.uri())?);
            }
            eprintln!("Give this URI to the app; it is shown only now:");
            println!("{}", new.uri());
        }
        NwcCommand::List { json } => {
            let all = store.list_connections()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no connections");
            } else {
                for c in &all {
                    println!("{}", describe(c, now));
                }
            }
        }
        NwcCommand::Revoke { connection } => {
            let found = store.find_connections(&connection)?;
            if found.is_empty() {
                bail!("no connection {connection:?}");
            }
            for c in found {
                if store.revoke_connection(c.id)? {
                    println!("revoked {} ({})", c.id, c.name);
                }
            }
        }
        NwcCommand::Tenant { pubkey } => match pubkey {
            Some(pk) => {
                let key = PublicKey::parse(&pk)
                    .with_context(|| format!("{pk:?} is not a Nostr public key"))?;
                store.set_tenant_pubkey(&key)?;
                println!("tenant key set to {}", key.to_hex());
            }
            None => match store.tenant_pubkey()? {
                Some(k) => println!("{}", k.to_hex()),
                None => println!("no tenant key recorded"),
            },
        },
    }
    Ok(())
}
