//! The hub's configuration ([`HubConfig`], TOML).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::HubError;

/// Who may create an account with `POST /create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SignupMode {
    /// Anyone.
    Open,
    /// Nobody (accounts are refused with an error body).
    #[default]
    Closed,
    /// Whoever brings an unused invite code (body `invite_code` or query `?invite=`), made by
    /// [`crate::HubAdmin::create_invite`]; each code works once.
    Invite,
}

/// The hub's configuration. Every field has a default; `public_url` and `domain` should be
/// set for Lightning Addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Where the HTTP API listens (used by whoever binds the listener).
    pub listen: SocketAddr,
    /// The base URL clients reach the hub at (`https://hub.example.com`), without a trailing
    /// slash: the `lndhub://` export and LNURL callbacks use it.
    pub public_url: String,
    /// The domain of the Lightning Addresses (`name@domain`).
    pub domain: String,
    /// Who may create accounts.
    pub signup: SignupMode,
    /// The fee reserve held for an external payment, in parts per million of the amount.
    pub fee_reserve_ppm: u64,
    /// The least fee reserve, in sat.
    pub fee_reserve_min_sat: u64,
    /// How long an access token lives, in seconds (BlueWallet assumes 2 h).
    pub access_token_secs: u64,
    /// How long a refresh token lives, in seconds (BlueWallet assumes 7 days).
    pub refresh_token_secs: u64,
    /// The largest invoice a user may make (and the LNURL `maxSendable`), in sat.
    pub max_invoice_sat: u64,
    /// How long `/addinvoice` invoices stay payable, in seconds.
    pub invoice_expiry_secs: u32,
    /// The tenant's own Lightning Address name, if any: payments to it credit no account
    /// (they are the tenant's own funds).
    pub tenant_address: Option<String>,
    /// How long `/payinvoice` and `/keysend` wait for the node before answering code 9
    /// ("payment in transit"); below clients' 60 s timeout.
    pub payment_wait_secs: u32,
    /// How often pending payments are resolved against the node, in seconds.
    pub resolve_interval_secs: u64,
    /// How old a pending payment the node does not know must be before it is refunded, in
    /// seconds (a request in flight when the hub died may still reach the node).
    pub resolve_grace_secs: u64,
    /// Calls anyone may make (sign-up, login, LNURL) per remote address and second, on
    /// average; 0: no limit. Behind a reverse proxy every caller shares its address.
    pub open_calls_per_ip_per_sec: u32,
    /// How many of those calls an address may make at once after a quiet time.
    pub open_calls_burst: u32,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            public_url: "http://127.0.0.1:3000".into(),
            domain: "localhost".into(),
            signup: SignupMode::Closed,
            fee_reserve_ppm: 10_000,
            fee_reserve_min_sat: 10,
            access_token_secs: 2 * 3600,
            refresh_token_secs: 7 * 24 * 3600,
            max_invoice_sat: 1_000_000,
            invoice_expiry_secs: 24 * 3600,
            tenant_address: None,
            payment_wait_secs: 50,
            resolve_interval_secs: 5,
            resolve_grace_secs: 60,
            open_calls_per_ip_per_sec: 5,
            open_calls_burst: 50,
        }
    }
}

impl HubConfig {
    /// Parses a TOML configuration and checks it.
    pub fn from_toml(text: &str) -> Result<HubConfig, HubError> {
        let config: HubConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), HubError> {
        let bad = |m: &str| Err(HubError::Config(m.into()));
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return bad("public_url must start with http:// or https://");
        }
        if self.domain.is_empty() || self.domain.contains('/') || self.domain.contains('@') {
            return bad("domain must be a host name");
        }
        if self.access_token_secs == 0 || self.refresh_token_secs == 0 {
            return bad("token lifetimes must be positive");
        }
        if self.max_invoice_sat == 0 || self.max_invoice_sat > 21_000_000 * 100_000_000 {
            return bad("max_invoice_sat must be between 1 and 21e14");
        }
        if self.invoice_expiry_secs == 0 || self.invoice_expiry_secs > 31_536_000 {
            return bad("invoice_expiry_secs must be between 1 and a year");
        }
        if self.payment_wait_secs == 0 || self.payment_wait_secs > 55 {
            return bad("payment_wait_secs must be between 1 and 55 (clients give up at 60)");
        }
        if self.resolve_interval_secs == 0 {
            return bad("resolve_interval_secs must be positive");
        }
        if let Some(name) = &self.tenant_address {
            if !crate::accounts::valid_address_name(name) {
                return bad("tenant_address must be lowercase a-z, 0-9, '-', '_' or '.'");
            }
        }
        Ok(())
    }

    /// The public URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// The fee reserve (msat) held for an external payment of `amount_msat`:
    /// max(`fee_reserve_ppm` of the amount, `fee_reserve_min_sat`).
    pub fn fee_reserve_msat(&self, amount_msat: u64) -> u64 {
        let proportional = (u128::from(amount_msat) * u128::from(self.fee_reserve_ppm) / 1_000_000)
            .min(u128::from(u64::MAX)) as u64;
        proportional.max(self.fee_reserve_min_sat.saturating_mul(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_reserve_is_one_percent_with_a_floor() {
        let c = HubConfig::default();
        assert_eq!(c.fee_reserve_msat(1_000), 10_000);
        assert_eq!(c.fee_reserve_msat(1_000_000), 10_000);
        assert_eq!(c.fee_reserve_msat(5_000_000), 50_000);
        assert_eq!(c.fee_reserve_msat(u64::MAX), u64::MAX / 100);
    }

    #[test]
    fn toml_round_trip_and_validation() {
        let c = HubConfig::from_toml(
            "public_url = \"https://hub.example.com/\"\ndomain = \"example.com\"\nsignup = \"invite\"\ntenant_address = \"shop\"\n",
        )
        .expect("valid");
        assert_eq!(c.signup, SignupMode::Invite);
        assert_eq!(c.base_url(), "https://hub.example.com");
        let text = toml::to_string(&c).expect("serialize");
        assert_eq!(HubConfig::from_toml(&text).expect("again"), c);
        assert!(HubConfig::from_toml("nope = 1").is_err());
        assert!(HubConfig::from_toml("tenant_address = \"Shop\"").is_err());
        assert!(HubConfig::from_toml("payment_wait_secs = 60").is_err());
    }
}
