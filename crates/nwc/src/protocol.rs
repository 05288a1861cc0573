//! NIP-47 (Nostr Wallet Connect) on the wire: methods, request parsing, response and
//! notification bodies.
//!
//! <https://github.com/nostr-protocol/nips/blob/master/47.md>
//!
//! Requests are parsed leniently into a method name and a JSON `params` object first, so an
//! unknown method or malformed params still get an answer with the right `result_type`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::backend::{Direction, Transaction, TxState};
use crate::error::{ErrorCode, Nip47Error};

/// Kind of the info event (replaceable).
pub const KIND_INFO: u16 = 13194;
/// Kind of requests.
pub const KIND_REQUEST: u16 = 23194;
/// Kind of responses.
pub const KIND_RESPONSE: u16 = 23195;
/// Kind of NIP-04 notifications (legacy).
pub const KIND_NOTIFICATION_NIP04: u16 = 23196;
/// Kind of NIP-44 notifications.
pub const KIND_NOTIFICATION_NIP44: u16 = 23197;
/// The notification types this service sends.
pub const NOTIFICATION_TYPES: &str = "payment_received payment_sent";

/// A NIP-47 method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `pay_invoice`
    PayInvoice,
    /// `pay_keysend`
    PayKeysend,
    /// `make_invoice`
    MakeInvoice,
    /// `lookup_invoice`
    LookupInvoice,
    /// `list_transactions`
    ListTransactions,
    /// `get_balance`
    GetBalance,
    /// `get_info` (always allowed: apps need it to discover what they may do)
    GetInfo,
    /// `multi_pay_invoice` (not implemented)
    MultiPayInvoice,
    /// `multi_pay_keysend` (not implemented)
    MultiPayKeysend,
    /// `make_hold_invoice` (not implemented: LDK 0.2 has no clean hold-invoice API here)
    MakeHoldInvoice,
    /// `cancel_hold_invoice` (not implemented)
    CancelHoldInvoice,
    /// `settle_hold_invoice` (not implemented)
    SettleHoldInvoice,
}

impl Method {
    /// Every method the service implements.
    pub const SUPPORTED: [Method; 7] = [
        Method::PayInvoice,
        Method::PayKeysend,
        Method::MakeInvoice,
        Method::LookupInvoice,
        Method::ListTransactions,
        Method::GetBalance,
        Method::GetInfo,
    ];

    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PayInvoice => "pay_invoice",
            Self::PayKeysend => "pay_keysend",
            Self::MakeInvoice => "make_invoice",
            Self::LookupInvoice => "lookup_invoice",
            Self::ListTransactions => "list_transactions",
            Self::GetBalance => "get_balance",
            Self::GetInfo => "get_info",
            Self::MultiPayInvoice => "multi_pay_invoice",
            Self::MultiPayKeysend => "multi_pay_keysend",
            Self::MakeHoldInvoice => "make_hold_invoice",
            Self::CancelHoldInvoice => "cancel_hold_invoice",
            Self::SettleHoldInvoice => "settle_hold_invoice",
        }
    }

    /// Whether the service implements it.
    pub fn is_supported(&self) -> bool {
        Self::SUPPORTED.contains(self)
    }

    /// Whether it spends money (and so counts against the budget).
    pub fn spends(&self) -> bool {
        matches!(self, Self::PayInvoice | Self::PayKeysend)
    }
}

impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown method name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown method {0:?}")]
pub struct UnknownMethod(pub String);

impl FromStr for Method {
    type Err = UnknownMethod;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pay_invoice" => Self::PayInvoice,
            "pay_keysend" => Self::PayKeysend,
            "make_invoice" => Self::MakeInvoice,
            "lookup_invoice" => Self::LookupInvoice,
            "list_transactions" => Self::ListTransactions,
            "get_balance" => Self::GetBalance,
            "get_info" => Self::GetInfo,
            "multi_pay_invoice" => Self::MultiPayInvoice,
            "multi_pay_keysend" => Self::MultiPayKeysend,
            "make_hold_invoice" => Self::MakeHoldInvoice,
            "cancel_hold_invoice" => Self::CancelHoldInvoice,
            "settle_hold_invoice" => Self::SettleHoldInvoice,
            other => return Err(UnknownMethod(other.chars().take(64).collect())),
        })
    }
}

/// A decrypted request, split into method name and params.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRequest {
    /// The method name as sent (possibly unknown).
    pub method: String,
    /// The params object (`{}` when absent or null).
    pub params: Value,
}

/// Parses a decrypted request body. Errors are `OTHER` with an empty `result_type`, since no
/// method could be read.
pub fn parse_request(plaintext: &str) -> Result<RawRequest, Nip47Error> {
    #[derive(Deserialize)]
    struct Envelope {
        method: String,
        #[serde(default)]
        params: Value,
    }
    let env: Envelope = serde_json::from_str(plaintext)
        .map_err(|e| Nip47Error::new(ErrorCode::Other, format!("malformed request: {e}")))?;
    let params = match env.params {
        Value::Null => Value::Object(Default::default()),
        p @ Value::Object(_) => p,
        _ => {
            return Err(Nip47Error::new(
                ErrorCode::Other,
                "malformed request: params must be an object",
            ))
        }
    };
    Ok(RawRequest {
        method: env.method.chars().take(64).collect(),
        params,
    })
}

/// Decodes a method's params into its typed request.
pub fn params<T: serde::de::DeserializeOwned>(raw: &RawRequest) -> Result<T, Nip47Error> {
    serde_json::from_value(raw.params.clone()).map_err(|e| {
        Nip47Error::new(
            ErrorCode::Other,
            format!("invalid params for {}: {e}", raw.method),
        )
    })
}

/// A response body.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Response {
    /// The method this answers.
    pub result_type: String,
    /// The error, if the command failed.
    pub error: Option<Nip47Error>,
    /// The result, if it succeeded.
    pub result: Option<Value>,
}

impl Response {
    /// A success.
    pub fn ok(method: &str, result: Value) -> Self {
        Self {
            result_type: method.to_string(),
            error: None,
            result: Some(result),
        }
    }

    /// A failure.
    pub fn err(method: &str, error: Nip47Error) -> Self {
        Self {
            result_type: method.to_string(),
            error: Some(error),
            result: None,
        }
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        // Serializing plain data cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"result_type":"","error":{"code":"INTERNAL","message":"encoding"}}"#.into()
        })
    }
}

fn state_str(state: TxState) -> &'static str {
    match state {
        TxState::Pending => "pending",
        TxState::Settled => "settled",
        TxState::Expired => "expired",
        TxState::Failed => "failed",
    }
}

/// A transaction as NIP-47 shows it (`lookup_invoice`, `list_transactions`, notifications).
pub fn transaction_json(t: &Transaction) -> Value {
    let mut v = json!({
        "type": match t.direction { Direction::Incoming => "incoming", Direction::Outgoing => "outgoing" },
        "state": state_str(t.state),
        "payment_hash": hex::encode(t.payment_hash),
        "amount": t.amount_msat,
        "fees_paid": t.fees_paid_msat,
        "created_at": t.created_at,
    });
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    let opt = |s: &Option<String>| s.as_ref().map(|x| Value::String(x.clone()));
    for (key, value) in [
        ("invoice", opt(&t.invoice)),
        ("description", opt(&t.description)),
        ("description_hash", opt(&t.description_hash)),
        ("preimage", opt(&t.preimage)),
        ("expires_at", t.expires_at.map(Value::from)),
        ("settled_at", t.settled_at.map(Value::from)),
    ] {
        if let Some(value) = value {
            obj.insert(key.into(), value);
        }
    }
    v
}

/// A notification body. Notifications need `invoice` and `preimage` strings even for keysend,
/// where they are empty.
pub fn notification_json(kind: &str, t: &Transaction) -> String {
    let mut body = transaction_json(t);
    if let Some(obj) = body.as_object_mut() {
        obj.entry("invoice")
            .or_insert_with(|| Value::String(String::new()));
        obj.entry("preimage")
            .or_insert_with(|| Value::String(String::new()));
        obj.entry("settled_at")
            .or_insert_with(|| Value::from(t.created_at));
    }
    json!({ "notification_type": kind, "notification": body }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip() {
        for m in Method::SUPPORTED {
            assert_eq!(m.as_str().parse::<Method>(), Ok(m));
        }
        assert!("make_hold_invoice".parse::<Method>().is_ok());
        assert!(!Method::MakeHoldInvoice.is_supported());
        assert!("fly_to_moon".parse::<Method>().is_err());
        assert!(Method::PayKeysend.spends() && !Method::MakeInvoice.spends());
    }

    #[test]
    fn parses_requests_leniently_and_never_panics() {
        let r = parse_request(r#"{"method":"get_info"}"#).expect("no params");
        assert_eq!(r.params, json!({}));
        let r = parse_request(r#"{"method":"get_info","params":null}"#).expect("null params");
        assert_eq!(r.method, "get_info");
        for bad in [
            "",
            "null",
            "[]",
            "{",
            r#"{"params":{}}"#,
            r#"{"method":7}"#,
            r#"{"method":"x","params":[1]}"#,
            "\u{0}\u{1}",
        ] {
            let e = parse_request(bad).expect_err(bad);
            assert_eq!(e.code, ErrorCode::Other);
        }
        let deep = "[".repeat(100_000);
        assert!(parse_request(&deep).is_err());
        let raw =
            parse_request(r#"{"method":"pay_invoice","params":{"amount":"x"}}"#).expect("envelope");
        let e = params::<nostr_sdk::nips::nip47::PayInvoiceRequest>(&raw).expect_err("no invoice");
        assert_eq!(e.code, ErrorCode::Other);
    }

    #[test]
    fn responses_use_spec_shape() {
        let r = Response::err(
            "pay_invoice",
            Nip47Error::new(ErrorCode::QuotaExceeded, "over budget"),
        );
        let v: Value = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(v["result_type"], "pay_invoice");
        assert_eq!(v["error"]["code"], "QUOTA_EXCEEDED");
        assert_eq!(v["result"], Value::Null);
        let r = Response::ok("get_balance", json!({"balance": 5}));
        let v: Value = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["result"]["balance"], 5);
    }
}
