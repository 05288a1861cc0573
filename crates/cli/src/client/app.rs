//! Signing a spending call with an app credential (`micronode signer token bake`): the
//! credential's token is the bearer token, and each payment carries a request signed with its
//! client key, which the tenant's signer checks against the payment before approving it.

use std::str::FromStr;

use anyhow::Context;
use micronode_signer_protocol::{AppCredential, AppMethod, APP_REQUEST_METADATA};
use tonic::metadata::{Ascii, MetadataValue};

/// The app credential in `token`, if it is one (a plain token is not).
pub(crate) fn credential_of(token: Option<&str>) -> anyhow::Result<Option<AppCredential>> {
    match token {
        Some(text) if AppCredential::is_credential(text) => AppCredential::parse(text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("bad app credential: {e}")),
        _ => Ok(None),
    }
}

/// The bearer token of `token`: an app credential's token, or `token` itself.
pub(crate) fn bearer_of(token: &str) -> anyhow::Result<String> {
    Ok(match credential_of(Some(token))? {
        Some(credential) => credential.token,
        None => token.trim().to_string(),
    })
}

/// Adds the signed request for paying `invoice` (`amount_msat` when given, else the
/// invoice's) to `request`.
pub(crate) fn sign_invoice_payment<T>(
    credential: &AppCredential,
    request: &mut tonic::Request<T>,
    invoice: &str,
    amount_msat: Option<u64>,
) -> anyhow::Result<()> {
    let parsed = micronode_node::pay::parse_invoice(invoice)?;
    let amount = amount_msat
        .or(parsed.amount_milli_satoshis())
        .context("the invoice has no amount; give --amount-msat")?;
    let hash = hex::encode(AsRef::<[u8]>::as_ref(parsed.payment_hash()));
    attach(
        request,
        credential.sign(AppMethod::PayInvoice, hash, amount),
    )
}

/// Adds the signed request for a keysend of `amount_msat` to `node_id` to `request`.
pub(crate) fn sign_keysend<T>(
    credential: &AppCredential,
    request: &mut tonic::Request<T>,
    node_id: &str,
    amount_msat: u64,
) -> anyhow::Result<()> {
    let payee = bitcoin::secp256k1::PublicKey::from_str(node_id.trim())
        .map_err(|e| anyhow::anyhow!("invalid node id: {e}"))?;
    attach(
        request,
        credential.sign(AppMethod::Keysend, payee.to_string(), amount_msat),
    )
}

/// Adds the signed request for sending `amount_sat` (`None`: everything) on chain to
/// `address` to `request`.
pub(crate) fn sign_onchain_send<T>(
    credential: &AppCredential,
    request: &mut tonic::Request<T>,
    address: &str,
    amount_sat: Option<u64>,
) -> anyhow::Result<()> {
    let script = bitcoin::Address::from_str(address.trim())
        .map_err(|e| anyhow::anyhow!("invalid address: {e}"))?
        .assume_checked()
        .script_pubkey();
    let amount_msat = amount_sat.map_or(0, |sat| sat.saturating_mul(1000));
    attach(
        request,
        credential.sign(
            AppMethod::SendOnchain,
            hex::encode(script.as_bytes()),
            amount_msat,
        ),
    )
}

fn attach<T>(
    request: &mut tonic::Request<T>,
    signed: micronode_signer_protocol::SignedAppRequest,
) -> anyhow::Result<()> {
    let value: MetadataValue<Ascii> = serde_json::to_string(&signed)?
        .parse()
        .context("the signed request is not valid metadata")?;
    request.metadata_mut().insert(APP_REQUEST_METADATA, value);
    Ok(())
}
