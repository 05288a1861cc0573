//! The payer's side of a Lightning Address (LUD-16 over LNURL-pay, LUD-06): resolve
//! `name@domain`, ask its callback for an invoice of an amount, and check the invoice is the
//! one the spec promises (that amount, committing to the SHA-256 of the metadata shown) before
//! anyone pays it.
//!
//! Plain HTTP only (hyper's client, already in the tree; no TLS stack here), for addresses on
//! loopback or a private network, as `micronode up` and the tests use them. A public address
//! is served over HTTPS: fetch it with a TLS-capable client and check it with
//! [`check_invoice`].

use std::str::FromStr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::accounts::valid_address_name;

/// How long each request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The largest answer read (bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why a Lightning Address could not give an invoice.
#[derive(Debug, thiserror::Error)]
pub enum LnurlError {
    /// The text is not `name@domain`.
    #[error("{0:?} is not a Lightning Address (name@domain)")]
    Address(String),
    /// A URL built from the address or given by the server is not usable.
    #[error("invalid URL {0:?}")]
    Url(String),
    /// The server could not be reached, or did not answer in time.
    #[error("cannot reach {url}")]
    Http {
        /// The URL asked.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server answered, but not with what LNURL-pay says.
    #[error("the server's answer is not LNURL-pay: {0}")]
    Protocol(String),
    /// The server refused (`{"status":"ERROR","reason":...}` or an HTTP error).
    #[error("the server refused: {0}")]
    Refused(String),
    /// The amount is outside what the address accepts.
    #[error("the address takes {min} to {max} msat, not {asked}")]
    Amount {
        /// The least it takes.
        min: u64,
        /// The most it takes.
        max: u64,
        /// The amount asked.
        asked: u64,
    },
    /// The invoice is not the one promised (amount or description hash).
    #[error("the invoice does not match the request: {0}")]
    Invoice(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayRequest {
    tag: String,
    callback: String,
    min_sendable: u64,
    max_sendable: u64,
    metadata: String,
}

#[derive(Deserialize)]
struct CallbackAnswer {
    pr: Option<String>,
    status: Option<String>,
    reason: Option<String>,
}

/// An invoice of `amount_msat` from the Lightning Address `address`, checked (see
/// [`check_invoice`]).
pub async fn invoice_for_address(address: &str, amount_msat: u64) -> Result<String, LnurlError> {
    let (name, domain) = address
        .trim()
        .split_once('@')
        .filter(|(name, domain)| {
            valid_address_name(&name.to_ascii_lowercase())
                && !domain.is_empty()
                && !domain.contains(['/', '@', '?', '#'])
        })
        .ok_or_else(|| LnurlError::Address(address.to_string()))?;
    let url = format!("http://{domain}/.well-known/lnurlp/{name}");
    let request: PayRequest = get_json(&url).await?;
    if request.tag != "payRequest" {
        return Err(LnurlError::Protocol(format!("tag {:?}", request.tag)));
    }
    if amount_msat < request.min_sendable || amount_msat > request.max_sendable {
        return Err(LnurlError::Amount {
            min: request.min_sendable,
            max: request.max_sendable,
            asked: amount_msat,
        });
    }
    let separator = if request.callback.contains('?') {
        '&'
    } else {
        '?'
    };
    let callback = format!("{}{separator}amount={amount_msat}", request.callback);
    let answer: CallbackAnswer = get_json(&callback).await?;
    if answer.status.as_deref() == Some("ERROR") {
        return Err(LnurlError::Refused(answer.reason.unwrap_or_default()));
    }
    let invoice = answer
        .pr
        .ok_or_else(|| LnurlError::Protocol("the callback gave no invoice (pr)".into()))?;
    check_invoice(&invoice, amount_msat, &request.metadata)?;
    Ok(invoice)
}

/// Checks an invoice a Lightning Address's callback gave: it is for exactly `amount_msat` and
/// commits to the SHA-256 of `metadata` (LUD-06), so the payer pays what it was shown.
pub fn check_invoice(invoice: &str, amount_msat: u64, metadata: &str) -> Result<(), LnurlError> {
    let parsed = Bolt11Invoice::from_str(invoice.trim())
        .map_err(|e| LnurlError::Invoice(format!("not a BOLT11 invoice: {e}")))?;
    if parsed.amount_milli_satoshis() != Some(amount_msat) {
        return Err(LnurlError::Invoice(format!(
            "it asks {:?} msat, not {amount_msat}",
            parsed.amount_milli_satoshis()
        )));
    }
    let expected: [u8; 32] = Sha256::digest(metadata.as_bytes()).into();
    match parsed.description() {
        Bolt11InvoiceDescriptionRef::Hash(hash) if AsRef::<[u8]>::as_ref(&hash.0) == expected => {
            Ok(())
        }
        _ => Err(LnurlError::Invoice(
            "it does not commit to the metadata's hash".into(),
        )),
    }
}

/// GETs `url` and parses its JSON answer; an error status is a refusal.
async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, LnurlError> {
    let uri = hyper::Uri::from_str(url).map_err(|_| LnurlError::Url(url.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(LnurlError::Url(format!(
            "{url} (only plain http is supported here)"
        )));
    }
    let http = |source: Box<dyn std::error::Error + Send + Sync>| LnurlError::Http {
        url: url.to_string(),
        source,
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = tokio::time::timeout(REQUEST_TIMEOUT, client.get(uri))
        .await
        .map_err(|e| http(Box::new(e)))?
        .map_err(|e| http(Box::new(e)))?;
    let status = response.status();
    let body = tokio::time::timeout(
        REQUEST_TIMEOUT,
        Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect(),
    )
    .await
    .map_err(|e| http(Box::new(e)))?
    .map_err(http)?
    .to_bytes();
    if !status.is_success() {
        let reason = serde_json::from_slice::<CallbackAnswer>(&body)
            .ok()
            .and_then(|a| a.reason)
            .unwrap_or_else(|| status.to_string());
        return Err(LnurlError::Refused(reason));
    }
    serde_json::from_slice(&body).map_err(|e| LnurlError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn malformed_addresses_are_refused_before_any_request() {
        for address in [
            "",
            "alice",
            "@host",
            "alice@",
            "Al ice@host",
            "a@b/c",
            "a@b@c",
        ] {
            assert!(
                matches!(
                    invoice_for_address(address, 1000).await,
                    Err(LnurlError::Address(_))
                ),
                "{address}"
            );
        }
    }

    #[test]
    fn an_invoice_must_be_bolt11() {
        assert!(matches!(
            check_invoice("lnbcrt1garbage", 1000, "[]"),
            Err(LnurlError::Invoice(_))
        ));
    }
}
