//! What an app asks the node to pay, signed by the app's own key, so the tenant's signer can
//! tell a payment the tenant's app asked for from one the operator's node started on its own.
//!
//! A gRPC client whose capability token names a client key (`client_key("<x-only hex>")` in
//! the token's first block, which only the tenant's signer can mint) signs an [`AppRequest`]
//! with that key: BIP-340 Schnorr over [`AppRequest::digest`]. The node relays it, with the
//! token, as a [`PaymentAuthorization`]; the signer checks the token chains to its root, the
//! signature, that the request is exactly the payment, that the nonce is new and the time
//! fresh, and the app's budget in its own ledger.
//!
//! Written by hand: the message is five fields and no crate defines it.

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{schnorr, Keypair, Message, Secp256k1, XOnlyPublicKey};
use serde::{Deserialize, Serialize};

/// The gRPC metadata key that carries a [`SignedAppRequest`] as JSON.
pub const APP_REQUEST_METADATA: &str = "micronode-app-request";

/// The domain separator of the signed digest: a signature over it is never a valid signature
/// of anything else this project signs.
const TAG: &[u8] = b"micronode/app-request/v1";

/// What kind of spending an app asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppMethod {
    /// Pay a BOLT 11 invoice: the target is its payment hash (hex).
    PayInvoice,
    /// A spontaneous payment: the target is the payee's node id (hex).
    Keysend,
    /// An on-chain send from the wallet: the target is the destination's output script (hex),
    /// the amount the output's value in msat (whole sat), or 0 for "everything" (the send then
    /// has that output alone).
    SendOnchain,
    /// Not a payment: the app delegates a budget to a Nostr Wallet Connect app whose key it
    /// made ([`Delegation`]). The target is `<nwc app key, x-only hex>/<period_secs>/<expires_at
    /// or 0>` ([`delegation_target`]), the amount the delegated budget per period, in msat.
    DelegateNwc,
}

impl AppMethod {
    /// The name signed and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AppMethod::PayInvoice => "pay_invoice",
            AppMethod::Keysend => "keysend",
            AppMethod::SendOnchain => "send_onchain",
            AppMethod::DelegateNwc => "delegate_nwc",
        }
    }
}

/// One spending request as the app made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRequest {
    /// What is asked.
    pub method: AppMethod,
    /// The invoice's payment hash, or the keysend payee (lowercase hex).
    pub target: String,
    /// Exactly what is paid to the payee, in msat (routing fees are bounded by the signer's
    /// fee allowance, not by this).
    pub amount_msat: u64,
    /// 16 random bytes (hex): the signer approves each nonce once.
    pub nonce: String,
    /// When the app made it, Unix seconds: the signer refuses stale requests.
    pub time: u64,
}

impl AppRequest {
    /// A new request with a fresh random nonce and the current time.
    pub fn new(method: AppMethod, target: String, amount_msat: u64) -> AppRequest {
        let nonce: [u8; 16] = rand::random();
        AppRequest {
            method,
            target: target.to_ascii_lowercase(),
            amount_msat,
            nonce: hex::encode(nonce),
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
        }
    }

    /// SHA-256 of the tag and each field, each length-prefixed so no two requests share bytes.
    pub fn digest(&self) -> [u8; 32] {
        let mut engine = sha256::Hash::engine();
        let amount = self.amount_msat.to_string();
        let time = self.time.to_string();
        for part in [
            TAG,
            self.method.as_str().as_bytes(),
            self.target.as_bytes(),
            amount.as_bytes(),
            self.nonce.as_bytes(),
            time.as_bytes(),
        ] {
            engine.input(&(part.len() as u32).to_be_bytes());
            engine.input(part);
        }
        sha256::Hash::from_engine(engine).to_byte_array()
    }

    /// Signs the request with the app's key.
    pub fn sign(self, key: &Keypair) -> SignedAppRequest {
        let secp = Secp256k1::signing_only();
        let aux: [u8; 32] = rand::random();
        let sig = secp.sign_schnorr_with_aux_rand(&Message::from_digest(self.digest()), key, &aux);
        SignedAppRequest {
            request: self,
            signature: hex::encode(sig.serialize()),
        }
    }
}

/// A request and the app's signature over it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAppRequest {
    /// The request.
    pub request: AppRequest,
    /// BIP-340 signature (64 bytes, hex) by the key the app's token names.
    pub signature: String,
}

impl SignedAppRequest {
    /// Whether `signature` is `client_key`'s (x-only, hex) over the request.
    pub fn verify(&self, client_key: &str) -> Result<(), String> {
        let key: XOnlyPublicKey = client_key
            .parse()
            .map_err(|e| format!("bad client key: {e}"))?;
        let sig = hex::decode(&self.signature)
            .ok()
            .and_then(|b| schnorr::Signature::from_slice(&b).ok())
            .ok_or_else(|| "the signature is not a BIP-340 signature".to_string())?;
        Secp256k1::verification_only()
            .verify_schnorr(&sig, &Message::from_digest(self.request.digest()), &key)
            .map_err(|_| "the signature is not the client key's over this request".to_string())
    }
}

/// Why the node believes the tenant's app asked for a payment, for the signer to check. Its
/// `Debug` shows neither the token nor the service key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaymentAuthorization {
    /// A gRPC client's signed request and the capability token naming its key.
    Client {
        /// The token the call presented (base64 biscuit).
        token: String,
        /// The signed request.
        request: SignedAppRequest,
    },
    /// A Nostr Wallet Connect app's request event (kind 23194), signed by the app's key over
    /// its ciphertext.
    Nwc {
        /// The event as the app published it (JSON).
        event: String,
        /// The secret key (32 bytes) of the connection's wallet service, to which the event is
        /// addressed: the signer decrypts the request with it (NIP-44, whose MAC makes a wrong
        /// key fail; or NIP-04) and checks it is the event's `p` key. It is the operator's key
        /// for this connection and can move no funds.
        service_key: crate::Hex,
        /// The delegation the connection was made with, when a tenant's app (the browser
        /// wallet) made it for an NWC app whose key it made ([`Delegation`]); absent for a
        /// connection whose app the signer made. Old peers neither send nor expect it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delegation: Option<Delegation>,
    },
}

/// A tenant's app's delegation of part of its budget to a Nostr Wallet Connect app: the
/// delegating app's token and its signed `delegate_nwc` request, whose target names the NWC
/// app's key, the budget's period and an expiry ([`parse_delegation_target`]) and whose amount
/// is the budget per period. It is long-lived (no freshness rule) and reusable: the node
/// attaches it to every payment of the connection, and the signer approves only events signed
/// by the key it names, within its budget and the delegating app's. Its `Debug` shows no token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// The delegating app's capability token (base64 biscuit).
    pub token: String,
    /// The delegating app's signed `delegate_nwc` request.
    pub request: SignedAppRequest,
}

impl std::fmt::Debug for Delegation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delegation")
            .field("request", &self.request.request)
            .finish_non_exhaustive()
    }
}

/// What a `delegate_nwc` request's target says, read by [`parse_delegation_target`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegationTarget {
    /// The NWC app's key (x-only, 64 lowercase hex characters).
    pub app_pubkey: String,
    /// The budget's rolling period in seconds; 0: the delegation's whole life.
    pub period_secs: u64,
    /// When the delegation ends (Unix seconds), if it does (0 in the target: never).
    pub expires_at: Option<u64>,
}

/// Why a `delegate_nwc` target cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DelegationTargetError {
    /// Not exactly three `/`-separated parts (how many there were).
    Parts(usize),
    /// The key is not 64 lowercase hex characters.
    PublicKey,
    /// A number (named) is not a decimal `u64` without sign or leading zeros.
    Number(&'static str),
}

impl std::fmt::Display for DelegationTargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DelegationTargetError::Parts(n) => write!(
                f,
                "a delegation target is <app key>/<period_secs>/<expires_at or 0>, not {n} part(s)"
            ),
            DelegationTargetError::PublicKey => {
                f.write_str("the delegation's app key is not 64 lowercase hex characters")
            }
            DelegationTargetError::Number(what) => {
                write!(f, "the delegation's {what} is not a decimal number")
            }
        }
    }
}

impl std::error::Error for DelegationTargetError {}

/// The target of a `delegate_nwc` request: `<app key>/<period_secs>/<expires_at or 0>`.
pub fn delegation_target(app_pubkey: &str, period_secs: u64, expires_at: Option<u64>) -> String {
    format!(
        "{}/{period_secs}/{}",
        app_pubkey.to_ascii_lowercase(),
        expires_at.unwrap_or(0)
    )
}

/// Reads a `delegate_nwc` target: exactly three `/`-separated parts, the key 64 lowercase hex
/// characters, the numbers decimal (`0` for "never expires").
pub fn parse_delegation_target(target: &str) -> Result<DelegationTarget, DelegationTargetError> {
    let parts: Vec<&str> = target.split('/').collect();
    let [key, period, expires] = parts[..] else {
        return Err(DelegationTargetError::Parts(parts.len()));
    };
    let hex_lower = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if key.len() != 64 || !key.chars().all(hex_lower) {
        return Err(DelegationTargetError::PublicKey);
    }
    let number = |text: &str, what: &'static str| {
        let canonical = !text.is_empty()
            && text.chars().all(|c| c.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        canonical
            .then(|| text.parse::<u64>().ok())
            .flatten()
            .ok_or(DelegationTargetError::Number(what))
    };
    let period_secs = number(period, "period_secs")?;
    let expires_at = number(expires, "expires_at")?;
    Ok(DelegationTarget {
        app_pubkey: key.to_string(),
        period_secs,
        expires_at: (expires_at != 0).then_some(expires_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_every_field() {
        let secp = Secp256k1::new();
        let key = Keypair::from_seckey_slice(&secp, &[7u8; 32]).unwrap();
        let (xonly, _) = key.x_only_public_key();
        let signed = AppRequest::new(AppMethod::PayInvoice, "AB".repeat(32), 1_000).sign(&key);
        assert_eq!(signed.request.target, "ab".repeat(32));
        signed.verify(&xonly.to_string()).unwrap();
        let mut changed = signed.clone();
        changed.request.amount_msat += 1;
        assert!(changed.verify(&xonly.to_string()).is_err());
        let mut changed = signed.clone();
        changed.request.method = AppMethod::Keysend;
        assert!(changed.verify(&xonly.to_string()).is_err());
        let other = Keypair::from_seckey_slice(&secp, &[8u8; 32]).unwrap();
        assert!(signed
            .verify(&other.x_only_public_key().0.to_string())
            .is_err());
        assert!(signed.verify("not a key").is_err());
    }

    #[test]
    fn delegation_targets_are_read_strictly() {
        let key = "ab".repeat(32);
        let read = |t: &str| parse_delegation_target(t);
        assert_eq!(
            read(&format!("{key}/86400/0")).unwrap(),
            DelegationTarget {
                app_pubkey: key.clone(),
                period_secs: 86_400,
                expires_at: None
            }
        );
        assert_eq!(
            read(&delegation_target(
                &key.to_uppercase(),
                0,
                Some(1_900_000_000)
            ))
            .unwrap()
            .expires_at,
            Some(1_900_000_000)
        );
        use DelegationTargetError as E;
        assert_eq!(read(&format!("{key}/86400")), Err(E::Parts(2)));
        assert_eq!(read(&format!("{key}/86400/0/1")), Err(E::Parts(4)));
        assert_eq!(read(""), Err(E::Parts(1)));
        assert_eq!(read(&format!("{}/1/0", "AB".repeat(32))), Err(E::PublicKey));
        assert_eq!(read(&format!("{}/1/0", "ab".repeat(31))), Err(E::PublicKey));
        assert_eq!(
            read(&format!("{}zz/1/0", "ab".repeat(31))),
            Err(E::PublicKey)
        );
        for bad in ["", "+1", "-1", "01", "1.5", "18446744073709551616", " 1"] {
            assert_eq!(
                read(&format!("{key}/{bad}/0")),
                Err(E::Number("period_secs"))
            );
            assert_eq!(
                read(&format!("{key}/1/{bad}")),
                Err(E::Number("expires_at"))
            );
        }
    }

    #[test]
    fn an_nwc_authorization_without_a_delegation_is_the_old_message() {
        let old = r#"{"kind":"nwc","event":"{}","service_key":"0101"}"#;
        let parsed: PaymentAuthorization = serde_json::from_str(old).unwrap();
        assert!(matches!(
            &parsed,
            PaymentAuthorization::Nwc {
                delegation: None,
                ..
            }
        ));
        assert_eq!(serde_json::to_string(&parsed).unwrap(), old);
        let key = Keypair::from_seckey_slice(&Secp256k1::new(), &[7u8; 32]).unwrap();
        let delegation = Delegation {
            token: "secret-token".into(),
            request: AppRequest::new(
                AppMethod::DelegateNwc,
                delegation_target(&"cd".repeat(32), 86_400, None),
                1_000_000,
            )
            .sign(&key),
        };
        let with = PaymentAuthorization::Nwc {
            event: "{}".into(),
            service_key: crate::Hex(vec![1, 1]),
            delegation: Some(delegation.clone()),
        };
        let json = serde_json::to_string(&with).unwrap();
        assert!(json.contains(r#""method":"delegate_nwc""#));
        let back: PaymentAuthorization = serde_json::from_str(&json).unwrap();
        let PaymentAuthorization::Nwc {
            delegation: Some(back),
            ..
        } = back
        else {
            panic!("the delegation was lost: {json}")
        };
        assert_eq!(back, delegation);
        assert!(!format!("{with:?}").contains("secret-token"));
        assert!(!format!("{delegation:?}").contains("secret-token"));
    }
}

impl std::fmt::Debug for PaymentAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PaymentAuthorization::Client { request, .. } => f
                .debug_struct("Client")
                .field("request", &request.request)
                .finish_non_exhaustive(),
            PaymentAuthorization::Nwc {
                event, delegation, ..
            } => f
                .debug_struct("Nwc")
                .field("event_len", &event.len())
                .field("delegation", delegation)
                .finish_non_exhaustive(),
        }
    }
}

/// The prefix of an app credential's text.
const CREDENTIAL_PREFIX: &str = "micronode-app:v1:";

/// What an app holds: the token the tenant's signer baked for it and the client key that
/// signs its requests. Its text is `micronode-app:v1:<client secret hex>:<token>`; it is a
/// secret (its `Debug` shows neither part).
#[derive(Clone)]
pub struct AppCredential {
    /// The capability token (base64 biscuit), sent as the bearer token.
    pub token: String,
    /// The client key.
    pub client_key: Keypair,
}

impl std::fmt::Debug for AppCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredential")
            .field("client_key", &self.client_key.x_only_public_key().0)
            .finish()
    }
}

impl AppCredential {
    /// Whether `text` looks like an app credential rather than a plain token.
    pub fn is_credential(text: &str) -> bool {
        text.trim().starts_with(CREDENTIAL_PREFIX)
    }

    /// Parses a credential's text.
    pub fn parse(text: &str) -> Result<AppCredential, String> {
        let rest = text
            .trim()
            .strip_prefix(CREDENTIAL_PREFIX)
            .ok_or_else(|| format!("an app credential starts with {CREDENTIAL_PREFIX}"))?;
        let (secret, token) = rest
            .split_once(':')
            .ok_or_else(|| "an app credential is <prefix><secret>:<token>".to_string())?;
        let secret = hex::decode(secret).map_err(|_| "the client secret is not hex".to_string())?;
        let client_key = Keypair::from_seckey_slice(&Secp256k1::signing_only(), &secret)
            .map_err(|_| "the client secret is not a valid key".to_string())?;
        if token.is_empty() {
            return Err("the app credential has no token".into());
        }
        Ok(AppCredential {
            token: token.to_string(),
            client_key,
        })
    }

    /// The credential's text.
    pub fn to_text(&self) -> String {
        format!(
            "{CREDENTIAL_PREFIX}{}:{}",
            hex::encode(self.client_key.secret_bytes()),
            self.token
        )
    }

    /// The client key's x-only public key (hex), as the token names it.
    pub fn client_public_key(&self) -> String {
        self.client_key.x_only_public_key().0.to_string()
    }

    /// Signs a request for `method` on `target` for `amount_msat`.
    pub fn sign(&self, method: AppMethod, target: String, amount_msat: u64) -> SignedAppRequest {
        AppRequest::new(method, target, amount_msat).sign(&self.client_key)
    }
}

/// A fresh random client key for a new app.
pub fn new_client_key() -> Keypair {
    let secp = Secp256k1::signing_only();
    loop {
        let secret: [u8; 32] = rand::random();
        if let Ok(key) = Keypair::from_seckey_slice(&secp, &secret) {
            return key;
        }
    }
}
