//! The tenant's LndHub hub in `micronode up` (docs/hub.md): accounts for the tenant's users
//! that BlueWallet, Zeus and Alby speak to, and Lightning Addresses, in this process. The hub
//! is an app of the tenant's signer with its own daily budget: every payment it makes is
//! checked by the signer against that budget. `up` makes one account with a Lightning
//! Address, and the outside node pays that address (LNURL-pay over HTTP, the invoice checked
//! against the metadata it was shown).

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context};
use micronode_client::NodeClient;
use micronode_hub::{lndhub_uri, Hub, HubConfig, SignupMode};
use micronode_node::{KeysBackend, Node, PaymentStatus};
use tokio::net::TcpListener;

use crate::up_signer::SignerChild;

/// Where `up` serves the hub (a free port if this one is taken).
const HUB_PORT: u16 = 7449;

/// What the hub may spend a day at the tenant's signer, in sat.
pub const HUB_DAILY_BUDGET_SAT: u64 = 50_000;

/// The tenant's own Lightning Address name on the hub.
pub const TENANT_ADDRESS: &str = "tenant";

/// What the outside node pays the hub's user, in sat.
pub const TO_HUB_USER_SAT: u64 = 10_000;

/// A user of the hub that `up` made, paid through its Lightning Address.
pub struct HubUser {
    /// Its `lndhub://login:password@url` export, for a wallet.
    pub lndhub: String,
    /// Its Lightning Address.
    pub address: String,
}

/// Starts the hub on the tenant's API behind the front door `door`, its database in
/// `<regtest>/hub`, with open sign-up.
pub async fn start(signer: &SignerChild, door: SocketAddr, regtest: &Path) -> anyhow::Result<Hub> {
    let credential = crate::up_app::bake(signer, "micronode up hub", HUB_DAILY_BUDGET_SAT)?;
    let client = NodeClient::connect(&format!("http://{door}"), &credential.to_text(), None)
        .await
        .context("connecting the hub to the tenant's API")?;
    let listener = match TcpListener::bind(("127.0.0.1", HUB_PORT)).await {
        Ok(listener) => listener,
        Err(_) => TcpListener::bind(("127.0.0.1", 0)).await?,
    };
    let addr = listener.local_addr()?;
    let config = HubConfig {
        listen: addr,
        public_url: format!("http://{addr}"),
        domain: addr.to_string(),
        signup: SignupMode::Open,
        tenant_address: Some(TENANT_ADDRESS.to_string()),
        ..HubConfig::default()
    };
    let dir = regtest.join("hub");
    micronode_files::create_private_dir(&dir)?;
    Hub::start(config, &dir, client, listener)
        .await
        .context("starting the hub")
}

/// Makes an account with a Lightning Address of its own on `hub`, and has `payer` pay
/// [`TO_HUB_USER_SAT`] to that address; returns the account once the hub credited it.
pub async fn pay_a_new_user<K: KeysBackend>(hub: &Hub, payer: &Node<K>) -> anyhow::Result<HubUser> {
    let addr = hub.local_addr();
    let name = format!("user-{}", hex::encode(rand::random::<[u8; 3]>()));
    let credentials = hub
        .admin()
        .create_account(Some(name.clone()), Some(TENANT_ADDRESS.to_string()))
        .await?;
    let address = format!("{name}@{addr}");
    let invoice = micronode_hub::invoice_for_address(&address, TO_HUB_USER_SAT * 1000)
        .await
        .with_context(|| format!("asking {address} for an invoice"))?;
    let id = payer.pay_invoice(&invoice, None, None)?;
    let record = payer
        .wait_payment(&id, std::time::Duration::from_secs(60))
        .await?;
    if record.status != PaymentStatus::Succeeded {
        bail!(
            "paying {address} failed: {}",
            record.failure_reason.unwrap_or_default()
        );
    }
    let credited = || async {
        let accounts = hub.admin().list_accounts().await?;
        anyhow::Ok(accounts.iter().any(|a| {
            a.login == credentials.login && a.balance_msat == TO_HUB_USER_SAT as i64 * 1000
        }))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !credited().await? {
        if std::time::Instant::now() > deadline {
            bail!("the hub did not credit {address}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(HubUser {
        lndhub: lndhub_uri(&credentials, &format!("http://{addr}")),
        address,
    })
}
