//! A browser-wallet pairing offer, made at the tenant's signer (`docs/pairing.md`).
//!
//! The signer authorises the browser as an app (its own token and signing key, within a
//! budget), draws the 10-word phrase, and seals the app's signing key for the phrase's holder.
//! The node gets only what it needs to run the handshake (the stretched password and the stream
//! id) and the auth data it hands the browser, whose key it cannot open: the operator learns
//! neither the phrase nor the key that signs the browser's payments.

use micronode_lnc::seal::seal_for_phrase;
use micronode_lnc::{Phrase, StreamIds};
use serde::Serialize;

use super::NewApp;

/// The auth data version this signer writes.
pub const AUTH_DATA_VERSION: u32 = 1;

/// What the browser gets in act 2.
#[derive(Serialize)]
struct AuthData<'a> {
    version: u32,
    label: &'a str,
    node_id: &'a str,
    network: &'a str,
    expires_at: u64,
    token: &'a str,
    rights: &'a [String],
    sealed_app_key: Option<String>,
    budget_sat: u64,
    period_secs: u64,
}

/// A pairing session, made: the phrase for the tenant, the rest for the node.
pub struct PairingOffer {
    /// Shown to the tenant once; never sent to the node.
    pub phrase: Phrase,
    /// The phrase's stretched password, for the node's handshake.
    pub password: [u8; 32],
    /// The server-to-client stream id before pairing.
    pub stream_id: [u8; 64],
    /// The auth data (JSON) the node hands the browser.
    pub auth_data: Vec<u8>,
}

/// What the tenant said of the session.
pub struct PairingTerms<'a> {
    /// The session's name.
    pub label: &'a str,
    /// The tenant's node id.
    pub node_id: &'a str,
    /// `regtest`, `signet`, ...
    pub network: &'a str,
    /// When the session ends (Unix seconds).
    pub expires_at: u64,
    /// The rights of the app's token.
    pub rights: &'a [String],
}

/// Makes the offer for `app`, the browser's app just authorised at this signer. The app's key
/// is sealed into the auth data only if its token may pay. Costs one scrypt (about 64 MiB):
/// call it off async workers.
pub fn offer(app: &NewApp, terms: &PairingTerms<'_>) -> PairingOffer {
    let phrase = Phrase::generate();
    let pays = terms.rights.iter().any(|r| r == "pay" || r == "admin");
    let sealed_app_key = pays.then(|| {
        hex::encode(seal_for_phrase(
            &phrase,
            &app.credential.client_key.secret_bytes(),
        ))
    });
    let auth = AuthData {
        version: AUTH_DATA_VERSION,
        label: terms.label,
        node_id: terms.node_id,
        network: terms.network,
        expires_at: terms.expires_at,
        token: &app.credential.token,
        rights: terms.rights,
        sealed_app_key,
        budget_sat: app.record.budget_msat / 1000,
        period_secs: app.record.period_secs,
    };
    let auth_data = serde_json::to_vec(&auth).expect("the auth data serialises");
    PairingOffer {
        password: *phrase.stretch().as_bytes(),
        stream_id: StreamIds::from_phrase(&phrase).server_to_client,
        auth_data,
        phrase,
    }
}
