//! Settings of the NWC service.

use std::path::PathBuf;
use std::time::Duration;

use nostr_sdk::RelayUrl;

use crate::error::NwcError;

/// Per-connection request rate limit (a token bucket).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Requests allowed in a burst.
    pub burst: u32,
    /// Requests per second refilled.
    pub per_second: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            burst: 60,
            per_second: 10.0,
        }
    }
}

/// Settings of the NWC service.
#[derive(Clone, Debug)]
pub struct NwcConfig {
    /// The service's own directory (its SQLite file lives there, 0600).
    pub data_dir: PathBuf,
    /// Relays to listen and answer on (`ws://` or `wss://`).
    pub relays: Vec<String>,
    /// How long to wait before reconnecting to a relay after a drop.
    pub reconnect_interval: Duration,
    /// On (re)subscribing, ask for requests since the last one seen minus this margin (clock
    /// skew between apps and the service).
    pub catch_up_margin: Duration,
    /// Requests older than this are ignored (never executed), including ones a relay
    /// delivers late. MUST be shorter than `request_retention`.
    pub max_request_age: Duration,
    /// Requests dated further in the future than this are ignored.
    pub max_clock_skew: Duration,
    /// How long processed request ids are kept for replay protection.
    pub request_retention: Duration,
    /// How long a payment request waits for the payment's outcome before answering
    /// `PAYMENT_FAILED` (the payment may still complete; its budget reservation stays until
    /// it does or fails).
    pub payment_timeout: Duration,
    /// Routing fee allowance reserved from the budget, in millionths of the amount.
    pub fee_reserve_ppm: u64,
    /// Minimum routing fee allowance (msat).
    pub fee_reserve_min_msat: u64,
    /// Requests whose encrypted content is larger than this are refused unread (`OTHER`).
    pub max_request_bytes: usize,
    /// Responses are kept under this many plaintext bytes (NIP-44 allows 65535):
    /// `list_transactions` returns fewer items rather than more bytes.
    pub max_response_bytes: usize,
    /// Rate limit per connection.
    pub rate_limit: RateLimit,
    /// Requests handled at once (the rest wait).
    pub max_concurrent_requests: usize,
    /// Expiry of invoices made without one (seconds).
    pub default_invoice_expiry_secs: u32,
    /// `list_transactions` page size when the app gives none.
    pub default_list_limit: u64,
    /// Largest `list_transactions` page.
    pub max_list_limit: u64,
    /// How often the service checks relays and connections.
    pub supervise_interval: Duration,
}

impl NwcConfig {
    /// Defaults for a data directory and relays.
    pub fn new(data_dir: impl Into<PathBuf>, relays: Vec<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            relays,
            reconnect_interval: Duration::from_secs(3),
            catch_up_margin: Duration::from_secs(60),
            max_request_age: Duration::from_secs(15 * 60),
            max_clock_skew: Duration::from_secs(5 * 60),
            request_retention: Duration::from_secs(2 * 86_400),
            payment_timeout: Duration::from_secs(60),
            fee_reserve_ppm: 10_000,
            fee_reserve_min_msat: 10_000,
            max_request_bytes: 64 * 1024,
            max_response_bytes: 60_000,
            rate_limit: RateLimit::default(),
            max_concurrent_requests: 64,
            default_invoice_expiry_secs: 86_400,
            default_list_limit: 50,
            max_list_limit: 200,
            supervise_interval: Duration::from_millis(500),
        }
    }

    /// Checks the settings and parses the relay URLs.
    pub fn validate(&self) -> Result<Vec<RelayUrl>, NwcError> {
        if self.relays.is_empty() {
            return Err(NwcError::Config("at least one relay is needed".into()));
        }
        let relays = self
            .relays
            .iter()
            .map(|r| RelayUrl::parse(r).map_err(|e| NwcError::Config(format!("relay {r:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if self.max_request_age + self.max_clock_skew >= self.request_retention {
            return Err(NwcError::Config(
                "request_retention must exceed max_request_age + max_clock_skew, or a \
                 forgotten request could be replayed"
                    .into(),
            ));
        }
        if self.max_response_bytes > 65_535 {
            return Err(NwcError::Config(
                "max_response_bytes is above NIP-44's 65535-byte limit".into(),
            ));
        }
        if self.rate_limit.burst == 0 || self.rate_limit.per_second <= 0.0 {
            return Err(NwcError::Config(
                "the rate limit must allow requests".into(),
            ));
        }
        if self.max_concurrent_requests == 0 {
            return Err(NwcError::Config(
                "max_concurrent_requests must be positive".into(),
            ));
        }
        Ok(relays)
    }

    /// The fee allowance for a payment of `amount_msat`.
    pub fn fee_reserve_msat(&self, amount_msat: u64) -> u64 {
        let proportional = u128::from(amount_msat) * u128::from(self.fee_reserve_ppm) / 1_000_000;
        u64::try_from(proportional)
            .unwrap_or(u64::MAX)
            .max(self.fee_reserve_min_msat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        let c = NwcConfig::new("/tmp/x", vec!["ws://127.0.0.1:7777".into()]);
        assert_eq!(c.validate().unwrap().len(), 1);
        assert_eq!(c.fee_reserve_msat(1_000), 10_000);
        assert_eq!(c.fee_reserve_msat(100_000_000), 1_000_000);
        assert!(c.fee_reserve_msat(u64::MAX) >= 10_000);
        let mut bad = c.clone();
        bad.relays = vec!["not a url".into()];
        assert!(bad.validate().is_err());
        let mut bad = c.clone();
        bad.relays.clear();
        assert!(bad.validate().is_err());
        let mut bad = c;
        bad.request_retention = Duration::from_secs(60);
        assert!(bad.validate().is_err());
    }
}
