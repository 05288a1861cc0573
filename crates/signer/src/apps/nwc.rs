//! A Nostr Wallet Connect app's request, checked by the tenant's signer: the event is the
//! app's (its signature over the id, the id over the content), addressed to the wallet
//! service whose key the node hands over, and its decrypted request is the payment the node
//! asks to approve. The app's key was made by this signer (`micronode signer nwc add`), so the
//! operator, who runs the wallet service, cannot sign such an event.

use std::str::FromStr;

use lightning_signer::lightning_invoice::Bolt11Invoice;
use micronode_signer_protocol::{AppMethod, Hex};
use nostr::{Event, JsonUtil, Keys, Kind, SecretKey};

/// NIP-47's request kind.
const KIND_REQUEST: u16 = 23194;
/// The longest event accepted (the node refuses larger requests before this).
const MAX_EVENT_LEN: usize = 64 * 1024;

/// What an NWC request event says, once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NwcRequest {
    /// The app's key (x-only hex): the event's author.
    pub app_key: String,
    /// The event id (hex): approved once.
    pub event_id: String,
    /// When the app made it.
    pub created_at: u64,
    /// What it asks.
    pub method: AppMethod,
    /// The payment hash (invoice) or payee (keysend), lowercase hex.
    pub target: String,
    /// What it pays the payee, msat.
    pub amount_msat: u64,
}

/// Checks `event` and decrypts its request with `service_key`. Errors are for the refusal
/// message; the caller names the rule.
pub fn read_request(event: &str, service_key: &Hex) -> Result<NwcRequest, String> {
    if event.len() > MAX_EVENT_LEN {
        return Err(format!("the event is longer than {MAX_EVENT_LEN} bytes"));
    }
    let event = Event::from_json(event).map_err(|e| format!("not a Nostr event: {e}"))?;
    event
        .verify()
        .map_err(|_| "the event's id or signature is not valid".to_string())?;
    if event.kind != Kind::from(KIND_REQUEST) {
        return Err(format!(
            "the event is of kind {}, not a request",
            event.kind
        ));
    }
    let secret = SecretKey::from_slice(&service_key.0)
        .map_err(|_| "the wallet service key is not a key".to_string())?;
    let service = Keys::new(secret);
    let addressed = event.tags.public_keys().next().copied();
    if addressed != Some(service.public_key()) {
        return Err("the event is not addressed to this wallet service".into());
    }
    let encryption = event
        .tags
        .iter()
        .find(|t| t.kind().as_str() == "encryption")
        .and_then(|t| t.content().map(str::to_string));
    let plaintext = match encryption.as_deref() {
        Some("nip44_v2") => {
            nostr::nips::nip44::decrypt(service.secret_key(), &event.pubkey, &event.content)
                .map_err(|e| format!("cannot decrypt the request (NIP-44): {e}"))?
        }
        None | Some("nip04") => {
            nostr::nips::nip04::decrypt(service.secret_key(), &event.pubkey, &event.content)
                .map_err(|e| format!("cannot decrypt the request (NIP-04): {e}"))?
        }
        Some(other) => return Err(format!("unknown encryption {other:?}")),
    };
    let request: serde_json::Value =
        serde_json::from_str(&plaintext).map_err(|e| format!("the request is not JSON: {e}"))?;
    let params = &request["params"];
    let (method, target, amount_msat) = match request["method"].as_str() {
        Some("pay_invoice") => {
            let invoice = params["invoice"]
                .as_str()
                .ok_or("the request names no invoice")?;
            let invoice = Bolt11Invoice::from_str(invoice.trim())
                .map_err(|e| format!("the request's invoice is not valid: {e}"))?;
            let amount = params["amount"]
                .as_u64()
                .or(invoice.amount_milli_satoshis())
                .ok_or("the request gives no amount for an any-amount invoice")?;
            let hash: &[u8] = invoice.payment_hash().as_ref();
            (AppMethod::PayInvoice, hex::encode(hash), amount)
        }
        Some("pay_keysend") => {
            let payee = params["pubkey"]
                .as_str()
                .ok_or("the request names no payee")?
                .to_ascii_lowercase();
            let amount = params["amount"]
                .as_u64()
                .ok_or("the request gives no amount")?;
            (AppMethod::Keysend, payee, amount)
        }
        other => return Err(format!("the request is {other:?}, not a single payment")),
    };
    Ok(NwcRequest {
        app_key: event.pubkey.to_hex(),
        event_id: event.id.to_hex(),
        created_at: event.created_at.as_secs(),
        method,
        target,
        amount_msat,
    })
}
