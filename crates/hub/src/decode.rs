//! Invoices shown the LndHub way: LND's `DecodePayReq` fields (64-bit integers as strings, as
//! LND's JSON has them).

use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef};
use serde_json::{json, Value};

/// LND's `DecodePayReq` object for `invoice`: `destination, payment_hash, num_satoshis,
/// num_msat, timestamp, expiry, description, description_hash, cltv_expiry, payment_addr,
/// fallback_addr, route_hints, features`.
pub fn decode_pay_req(invoice: &Bolt11Invoice) -> Value {
    let msat = invoice.amount_milli_satoshis().unwrap_or(0);
    let (description, description_hash) = match invoice.description() {
        Bolt11InvoiceDescriptionRef::Direct(d) => (d.to_string(), String::new()),
        Bolt11InvoiceDescriptionRef::Hash(h) => (String::new(), hex::encode(h.0)),
    };
    let timestamp = invoice
        .timestamp()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let destination = invoice
        .payee_pub_key()
        .copied()
        .unwrap_or_else(|| invoice.recover_payee_pub_key());
    json!({
        "destination": destination.to_string(),
        "payment_hash": hex::encode(AsRef::<[u8]>::as_ref(invoice.payment_hash())),
        "num_satoshis": (msat / 1000).to_string(),
        "num_msat": msat.to_string(),
        "timestamp": timestamp.to_string(),
        "expiry": invoice.expiry_time().as_secs().to_string(),
        "description": description,
        "description_hash": description_hash,
        "cltv_expiry": invoice.min_final_cltv_expiry_delta().to_string(),
        "payment_addr": hex::encode(invoice.payment_secret().0),
        "fallback_addr": "",
        "route_hints": [],
        "features": {},
    })
}
