//! The tenant's app in `micronode up`: the tenant's signer bakes it a credential (`micronode
//! signer token bake`), and it pays over the tenant node's gRPC API with a request signed by
//! its own key, which the signer checks against the payment before approving it. The node,
//! run by the operator, cannot make such a request.

use std::net::SocketAddr;
use std::process::Stdio;

use anyhow::{bail, Context};
use micronode_proto::v1::lightning_client::LightningClient;
use micronode_proto::v1::{PayInvoiceRequest, Payment};
use micronode_proto::AUTHORIZATION_METADATA;
use micronode_signer_protocol::AppCredential;

use crate::up_signer::SignerChild;

/// Runs `micronode signer token <kind>` for an app named `name` spending up to `budget_sat`
/// a day; returns what it printed.
fn authorise(
    signer: &SignerChild,
    kind: &str,
    name: &str,
    budget_sat: u64,
) -> anyhow::Result<String> {
    let out = signer
        .command()?
        .args(["token", kind, "--name", name, "--period", "day"])
        .arg("--budget-sat")
        .arg(budget_sat.to_string())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `micronode signer token {kind}`"))?;
    if !out.status.success() {
        bail!(
            "the tenant's signer did not authorise the app: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Asks the tenant's signer to authorise an app named `name` spending up to `budget_sat` a
/// day; returns its credential.
pub fn bake(signer: &SignerChild, name: &str, budget_sat: u64) -> anyhow::Result<AppCredential> {
    let text = authorise(signer, "bake", name, budget_sat)?;
    AppCredential::parse(&text).map_err(|e| anyhow::anyhow!("bad app credential: {e}"))
}

/// Asks the tenant's signer to authorise a Nostr Wallet Connect app spending up to
/// `budget_sat` a day; returns the app's keys (made by the signer).
pub fn bake_nwc(
    signer: &SignerChild,
    name: &str,
    budget_sat: u64,
) -> anyhow::Result<micronode_nwc::nostr_sdk::Keys> {
    let out = signer
        .command()?
        .args(["token", "nwc", "--name", name, "--period", "day"])
        .arg("--budget-sat")
        .arg(budget_sat.to_string())
        .stdin(Stdio::null())
        .output()
        .context("running `micronode signer token nwc`")?;
    if !out.status.success() {
        bail!(
            "the tenant's signer did not authorise the NWC app: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("the signer's answer is not JSON")?;
    let secret = line["app_secret"]
        .as_str()
        .context("the signer gave no app secret")?;
    micronode_nwc::nostr_sdk::Keys::parse(secret).context("the app secret is not a key")
}

/// Pays `invoice` as the app through the node's API at `api`, waiting for the outcome.
pub async fn pay(
    api: SocketAddr,
    credential: &AppCredential,
    invoice: &str,
) -> anyhow::Result<Payment> {
    let mut client = LightningClient::connect(format!("http://{api}"))
        .await
        .context("connecting to the tenant's API")?;
    let mut request = tonic::Request::new(PayInvoiceRequest {
        invoice: invoice.to_string(),
        amount_msat: None,
        max_fee_msat: None,
        wait: true,
        timeout_secs: Some(60),
    });
    request.metadata_mut().insert(
        AUTHORIZATION_METADATA,
        micronode_api::bearer(&credential.token)
            .parse()
            .context("the app's token is not valid metadata")?,
    );
    crate::client::app::sign_invoice_payment(credential, &mut request, invoice, None)?;
    let payment = client
        .pay_invoice(request)
        .await
        .map_err(|status| anyhow::anyhow!("the app's payment failed: {}", status.message()))?
        .into_inner();
    Ok(payment)
}

/// A browser-wallet pairing session `up` made.
pub struct BrowserPairing {
    /// The 10 words to type in the wallet.
    pub phrase: String,
}

/// Asks the tenant's signer for a browser-wallet pairing session (`micronode signer pair`),
/// registered at the tenant's API behind `door`, spending up to `budget_sat` a day.
pub fn pair_browser(
    signer: &SignerChild,
    door: SocketAddr,
    wallet_url: &str,
    budget_sat: u64,
) -> anyhow::Result<BrowserPairing> {
    let out = signer
        .command()?
        .args(["pair", "--name", "browser wallet", "--period", "day"])
        .arg("--budget-sat")
        .arg(budget_sat.to_string())
        .arg("--endpoint")
        .arg(format!("http://{door}"))
        .arg("--wallet-url")
        .arg(wallet_url)
        .stdin(Stdio::null())
        .output()
        .context("running `micronode signer pair`")?;
    if !out.status.success() {
        bail!(
            "the tenant's signer did not make a pairing session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line: serde_json::Value = serde_json::from_slice(&out.stdout)
        .context("reading what `micronode signer pair` printed")?;
    let phrase = line["phrase"]
        .as_str()
        .context("`micronode signer pair` printed no phrase")?
        .to_string();
    Ok(BrowserPairing { phrase })
}
