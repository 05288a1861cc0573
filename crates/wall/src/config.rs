//! The wall's configuration (TOML) and its secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::l402::path_under;
use crate::WallError;

/// The name of the secret's file in a data directory.
pub const SECRET_FILE: &str = "wall.secret";

/// How long an invoice in a challenge stays payable unless configured.
pub const DEFAULT_INVOICE_EXPIRY_SECS: u32 = 3600;

/// The wall's configuration, as read from TOML:
///
/// ```toml
/// listen = "127.0.0.1:8402"
/// upstream = "http://127.0.0.1:8080"
/// service = "weather"
///
/// [[route]]
/// path_prefix = "/forecast"
/// price_sat = 10
/// valid_secs = 3600
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WallConfig {
    /// Where the wall listens (used by callers that bind the listener from the config).
    pub listen: SocketAddr,
    /// The service behind the wall: `http://host:port`, optionally with a base path that
    /// request paths are appended to. Plain HTTP only.
    pub upstream: String,
    /// The service's name in the tokens' caveats (letters, digits, `-`, `_`, `.`).
    pub service: String,
    /// How long an invoice in a challenge stays payable (seconds; default an hour).
    #[serde(default)]
    pub invoice_expiry_secs: Option<u32>,
    /// The priced routes. A request under none of them, or under a route priced at 0, goes
    /// through free.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Challenges (each makes an invoice on the tenant's node) per remote address and second,
    /// on average (default 5; 0: no limit). Behind a reverse proxy every caller shares its
    /// address.
    #[serde(default)]
    pub challenges_per_ip_per_sec: Option<u32>,
    /// How many challenges an address may get at once after a quiet time (default 50).
    #[serde(default)]
    pub challenges_burst: Option<u32>,
}

/// A priced route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The path prefix (starts with `/`; `/api` covers `/api` and `/api/...`). A request
    /// under several routes takes the longest prefix.
    pub path_prefix: String,
    /// The price of a token for this route, in sat (0: free).
    pub price_sat: u64,
    /// How long a token works after it is issued (seconds); absent: until the secret changes.
    #[serde(default)]
    pub valid_secs: Option<u64>,
}

impl WallConfig {
    /// Parses and [validates](WallConfig::validate) TOML text.
    pub fn from_toml(text: &str) -> Result<WallConfig, WallError> {
        let config: WallConfig = toml::from_str(text).map_err(WallError::ConfigSyntax)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<WallConfig, WallError> {
        let text = std::fs::read_to_string(path).map_err(|source| WallError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        WallConfig::from_toml(&text)
    }

    /// Checks the service name, the upstream URL and the routes.
    pub fn validate(&self) -> Result<(), WallError> {
        let invalid = |why: String| Err(WallError::InvalidConfig(why));
        let name_ok = !self.service.is_empty()
            && self
                .service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return invalid(format!(
                "service name {:?} must be non-empty letters, digits, '-', '_' or '.'",
                self.service
            ));
        }
        crate::proxy::Upstream::parse(&self.upstream)?;
        for (i, route) in self.routes.iter().enumerate() {
            let p = &route.path_prefix;
            if !p.starts_with('/') || p.contains(|c: char| c.is_whitespace() || c == '?') {
                return invalid(format!(
                    "route path_prefix {p:?} must start with '/' and hold no spaces or '?'"
                ));
            }
            if self.routes[..i].iter().any(|r| &r.path_prefix == p) {
                return invalid(format!("route path_prefix {p:?} appears twice"));
            }
            if route.valid_secs == Some(0) {
                return invalid(format!("route {p:?}: valid_secs must be positive"));
            }
            if route.price_sat.checked_mul(1000).is_none() {
                return invalid(format!("route {p:?}: price_sat is too large"));
            }
        }
        Ok(())
    }

    /// The limit on challenges per remote address.
    pub fn challenge_limit(&self) -> micronode_edge::RateLimit {
        micronode_edge::RateLimit {
            per_second: self.challenges_per_ip_per_sec.unwrap_or(5),
            burst: self.challenges_burst.unwrap_or(50),
        }
    }

    /// The route a request to `path` falls under: the longest matching prefix.
    pub fn route_for(&self, path: &str) -> Option<&RouteConfig> {
        self.routes
            .iter()
            .filter(|r| path_under(&r.path_prefix, path))
            .max_by_key(|r| r.path_prefix.len())
    }

    /// How long challenge invoices stay payable.
    pub fn invoice_expiry(&self) -> u32 {
        self.invoice_expiry_secs
            .unwrap_or(DEFAULT_INVOICE_EXPIRY_SECS)
    }
}

/// The wall's 32-byte secret: every token's root key is derived from it. Wiped on drop and
/// never printed.
#[derive(Clone)]
pub struct WallSecret(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for WallSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WallSecret(..)")
    }
}

impl WallSecret {
    /// A secret from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> WallSecret {
        WallSecret(Zeroizing::new(bytes))
    }

    /// A fresh random secret.
    pub fn random() -> WallSecret {
        WallSecret::from_bytes(rand::random())
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads the secret from `<data_dir>/wall.secret` (64 hex digits), creating it (owner-only,
    /// through `micronode-files`) with a random secret if it does not exist. Changing or
    /// deleting the file invalidates every token issued.
    pub fn load_or_create(data_dir: &Path) -> Result<WallSecret, WallError> {
        let path = data_dir.join(SECRET_FILE);
        if let Some(secret) = WallSecret::read(&path)? {
            return Ok(secret);
        }
        micronode_files::create_private_dir(data_dir).map_err(WallError::SecretFile)?;
        let secret = WallSecret::random();
        let text = Zeroizing::new(hex::encode(secret.expose()));
        micronode_files::write_new_private(&path, text.as_bytes())
            .map_err(WallError::SecretFile)?;
        Ok(secret)
    }

    /// Reads a secret file (64 hex digits); `Ok(None)` if it does not exist.
    pub fn read(path: &Path) -> Result<Option<WallSecret>, WallError> {
        let Some(bytes) = micronode_files::read_private(path).map_err(WallError::SecretFile)?
        else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(bytes);
        let text = std::str::from_utf8(&bytes).unwrap_or("").trim();
        let mut secret = [0u8; 32];
        if text.len() != 64 || hex::decode_to_slice(text, &mut secret).is_err() {
            return Err(WallError::SecretFormat(path.to_path_buf()));
        }
        Ok(Some(WallSecret::from_bytes(secret)))
    }
}

/// The default path of the secret in `data_dir`.
pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SECRET_FILE)
}
